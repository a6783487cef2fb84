"""Pretrained weights by name: ``create_model("torchvision", weights="imagenet")``.

torchvision's ImageNet googlenet (``googlenet-1378be20.pth``) is fetched once through torch.hub's
cache (``$TORCH_HOME/hub/checkpoints``, by default ``~/.cache/torch/hub/checkpoints``, the very
file torchvision itself uses), its SHA-256 checked against the hash prefix in its name, loaded
with ``weights_only=True``, then built by :func:`googlenet.weights.load` like any weights file.

This wrapper is the public ``googlenet.create_model``: it lives here, above the model, so that
``googlenet.model`` never imports the weights (which import the model), not even lazily.
"""

from __future__ import annotations

import os
import urllib.error
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError, WeightsError
from ..model import GoogLeNet, GoogLeNetFeatures
from ..model import create_model as _create_model

TORCHVISION_IMAGENET = "https://download.pytorch.org/models/googlenet-1378be20.pth"
URLS: dict[str, str] = {"imagenet": TORCHVISION_IMAGENET}
# Every name accepted for them: ours, torchvision's enum name, and its "DEFAULT".
PRETRAINED: dict[str, str] = {
    "imagenet": "imagenet",
    "IMAGENET1K_V1": "imagenet",
    "DEFAULT": "imagenet",
}
PRETRAINED_PRESET = "torchvision"  # the architecture those weights were trained on


def cache_dir() -> Path:
    """Where downloaded weights are kept: torch.hub's ``checkpoints`` folder."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def download(name: str = "imagenet", *, progress: bool = True) -> Path:
    """The cached file of the pretrained weights ``name``, downloaded and hash-checked first if
    it is not in :func:`cache_dir` yet. Offline or corrupt: a one-line :class:`WeightsError`."""
    url = URLS[PRETRAINED[name]]
    path = cache_dir() / os.path.basename(url)
    try:
        # torch.hub's own downloader: a temporary file, the SHA-256 prefix from the file name
        # checked, then moved into the cache; and a weights_only load, which a bad pickle fails.
        torch.hub.load_state_dict_from_url(
            url, map_location="cpu", progress=progress, check_hash=True, weights_only=True
        )
    except urllib.error.URLError as err:
        reason = getattr(err, "reason", err)
        raise WeightsError(
            f"cannot download {url} ({reason}): connect once, or copy {path.name} into "
            f"{path.parent} (or set TORCH_HOME)"
        ) from err
    except (RuntimeError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise WeightsError(f"{url}: {first} (delete {path} to download it again)") from err
    return path


def _weights_name(weights: Any, pretrained: bool) -> str | None:
    """``weights=`` (a name, torchvision's ``GoogLeNet_Weights`` enum) or ``pretrained=True``."""
    if weights is None:
        return "imagenet" if pretrained else None
    name = getattr(weights, "name", weights)  # GoogLeNet_Weights.IMAGENET1K_V1 -> its name
    if pretrained and name not in PRETRAINED:
        raise ConfigError("pass weights= or pretrained=True, not both")
    if name not in PRETRAINED:
        raise ConfigError(
            f"unknown weights {name!r}; choose one of {', '.join(PRETRAINED)} "
            "(or load a file with googlenet.load(path))"
        )
    return name


def create_model(
    preset: str = "paper",
    num_classes: int = 1000,
    aux_logits: bool = True,
    *,
    weights: Any = None,
    pretrained: bool = False,
    progress: bool = True,
    features_only: bool = False,
    out_indices: Any = None,
    **overrides: Any,
) -> GoogLeNet:
    """Build a GoogLeNet from a named preset, freshly initialized or with pretrained weights.

    ``features_only=True`` returns the backbone (timm's interface:
    :class:`~googlenet.model.GoogLeNetFeatures`, the maps ``out_indices`` with ``feature_info``),
    with the pretrained trunk when ``weights`` are given.

    ``weights="imagenet"`` (also torchvision's spellings ``"IMAGENET1K_V1"``, ``"DEFAULT"`` and
    its ``GoogLeNet_Weights`` enum; ``pretrained=True`` is the same) loads torchvision's ImageNet
    weights into the ``torchvision`` preset, the architecture they were trained on; they are
    downloaded once into torch.hub's cache (:func:`download`). ``num_classes`` other than 1000
    re-initializes the classifier for fine-tuning. ``overrides`` are
    :class:`~googlenet.GoogLeNetConfig` fields (``dropout=0.5``, ``input_size=96``, ...).
    """
    name = _weights_name(weights, pretrained)
    if name is None:
        return _create_model(
            preset,
            num_classes,
            aux_logits,
            features_only=features_only,
            out_indices=out_indices,
            **overrides,
        )
    if preset != PRETRAINED_PRESET:
        raise ConfigError(
            f"the {name} weights are torchvision's, for the torchvision preset, not {preset!r}: "
            f'create_model("torchvision", weights="{name}")'
        )
    from . import load

    path = download(name, progress=progress)
    model = load(path, num_classes=num_classes, aux_logits=aux_logits, **overrides)
    return GoogLeNetFeatures.from_model(model, out_indices) if features_only else model


def torch_hub_model(
    preset: str = "paper", weights: str | os.PathLike[str] | None = None, **kwargs: Any
) -> GoogLeNet:
    """``hubconf.googlenet``: a new ``preset`` model, or the one ``weights`` holds (a file of
    any format :func:`googlenet.load` reads, or a pretrained folder); ``kwargs`` go to
    :func:`googlenet.create_model` or :func:`googlenet.load`."""
    from ..hub import WEIGHTS_NAME
    from . import load

    if weights is None:
        return _create_model(preset, **kwargs)
    if isinstance(weights, str) and weights in PRETRAINED:  # "imagenet": torchvision's, by name
        return create_model(preset, weights=weights, **kwargs)
    path = Path(weights)
    if path.is_dir():
        path = path / WEIGHTS_NAME
    return load(path, **kwargs)
