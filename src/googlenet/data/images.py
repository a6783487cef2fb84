"""Decoding and finding images: every common mode to 8-bit RGB, EXIF orientation applied,
decompression bombs refused, one-line :class:`~googlenet.errors.DataError` for a file that
cannot be read; image files found from paths, folders and globs."""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import stat
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

from ..errors import DataError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (
    ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm",
)  # fmt: skip
# Images above this many pixels are refused as likely decompression bombs (PIL's own default
# only warns at 89M pixels and refuses at twice that).
MAX_IMAGE_PIXELS = 100_000_000

ImageFile.LOAD_TRUNCATED_IMAGES = False


class ImageTooLargeError(DataError):
    """An image over the pixel limit (a likely decompression bomb), refused before decoding;
    apart from other DataErrors so that a server can answer it with 413, not 400."""


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """Whether the file name has one of the image extensions we read (case-insensitive)."""
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def open_image(path: str | os.PathLike[str]) -> Image.Image:
    """Decode an image file to 8-bit RGB, EXIF orientation applied.

    Raises :class:`DataError` for a missing, unreadable, truncated or oversized file.
    """
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError as err:
        raise DataError(f"{path}: no such file (or a link to a missing file)") from err
    except OSError as err:  # a symlink loop, no permission
        raise DataError(f"{path}: not a readable image ({err.strerror or err})") from err
    if not stat.S_ISREG(mode):  # a FIFO would block the reader forever, a device never end
        raise DataError(f"{path}: not a regular file, so not an image")
    return decode_image(path, str(path))


def decode_image(
    source: str | os.PathLike[str] | BinaryIO, name: str, max_pixels: int = MAX_IMAGE_PIXELS
) -> Image.Image:
    """Decode an image (a path or an open binary file, e.g. an upload's ``BytesIO``) to 8-bit
    RGB, EXIF orientation applied: :func:`open_image`'s decoder, shared with the server so both
    give the same pixels. The size is checked from the header, before any pixel is decoded.

    Raises :class:`DataError` starting with ``name`` for anything that is not a readable image
    of at most ``max_pixels`` pixels.
    """
    with _opened(source, name, max_pixels) as img:
        img.load()
        img = ImageOps.exif_transpose(img)
        return to_rgb(img)


def check_header(
    source: str | os.PathLike[str] | BinaryIO, name: str, max_pixels: int = MAX_IMAGE_PIXELS
) -> None:
    """Raise what :func:`decode_image` would for what the header shows (not an image, over the
    pixel limit), decoding no pixel: a loader worker's check with ``--decode gpu``."""
    with _opened(source, name, max_pixels):
        pass


@contextlib.contextmanager
def _opened(source, name: str, max_pixels: int) -> Iterator[Image.Image]:
    """The image opened (header read, size checked); every failure inside, decoding included,
    as a one-line :class:`DataError` naming ``name``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as img:
                if img.width * img.height > max_pixels:
                    raise ImageTooLargeError(
                        f"{name}: {img.width}x{img.height} pixels is over the limit of "
                        f"{max_pixels:,} (a decompression bomb?); skip or shrink it"
                    )
                yield img
    except DataError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageTooLargeError(f"{name}: refused as a decompression bomb ({err})") from err
    except FileNotFoundError as err:
        raise DataError(f"{name}: no such file") from err
    except (OSError, ValueError, SyntaxError, Image.UnidentifiedImageError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        if not isinstance(source, (str, os.PathLike)):  # PIL names the file object: drop it
            reason = reason.replace(f" {source!r}", "")
        raise DataError(f"{name}: not a readable image ({reason})") from err


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode to 8-bit RGB. 16- and 32-bit images are rescaled, not clipped."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        if img.mode == "F" and arr.max() <= 1.0:
            top = 1.0
        arr8 = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, mode="L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # Composite on white: transparent pixels have arbitrary colors underneath.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def pil_to_uint8(img: Image.Image) -> Tensor:
    """An RGB PIL image as a 3 x H x W ``uint8`` tensor."""
    return TF.pil_to_tensor(img)


def normalize(
    images: Tensor, mean: Sequence[float], std: Sequence[float], dtype: torch.dtype = torch.float32
) -> Tensor:
    """``uint8`` images (... x 3 x H x W) to float, minus mean, over std (both in [0, 1] units)."""
    x = images.to(dtype) / 255.0
    m = torch.tensor(mean, dtype=dtype, device=x.device).view(3, 1, 1)
    s = torch.tensor(std, dtype=dtype, device=x.device).view(3, 1, 1)
    return (x - m) / s


def find_images(inputs: Sequence[str | os.PathLike[str]]) -> tuple[list[Path], list[str]]:
    """Files, folders (recursively, image extensions only) and glob patterns -> image paths in a
    stable order, and a one-line problem for each input that names nothing."""
    found: dict[Path, None] = {}
    problems = []

    def add_dir(directory: Path) -> None:
        for root, dirs, files in os.walk(directory):
            dirs.sort()
            found.update((Path(root) / f, None) for f in sorted(files) if is_image_file(f))

    for text in map(str, inputs):
        path = Path(text)
        if path.is_dir():
            add_dir(path)
        elif path.is_file():
            found[path] = None  # named explicitly: tried whatever its extension
        elif glob.has_magic(text):
            matches = sorted(glob.glob(text, recursive=True))
            for match in map(Path, matches):
                if match.is_dir():
                    add_dir(match)
                elif is_image_file(match):
                    found[match] = None
            if not matches:
                problems.append(f"{text}: no file matches this pattern")
        else:
            problems.append(f"{text}: no such file or directory")
    return list(found), problems


def collect_images(
    inputs: Sequence[str | os.PathLike[str]], report: Callable[[str], None], strict: bool = False
) -> tuple[list[Path], list[str]]:
    """:func:`find_images`, each problem passed to ``report``; a DataError when there is nothing
    to run (or, with ``strict``, at the first problem)."""
    paths, problems = find_images(inputs)
    if strict and problems:
        raise DataError(f"{problems[0]} (--strict: stopping at the first unreadable input)")
    if not paths:  # nothing to do: one line says why
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise DataError(
            problems[0] + more if problems else f"no images found in {', '.join(map(str, inputs))}"
        )
    for problem in problems:
        report(problem)
    return paths, problems
