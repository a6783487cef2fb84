"""``googlenet summary``: the paper's Table 1 from the live model."""

from __future__ import annotations

import argparse

from .args import add_format, add_input_size, add_preset, positive_int


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "summary",
        help="Table 1 from the live model: shapes, parameters, multiply-adds",
        description="Regenerate the paper's Table 1 from the live model (hooks on every layer), "
        "with parameters and multiply-adds per row, the paper's printed figures beside them, and "
        "the total cross-checked against torch.utils.flop_counter.",
    )
    add_preset(p)
    add_input_size(p, 224)
    p.add_argument("--num-classes", type=positive_int, default=1000, help="classes")
    p.add_argument("--naive", action="store_true", help="naive vs reduced Inception module cost")
    p.add_argument(
        "--compare",
        default=None,
        metavar="MODELS",
        help="comma-separated torchvision models to compare with, e.g. vgg16,alexnet",
    )
    add_format(p, ["table", "json", "csv", "markdown"], "table")


def run(args: argparse.Namespace) -> int:
    from .. import analysis
    from ..model import create_model

    compare = [m.strip() for m in args.compare.split(",") if m.strip()] if args.compare else []
    model = create_model(args.preset, num_classes=args.num_classes)
    report = analysis.summarize(
        model, input_size=args.input_size, naive=args.naive, compare=compare
    )
    print(analysis.render(report, args.format))
    return 0
