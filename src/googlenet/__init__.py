"""GoogLeNet (Inception v1), faithful to Szegedy et al. 2014: build, explain, train, evaluate,
predict and export it.

>>> import googlenet
>>> model = googlenet.create_model("paper", num_classes=10)      # the paper's network
>>> model = googlenet.load("googlenet-1378be20.pth")             # torchvision's ImageNet weights
"""

from .errors import ConfigError, DataError, GoogLeNetError, InputSizeError, WeightsError
from .model import (
    PRESETS,
    TABLE1,
    GoogLeNet,
    GoogLeNetConfig,
    GoogLeNetOutputs,
    InceptionAux,
    InceptionModule,
    NaiveInceptionModule,
    create_model,
    preset_config,
)
from .weights import convert_torchvision_state_dict, load, save_weights

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "TABLE1",
    "ConfigError",
    "DataError",
    "GoogLeNet",
    "GoogLeNetConfig",
    "GoogLeNetError",
    "GoogLeNetOutputs",
    "InceptionAux",
    "InceptionModule",
    "InputSizeError",
    "NaiveInceptionModule",
    "WeightsError",
    "convert_torchvision_state_dict",
    "create_model",
    "load",
    "preset_config",
    "save_weights",
]
