"""GoogLeNet as the backbone of torchvision's detectors (GoogLeNet won ILSVRC 2014's detection
task too, inside R-CNN).

>>> from googlenet.detection import fasterrcnn
>>> detector = fasterrcnn(num_classes=3, weights="runs/flowers-paper-bn/final.safetensors")

:func:`detection_backbone` is the trunk's maps (:class:`~googlenet.model.GoogLeNetFeatures`)
under a feature pyramid (torchvision's ``FeaturePyramidNetwork`` with its extra max-pooled
level, as in ``resnet_fpn_backbone``) or alone; it has the ``out_channels`` attribute
``torchvision.models.detection`` asks of a backbone. :func:`fasterrcnn` builds the detector on
it. Both follow torchvision's rules for a backbone built from trained weights: its BatchNorm
frozen (``FrozenBatchNorm2d``: detection batches are a few images) and only the top
``trainable_layers`` stages trained (3 of 5 by default, like torchvision's ResNets).

The images the detector takes are torchvision's: a list of 3 x H x W tensors in [0, 1]; its
transform resizes them and normalizes with the weights' own mean and std (Caffe's 0-255 scale for
the ``paper`` preset).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor, nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.ops import FeaturePyramidNetwork, FrozenBatchNorm2d, MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from .errors import ConfigError
from .model import ConvBlock, GoogLeNet, GoogLeNetFeatures, create_model
from .weights import load

# The trunk's stages from the top, as trainable_layers counts them (torchvision's ResNets count
# layer4, layer3, layer2, layer1, conv1).
STAGES: tuple[tuple[str, ...], ...] = (
    ("inception5a", "inception5b"),
    ("inception4a", "inception4b", "inception4c", "inception4d", "inception4e"),
    ("inception3a", "inception3b"),
    ("conv2", "conv3"),
    ("conv1",),
)


class BackboneWithFPN(nn.Module):
    """The backbone's maps under a feature pyramid: an ordered dict of ``out_channels``-channel
    maps named "0", "1", ... and "pool" (torchvision's names, which its anchor generator and
    RoI pooler expect).

    torchvision's own ``BackboneWithFPN`` takes the maps with ``IntermediateLayerGetter``, which
    runs a model's children in order; GoogLeNet's forward does more than that (the torchvision
    preset's ``transform_input``, the input check), so the backbone's own forward is used.
    """

    def __init__(self, body: GoogLeNetFeatures, out_channels: int = 256) -> None:
        super().__init__()
        self.body = body
        self.fpn = FeaturePyramidNetwork(
            cast(list[int], body.feature_info.channels()),
            out_channels,
            extra_blocks=LastLevelMaxPool(),
        )
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        maps = self.body(x)
        return self.fpn(OrderedDict((str(i), m) for i, m in enumerate(maps)))


class SingleMapBackbone(nn.Module):
    """The backbone's last map alone (the single-map form: one anchor level, one RoI pool)."""

    def __init__(self, body: GoogLeNetFeatures) -> None:
        super().__init__()
        self.body = body
        self.out_channels = cast(int, body.feature_info.channels(-1))

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)[-1]


def detection_backbone(
    preset: str = "paper-bn",
    weights: str | Path | GoogLeNet | None = None,
    *,
    fpn: bool = True,
    out_indices: Sequence[int] = (1, 2, 3, 4),
    out_channels: int = 256,
    trainable_layers: int | None = None,
) -> nn.Module:
    """A backbone for ``torchvision.models.detection``, with ``out_channels``.

    ``weights``: a weights file of any format :func:`googlenet.load` reads (e.g. a classifier
    trained with ``googlenet train``) or a model; its preset is then the weights' own. None: a
    fresh ``preset`` network. ``fpn``: the maps ``out_indices`` (default strides 4 to 32) under a
    feature pyramid; else the last of them alone. ``trainable_layers``: how many stages from the
    top train (0 to 5; default 3 with weights, 5 without), the others frozen with their BatchNorm.
    """
    model = _classifier(preset, weights)
    trained = weights is not None
    layers = (3 if trained else len(STAGES)) if trainable_layers is None else trainable_layers
    if not 0 <= layers <= len(STAGES):
        raise ConfigError(f"trainable_layers must be 0 to {len(STAGES)}, got {layers}")
    body = GoogLeNetFeatures.from_model(model, out_indices if fpn else out_indices[-1:])
    if trained:
        freeze_batchnorm(body)
    frozen = [name for stage in STAGES[layers:] for name in stage]
    for name, param in body.named_parameters():
        if name.split(".")[0] in frozen:
            param.requires_grad_(False)
    return BackboneWithFPN(body, out_channels) if fpn else SingleMapBackbone(body)


def fasterrcnn(
    num_classes: int,
    preset: str = "paper-bn",
    weights: str | Path | GoogLeNet | None = None,
    *,
    fpn: bool = True,
    trainable_layers: int | None = None,
    **kwargs: Any,
) -> FasterRCNN:
    """Faster R-CNN on a GoogLeNet backbone (:func:`detection_backbone`): fine-tuning a detector
    from classification weights is ``fasterrcnn(num_classes, weights="final.safetensors")``.

    ``num_classes`` counts the background, as in torchvision. ``kwargs`` go to torchvision's
    ``FasterRCNN`` (``min_size``, ``max_size``, ``box_detections_per_img`` ...); the images'
    mean and std are the weights'.
    """
    backbone = detection_backbone(preset, weights, fpn=fpn, trainable_layers=trainable_layers)
    config = cast(GoogLeNetFeatures, backbone.body).config
    kwargs.setdefault("image_mean", list(config.mean))
    kwargs.setdefault("image_std", list(config.std))
    if not fpn:  # one map: one anchor level and one RoI pool (torchvision's single-map example)
        kwargs.setdefault(
            "rpn_anchor_generator",
            AnchorGenerator(sizes=((32, 64, 128, 256, 512),), aspect_ratios=((0.5, 1.0, 2.0),)),
        )
        kwargs.setdefault(
            "box_roi_pool", MultiScaleRoIAlign(featmap_names=["0"], output_size=7, sampling_ratio=2)
        )
    return FasterRCNN(backbone, num_classes=num_classes, **kwargs)


def freeze_batchnorm(module: nn.Module) -> nn.Module:
    """Every ConvBlock's BatchNorm as torchvision's ``FrozenBatchNorm2d`` with the same
    statistics and affine parameters (in place; returned)."""
    for block in module.modules():
        if isinstance(block, ConvBlock) and isinstance(block.bn, nn.BatchNorm2d):
            bn = block.bn
            frozen = FrozenBatchNorm2d(bn.num_features, eps=bn.eps).to(bn.weight.device)
            with torch.no_grad():
                frozen.weight.copy_(bn.weight)
                frozen.bias.copy_(bn.bias)
                frozen.running_mean.copy_(bn.running_mean)
                frozen.running_var.copy_(bn.running_var)
            block.bn = frozen
    return module


def _classifier(preset: str, weights: str | Path | GoogLeNet | None) -> GoogLeNet:
    if weights is None:
        return create_model(preset, aux_logits=False)
    if isinstance(weights, GoogLeNet):
        return weights
    return load(weights, aux_logits=False)
