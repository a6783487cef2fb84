"""GoogLeNet (Inception v1), faithful to Szegedy et al. 2014: build, explain, train, evaluate,
predict and export it.

>>> import googlenet
>>> model = googlenet.create_model("paper", num_classes=10)      # the paper's network
>>> model = googlenet.create_model("torchvision", weights="imagenet")  # torchvision's ImageNet
>>> model = googlenet.load("googlenet-1378be20.pth")             # the same, from a file
"""

from importlib import metadata as _metadata

from .errors import ConfigError, DataError, GoogLeNetError, InputSizeError, WeightsError
from .model import (
    PRESETS,
    TABLE1,
    GoogLeNet,
    GoogLeNetConfig,
    GoogLeNetFeatures,
    GoogLeNetOutputs,
    InceptionAux,
    InceptionModule,
    NaiveInceptionModule,
    preset_config,
)
from .weights import convert_torchvision_state_dict, load, save_weights
from .weights.pretrained import create_model  # model.create_model, plus weights="imagenet"

try:  # the installed distribution's version: one source, pyproject.toml's [project] version
    __version__ = _metadata.version("googlenet")
except _metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

# Inference imports torchvision's transforms (a second or more): loaded on first use, so that
# `import googlenet` and `googlenet --help` stay fast.
_LAZY = {
    "Predictor": "runtime.predictor",
    "Prediction": "runtime.predictor",
    "ClassScore": "runtime.predictor",
    "ClassActivationMap": "runtime.cam",
    "optimize_for_inference": "runtime.backends",
    "InferenceModel": "runtime.backends",
    "from_pretrained": "hub",
    "detection_backbone": "detection",  # torchvision's detection models: imported on first use
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "PRESETS",
    "TABLE1",
    "ClassActivationMap",
    "ClassScore",
    "ConfigError",
    "DataError",
    "GoogLeNet",
    "GoogLeNetConfig",
    "GoogLeNetError",
    "GoogLeNetFeatures",
    "GoogLeNetOutputs",
    "InceptionAux",
    "InceptionModule",
    "InputSizeError",
    "NaiveInceptionModule",
    "Prediction",
    "Predictor",
    "WeightsError",
    "convert_torchvision_state_dict",
    "create_model",
    "detection_backbone",
    "from_pretrained",
    "load",
    "preset_config",
    "save_weights",
]
