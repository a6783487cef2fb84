"""The networks GoogLeNet is compared with, and the one factory that builds any of them.

``googlenet study`` trains torchvision's VGG-16 and AlexNet beside GoogLeNet (the report's
Table 2) through the same training and evaluation path, so they are built here from the same
:class:`~googlenet.model.GoogLeNetConfig` (``arch="vgg16"`` or ``"alexnet"``) and behave like a
:class:`~googlenet.model.GoogLeNet` to the rest of the package: ``model(x, return_aux=True)``
(no auxiliary heads), ``fc``, ``min_input_size``, saved and loaded as our safetensors files.

The layers are torchvision's definitions (``torchvision.models.vgg16`` and ``alexnet``, their
own initialization), adapted in one place only, where the input size requires it: torchvision
pools the last map adaptively to 7x7 (VGG) or 6x6 (AlexNet), which at 224 px is the map itself
and at smaller inputs *copies* each value of a smaller map into many cells (a 2x2 map at 64 px
becomes 49 cells, 12 copies of each, and the first fully connected layer 25,088 wide). Here the
pool keeps the map's own size when it is smaller, and the first fully connected layer is as wide
as that map: identical to torchvision at 224 px and above. The last layer is named ``fc`` (the
classifier of every network in this package); the rest keep torchvision's names.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .errors import ConfigError
from .model import GoogLeNet, GoogLeNetConfig, _first, _pool_out, preset_config

# torchvision's adaptive pool output: the map its classifier was written for (224 px).
_TORCHVISION_POOL = {"vgg16": 7, "alexnet": 6}


class ReferenceNet(GoogLeNet):
    """torchvision's VGG-16 or AlexNet (``config.arch``), adapted as the module says."""

    def __init__(self, config: GoogLeNetConfig) -> None:  # noqa: D107 - builds its own layers
        nn.Module.__init__(self)
        import torchvision.models as tvm

        if config.arch not in _TORCHVISION_POOL:
            raise ConfigError(f"arch must be vgg16 or alexnet here, got {config.arch!r}")
        self.config = config
        net = getattr(tvm, config.arch)(num_classes=config.num_classes, weights=None)
        self.features = net.features
        self.min_input_size = self._min_input_size()
        side = min(self.feature_size(max(config.input_size, self.min_input_size)),
                   _TORCHVISION_POOL[config.arch])  # fmt: skip
        self.avgpool = nn.AdaptiveAvgPool2d(side)
        channels = 512 if config.arch == "vgg16" else 256
        layers = list(net.classifier)
        first = next(i for i, m in enumerate(layers) if isinstance(m, nn.Linear))
        old = layers[first]
        layers[first] = nn.Linear(channels * side * side, old.out_features)
        nn.init.normal_(layers[first].weight, 0, 0.01)  # torchvision's init of its linears
        nn.init.zeros_(layers[first].bias)
        self.classifier = nn.Sequential(*layers[:-1])
        self.fc = layers[-1]
        self.aux1 = self.aux2 = None
        self.fc_hidden = None

    def spatial_sizes(self, size: int) -> list[int]:
        """Spatial size after each layer of the features that changes it."""
        sizes = []
        for layer in self.features:
            if isinstance(layer, nn.Conv2d | nn.MaxPool2d):
                k, s, p = (_first(getattr(layer, a)) for a in ("kernel_size", "stride", "padding"))
                size = _pool_out(size, k, s, p, getattr(layer, "ceil_mode", False))
                if isinstance(layer, nn.MaxPool2d) or s > 1:
                    sizes.append(size)
        return sizes

    def _forward_trunk(
        self, x: Tensor, with_aux: bool, take: int = 0, stop: int = 4
    ) -> tuple[Tensor, Tensor | None, Tensor | None, list[Tensor]]:
        # GoogLeNet's forward checks the input size first; no auxiliary heads, and no feature
        # maps: a reference network is a classifier to compare with here, not a backbone.
        return self.features(x), None, None, []

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.classifier(torch.flatten(self.avgpool(x), 1))
        return x if pre_logits else self.fc(x)

    def reset_classifier(self, num_classes: int, class_names: list[str] | None = None) -> None:
        import dataclasses

        self.config = dataclasses.replace(
            self.config,
            num_classes=num_classes,
            class_names=tuple(class_names) if class_names is not None else None,
        )
        self.fc = nn.Linear(self.fc.in_features, num_classes, device=self.fc.weight.device)
        nn.init.normal_(self.fc.weight, 0, 0.01)
        nn.init.zeros_(self.fc.bias)

    def extra_repr(self) -> str:
        return f"arch={self.config.arch!r}, num_classes={self.num_classes}"


def build(config: GoogLeNetConfig) -> GoogLeNet:
    """The network a configuration describes: GoogLeNet (any variant) or a reference network."""
    return GoogLeNet(config) if config.arch == "googlenet" else ReferenceNet(config)


def create(
    preset: str = "paper", num_classes: int = 1000, aux_logits: bool = True, **overrides: Any
) -> GoogLeNet:
    """:func:`googlenet.model.create_model` for any ``arch``: a reference network takes the
    preset's data fields (mean, std) and has no auxiliary heads."""
    if overrides.get("arch", "googlenet") != "googlenet":
        aux_logits = False
    return build(preset_config(preset, num_classes=num_classes, aux_logits=aux_logits, **overrides))
