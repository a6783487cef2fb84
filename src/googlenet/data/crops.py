"""The evaluation crops: 1, 10 and the paper's 144 (section 7), scaled to the input size; see
the package docstring."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image
from torch import Tensor
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from ..errors import DataError
from .images import normalize, pil_to_uint8

# ---------------------------------------------------------------------------------------------
# Crop geometry
# ---------------------------------------------------------------------------------------------


CROP_CHOICES = (1, 10, 144)
PAPER_SCALES = (256, 288, 320, 352)
# How an evaluation image is resized before cropping: "shorter" (the paper, torchvision) scales
# the shorter side to 256; "squash" (Caffe's test protocol: its ImageNet files were stored at
# 256x256 by examples/imagenet/create_imagenet.sh) scales both sides to 256, ignoring the aspect.
# With 144 crops a squashed image's left, center and right squares coincide, as a square's do.
RESIZE_CHOICES = ("shorter", "squash")


def resize_size(input_size: int, shorter: int = 256) -> int:
    """The paper's resize length ``shorter`` (for 224 crops) scaled to ``input_size`` crops."""
    return int(round(shorter * input_size / 224))


@dataclass(frozen=True)
class Crop:
    """One evaluation crop: resize the shorter side to ``scale``, cut ``box`` (left, top, right,
    bottom, in the resized image), resize the cut to the input size if ``resize`` (the paper's
    "whole square"), mirror if ``flip``."""

    scale: int
    box: tuple[int, int, int, int]
    resize: bool
    flip: bool


def _scaled(width: int, height: int, shorter: int, squash: bool = False) -> tuple[int, int]:
    """Size after resizing the shorter side to ``shorter`` (torchvision's rounding), or both
    sides with ``squash``."""
    if squash:
        return shorter, shorter
    if width <= height:
        return shorter, int(shorter * height / width)
    return int(shorter * width / height), shorter


def _five_boxes(
    left: int, top: int, side_w: int, side_h: int, size: int
) -> list[tuple[int, int, int, int]]:
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


def crop_plan(
    width: int, height: int, input_size: int, crops: int, resize: str = "shorter"
) -> list[Crop]:
    """The crops to cut from a ``width x height`` image, in order (see the module docstring)."""
    if crops not in CROP_CHOICES:
        raise DataError(f"--crops must be one of 1, 10, 144, got {crops}")
    squash = _check_resize(resize) == "squash"
    size = input_size
    if crops == 1:
        scale = resize_size(size)
        w, h = _scaled(width, height, scale, squash)
        return [Crop(scale, _five_boxes(0, 0, w, h, size)[4], resize=False, flip=False)]
    if crops == 10:
        scale = resize_size(size)
        w, h = _scaled(width, height, scale, squash)
        boxes = _five_boxes(0, 0, w, h, size)
        return [Crop(scale, b, False, flip) for flip in (False, True) for b in boxes]
    plan: list[Crop] = []
    for shorter in PAPER_SCALES:
        scale = resize_size(size, shorter)
        w, h = _scaled(width, height, scale, squash)
        side = min(w, h)
        # Left, center and right squares of a landscape image; top, center, bottom of a portrait.
        offsets = [0, (max(w, h) - side) // 2, max(w, h) - side]
        for off in offsets:
            left, top = (off, 0) if w >= h else (0, off)
            square = (left, top, left + side, top + side)
            for box, whole in [(b, False) for b in _five_boxes(left, top, side, side, size)] + [
                (square, True)
            ]:
                plan.extend(Crop(scale, box, whole, flip) for flip in (False, True))
    return plan


def _check_resize(resize: str) -> str:
    if resize not in RESIZE_CHOICES:
        raise DataError(f"--resize must be one of {', '.join(RESIZE_CHOICES)}, got {resize!r}")
    return resize


def multi_crop(
    image: Tensor,
    input_size: int,
    crops: int = 1,
    interpolation: InterpolationMode = InterpolationMode.BILINEAR,
    resize: str = "shorter",
) -> Tensor:
    """Cut the evaluation crops from a 3 x H x W ``uint8`` image: ``crops x 3 x S x S`` uint8.
    ``resize`` is "shorter" (keep the aspect) or "squash" (Caffe's, see :data:`RESIZE_CHOICES`)."""
    _, height, width = image.shape
    resized: dict[int, Tensor] = {}
    out = []
    for crop in crop_plan(width, height, input_size, crops, resize):
        if crop.scale not in resized:
            side = [crop.scale, crop.scale] if resize == "squash" else [crop.scale]
            resized[crop.scale] = TF.resize(
                image, side, interpolation=interpolation, antialias=True
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
        resize: str = "shorter",
    ) -> None:
        if crops not in CROP_CHOICES:
            raise DataError(f"--crops must be one of 1, 10, 144, got {crops}")
        self.input_size, self.mean, self.std, self.crops = input_size, mean, std, crops
        self.resize = _check_resize(resize)

    def __call__(self, img: Image.Image) -> Tensor:
        patches = multi_crop(pil_to_uint8(img), self.input_size, self.crops, resize=self.resize)
        return normalize(patches, self.mean, self.std)

    @classmethod
    def for_model(cls, config, crops: int = 1, resize: str = "shorter") -> EvalTransform:
        """The transform for a model's ``GoogLeNetConfig`` (its input size, mean and std)."""
        return cls(config.input_size, config.mean, config.std, crops, resize)
