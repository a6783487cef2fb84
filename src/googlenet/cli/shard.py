"""``googlenet shard``: write an image folder as WebDataset tar shards (see googlenet.shard)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import GoogLeNetError
from .args import add_alias, add_workers, positive_int


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "shard",
        help="write an image folder as WebDataset tar shards, for streaming to many nodes",
        description="Write DIR/train and DIR/val (as googlenet train finds them) as WebDataset "
        "tar shards OUT/<split>/<split>-NNNNNN.tar with an index (classes, samples per shard, "
        "what was done to the images). Train and evaluate on them with --data OUT, OUT/val, a "
        "brace pattern or a pipe:/http(s):// URL. Unreadable images are counted and left out.",
    )
    p.add_argument("--data", required=True, metavar="DIR", help="DIR/train/<class>/... and DIR/val")
    p.add_argument("--val", metavar="DIR", help="validation folder (default DIR/val)")
    p.add_argument(
        "--output-dir", type=Path, metavar="OUT", help="the shard set's folder (required)"
    )
    add_alias(p, "--out", dest="output_dir", now="--output-dir", type=Path, metavar="OUT")
    p.add_argument(
        "--shard-size", type=positive_int, default=1000, metavar="N", help="samples a shard"
    )
    p.add_argument(
        "--downscale",
        type=positive_int,
        metavar="PX",
        help="store images with a shorter side above PX scaled down to PX, as JPEG (e.g. 256)",
    )
    add_alias(p, "--resize", dest="downscale", now="--downscale", type=positive_int)
    add_workers(p, 1, "; here: shards written at once")
    p.add_argument("--strict", action="store_true", help="stop at the first unreadable image")


def run(args: argparse.Namespace) -> int:
    from ..shard import render, write_shards

    if args.output_dir is None:
        raise GoogLeNetError("the following argument is required: --output-dir OUT")
    index = write_shards(
        args.data,
        args.output_dir,
        val=args.val,
        shard_size=args.shard_size,
        resize=args.downscale,
        workers=args.workers,
        strict=args.strict,
    )
    print(render(index, args.output_dir))
    return 0
