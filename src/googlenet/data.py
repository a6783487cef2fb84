"""Images in, normalized tensors out: decoding, evaluation crops (1, 10 and the paper's 144).

Decoding (:func:`open_image`) turns every common image mode into 8-bit RGB (grayscale, palette,
RGBA, CMYK, 16-bit), applies the EXIF orientation, and refuses decompression bombs; a file that
cannot be decoded raises :class:`DataError` naming it.

Evaluation crops follow the paper (SPEC section 2), scaled to the model's input size ``S``
(224 in the paper; every length below is multiplied by ``S / 224``):

* 1 crop   -- resize the shorter side to 256, take the center ``S x S``.
* 10 crops -- resize the shorter side to 256; the 4 corner and the center ``S x S`` crops, and
              their mirrors (torchvision's ``TenCrop`` on the rectangular image).
* 144 crops -- resize the shorter side to 256, 288, 320 and 352; from each, the left, center and
               right squares (top/center/bottom for portrait images); from each square the 4
               corner and the center ``S x S`` crops plus the whole square resized to ``S``; and
               the mirror of each: 4 x 3 x 6 x 2.

Crops are cut from a ``uint8`` tensor and normalized at the end, in :func:`normalize`, so a
batch of crops costs one resize per scale.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps
from torch import Tensor
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from .errors import DataError

IMAGE_EXTENSIONS = (
    ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm",
)  # fmt: skip
CROP_CHOICES = (1, 10, 144)
PAPER_SCALES = (256, 288, 320, 352)
# Images above this many pixels are refused as likely decompression bombs (PIL's own default
# only warns at 89M pixels and refuses at twice that).
MAX_IMAGE_PIXELS = 100_000_000

ImageFile.LOAD_TRUNCATED_IMAGES = False


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """Whether the file name has one of the image extensions we read (case-insensitive)."""
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def open_image(path: str | os.PathLike[str]) -> Image.Image:
    """Decode an image file to 8-bit RGB, EXIF orientation applied.

    Raises :class:`DataError` for a missing, unreadable, truncated or oversized file.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.width * img.height > MAX_IMAGE_PIXELS:
                    raise DataError(
                        f"{path}: {img.width}x{img.height} pixels is over the limit of "
                        f"{MAX_IMAGE_PIXELS:,} (a decompression bomb?); skip or shrink it"
                    )
                img.load()
                img = ImageOps.exif_transpose(img)
                return to_rgb(img)
    except DataError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise DataError(f"{path}: refused as a decompression bomb ({err})") from err
    except FileNotFoundError as err:
        raise DataError(f"{path}: no such file") from err
    except (OSError, ValueError, SyntaxError, Image.UnidentifiedImageError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(f"{path}: not a readable image ({reason})") from err


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


def resize_size(input_size: int, shorter: int = 256) -> int:
    """The paper's resize length ``shorter`` (for 224 crops) scaled to ``input_size`` crops."""
    return int(round(shorter * input_size / 224))


# ---------------------------------------------------------------------------------------------
# Crop geometry
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Crop:
    """One evaluation crop: resize the shorter side to ``scale``, cut ``box`` (left, top, right,
    bottom, in the resized image), resize the cut to the input size if ``resize`` (the paper's
    "whole square"), mirror if ``flip``."""

    scale: int
    box: tuple[int, int, int, int]
    resize: bool
    flip: bool


def _scaled(width: int, height: int, shorter: int) -> tuple[int, int]:
    """Size after resizing the shorter side to ``shorter`` (torchvision's rounding)."""
    if width <= height:
        return shorter, int(shorter * height / width)
    return int(shorter * width / height), shorter


def _five_boxes(left: int, top: int, side_w: int, side_h: int, size: int) -> list[tuple[int, ...]]:
    """Top-left, top-right, bottom-left, bottom-right, center ``size`` boxes inside a region."""
    right, bottom = left + side_w, top + side_h
    cl = left + int(round((side_w - size) / 2.0))
    ct = top + int(round((side_h - size) / 2.0))
    return [
        (left, top, left + size, top + size),
        (right - size, top, right, top + size),
        (left, bottom - size, left + size, bottom),
        (right - size, bottom - size, right, bottom),
        (cl, ct, cl + size, ct + size),
    ]


def crop_plan(width: int, height: int, input_size: int, crops: int) -> list[Crop]:
    """The crops to cut from a ``width x height`` image, in order (see the module docstring)."""
    if crops not in CROP_CHOICES:
        raise DataError(f"--crops must be one of 1, 10, 144, got {crops}")
    size = input_size
    if crops == 1:
        scale = resize_size(size)
        w, h = _scaled(width, height, scale)
        return [Crop(scale, _five_boxes(0, 0, w, h, size)[4], resize=False, flip=False)]
    if crops == 10:
        scale = resize_size(size)
        w, h = _scaled(width, height, scale)
        boxes = _five_boxes(0, 0, w, h, size)
        return [Crop(scale, b, False, flip) for flip in (False, True) for b in boxes]
    plan = []
    for shorter in PAPER_SCALES:
        scale = resize_size(size, shorter)
        w, h = _scaled(width, height, scale)
        side = min(w, h)
        # Left, center and right squares of a landscape image; top, center, bottom of a portrait.
        offsets = [0, (max(w, h) - side) // 2, max(w, h) - side]
        for off in offsets:
            left, top = (off, 0) if w >= h else (0, off)
            square = (left, top, left + side, top + side)
            for box, resize in [(b, False) for b in _five_boxes(left, top, side, side, size)] + [
                (square, True)
            ]:
                plan.extend(Crop(scale, box, resize, flip) for flip in (False, True))
    return plan


def multi_crop(
    image: Tensor,
    input_size: int,
    crops: int = 1,
    interpolation: InterpolationMode = InterpolationMode.BILINEAR,
) -> Tensor:
    """Cut the evaluation crops from a 3 x H x W ``uint8`` image: ``crops x 3 x S x S`` uint8."""
    _, height, width = image.shape
    resized: dict[int, Tensor] = {}
    out = []
    for crop in crop_plan(width, height, input_size, crops):
        if crop.scale not in resized:
            resized[crop.scale] = TF.resize(
                image, [crop.scale], interpolation=interpolation, antialias=True
            )
        left, top, right, bottom = crop.box
        patch = resized[crop.scale][:, top:bottom, left:right]
        if crop.resize:
            patch = TF.resize(
                patch, [input_size, input_size], interpolation=interpolation, antialias=True
            )
        if crop.flip:
            patch = patch.flip(-1)
        out.append(patch)
    return torch.stack(out)


class EvalTransform:
    """PIL image -> ``crops x 3 x S x S`` normalized float tensor, the way the weights expect."""

    def __init__(
        self,
        input_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        crops: int = 1,
    ) -> None:
        if crops not in CROP_CHOICES:
            raise DataError(f"--crops must be one of 1, 10, 144, got {crops}")
        self.input_size, self.mean, self.std, self.crops = input_size, mean, std, crops

    def __call__(self, img: Image.Image) -> Tensor:
        patches = multi_crop(pil_to_uint8(img), self.input_size, self.crops)
        return normalize(patches, self.mean, self.std)

    @classmethod
    def for_model(cls, config, crops: int = 1) -> EvalTransform:
        """The transform for a model's ``GoogLeNetConfig`` (its input size, mean and std)."""
        return cls(config.input_size, config.mean, config.std, crops)
