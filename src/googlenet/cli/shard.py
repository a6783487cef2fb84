"""``googlenet shard``: write an image folder as WebDataset tar shards (see googlenet.shard)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add(sub: argparse._SubParsersAction) -> None:
    from . import positive_int

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
    p.add_argument("--out", required=True, type=Path, metavar="OUT", help="the shard set's folder")
    p.add_argument(
        "--shard-size", type=positive_int, default=1000, metavar="N", help="samples a shard (1000)"
    )
    p.add_argument(
        "--resize",
        type=positive_int,
        metavar="PX",
        help="store images with a shorter side above PX scaled down to PX, as JPEG (e.g. 256)",
    )
    p.add_argument(
        "-j", "--workers", type=positive_int, default=1, help="shards written at once (1)"
    )
    p.add_argument("--strict", action="store_true", help="stop at the first unreadable image")


def run(args: argparse.Namespace) -> int:
    from ..shard import render, write_shards

    index = write_shards(
        args.data,
        args.out,
        val=args.val,
        shard_size=args.shard_size,
        resize=args.resize,
        workers=args.workers,
        strict=args.strict,
    )
    print(render(index, args.out))
    return 0
