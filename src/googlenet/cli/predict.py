"""``googlenet predict``: top-k classes of images, folders or globs."""

from __future__ import annotations

import argparse

from ..errors import ConfigError
from .args import (
    add_amp,
    add_backend,
    add_batch_size,
    add_crops,
    add_device,
    add_format,
    add_output,
    add_resize,
    add_weights,
    add_workers,
    failures,
    positive_int,
    refuse_overwrite,
    reporter,
)


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="top-k classes of images, folders or globs",
        description="Classify images with the preprocessing the weights expect (their input "
        "size, mean and std). Folders are searched recursively; batches are decoded in worker "
        "processes and results are written as they come. Unreadable files are reported on "
        "stderr and skipped; the exit code is 2 if any input failed.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders, glob patterns")
    add_weights(p, "our .safetensors, a torchvision .pth, a Caffe .caffemodel, or an .onnx")
    p.add_argument(
        "--topk",
        type=positive_int,
        help="classes per image (default: 5, or all the model's classes when it has fewer; "
        "more than it has shows them all, with a note)",
    )
    add_crops(p)
    add_resize(p)
    add_format(p, ["table", "csv", "json", "jsonl"], "table")
    add_output(p, "write the results to this file, not stdout", old=["--out"])
    add_batch_size(p, 32, "images per forward pass")
    add_workers(p, None, " (default: up to 4 when there is more than one batch)")
    add_device(p)
    add_backend(p)
    add_amp(p, "none")
    p.add_argument("--strict", action="store_true", help="stop at the first unreadable input")


def run(args: argparse.Namespace) -> int:
    from ..predict import predict_files
    from ..runtime.predictor import Predictor

    if args.output is not None:
        refuse_overwrite([args.output], args.force)
    predictor = Predictor.from_file(
        args.weights,
        device=args.device,
        crops=args.crops,
        backend=args.backend,
        batch_size=args.batch_size,
        amp=inference_bf16(args.amp),
        resize=args.resize,
    )
    report = reporter(args.command)
    ok, failed = predict_files(
        predictor,
        args.paths,
        out=args.output,
        format=args.format,
        topk=capped_topk(args.topk, predictor.config.num_classes, report),
        workers=args.workers,
        report=report,
        strict=args.strict,
    )
    return failures(args.command, ok, failed)


def inference_bf16(amp: str) -> bool:
    """``--amp`` for the fast inference path, which computes in fp32 or bf16."""
    if amp == "fp16":
        raise ConfigError("--amp fp16: the fast inference path computes in bf16; use --amp bf16")
    return amp == "bf16"


def capped_topk(topk: int | None, classes: int, report) -> int:
    """``topk`` or, with a note, the model's number of classes when there are fewer."""
    if topk is None:
        return min(5, classes)
    if topk <= classes:
        return topk
    report(f"note: --topk {topk}, but the model knows {classes} classes: showing all {classes}")
    return classes
