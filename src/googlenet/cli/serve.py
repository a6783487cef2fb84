"""``googlenet serve``: the HTTP API, the web page and the metrics of one model."""

from __future__ import annotations

import argparse

from .args import (
    add_backend,
    add_device,
    add_weights,
    nonnegative_float,
    positive_float,
    positive_int,
)


def port(text: str) -> int:
    value = positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a TCP port is 1 to 65535, got {value}")
    return value


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a model over HTTP: JSON API, web page, metrics (extra: serve)",
        description="Serve a model: POST /v1/predict (top-k, the same answer as `googlenet "
        "predict`), POST /v1/cam (class activation map, PNG), GET /v1/model, /healthz, "
        "/readyz, /metrics (Prometheus), and a web page at /. Concurrent requests are batched "
        "(up to --max-batch, waiting at most --max-wait-ms). SIGTERM drains the requests in "
        "progress, then exits 0. Needs pip install 'googlenet[serve]'.",
    )
    add_weights(p, "our .safetensors, a torchvision googlenet .pth, or an exported .onnx")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1: this machine)")
    p.add_argument("--port", type=port, default=8000, help="port")
    add_backend(p)
    add_device(p)
    p.add_argument("--max-batch", type=positive_int, default=32, help="images per batch")
    p.add_argument(
        "--max-wait-ms",
        type=nonnegative_float,
        default=5.0,
        help="how long a batch waits for more requests after its first, in ms",
    )
    p.add_argument(
        "--max-queue",
        type=positive_int,
        default=256,
        help="requests waiting for a batch before new ones get 503 + Retry-After",
    )
    p.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        help="server processes, a model each (uvicorn's --workers, not -j)",
    )
    p.add_argument(
        "--timeout", type=positive_float, default=30.0, help="seconds per request before 504"
    )
    p.add_argument(
        "--max-body-mb", type=positive_float, default=20.0, help="largest upload, MB: 413"
    )
    p.add_argument(
        "--max-pixels",
        type=positive_int,
        default=40_000_000,
        help="largest image, pixels, checked before decoding (at most 100M): 413",
    )
    p.add_argument(
        "--access-log", action=argparse.BooleanOptionalAction, default=True, help="log requests"
    )


def run(args: argparse.Namespace) -> int:
    from ..serve import require_extra

    require_extra()
    from ..serve.app import Limits
    from ..serve.server import Settings, serve

    limits = Limits(
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        max_queue=args.max_queue,
        timeout_s=args.timeout,
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
    )
    settings = Settings(
        weights=str(args.weights),
        host=args.host,
        port=args.port,
        backend=args.backend,
        device=args.device,
        workers=args.workers,
        max_pixels=args.max_pixels,
        access_log=args.access_log,
        log_level="debug" if args.verbose else "info",
        limits=limits,
    )
    return serve(settings)
