"""``googlenet study``: the report's claims about GoogLeNet's design, measured by training."""

from __future__ import annotations

import argparse
from pathlib import Path

from .args import add_batch_size, add_input_size, add_workers, positive_int


def add(sub: argparse._SubParsersAction) -> None:
    from ..study.plan import CLAIMS, DEFAULT

    p = sub.add_parser(
        "study",
        help="the report's claims (1x1 reductions, aux heads, GAP, crops, VGG) as experiments",
        description="Train each claim's arms (configurations one setting apart, several seeds "
        "each) with googlenet train, evaluate them with googlenet eval, and write results.json, "
        "report.md and a self-contained report.html with a verdict per claim (Welch's t-test "
        "against the seed-to-seed spread). Without --data: scikit-learn's digits, about 12 "
        "minutes on 2 idle CPU cores. Run it again to resume; under torchrun each arm trains "
        "on every process. See docs/study.md.",
    )
    p.add_argument(
        "--data",
        metavar="DIR|SHARDS",
        help="DIR/train/<class>/... and DIR/val, or googlenet shard's output (default: the "
        f"demo's digits, {DEFAULT['train_per_class']} training images a class)",
    )
    p.add_argument(
        "--claims",
        default=",".join(CLAIMS),
        help="which claims, comma-separated: " + ", ".join(CLAIMS),
    )
    p.add_argument("--seeds", type=positive_int, help="seeds an arm (default 3; --quick: 2)")
    p.add_argument(
        "--epochs", type=positive_int, help=f"epochs an arm (default {DEFAULT['epochs']})"
    )
    add_input_size(
        p,
        None,
        f" (default {DEFAULT['input_size']}: the last map is 2x2, and AlexNet takes 63 px and up)",
    )
    add_batch_size(
        p, None, f"images per process and step, every arm (default {DEFAULT['batch_size']})"
    )
    p.add_argument(
        "--baseline",
        choices=["paper-bn", "paper", "torchvision"],
        default="paper-bn",
        metavar="PRESET",
        help="the baseline GoogLeNet's preset: paper-bn, paper or torchvision (claim 2 also "
        "trains the paper preset)",
    )
    p.add_argument(
        "--output-dir",
        type=Path,
        default=Path("runs/study"),
        metavar="DIR",
        help="where the runs, results.json and the report go (an existing study is resumed)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="every claim end to end on 2 training and 1 validation image a class, 1 epoch, 2 "
        "seeds (the tests; under a minute on 2 idle cores, most of it the naive network and "
        "VGG-16 writing their checkpoints)",
    )
    add_workers(p, 0, " (0: small images decode in microseconds)")


def run(args: argparse.Namespace) -> int:
    from ..study import command_line, run_study

    run_study(
        args.output_dir,
        data=args.data,
        claims=args.claims,
        seeds=args.seeds,
        epochs=args.epochs,
        input_size=args.input_size,
        batch_size=args.batch_size,
        preset=args.baseline,
        quick=args.quick,
        workers=args.workers,
        command=command_line(),
    )
    return 0
