"""The paper's training augmentation (section 6): random-area crops with random filters,
flips and photometric distortions, seeded per (seed, epoch, image)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch
from PIL import Image
from torch import Tensor

from .images import pil_to_uint8

# ---------------------------------------------------------------------------------------------
# Training augmentation (the paper's, section 6)
# ---------------------------------------------------------------------------------------------

# "random interpolation methods (bilinear, area, nearest neighbor and cubic, with equal
# probability)": PIL's BOX filter is the area interpolation.
PAPER_INTERPOLATIONS = (
    Image.Resampling.BILINEAR,
    Image.Resampling.BOX,
    Image.Resampling.NEAREST,
    Image.Resampling.BICUBIC,
)
# The same filters for tensors (``TrainTransform.tensor``): PIL's BOX is torch's "area".
TENSOR_INTERPOLATIONS = {
    Image.Resampling.BILINEAR: "bilinear",
    Image.Resampling.BOX: "area",
    Image.Resampling.NEAREST: "nearest-exact",
    Image.Resampling.BICUBIC: "bicubic",
}
# AlexNet's PCA lighting noise: the eigenvalues and eigenvectors of the ImageNet RGB covariance
# (pixel values in [0, 1]), as fb.resnet.torch and timm ship them.
IMAGENET_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)


def _uniform(g: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * torch.rand((), generator=g).item()


def random_resized_box(
    width: int,
    height: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    g: torch.Generator,
) -> tuple[float, float, float, float]:
    """A random box of ``scale`` of the area with aspect ratio in ``ratio`` (log-uniform).

    torchvision's ``RandomResizedCrop`` rule (10 tries, then the largest centered box with the
    ratio clamped), but in float coordinates: PIL resamples sub-pixel boxes, so a crop of 8% of a
    tiny image is still a proper crop rather than a few whole pixels.
    """
    area = width * height
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target = area * _uniform(g, *scale)
        aspect = math.exp(_uniform(g, log_lo, log_hi))
        w, h = math.sqrt(target * aspect), math.sqrt(target / aspect)
        if w <= width and h <= height:
            left, top = _uniform(g, 0, width - w), _uniform(g, 0, height - h)
            return left, top, left + w, top + h
    aspect = width / height
    w, h = (width, width / ratio[0]) if aspect < ratio[0] else (width, height)
    if aspect > ratio[1]:
        w, h = height * ratio[1], height
    w, h = min(w, width), min(h, height)
    left, top = (width - w) / 2, (height - h) / 2
    return left, top, left + w, top + h


def photometric_distortion(x: Tensor, jitter: float, lighting: float, g: torch.Generator) -> Tensor:
    """Brightness, contrast and saturation jitter in random order (Howard 2013, torchvision's
    ``ColorJitter``), then AlexNet's PCA lighting noise; ``x`` is 3 x H x W float in [0, 1]."""
    ops, alpha = draw_photometric(jitter, lighting, g)
    return apply_photometric(x[None], [ops], [alpha])[0]


def draw_photometric(
    jitter: float, lighting: float, g: torch.Generator
) -> tuple[list[tuple[int, float]], Tensor | None]:
    """One image's photometric choices: the jitter operations (0 brightness, 1 contrast,
    2 saturation) in their random order with their factors, and the lighting noise (or None)."""
    ops = []
    if jitter > 0:
        for op in torch.randperm(3, generator=g).tolist():
            ops.append((op, _uniform(g, max(0.0, 1 - jitter), 1 + jitter)))
    alpha = torch.randn(3, generator=g) * lighting if lighting > 0 else None
    return ops, alpha


def _gray(x: Tensor) -> Tensor:
    return (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)


_JITTER = (
    lambda x, f, gray: x * f,  # brightness
    lambda x, f, gray: (
        (x - gray.mean((1, 2, 3), keepdim=True)) * f  # contrast: to the mean gray
        + gray.mean((1, 2, 3), keepdim=True)
    ),
    lambda x, f, gray: (x - gray) * f + gray,  # saturation: towards the pixel's gray level
)


def apply_photometric(
    x: Tensor, ops: list[list[tuple[int, float]]], alphas: list[Tensor | None]
) -> Tensor:
    """:func:`draw_photometric`'s choices applied to a batch ``x`` (B x 3 x H x W, in [0, 1], on
    any device), each image its own: step k applies each image's k-th operation, an operation
    at a time for the images that drew it (one image: exactly the sequential computation)."""
    n = x.shape[0]
    for k in range(max((len(o) for o in ops), default=0)):
        gray = _gray(x)
        kinds = [o[k][0] if k < len(o) else -1 for o in ops]
        factor: float | Tensor
        if n == 1:
            factor = ops[0][k][1]
        else:
            factor = torch.tensor([o[k][1] if k < len(o) else 1.0 for o in ops], dtype=x.dtype)
            factor = factor.to(x.device).view(n, 1, 1, 1)
        drew = (
            torch.tensor(kinds, device=x.device).view(n, 1, 1, 1) if len(set(kinds)) > 1 else None
        )
        for kind, apply in enumerate(_JITTER):
            if kind in kinds:
                y = apply(x, factor, gray)
                x = y if drew is None else torch.where(drew == kind, y, x)
    if alphas and alphas[0] is not None:
        eigvec, eigval = torch.tensor(IMAGENET_EIGVEC), torch.tensor(IMAGENET_EIGVAL)
        rgb = torch.stack([eigvec @ (cast(Tensor, alpha) * eigval) for alpha in alphas])
        x = x + rgb.to(x.device).view(n, 3, 1, 1)
    return x.clamp_(0.0, 1.0)


@dataclass
class Draws:
    """One image's random choices after its crop and filter: the flip and the photometric ones."""

    flip: bool
    ops: list[tuple[int, float]]
    alpha: Tensor | None


@dataclass
class TrainTransform:
    """The paper's training augmentation: PIL image + a seeded generator -> 3 x S x S tensor.

    Random-resized crop of ``scale`` (8%-100%) of the area with aspect ratio in ``ratio``
    (3/4-4/3), resized to ``input_size`` with an interpolation drawn from bilinear, area, nearest
    and bicubic; horizontal flip with probability ``hflip``; photometric distortion (``jitter``
    for brightness, contrast and saturation, ``lighting`` the std of the PCA noise); normalized
    with ``mean``/``std``. All randomness comes from the generator the caller passes, so the same
    (seed, epoch, image) gives the same crop whatever the number of workers or processes.
    """

    input_size: int
    mean: Sequence[float]
    std: Sequence[float]
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: float = 0.5
    jitter: float = 0.4
    lighting: float = 0.1
    interpolations: tuple[Image.Resampling, ...] = PAPER_INTERPOLATIONS

    def __call__(self, img: Image.Image, g: torch.Generator) -> Tensor:
        box = random_resized_box(img.width, img.height, self.scale, self.ratio, g)
        pick = int(torch.randint(len(self.interpolations), (), generator=g))
        size = (self.input_size, self.input_size)
        img = img.resize(size, resample=self.interpolations[pick], box=box)
        x = pil_to_uint8(img).float().div_(255.0)
        return self.finish(x[None], [self.draw(g)])[0]

    def tensor(self, x: Tensor, g: torch.Generator) -> Tensor:
        """The same augmentation of a 3 x H x W uint8 tensor, on its device (``--decode gpu``):
        the same random draws in the same order as :meth:`__call__`, so one seed gives the same
        box, filter, flip and colour change; see :meth:`resize_tensor`."""
        return self.finish(self.resize_tensor(x, g)[None], [self.draw(g)])[0]

    def resize_tensor(self, x: Tensor, g: torch.Generator) -> Tensor:
        """The random crop of a 3 x H x W uint8 tensor resized to 3 x S x S floats in [0, 1]: the
        box is cut at whole pixels, then resized with ``torch.nn.functional.interpolate``
        (antialiased like PIL when shrinking). Draws the box and the filter from ``g``."""
        height, width = x.shape[-2:]
        left, top, right, bottom = random_resized_box(width, height, self.scale, self.ratio, g)
        pick = int(torch.randint(len(self.interpolations), (), generator=g))
        x0, y0 = min(int(left), width - 1), min(int(top), height - 1)
        x1, y1 = max(x0 + 1, round(right)), max(y0 + 1, round(bottom))
        crop = x[None, :, y0:y1, x0:x1].float().div_(255.0)
        mode = TENSOR_INTERPOLATIONS[self.interpolations[pick]]
        smooth = mode in ("bilinear", "bicubic")
        size = (self.input_size, self.input_size)
        crop = torch.nn.functional.interpolate(
            crop, size, mode=mode, antialias=smooth, **({"align_corners": False} if smooth else {})
        )
        return crop[0].clamp_(0.0, 1.0)

    def draw(self, g: torch.Generator) -> Draws:
        """The choices after the crop: flip, then the photometric ones (in this order)."""
        flip = torch.rand((), generator=g).item() < self.hflip
        return Draws(flip, *draw_photometric(self.jitter, self.lighting, g))

    def finish(self, x: Tensor, draws: list[Draws]) -> Tensor:
        """Flip, photometric distortion and normalization of a batch B x 3 x S x S in [0, 1],
        each image with its own :class:`Draws`: a handful of batched operations on the GPU."""
        flips = [d.flip for d in draws]
        if all(flips):
            x = x.flip(-1)
        elif any(flips):
            mask = torch.tensor(flips, device=x.device).view(-1, 1, 1, 1)
            x = torch.where(mask, x.flip(-1), x)
        x = apply_photometric(x, [d.ops for d in draws], [d.alpha for d in draws])
        m = torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1)
        s = torch.tensor(self.std, device=x.device).view(1, 3, 1, 1)
        return (x - m) / s
