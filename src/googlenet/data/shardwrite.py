"""Writing one WebDataset tar shard of an image folder's files (``googlenet shard`` cuts a split
into shards and calls this for each; ``bench --mode data`` too). The layout is the one
:mod:`googlenet.data.shards` reads: ``<index>.<ext>`` (the image) and ``<index>.cls`` (its class
number) per sample, the index being the image's place in its split."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from ..errors import DataError
from ..fileio import atomic_save
from . import open_image
from .shards import require_webdataset

JPEG_QUALITY = 90


@dataclass
class Written:
    """What :func:`write_shard` did: samples written, unreadable files, bytes in and out."""

    count: int = 0
    skipped: list[str] = field(default_factory=list)
    bytes_in: int = 0
    bytes_out: int = 0


def write_shard(
    path: Path, items: list[tuple[str, int, int]], resize: int | None, strict: bool
) -> Written:
    """Write ``items`` (file, class number, index in the split) as the tar shard ``path``,
    atomically; an empty result is not written. ``resize``: shorter sides above it are scaled
    down to it and stored as JPEG (smaller images keep their own bytes)."""
    wds = require_webdataset()
    done = Written()

    def write(tmp: str) -> None:
        with wds.TarWriter(tmp, encoder=False) as sink:
            for source, label, index in items:
                try:
                    payload, ext = _payload(source, resize)
                except DataError as err:
                    if strict:
                        raise DataError(f"{err} (--strict: stopping at the first one)") from None
                    done.skipped.append(str(err))
                    continue
                sink.write({"__key__": f"{index:09d}", ext: payload, "cls": str(label).encode()})
                done.count += 1
                done.bytes_in += Path(source).stat().st_size

    atomic_save(path, write)
    if done.count == 0:
        path.unlink()
    else:
        done.bytes_out = path.stat().st_size
    return done


def _payload(source: str, resize: int | None) -> tuple[bytes, str]:
    """The bytes to store for an image file, and their extension; raises DataError if the file
    does not decode (so a shard holds only images a reader can read)."""
    img = open_image(source)
    if resize is not None and min(img.size) > resize:
        w, h = img.size
        size = (resize, round(h * resize / w)) if w <= h else (round(w * resize / h), resize)
        out = io.BytesIO()
        img.resize(size, Image.Resampling.BILINEAR).save(out, "JPEG", quality=JPEG_QUALITY)
        return out.getvalue(), "jpg"
    ext = Path(source).suffix.lower().lstrip(".")
    return Path(source).read_bytes(), "jpg" if ext == "jpeg" else ext
