"""``googlenet bench``: inference and training speed against torchvision, in one process."""

from __future__ import annotations

import argparse
import logging

from ..errors import GoogLeNetError
from .args import (
    PROG,
    add_backend,
    add_batch_size,
    add_device,
    add_format,
    add_input_size,
    add_output,
    add_preset,
    add_workers,
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
    refuse_overwrite,
)


def add(sub: argparse._SubParsersAction) -> None:
    from ..bench import MODES

    p = sub.add_parser(
        "bench",
        help="inference and training speed against torchvision, in one process",
        description="Time our inference path and training step against torchvision's googlenet "
        "(eager NCHW, eager channels_last, ONNX Runtime on its export) in one process, "
        "alternating the contenders after a warm-up: median images/s and ms per batch, "
        "batch-1 latency, peak memory, achieved GFLOP/s and its fraction of this machine's "
        "large-matmul FLOP/s, and the ratios of ours to each baseline. bf16 contenders are "
        "added where the hardware does bf16 fast. --preset torchvision times the very "
        "architecture of torchvision's model (the paper preset differs in its 5x5s and LRN).",
    )
    p.add_argument(
        "--mode",
        choices=(*MODES, "data"),
        default="both",
        help="what to time; data: the input pipeline (decode, augmentation, loaders)",
    )
    p.add_argument("--data", metavar="DIR", help="--mode data: images to time (default: synthetic)")
    p.add_argument("--images", type=positive_int, default=64, help="--mode data: how many")
    add_workers(p, None, "; --mode data: loader workers (default: CPUs, at most 8)")
    p.add_argument(
        "--gpu-images-per-s",
        type=positive_float,
        metavar="N",
        help="--mode data: a GPU's measured training images/s (default: an H100 estimate)",
    )
    add_preset(p)
    add_batch_size(p, 32, "images per timed batch")
    add_input_size(p, 224)
    add_device(p)
    add_format(p, ["table", "json"], "table")
    p.add_argument("--repeats", type=positive_int, default=5, help="timed rounds")
    p.add_argument("--warmup", type=nonnegative_int, default=2, help="warm-up rounds")
    add_backend(p)
    p.add_argument("--int8", action="store_true", help="add our int8 model (CPU)")
    p.add_argument("--compile", action="store_true", help="add torch.compile contenders (slow)")
    p.add_argument(
        "--ablation", action="store_true", help="add our other backends and training variants"
    )
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory probes")
    p.add_argument("--no-latency", action="store_true", help="skip batch-1 latency")
    p.add_argument("--threads", type=positive_int, default=None, help="torch/runtime threads")
    p.add_argument(
        "--settle",
        type=nonnegative_float,
        default=0.1,
        help="idle seconds before each timed call, so that one contender's spinning threads "
        "do not slow the next",
    )
    add_output(p, "also write the JSON report to this file")


def run(args: argparse.Namespace) -> int:
    from ..bench import BenchConfig, render, run_bench
    from ..fileio import atomic_write_text

    if args.mode == "data":  # the input pipeline: its own module
        return _data(args)

    if args.output is not None:  # not after minutes of timing
        if not args.output.parent.is_dir():
            raise GoogLeNetError(
                f"cannot write {args.output}: directory {args.output.parent} does not exist"
            )
        refuse_overwrite([args.output], args.force)
    cfg = BenchConfig(
        mode=args.mode,
        preset=args.preset,
        batch_size=args.batch_size,
        input_size=args.input_size,
        device=_bench_device(args.device),
        repeats=args.repeats,
        warmup=args.warmup,
        backend=args.backend,
        int8=args.int8,
        compile=args.compile,
        ablation=args.ablation,
        memory=not args.no_memory,
        latency=not args.no_latency,
        threads=args.threads,
        settle=args.settle,
    )
    report = run_bench(cfg, progress=logging.getLogger(PROG).info)
    if args.output is not None:
        atomic_write_text(args.output, render(report, "json") + "\n")
    print(render(report, args.format))
    return 0


def _data(args: argparse.Namespace) -> int:
    from ..bench.data import render_data, run_data_bench

    report = run_data_bench(
        args.data,
        images=args.images,
        input_size=args.input_size,
        workers=args.workers,
        device=_bench_device(args.device),
        gpu_images_per_s=args.gpu_images_per_s,
        progress=logging.getLogger(PROG).info,
    )
    print(render_data(report))
    return 0


def _bench_device(device: str) -> str:
    """bench times on "cpu" or "cuda" (its first GPU); auto picks the GPU where there is one."""
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device
