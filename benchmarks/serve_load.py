"""Load on `googlenet serve` over the loopback, against the offline fast path in the same run.

Starts ``googlenet serve`` on 127.0.0.1 (a subprocess), then for each level of 1, 8 and 32
concurrent clients (async httpx) sends ``--requests`` POST /v1/predict of the same JPEGs and
reports images/s, p50/p99 latency, errors and the batch sizes the server ran (from its
/metrics histogram). The baseline is :class:`googlenet.Predictor` at batch 32 on the same files
(decoding, preprocessing and the fast path: the work the server does per image, minus HTTP),
timed before and after the load; the better of the two is the one the ratio uses.

    python benchmarks/serve_load.py [--input-size 224] [--classes 1000] [--requests 256]

Weights: ``--weights W``, or a paper-preset model with random weights at a trained network's
scale (see googlenet.bench), saved to a temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import torch
from PIL import Image

import googlenet
from googlenet.bench.contenders import _realistic_weights


def make_images(folder: Path, count: int) -> list[Path]:
    """``count`` 320 x 240 photo-like JPEGs: smooth color gradients plus noise."""
    g = torch.Generator().manual_seed(0)
    ys, xs = torch.linspace(0, 1, 240).view(1, 240, 1), torch.linspace(0, 1, 320).view(1, 1, 320)
    paths = []
    for i in range(count):
        color = torch.rand(3, 1, 1, generator=g)
        img = color * ys + (1 - color) * xs + 0.1 * torch.randn(3, 240, 320, generator=g)
        pixels = (img.clamp(0, 1) * 255).to(torch.uint8).permute(1, 2, 0).numpy()
        paths.append(folder / f"img{i}.jpg")
        Image.fromarray(pixels).save(paths[-1], quality=90)
    return paths


def offline(weights: Path, paths: list[Path], backend: str, rounds: int = 3) -> float:
    """Images/s of Predictor at batch 32 on the files (best of ``rounds`` after a warm-up)."""
    predictor = googlenet.Predictor.from_file(weights, backend=backend, batch_size=32)
    predictor(paths[:32])
    best = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        predictor(paths)
        best = max(best, len(paths) / (time.perf_counter() - start))
    return best


def batch_histogram(url: str) -> dict[float, float]:
    """The server's cumulative batch-size buckets: upper bound -> count."""
    text = httpx.get(f"{url}/metrics").text
    pattern = r'^googlenet_batch_size_bucket\{le="([^"]+)"\} (\S+)$'
    return {float(le): float(n) for le, n in re.findall(pattern, text, re.M)}


async def load(url: str, bodies: list[bytes], clients: int, requests: int) -> dict:
    """``requests`` POSTs from ``clients`` concurrent clients; latencies and failures."""
    latencies: list[float] = []
    errors = 0
    sent = 0

    async def client() -> None:
        nonlocal sent, errors
        async with httpx.AsyncClient(base_url=url, timeout=120) as http:
            while sent < requests:
                body = bodies[sent % len(bodies)]
                sent += 1
                start = time.perf_counter()
                answer = await http.post("/v1/predict", content=body)
                latencies.append(time.perf_counter() - start)
                errors += answer.status_code != 200

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - start
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    return {"images_s": len(latencies) / elapsed, "p50_ms": q[49] * 1e3, "p99_ms": q[98] * 1e3,
            "errors": errors}  # fmt: skip


def batch_sizes(before: dict, after: dict) -> str:
    """The diff of two cumulative histograms as 'size<=N: count' for the buckets used."""
    bounds, out, prev = sorted(after), [], 0.0
    for le in bounds:
        count = (after[le] - before.get(le, 0.0)) - prev
        prev += count
        if count:
            out.append(f"<={le:g}: {count:g}")
    return ", ".join(out)


def start_server(weights: Path, args: argparse.Namespace) -> tuple[str, subprocess.Popen]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "googlenet", "serve", "--weights", str(weights), "--port",
           str(port), "--no-access-log", "--backend", args.backend, "--max-batch",
           str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms)]  # fmt: skip
    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(1200):
        try:
            if httpx.get(f"{url}/readyz").status_code == 200:
                return url, proc
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("the server did not start")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path)
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--requests", type=int, default=256, help="per level")
    p.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--backend", default="auto")
    p.add_argument("--max-batch", type=int, default=32)
    p.add_argument("--max-wait-ms", type=float, default=5.0)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="serve_load_") as tmp:
        run(args, Path(tmp))


def run(args: argparse.Namespace, tmp: Path) -> None:
    weights = args.weights
    if weights is None:
        model = googlenet.create_model("paper", num_classes=args.classes,
                                       input_size=args.input_size, aux_logits=False)  # fmt: skip
        weights = googlenet.save_weights(_realistic_weights(model), tmp / "paper.safetensors")
    paths = make_images(tmp, args.images)
    bodies = [path.read_bytes() for path in paths]
    baseline = [offline(weights, paths, args.backend)]
    url, proc = start_server(weights, args)
    try:
        asyncio.run(load(url, bodies, 4, 32))  # warm-up
        rows = []
        for clients in args.clients:
            before = batch_histogram(url)
            result = asyncio.run(load(url, bodies, clients, args.requests))
            rows.append((clients, result, batch_sizes(before, batch_histogram(url))))
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    baseline.append(offline(weights, paths, args.backend))
    best = max(baseline)
    threads = torch.get_num_threads()
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, {threads} threads; model "
          f"paper {args.input_size} px, {args.classes} classes; exit {code}")  # fmt: skip
    print(f"offline Predictor batch 32: {baseline[0]:.1f} / {baseline[1]:.1f} images/s "
          "(before / after the load)")  # fmt: skip
    print("| clients | images/s | x offline | p50 ms | p99 ms | errors | batch sizes seen |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for clients, r, sizes in rows:
        print(f"| {clients} | {r['images_s']:.1f} | {r['images_s'] / best:.2f} | "
              f"{r['p50_ms']:.0f} | {r['p99_ms']:.0f} | {r['errors']} | {sizes} |")  # fmt: skip


if __name__ == "__main__":
    main()
