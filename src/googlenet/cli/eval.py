"""``googlenet eval``: top-1/top-5 of weights (or an ensemble) on an image folder."""

from __future__ import annotations

import argparse

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
    inference_amp,
    refuse_overwrite,
)


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="top-1/top-5 of weights (or an ensemble) on an image folder, 1/10/144 crops",
        description="Evaluate weights on DIR/<class>/<image> (or DIR/val/...). Softmax "
        "probabilities are averaged over the crops and over the models, as in the paper. "
        "Writes a JSON report and a confusion-matrix PNG beside the first weights (or at -o). "
        "Unreadable images are named, skipped and counted; the exit code is then 2.",
    )
    add_weights(
        p,
        "our .safetensors/.pt, torchvision's .pth or a Caffe .caffemodel; several = an ensemble",
        several=True,
    )
    p.add_argument(
        "--data", required=True, metavar="DIR", help="class folders, or a root with val/"
    )
    add_crops(p)
    add_resize(p)
    add_batch_size(p, 64, "crops per forward pass")
    add_workers(p, 2)
    add_device(p)
    add_amp(p, "none")
    add_backend(p)
    p.add_argument("--per-class", action="store_true", help="show per-class accuracy")
    add_format(p, ["table", "json"], "table")
    add_output(p, "the JSON report (the confusion PNG goes beside it; default: beside the weights)")
    p.add_argument("--strict", action="store_true", help="stop at the first unreadable image")


def run(args: argparse.Namespace) -> int:
    from ..evaluate import default_report_path, evaluate_weights, render

    report_path = args.output or default_report_path(args.weights, args.crops)
    refuse_overwrite([report_path, report_path.with_suffix(".confusion.png")], args.force)
    report = evaluate_weights(
        args.weights,
        args.data,
        crops=args.crops,
        batch_size=args.batch_size,
        workers=args.workers,
        device=args.device,
        amp=inference_amp(args.amp),
        backend=args.backend,
        output=report_path,
        strict=args.strict,
        resize=args.resize,
    )
    print(render(report, args.format, per_class=args.per_class))
    return failures(args.command, report["n"], report["skipped"])
