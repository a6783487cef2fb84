"""``googlenet demo``: the main job end to end on scikit-learn's handwritten digits."""

from __future__ import annotations

import argparse
from pathlib import Path

from .args import add_input_size, add_workers, positive_int


def add(sub: argparse._SubParsersAction) -> None:
    from ..demo import DEMO_EPOCHS, DEMO_SIZE

    p = sub.add_parser(
        "demo",
        help="the main job on real data: train the paper's network on handwritten digits",
        description="Write scikit-learn's 1,797 handwritten digits as an image folder, train the "
        "paper preset on it, evaluate with 1 and 10 crops, print a few predictions and list the "
        "output. Runs again in the same --output-dir continue (or just re-evaluate) the run.",
    )
    p.add_argument(
        "--output-dir",
        type=Path,
        default=Path("runs/demo"),
        metavar="DIR",
        help="where the digits, the run and the reports go (an existing demo is continued)",
    )
    p.add_argument("--epochs", type=positive_int, default=DEMO_EPOCHS, help="training epochs")
    add_input_size(p, DEMO_SIZE)
    add_workers(p, 0, " (0: 8x8 PNGs decode in microseconds; a process would take a core)")
    p.add_argument("--limit", type=positive_int, help="use only the first N images (a quick look)")


def run(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    run_demo(
        args.output_dir,
        epochs=args.epochs,
        input_size=args.input_size,
        workers=args.workers,
        limit=args.limit,
    )
    return 0
