"""``googlenet convert-weights``: any weights we read -> our safetensors."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import GoogLeNetError
from .args import add_output, existing_file, positive_int, refuse_overwrite


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert-weights",
        help="torchvision .pth, Caffe .caffemodel (or any weights we read) -> our safetensors",
        description="Read a torchvision googlenet state dict (e.g. googlenet-1378be20.pth from "
        "~/.cache/torch/hub/checkpoints) safely (weights_only=True), or a Caffe GoogLeNet "
        ".caffemodel (BVLC's bvlc_googlenet.caffemodel, into the paper preset, RGB input), and "
        "write our safetensors file with the configuration and class names in its metadata. "
        "The file to write is DST or -o FILE (like cp, SRC DST also works).",
    )
    p.add_argument(
        "src", type=existing_file, help="weights to read (.pth, .caffemodel, .safetensors)"
    )
    p.add_argument(
        "dst",
        type=Path,
        nargs="?",
        help="safetensors file to write (same as -o; default: SRC's name with .safetensors, "
        "in the current directory)",
    )
    add_output(p, "safetensors file to write")
    p.add_argument("--num-classes", type=positive_int, help="re-initialize the classifier for N")
    p.add_argument("--no-aux", action="store_true", help="drop the auxiliary heads")
    p.add_argument(
        "--no-transform-input",
        action="store_true",
        help="torchvision preset: the weights expect ImageNet-normalized input, not [-1, 1]",
    )
    p.add_argument(
        "--classes",
        type=existing_file,
        metavar="FILE",
        help="class names, one a line, in the classifier's order (e.g. Places365's categories; "
        "default: ImageNet's for 1,000 classes, else numbered)",
    )


def run(args: argparse.Namespace) -> int:
    from ..weights import convert_weights, read_class_names

    if args.dst is not None and args.output is not None:
        raise GoogLeNetError("give the file to write once: DST or -o/--output, not both")
    dst = args.output or args.dst or Path(args.src.with_suffix(".safetensors").name)
    refuse_overwrite([dst], args.force)
    kwargs: dict = {"num_classes": args.num_classes}
    if args.no_aux:
        kwargs["aux_logits"] = False
    if args.no_transform_input:
        kwargs["transform_input"] = False
    if args.classes:
        kwargs["class_names"] = read_class_names(args.classes)
    model = convert_weights(args.src, dst, **kwargs)
    n = sum(p.numel() for p in model.parameters())
    print(
        f"wrote {dst}: preset {model.config.preset}, {model.num_classes} classes, "
        f"{n:,} parameters, aux heads {'kept' if model.config.aux_logits else 'dropped'}"
    )
    return 0
