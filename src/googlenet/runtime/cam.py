"""Class activation maps (Zhou et al. 2016): where in the image the evidence for a class lies.

The paper's global average pooling makes the logit of class ``c`` ``b_c + mean_xy sum_k w_ck
f_k(x, y)``, with ``f`` the output of inception 5b and ``w`` the linear layer, so ``M_c(x, y) =
sum_k w_ck f_k(x, y)`` says where ``c``'s evidence lies. Computed on the whole image (the network
is convolutional up to the pooling, so any aspect ratio works) and drawn over it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

from ..data import normalize
from ..errors import ConfigError, DataError
from ..fileio import atomic_save
from ..model import GoogLeNet, GoogLeNetConfig

# ---------------------------------------------------------------------------------------------
# Class activation maps
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassActivationMap:
    """The CAM of one class on one image.

    ``cam`` is the h x w map on the 5b feature grid, in logit units: its mean plus the class's
    fc bias is the class's logit (global average pooling is linear).
    """

    name: str
    index: int
    prob: float
    cam: Tensor

    def heatmap(self, width: int, height: int) -> np.ndarray:
        """The map resized to ``width x height`` (bilinear) and scaled to [0, 1] for display."""
        up = F.interpolate(self.cam[None, None], size=(height, width), mode="bilinear")[0, 0]
        low, high = float(up.min()), float(up.max())
        if high - low < 1e-12:
            return np.zeros((height, width), dtype=np.float32)
        return ((up - low) / (high - low)).numpy().astype(np.float32)


def cam_input(image: Image.Image, config: GoogLeNetConfig) -> Tensor:
    """The whole image, shorter side resized to the model's input size, normalized: 1 x 3 x H x W.

    Not cropped, unlike prediction: a CAM should cover every pixel of the picture, and the trunk
    is convolutional, so the aspect ratio can stay.
    """
    pixels = TF.resize(TF.pil_to_tensor(image.convert("RGB")), [config.input_size], antialias=True)
    return normalize(pixels, config.mean, config.std)[None]


def class_activation_maps(model: GoogLeNet, x: Tensor) -> tuple[Tensor, Tensor]:
    """Every class's CAM for one normalized 1 x 3 x H x W image, and its logits.

    Returns ``(num_classes x h x w maps, num_classes logits)``, both from the same forward pass:
    the maps are the fc weights applied to each position of inception 5b's output.
    """
    if x.dim() != 4 or len(x) != 1:
        raise DataError(f"class_activation_maps takes one image, 1 x 3 x H x W; got {x.shape}")
    features = model.forward_features(x)  # 1 x 1024 x h x w
    logits = model.forward_head(features)[0]  # num_classes
    maps = torch.einsum("kc,chw->khw", model.fc.weight, features[0])  # num_classes x h x w
    return maps, logits


def save_cam(
    image: Image.Image,
    maps: Sequence[ClassActivationMap],
    path: str | os.PathLike[str],
    cmap: str = "jet",
    alpha: float = 0.5,
    predicted: Sequence[float] | None = None,
    crops: int = 1,
) -> Path:
    """The input as it is, then each map over it (one panel per class), and a colour bar; to a
    PNG, written atomically. Each panel's title gives the class's probability on the whole image
    (what the map is computed on) and, when ``predicted`` is given, the probability ``predict``
    reports with ``crops`` crops, which is another input and so another number."""
    from matplotlib import cm, colors
    from matplotlib.figure import Figure

    colormap = check_colormap(cmap)
    width, height = image.size
    scale = 3.2 / max(width, height)  # inches for the longer side of each panel
    fig = Figure(figsize=((len(maps) + 1) * width * scale + 0.9, height * scale + 0.7))
    fig.set_layout_engine("constrained")
    axes = fig.subplots(1, len(maps) + 1, squeeze=False)[0]
    axes[0].imshow(image)
    axes[0].set_title("input", fontsize=9)
    shown: list[float | None] = list(predicted) if predicted else [None] * len(maps)
    for ax, cam, p in zip(axes[1:], maps, shown, strict=True):
        ax.imshow(image)
        ax.imshow(cam.heatmap(width, height), cmap=colormap, alpha=alpha, vmin=0, vmax=1)
        title = f"{cam.name}: {cam.prob:.1%} on the whole image"
        if p is not None:
            title += f"\n{p:.1%} in predict ({crops} crop{'s' if crops > 1 else ''})"
        ax.set_title(title, fontsize=8)
    for ax in axes:
        ax.axis("off")
    bar = cm.ScalarMappable(colors.Normalize(0, 1), colormap)
    fig.colorbar(bar, ax=list(axes[1:]), shrink=0.8, label="evidence (map min to max)")
    return atomic_save(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))


def check_colormap(name: str) -> Any:
    import matplotlib

    try:
        return matplotlib.colormaps[name]
    except KeyError:
        hint = "try jet, inferno, turbo, viridis"
        raise ConfigError(f"unknown matplotlib colormap {name!r} ({hint})") from None
