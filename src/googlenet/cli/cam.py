"""``googlenet cam``: class activation maps, where in the image the evidence for a class lies."""

from __future__ import annotations

import argparse
from pathlib import Path

from .args import (
    add_alias,
    add_device,
    add_force,
    add_weights,
    failures,
    positive_float,
    positive_int,
    reporter,
)


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cam",
        help="class activation maps: where in the image the evidence for a class lies",
        description="Class activation maps (Zhou et al. 2016): the classifier's weights for a "
        "class applied to every position of inception 5b's output, drawn over the whole image "
        "as a heatmap. One PNG per image; several classes become panels side by side.",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files, folders, globs")
    add_weights(p, "our .safetensors, a torchvision googlenet .pth or a Caffe .caffemodel")
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--class",
        dest="classes",
        action="append",
        metavar="NAME",
        help="class name or index (repeat for several)",
    )
    which.add_argument(
        "--topk", type=positive_int, default=1, help="maps of the K likeliest classes"
    )
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("."),
        metavar="PATH",
        help="a .png for one image, else a folder (created) for one <name>_cam.png per image",
    )
    add_alias(p, "--out", dest="output", now="-o/--output", type=Path)
    add_force(p)
    p.add_argument("--cmap", default="jet", help="matplotlib colormap")
    p.add_argument(
        "--alpha", type=positive_float, default=0.5, help="heatmap opacity over the image"
    )
    add_device(p)


def run(args: argparse.Namespace) -> int:
    from ..cam import cam_files
    from ..runtime.predictor import Predictor

    predictor = Predictor.from_file(args.weights, device=args.device)
    written, failed = cam_files(
        predictor,
        args.images,
        args.output,
        classes=args.classes,
        topk=args.topk,
        cmap=args.cmap,
        alpha=args.alpha,
        report=reporter(args.command),
        force=args.force,
    )
    return failures(args.command, len(written), failed)
