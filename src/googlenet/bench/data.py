"""``googlenet bench --mode data``: can the input pipeline keep a GPU fed?

Times, on this machine, what a loader worker does for each training image: read it (a file of a
folder, or a member of a tar shard), decode it (PIL, or ``torchvision.io.decode_jpeg`` on the
CPU, or batched on the GPU with ``--device cuda``) and apply the paper's augmentation
(:class:`googlenet.data.TrainTransform`), one image after another in this process: images/s per
worker. Then the two real loaders end to end (an image folder and its shards) with ``-j``
workers: images/s in total. From the per-worker rate and a GPU's training throughput it says how
many workers one GPU needs so that input is never the bottleneck.

The GPU figure is an estimate unless measured (``--gpu-images-per-s``): GoogLeNet trains at
about 4,000 images/s on one H100 in bf16 with channels_last (3 GFLOP forward, ~9 GFLOP a
training image with the auxiliary heads and backward, so 4,000 images/s is ~36 TFLOP/s, under 4%
of the H100's 989 dense bf16 TFLOP/s: small convolutions and memory traffic, not FLOPs, bound
it; published ResNet-50 figures, 4 GFLOP a forward pass, are ~2,500-3,000 images/s on an H100
with DALI, and GoogLeNet costs three quarters of it).

Without ``--data``, the images are synthetic JPEGs of ImageNet's typical size (500 x 375,
quality 90): smooth color fields with noise, which compress like photographs.
"""

from __future__ import annotations

import io
import math
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .. import data
from ..data import shards, shardwrite
from ..model import IMAGENET_MEAN, IMAGENET_STD

GPU_ESTIMATE = 4000.0  # images/s, GoogLeNet training on one H100, bf16 (see the docstring)


def run_data_bench(
    data_dir: str | Path | None = None,
    *,
    images: int = 64,
    input_size: int = 224,
    workers: int | None = None,
    device: str = "cpu",
    gpu_images_per_s: float | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Time the input pipeline; returns the report (see :func:`render_data`)."""
    workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
    with tempfile.TemporaryDirectory(prefix="googlenet-bench-data-") as tmp:
        files = _source(data_dir, images, Path(tmp))
        split = _shard(files, Path(tmp) / "shards")
        tf = data.TrainTransform(input_size, IMAGENET_MEAN, IMAGENET_STD)
        blobs = [Path(f).read_bytes() for f, _ in files]
        progress(f"timing {len(files)} images, {input_size} px crops")
        rows = _decode_rows(files, blobs, split, tf, device)
        per_worker = {
            "folder": _loader_rate(_folder_loader(Path(tmp) / "jpegs", tf, 0), len(files)),
            "shards": _loader_rate(_shard_loader(split, tf, 0), len(files)),
        }
        progress(f"end to end with {workers} worker(s)")
        total = {
            "folder": _loader_rate(_folder_loader(Path(tmp) / "jpegs", tf, workers), len(files)),
            "shards": _loader_rate(_shard_loader(split, tf, workers), len(files)),
        }  # fmt: skip
    gpu = gpu_images_per_s or GPU_ESTIMATE
    best = max(per_worker.values())
    return {
        "images": len(files),
        "input_size": input_size,
        "workers": workers,
        "cpus": os.cpu_count(),
        "rows": rows,
        "per_worker": per_worker,
        "total": total,
        "gpu_images_per_s": gpu,
        "gpu_measured": gpu_images_per_s is not None,
        "workers_needed": math.ceil(gpu / best) if best > 0 else None,
        # --decode gpu: the workers only read (the slower of files and tar members)
        "readers_needed": math.ceil(gpu / min(r for n, r in rows if n.startswith("read:"))),
        "device_decode": next(row for row in rows if row[0].startswith("--decode gpu")),
    }


def _decode_rows(files, blobs, split, tf, device: str) -> list[tuple[str, float]]:
    """Per image, one process: reading (files, tar members), decoding, decoding + augmentation."""
    n = len(files)
    rows = [
        _row("read: folder files", n, lambda: [Path(f).read_bytes() for f, _ in files]),
        _row("read: tar shards", n, lambda: list(_tar_samples(split))),
        _row("decode: PIL", n, lambda: [_pil(b) for b in blobs]),
        _row("decode: torchvision decode_jpeg (CPU)", n, lambda: [_tv(b) for b in blobs]),
    ]
    on = torch.device("cuda" if device == "cuda" and torch.cuda.is_available() else "cpu")
    if on.type == "cuda":
        rows.append(_row("decode: decode_jpeg batched (GPU)", n, lambda: _gpu(blobs)))
    g = torch.Generator().manual_seed(0)
    rows.append(_row("decode PIL + paper augmentation", n, lambda: [tf(_pil(b), g) for b in blobs]))
    rows.append(
        _row("decode_jpeg + paper augmentation", n, lambda: [tf(_tv_pil(b), g) for b in blobs])
    )
    encode = data.Deferred(tf).encode
    names = [name for name, _ in files]
    batch = data.collate([encode(blob, i, names[i], 0) for i, blob in enumerate(blobs)])
    assert isinstance(batch, data.EncodedBatch)  # Deferred.encode: files, not pixels
    decoder = data.DeviceDecoder([], tf, on)
    rows.append(_row(f"--decode gpu path on {on.type} (batch of {n})", n,
                     lambda: _synced(decoder.decode(batch).images)))  # fmt: skip
    return rows


def _synced(x: torch.Tensor) -> torch.Tensor:
    if x.is_cuda:
        torch.cuda.synchronize()
    return x


def render_data(report: dict[str, Any]) -> str:
    n, size = report["images"], report["input_size"]
    lines = [f"input pipeline, {n} images, {size} px training crops, one process:", ""]
    lines.append(f"{'step':<42} {'images/s':>10}")
    lines += [f"{name:<42} {rate:>10.1f}" for name, rate in report["rows"]]
    lines.append("")
    lines.append(f"{'loader (decode PIL + augmentation)':<42} {'1 worker':>10} {'total':>10}")
    for source in ("folder", "shards"):
        one, all_ = report["per_worker"][source], report["total"][source]
        lines.append(f"{source:<42} {one:>10.1f} {all_:>10.1f}")
    lines.append(f"(total: -j {report['workers']} loader workers on {report['cpus']} CPU(s))")
    gpu = report["gpu_images_per_s"]
    how = "measured" if report["gpu_measured"] else "an estimate: GoogLeNet on one H100, bf16"
    lines.append(
        f"one GPU training at {gpu:,.0f} images/s ({how}) needs about "
        f"{report['workers_needed']} loader workers at this machine's per-worker rate "
        f"({max(report['per_worker'].values()):.0f} images/s), so that input is never the "
        "bottleneck (plus a core for the training process)"
    )
    name, rate = report["device_decode"]
    lines.append(
        f"with --decode gpu the workers only read: {report['readers_needed']} worker(s); the "
        f"decoding and augmentation then run on the device ({name}: {rate:,.0f} images/s here)"
    )
    return "\n".join(lines)


def _row(name: str, n: int, work: Callable[[], Any]) -> tuple[str, float]:
    work()  # warm-up: page cache, lazy imports
    start = time.perf_counter()
    work()
    return name, n / (time.perf_counter() - start)


def _source(data_dir, images: int, tmp: Path) -> list[tuple[str, int]]:
    """(file, class) of the images to time, copied into ``tmp/jpegs/<class>/``: ``images`` of
    --data (spread over its classes), or synthetic JPEGs."""
    rng = np.random.default_rng(0)
    out = []
    if data_dir is not None:
        folder = Path(data_dir)
        folder = folder / "train" if (folder / "train").is_dir() else folder
        samples = data.ImageFolder(folder, None).samples
        chosen = samples[:: max(1, len(samples) // images)][:images]
    for i in range(images if data_dir is None else len(chosen)):
        label = i % 2
        (tmp / "jpegs" / str(label)).mkdir(parents=True, exist_ok=True)
        if data_dir is not None:
            source = Path(chosen[i][0])
            path = tmp / "jpegs" / str(label) / f"{i:04d}{source.suffix.lower()}"
            path.write_bytes(source.read_bytes())
        else:
            y, x = np.mgrid[0:375, 0:500]
            base = np.stack([x * 255 / 500, y * 255 / 375, np.full_like(x, 40 * (i % 6))], -1)
            pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
            path = tmp / "jpegs" / str(label) / f"{i:04d}.jpg"
            Image.fromarray(pixels).save(path, quality=90)
        out.append((str(path), label))
    return out


def _shard(files: list[tuple[str, int]], out: Path, size: int = 16) -> shards.ShardSet:
    """The images as tar shards of ``size`` (several, so that workers read whole shards)."""
    out.mkdir()
    urls, counts = [], []
    for k in range(0, len(files), size):
        items = [(f, label, k + i) for i, (f, label) in enumerate(files[k : k + size])]
        path = out / shards.shard_name("train", k // size)
        written = shardwrite.write_shard(path, items, None, strict=False)
        urls.append(str(path))
        counts.append(written.count)
    return shards.ShardSet(str(out), urls, counts, ["0", "1"])


def _tar_samples(split: shards.ShardSet):
    """The raw samples of the shards, undecoded (what a shard reader reads)."""
    ds = shards.ShardDataset(split, None, train=False, batch_size=1)
    return ds.raw_samples(range(len(split.urls)))


def _pil(blob: bytes) -> Image.Image:
    return data.decode_image(io.BytesIO(blob), "image")


def _tv(blob: bytes) -> torch.Tensor:
    return data.decode_jpegs([torch.frombuffer(bytearray(blob), dtype=torch.uint8)], "cpu")[0]


def _tv_pil(blob: bytes) -> Image.Image:
    from torchvision.transforms.v2.functional import to_pil_image

    return to_pil_image(_tv(blob))


def _gpu(blobs: list[bytes]) -> list[torch.Tensor]:
    out = data.decode_jpegs(
        [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in blobs], "cuda"
    )
    torch.cuda.synchronize()
    return out


def _folder_loader(folder: Path, tf, workers: int):
    images = data.ImageFolder(folder, tf)
    sampler = data.TrainSampler(images, 1, 0, shuffle=True, seed=0)
    return data.make_loader(images, sampler, 8, workers, drop_last=True)


def _shard_loader(split, tf, workers: int):
    ds = shards.ShardDataset(split, tf, train=True, batch_size=8, buffer=64)
    return shards.ShardLoader(ds, 8, workers)


def _loader_rate(loader, n: int) -> float:
    """Images/s through a loader, timed from its first batch (worker start-up left out)."""
    batches = iter(loader)
    first = next(batches)
    start, seen = time.perf_counter(), 0
    for batch in batches:
        seen += len(batch.labels)
    del first
    seconds = time.perf_counter() - start
    return seen / seconds if seen else float("nan")
