"""``googlenet shard``: an image folder as WebDataset tar shards that many nodes can stream.

Caffe read ImageNet from LMDB and TF-slim from TFRecord shards; a folder of 1.2 million files is
slow to list and to open on a network file system and cannot be streamed from an object store.
This writes the train and val splits of ``--data`` (found as ``googlenet train`` finds them) as
``OUT/<split>/<split>-NNNNNN.tar`` shards of ``--shard-size`` samples, each sample the image's
own bytes (or, with ``--downscale S``, a JPEG with the shorter side scaled down to S) and its class
number, plus the indexes that :mod:`googlenet.data.shards` reads (see there for the layout).

The training samples are shuffled once (seed 0) before they are cut into shards, so that every
shard holds every class and a shard shuffle plus a sample buffer mixes well. Images that do not
decode are counted, named and left out (``--strict``: stop at the first). Shards are written
atomically, several at a time with ``--workers``; the top index is written last, so a set with
``OUT/index.json`` is complete, and an interrupted run leaves none (run it again).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import multiprocessing
import random
import re
import sys
import time
from pathlib import Path
from typing import Any

from . import data
from .data import shards, shardwrite
from .errors import ConfigError
from .fileio import atomic_write_text, output_lock

log = logging.getLogger(__name__)

_MINE = r"(train|val)-\d{6}\.tar"


def write_shards(
    data_dir: str | Path,
    out: str | Path,
    *,
    val: str | Path | None = None,
    shard_size: int = 1000,
    resize: int | None = None,
    workers: int = 1,
    strict: bool = False,
) -> dict[str, Any]:
    """Write the shard set; returns its top index (what was written, counts, sizes)."""
    out = Path(out)
    train_dir, val_dir = data.resolve_splits(data_dir, val)
    folders = {"train": data.ImageFolder(train_dir, None)}
    classes = folders["train"].classes
    if val_dir is not None:
        folders["val"] = data.ImageFolder(val_dir, None, classes)
    start = time.perf_counter()
    with output_lock(out, "shard", "--out"):
        if (out / shards.INDEX).exists():
            raise ConfigError(
                f"{out} already holds a shard set ({shards.INDEX}); choose another --out, or "
                "delete it to write it again"
            )
        preprocessing = {
            "source": str(Path(data_dir).resolve()),
            "resize_shorter_side": resize,
            "jpeg_quality": shardwrite.JPEG_QUALITY if resize else None,
            "train_order": "shuffled with seed 0",
        }
        splits = {}
        try:
            for split, folder in folders.items():
                splits[split] = _write_split(
                    out / split, split, folder, shard_size, resize, workers, strict, preprocessing
                )
        except BaseException:  # --strict, a full disk, Ctrl-C: no half set stays behind
            _discard(out, folders)
            raise
        index = {
            "format": shards.FORMAT,
            "version": shards.VERSION,
            "classes": classes,
            "splits": splits,
            "preprocessing": preprocessing,
            "seconds": round(time.perf_counter() - start, 1),
        }
        atomic_write_text(out / shards.INDEX, json.dumps(index, indent=2) + "\n")
    return index


def _write_split(
    folder: Path,
    split: str,
    images: data.ImageFolder,
    shard_size: int,
    resize: int | None,
    workers: int,
    strict: bool,
    preprocessing: dict[str, Any],
) -> dict[str, Any]:
    """One split's shards and its index; a summary for the top index."""
    folder.mkdir(exist_ok=True)
    _discard_split(folder)  # what an interrupted run left (there is no top index yet)
    order = list(range(len(images.samples)))
    if split == "train":
        random.Random(0).shuffle(order)
    jobs = []
    for k in range(math.ceil(len(order) / shard_size)):
        chunk = order[k * shard_size : (k + 1) * shard_size]
        items = [(images.samples[i][0], images.samples[i][1], i) for i in chunk]
        jobs.append((folder / shards.shard_name(split, k), items, resize, strict))
    results = _run(jobs, workers)
    listed: list[dict[str, Any]] = [
        {"name": path.name, "count": done.count}
        for (path, *_), done in zip(jobs, results, strict=True)
        if done.count
    ]
    skipped = [reason for done in results for reason in done.skipped]
    for reason in skipped[:5]:
        log.warning("skipped %s", reason)
    index = {
        "format": shards.FORMAT,
        "version": shards.VERSION,
        "split": split,
        "classes": images.classes,
        "shards": listed,
        "count": sum(s["count"] for s in listed),
        "skipped": len(skipped),
        "preprocessing": preprocessing,
    }
    if not listed:
        raise ConfigError(f"{images.root}: no readable image to shard")
    atomic_write_text(folder / shards.INDEX, json.dumps(index, indent=2) + "\n")
    return {
        "count": index["count"],
        "shards": len(listed),
        "skipped": len(skipped),
        "source_bytes": sum(done.bytes_in for done in results),
        "shard_bytes": sum(done.bytes_out for done in results),
    }


def _discard(out: Path, folders) -> None:
    for split in folders:
        if (out / split).is_dir():
            _discard_split(out / split)
            with contextlib.suppress(OSError):
                (out / split).rmdir()


def _discard_split(folder: Path) -> None:
    """Remove our shards and index from ``folder`` (only files with the names we write)."""
    for old in folder.iterdir():
        if re.fullmatch(_MINE, old.name) or old.name == shards.INDEX:
            old.unlink()


def _run(jobs: list, workers: int) -> list[shardwrite.Written]:
    if workers <= 1 or len(jobs) <= 1:
        return [_job(job) for job in jobs]
    # fork: a spawned worker would spend seconds importing torch again (macOS: spawn, its default)
    method = "fork" if sys.platform == "linux" else "spawn"
    with multiprocessing.get_context(method).Pool(min(workers, len(jobs))) as pool:
        return pool.map(_job, jobs, chunksize=1)


def _job(job) -> shardwrite.Written:
    path, items, resize, strict = job
    return shardwrite.write_shard(path, items, resize, strict)


def render(index: dict[str, Any], out: Path) -> str:
    """What ``googlenet shard`` prints: per split, and how the size compares with the source."""
    lines = []
    for split, s in index["splits"].items():
        skipped = f", {s['skipped']} unreadable image(s) skipped" if s["skipped"] else ""
        lines.append(
            f"{split}: {s['count']:,} images in {s['shards']} shard(s) in {out / split}{skipped}"
        )
    source = sum(s["source_bytes"] for s in index["splits"].values())
    written = sum(s["shard_bytes"] for s in index["splits"].values())
    ratio = written / source if source else float("nan")
    resize = index["preprocessing"]["resize_shorter_side"]
    what = f"--downscale {resize}: " if resize else ""
    lines.append(
        f"{what}{written / 1e6:,.1f} MB of shards for {source / 1e6:,.1f} MB of source images "
        f"({ratio:.0%} of it; {source / max(written, 1):.1f}x smaller) in {index['seconds']} s; "
        f"index: {out / shards.INDEX}"
    )
    return "\n".join(lines)
