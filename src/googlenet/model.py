"""GoogLeNet (Inception v1), as in "Going Deeper with Convolutions" (Szegedy et al., 2014).

Read this file top to bottom: the building blocks (a convolution with its ReLU, the Inception
module with 1x1 reductions, the naive module the paper argues against, the auxiliary head), then
the network with Table 1 written out in ``TABLE1``, then the presets and the factory. It is
longer than the project's 600-line rule on purpose: one model file read top to bottom, as
torchvision's and timm's are (STYLE.md, point 1), rather than a network split across files.

Paper values are the defaults. Every deviation is named where it happens and switched on by a
preset, never silently:

* ``paper``        -- Table 1 and the BVLC Caffe model exactly (LRN, conv biases, true 5x5).
* ``paper-bn``     -- the paper's layers with BatchNorm in place of LRN, for training from scratch.
* ``torchvision``  -- torchvision's port of TF-slim's Inception v1, state-dict compatible with
                      ``torchvision.models.googlenet`` so the ImageNet weights users have load.

Input size. Table 1 is exact at 224x224. The trunk is size-agnostic (the final 7x7 average pool is
a global average pool, which is the same thing at 224), so any size from ``min_input_size`` up
works. The auxiliary heads pool 5x5/3, which turns the 14x14 map of 4a/4d into the 4x4 grid their
first fully connected layer expects; at other sizes they pool adaptively to 4x4 instead (what
torchvision does at every size), so training at e.g. 96x96 still has its auxiliary losses.

Output contract (one, written in the types): ``model(x)`` always returns the main logits, a
``Tensor``, in training and in eval mode. ``model(x, return_aux=True)`` always returns a
:class:`GoogLeNetOutputs` ``(logits, aux1, aux2)``; ``aux1``/``aux2`` are tensors only in training
mode on a model built with auxiliary heads, ``None`` otherwise: the paper discards them at
inference, so they are not computed there.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, Optional, overload

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import ConfigError, InputSizeError
from .hub import HubMixin

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Caffe's input (BVLC's train_val.prototxt, and the paper's "mean subtraction"): 0-255 pixels minus
# the mean pixel (R 123, G 117, B 104), no division; in our [0, 1] tensor convention, these.
CAFFE_MEAN = (123 / 255, 117 / 255, 104 / 255)
CAFFE_STD = (1 / 255, 1 / 255, 1 / 255)
# Sanity bounds, so that a mistyped flag or a weights file's lying metadata is an error rather
# than an attempt to allocate terabytes: ImageNet-21k has 21,841 classes; 4096 px is 18x the
# paper's 224 (its first feature map alone is then 4 GB per image).
MAX_CLASSES = 1_000_000
MAX_INPUT_SIZE = 4096
# The configuration's variant fields and their values, the paper's first.
VARIANTS = {
    "inception": ("reduced", "naive"),
    "head": ("gap", "fc"),
    "arch": ("googlenet", "vgg16", "alexnet"),
}


# ---------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------


class ConvBlock(nn.Module):
    """Convolution, optional BatchNorm, ReLU: the paper puts a ReLU after *every* convolution,
    reductions and projections included.

    With ``batchnorm=False`` (the paper) the convolution has a bias; with ``batchnorm=True``
    (torchvision's port, ``paper-bn``) it has none, since the BatchNorm shift replaces it. The
    attribute names ``conv`` and ``bn`` are torchvision's ``BasicConv2d``'s.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        *,
        batchnorm: bool = False,
        bn_eps: float = 1e-3,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, padding, bias=not batchnorm
        )
        self.bn = nn.BatchNorm2d(out_channels, eps=bn_eps) if batchnorm else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return self.relu(x)


class InceptionModule(nn.Module):
    """The Inception module with dimension reductions (the paper's Figure 2b).

    Four branches read the same input and are concatenated on channels; the spatial size is kept:

    * ``conv1x1``                          -- 1x1 convolution (``#1x1``)
    * ``reduce3x3`` -> ``conv3x3``         -- 1x1 reduction (``#3x3 reduce``), 3x3 pad 1 (``#3x3``)
    * ``reduce5x5`` -> ``conv5x5``         -- 1x1 reduction (``#5x5 reduce``), 5x5 pad 2 (``#5x5``)
    * ``pool`` -> ``pool_proj``            -- 3x3/1 max pool pad 1, 1x1 projection (``pool proj``)

    The names are the Caffe model's (``inception_3a/3x3_reduce`` ...). Output channels:
    ``c1x1 + c3x3 + c5x5 + pool_proj``.
    """

    def __init__(
        self,
        in_channels: int,
        c1x1: int,
        c3x3_reduce: int,
        c3x3: int,
        c5x5_reduce: int,
        c5x5: int,
        pool_proj: int,
        *,
        conv5x5_kernel: int = 5,
        batchnorm: bool = False,
        bn_eps: float = 1e-3,
    ) -> None:
        super().__init__()
        block: dict[str, Any] = dict(batchnorm=batchnorm, bn_eps=bn_eps)
        self.in_channels = in_channels
        self.out_channels = c1x1 + c3x3 + c5x5 + pool_proj
        self.conv1x1 = ConvBlock(in_channels, c1x1, 1, **block)
        self.reduce3x3 = ConvBlock(in_channels, c3x3_reduce, 1, **block)
        self.conv3x3 = ConvBlock(c3x3_reduce, c3x3, 3, padding=1, **block)
        self.reduce5x5 = ConvBlock(in_channels, c5x5_reduce, 1, **block)
        # The paper's kernel is 5x5. torchvision's port uses 3x3 here, a known bug kept for
        # compatibility with its weights (https://github.com/pytorch/vision/issues/906); the
        # ``torchvision`` preset sets conv5x5_kernel=3 for that reason only.
        self.conv5x5 = ConvBlock(
            c5x5_reduce, c5x5, conv5x5_kernel, padding=conv5x5_kernel // 2, **block
        )
        self.pool = nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True)
        self.pool_proj = ConvBlock(in_channels, pool_proj, 1, **block)

    def forward(self, x: Tensor) -> Tensor:
        # N x C_in x H x W in, N x out_channels x H x W out
        b1 = self.conv1x1(x)
        b2 = self.conv3x3(self.reduce3x3(x))
        b3 = self.conv5x5(self.reduce5x5(x))
        b4 = self.pool_proj(self.pool(x))
        return torch.cat([b1, b2, b3, b4], 1)


class NaiveInceptionModule(nn.Module):
    """The naive Inception module (the paper's Figure 2a), kept to show what the reductions buy.

    1x1, 3x3 and 5x5 convolutions and a 3x3/1 max pool straight on the input, concatenated. The
    pool branch passes all ``in_channels`` through, so the output only ever grows:
    ``c1x1 + c3x3 + c5x5 + in_channels`` channels, at a cost dominated by the 5x5 convolution on
    the full input depth (a 28x28x192 input and 32 5x5 filters: 120.4M multiply-adds).
    """

    def __init__(
        self,
        in_channels: int,
        c1x1: int,
        c3x3: int,
        c5x5: int,
        *,
        batchnorm: bool = False,
        bn_eps: float = 1e-3,
    ) -> None:
        super().__init__()
        block: dict[str, Any] = dict(batchnorm=batchnorm, bn_eps=bn_eps)
        self.in_channels = in_channels
        self.out_channels = c1x1 + c3x3 + c5x5 + in_channels
        self.conv1x1 = ConvBlock(in_channels, c1x1, 1, **block)
        self.conv3x3 = ConvBlock(in_channels, c3x3, 3, padding=1, **block)
        self.conv5x5 = ConvBlock(in_channels, c5x5, 5, padding=2, **block)
        self.pool = nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.conv1x1(x), self.conv3x3(x), self.conv5x5(x), self.pool(x)], 1)


class InceptionAux(nn.Module):
    """Auxiliary classifier on 4a and 4d (the paper, section 5).

    Average pool 5x5/3 (14x14 -> 4x4), 1x1 convolution to 128 + ReLU, fully connected 1024 + ReLU,
    dropout 70%, linear to the classes. Its loss is added with weight 0.3 during training only.

    ``pooling="paper"`` pools 5x5/3 where the input is 14x14 (the paper at 224) and adaptively to
    4x4 at other sizes; ``pooling="adaptive"`` always pools adaptively (torchvision's port, whose
    windows at 14x14 are 4 or 5 wide and so differ from the paper's).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        pooling: Literal["paper", "adaptive"] = "paper",
        dropout: float = 0.7,
        batchnorm: bool = False,
        bn_eps: float = 1e-3,
    ) -> None:
        super().__init__()
        self.pooling = pooling
        self.conv = ConvBlock(in_channels, 128, 1, batchnorm=batchnorm, bn_eps=bn_eps)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        # aux1: N x 512 x 14 x 14, aux2: N x 528 x 14 x 14
        x = aux_pool(x, self.pooling == "paper")
        # N x C x 4 x 4
        x = self.conv(x)
        # N x 128 x 4 x 4
        x = torch.flatten(x, 1)
        # N x 2048
        x = self.dropout(self.relu(self.fc1(x)))
        # N x 1024
        return self.fc2(x)
        # N x num_classes


def aux_pool(x: Tensor, paper: bool) -> Tensor:
    """The auxiliary heads' pooling to 4x4: the paper's 5x5/3 on a 14x14 map, else adaptive.

    A branch on the input's size, so a leaf of torch.fx graphs (``torch.fx.wrap`` below: fx
    cannot branch on a symbolic shape; the graph runs this function on the real tensor).
    TorchScript compiles it as it is; dynamo specializes on the (static) height and width.
    """
    if paper and x.shape[-2] == 14 and x.shape[-1] == 14:
        return F.avg_pool2d(x, 5, stride=3, ceil_mode=True)
    return F.adaptive_avg_pool2d(x, 4)


torch.fx.wrap("aux_pool")


# ---------------------------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InceptionSpec:
    """One Inception row of Table 1: the input depth and the six branch widths."""

    name: str
    in_channels: int
    c1x1: int
    c3x3_reduce: int
    c3x3: int
    c5x5_reduce: int
    c5x5: int
    pool_proj: int

    @property
    def widths(self) -> tuple[int, int, int, int, int, int]:
        return (self.c1x1, self.c3x3_reduce, self.c3x3, self.c5x5_reduce, self.c5x5, self.pool_proj)

    @property
    def out_channels(self) -> int:
        return self.c1x1 + self.c3x3 + self.c5x5 + self.pool_proj


#: Table 1 of the paper, one ``InceptionSpec`` per Inception module: its name, input channels,
#: then #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj.
TABLE1: tuple[InceptionSpec, ...] = (
    InceptionSpec("inception3a", 192, 64, 96, 128, 16, 32, 32),
    InceptionSpec("inception3b", 256, 128, 128, 192, 32, 96, 64),
    InceptionSpec("inception4a", 480, 192, 96, 208, 16, 48, 64),
    InceptionSpec("inception4b", 512, 160, 112, 224, 24, 64, 64),
    InceptionSpec("inception4c", 512, 128, 128, 256, 24, 64, 64),
    InceptionSpec("inception4d", 512, 112, 144, 288, 32, 64, 64),
    InceptionSpec("inception4e", 528, 256, 160, 320, 32, 128, 128),
    InceptionSpec("inception5a", 832, 256, 160, 320, 32, 128, 128),
    InceptionSpec("inception5b", 832, 384, 192, 384, 48, 128, 128),
)
# The same rows by name, so that code reads like the table: ROW["inception4a"].out_channels.
ROW: dict[str, InceptionSpec] = {spec.name: spec for spec in TABLE1}

# The feature maps a backbone reads (timm's feature_info), one per stride: (module, stride,
# channels). Each is the last map of its resolution; at stride 4 the map after norm2 where the
# network has LRN (see GoogLeNet.feature_info).
FEATURE_POINTS: tuple[tuple[str, int, int], ...] = (
    ("conv1", 2, 64),
    ("conv3", 4, 192),
    ("inception3b", 8, ROW["inception3b"].out_channels),
    ("inception4e", 16, ROW["inception4e"].out_channels),
    ("inception5b", 32, ROW["inception5b"].out_channels),
)


def feature_indices(indices: int | list[int] | tuple[int, ...] | None) -> list[int]:
    """timm's ``indices``/``out_indices``: None all five maps, an int n the last n, else the
    indices themselves (negative ones count from the end), sorted."""
    n = len(FEATURE_POINTS)
    if indices is None:
        return list(range(n))
    if isinstance(indices, int):
        if not 1 <= indices <= n:
            raise ConfigError(f"indices: the last 1 to {n} feature maps, got {indices}")
        return list(range(n - indices, n))
    chosen = sorted({i % n for i in indices if -n <= i < n})
    if not chosen or len(chosen) != len(indices) or any(not _is_int(i) for i in indices):
        raise ConfigError(
            f"out_indices: distinct feature indices 0 to {n - 1} (strides 2, 4, 8, 16, 32), "
            f"got {tuple(indices)}"
        )
    return chosen


@dataclass
class GoogLeNetConfig:
    """Everything needed to rebuild a model; saved as JSON in our weights files.

    Every field defaults to the ``paper`` preset, so ``GoogLeNetConfig()`` *is*
    ``preset_config("paper")`` (Caffe's 0-255 mean-pixel input included: the LRN's alpha is tuned
    to that scale). ``input_size``, ``mean``, ``std`` and ``class_names`` describe the data the
    weights were trained on; they travel with the weights so that predicting, evaluating and
    exporting preprocess the way training did.
    """

    preset: str = "paper"
    num_classes: int = 1000
    aux_logits: bool = True
    # Architecture (paper values).
    norm: Literal["lrn", "batchnorm"] = "lrn"
    bn_eps: float = 1e-3
    conv5x5_kernel: int = 5
    pool4_kernel: int = 3
    aux_pooling: Literal["paper", "adaptive"] = "paper"
    dropout: float = 0.4
    aux_dropout: float = 0.7
    transform_input: bool = False
    init: Literal["caffe", "trunc_normal"] = "caffe"
    # Variants the paper argues against, for ``googlenet study`` (paper values by default):
    # ``inception="naive"`` builds Figure 2a's modules (no 1x1 reductions, the pool branch passing
    # its channels through, so the depth grows module after module); ``head="fc"`` flattens the
    # last map into a fully connected layer of 1024 (the AlexNet/VGG way) instead of global
    # average pooling; ``arch`` names a reference network (torchvision's VGG-16 or AlexNet,
    # built by ``googlenet.networks``) trained and evaluated by the same commands.
    inception: Literal["reduced", "naive"] = "reduced"
    head: Literal["gap", "fc"] = "gap"
    arch: Literal["googlenet", "vgg16", "alexnet"] = "googlenet"
    # Data the weights belong to.
    input_size: int = 224
    mean: tuple[float, float, float] = CAFFE_MEAN
    std: tuple[float, float, float] = CAFFE_STD
    class_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        self.mean = tuple(float(v) for v in self.mean)  # type: ignore[assignment]
        self.std = tuple(float(v) for v in self.std)  # type: ignore[assignment]
        if self.class_names is not None:
            self.class_names = tuple(str(c) for c in self.class_names)
        problems = []
        if not _is_int(self.num_classes) or not 1 <= self.num_classes <= MAX_CLASSES:
            problems.append(f"num_classes must be 1 to {MAX_CLASSES:,}, got {self.num_classes!r}")
        if not _is_int(self.input_size) or not 1 <= self.input_size <= MAX_INPUT_SIZE:
            problems.append(f"input_size must be 1 to {MAX_INPUT_SIZE}, got {self.input_size!r}")
        if not (isinstance(self.bn_eps, int | float) and 0 < self.bn_eps < 1):
            problems.append(f"bn_eps must be in (0, 1), got {self.bn_eps!r}")
        if self.norm not in ("lrn", "batchnorm"):
            problems.append(f"norm must be 'lrn' or 'batchnorm', got {self.norm!r}")
        if self.aux_pooling not in ("paper", "adaptive"):
            problems.append(f"aux_pooling must be 'paper' or 'adaptive', got {self.aux_pooling!r}")
        if self.init not in ("caffe", "trunc_normal"):
            problems.append(f"init must be 'caffe' or 'trunc_normal', got {self.init!r}")
        for name, allowed in VARIANTS.items():
            if getattr(self, name) not in allowed:
                value = getattr(self, name)
                problems.append(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
        if self.conv5x5_kernel not in (3, 5):
            problems.append(f"conv5x5_kernel must be 5 (paper) or 3, got {self.conv5x5_kernel}")
        if self.pool4_kernel not in (2, 3):
            problems.append(f"pool4_kernel must be 3 (paper) or 2, got {self.pool4_kernel}")
        for name in ("dropout", "aux_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                problems.append(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if (
            len(self.mean) != 3
            or len(self.std) != 3
            or not all(math.isfinite(v) for v in self.mean + self.std)
            or min(self.std) <= 0
        ):
            problems.append("mean and std must be three finite numbers each, std positive")
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            problems.append(
                f"{len(self.class_names)} class names given for {self.num_classes} classes"
            )
        if problems:
            raise ConfigError("; ".join(problems))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> GoogLeNetConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown model option(s) {', '.join(unknown)}")
        return cls(**data)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# The functional form: TorchScript reads a NamedTuple's field types, and this module's
# annotations are strings (from __future__ import annotations), which it cannot resolve.
GoogLeNetOutputs = NamedTuple(  # noqa: UP014
    "GoogLeNetOutputs",
    [("logits", Tensor), ("aux1", Optional[Tensor]), ("aux2", Optional[Tensor])],  # noqa: UP045
)
GoogLeNetOutputs.__doc__ = """What ``model(x, return_aux=True)`` returns.

``aux1`` (on 4a) and ``aux2`` (on 4d) are ``None`` in eval mode and on a model built with
``aux_logits=False``. Mind the order: torchvision returns ``(logits, aux_logits2, aux_logits1)``.
"""


def _pool_out(size: int, kernel: int, stride: int, padding: int, ceil_mode: bool) -> int:
    """Output length of a convolution or pooling window, PyTorch's rule (ceil mode included)."""
    extra = stride - 1 if ceil_mode else 0
    out = (size + 2 * padding - kernel + extra) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1  # the last window would start in the right padding: PyTorch drops it
    return out


def check_input(x: Tensor, min_input_size: int) -> None:
    """The one input check of every form of the network (the model, its fused inference form,
    a runtime session): an N x 3 x H x W batch no smaller than ``min_input_size``. Skipped while
    tracing or compiling, where shapes are symbolic."""
    if torch.jit.is_tracing() or torch.compiler.is_compiling():
        return
    if x.dim() != 4 or x.shape[1] != 3:
        raise InputSizeError(
            f"GoogLeNet takes an N x 3 x H x W batch of RGB images, got shape {tuple(x.shape)}"
        )
    if min(x.shape[-2:]) < min_input_size:
        m = min_input_size
        raise InputSizeError(
            f"input {x.shape[-2]}x{x.shape[-1]} is too small for GoogLeNet: the smallest size "
            f"that works is {m}x{m} (Table 1 is for 224x224)"
        )


def checked_input(x: Tensor, min_input_size: int) -> Tensor:
    """``x``, after :func:`check_input`: the form the network calls, a leaf of torch.fx graphs
    (``torch.fx.wrap`` below), so that a traced model still checks what it is given."""
    check_input(x, min_input_size)
    return x


torch.fx.wrap("checked_input")


class GoogLeNet(HubMixin, nn.Module):
    """GoogLeNet: 22 layers with parameters, Table 1. Build it with :func:`create_model`.

    ``forward_features`` runs the trunk to 5b (N x 1024 x H/32 x W/32), ``forward_head`` pools,
    drops out and classifies, ``forward`` runs both (see the module docstring for the output
    contract). ``reset_classifier`` replaces the classifiers for a new number of classes.
    """

    def __init__(self, config: GoogLeNetConfig | None = None) -> None:
        super().__init__()
        cfg = self.config = config or GoogLeNetConfig()
        bn = cfg.norm == "batchnorm"
        block: dict[str, Any] = dict(batchnorm=bn, bn_eps=cfg.bn_eps)

        self.conv1 = ConvBlock(3, 64, 7, stride=2, padding=3, **block)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        # Local response normalization after pool1 and after conv2/3x3, as in the Caffe model.
        # With BatchNorm (torchvision, paper-bn) there is none: BN does its job.
        self.norm1 = self._lrn() if not bn else None
        self.conv2 = ConvBlock(64, 64, 1, **block)  # Table 1's "#3x3 reduce" of the stem
        self.conv3 = ConvBlock(64, 192, 3, padding=1, **block)
        self.norm2 = self._lrn() if not bn else None
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        depth = [ROW["inception3a"].in_channels]  # the naive modules' growing input depth

        def make(name: str) -> InceptionModule | NaiveInceptionModule:  # one row of Table 1
            spec = ROW[name]
            if cfg.inception == "naive":  # Figure 2a: same 1x1/3x3/5x5 widths, no reductions
                module = NaiveInceptionModule(depth[0], spec.c1x1, spec.c3x3, spec.c5x5, **block)
                depth[0] = module.out_channels
                return module
            return InceptionModule(
                spec.in_channels, *spec.widths, conv5x5_kernel=cfg.conv5x5_kernel, **block
            )

        self.inception3a = make("inception3a")
        self.inception3b = make("inception3b")
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = make("inception4a")
        self.inception4b = make("inception4b")
        self.inception4c = make("inception4c")
        self.inception4d = make("inception4d")
        self.inception4e = make("inception4e")
        # The paper pools 3x3/2 here like everywhere else; torchvision's port pools 2x2/2
        # (TF-slim's choice). Both give 7x7 at 224.
        self.maxpool4 = nn.MaxPool2d(cfg.pool4_kernel, stride=2, ceil_mode=True)
        self.inception5a = make("inception5a")
        self.inception5b = make("inception5b")

        self.aux1: InceptionAux | None
        self.aux2: InceptionAux | None
        self.aux1, self.aux2 = self._aux_heads(block)

        # Table 1's "avg pool 7x7/1" is a global average pool at 224; written as one so that
        # other input sizes work too.
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(cfg.dropout)
        self.min_input_size = self._min_input_size()
        self.fc_hidden, self.fc = self._head(self.inception5b.out_channels)
        # Plain copies of what forward reads, so that it scripts (TorchScript cannot read the
        # config dataclass); feature_info: timm's, the maps a backbone can take.
        self.transform_input = cfg.transform_input
        self.feature_info = self._feature_info()
        self.apply(self._init_weights)

    def _aux_heads(self, block: dict[str, Any]) -> tuple[InceptionAux | None, InceptionAux | None]:
        """The auxiliary classifiers on top of 4a and 4d (section 5), so they read those
        modules' outputs; none without ``aux_logits``."""
        cfg = self.config
        if not cfg.aux_logits:
            return None, None
        aux: dict[str, Any] = dict(pooling=cfg.aux_pooling, dropout=cfg.aux_dropout, **block)
        first = InceptionAux(self.inception4a.out_channels, cfg.num_classes, **aux)
        return first, InceptionAux(self.inception4d.out_channels, cfg.num_classes, **aux)

    # TorchScript compiles properties unless told; num_classes reads the config dataclass.
    __jit_unused_properties__ = ["num_classes"]

    def _feature_info(self) -> FeatureInfo:
        info = FeatureInfo()
        for name, stride, channels in FEATURE_POINTS:
            if name == "conv3" and self.norm2 is not None:
                name = "norm2"
            info.append({"num_chs": channels, "reduction": stride, "module": name})
        return info

    def _head(self, features: int) -> tuple[nn.Linear | None, nn.Linear]:
        """The classifier: ``fc`` on the pooled features (the paper), or with ``head="fc"`` the
        AlexNet/VGG head the paper replaced, the last map flattened into FC 1024 + ReLU first."""
        cfg = self.config
        if cfg.head != "fc":
            return None, nn.Linear(features, cfg.num_classes)
        side = self.feature_size(max(cfg.input_size, self.min_input_size))
        return nn.Linear(features * side * side, 1024), nn.Linear(1024, cfg.num_classes)

    @staticmethod
    def _lrn() -> nn.LocalResponseNorm:
        # Caffe's LRN and PyTorch's share the convention: alpha is divided by size.
        return nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=1.0)

    # -- initialization ------------------------------------------------------------------------

    def _init_weights(self, m: nn.Module) -> None:
        """Initialize one layer.

        ``caffe`` (paper, paper-bn): the BVLC model's fillers. Xavier for every weight (Caffe's
        "xavier": uniform on +-sqrt(3 / fan_in)); conv and hidden fully connected biases 0.2 (a
        positive bias keeps the ReLUs of a BN-free network alive at the start); the two
        classifier layers' biases 0.
        ``trunc_normal`` (torchvision): torchvision's init, normal(0, 0.01) truncated at +-2 for
        every weight; biases keep PyTorch's default (only the Linear layers have one), as in
        ``torchvision.models.googlenet``, which this reproduces draw for draw from one seed.
        BatchNorm: weight 1, bias 0.
        """
        if isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
            return
        if not isinstance(m, nn.Conv2d | nn.Linear):
            return
        if self.config.init == "trunc_normal":
            nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
            return
        fan_in = m.weight[0].numel()
        bound = math.sqrt(3.0 / fan_in)
        nn.init.uniform_(m.weight, -bound, bound)
        if m.bias is not None:
            is_classifier = m is self.fc or any(
                a is not None and m is a.fc2 for a in (self.aux1, self.aux2)
            )
            nn.init.constant_(m.bias, 0.0 if is_classifier else 0.2)

    # -- sizes -----------------------------------------------------------------------------------

    def spatial_sizes(self, size: int) -> list[int]:
        """Spatial size after each layer that changes it (conv1 and the four max pools)."""
        sizes = []
        for layer in (self.conv1.conv, self.maxpool1, self.maxpool2, self.maxpool3, self.maxpool4):
            k, s, p = (_first(getattr(layer, a)) for a in ("kernel_size", "stride", "padding"))
            size = _pool_out(size, k, s, p, getattr(layer, "ceil_mode", False))
            sizes.append(size)
        return sizes

    def _min_input_size(self) -> int:
        size = 1
        while min(self.spatial_sizes(size)) < 1:
            size += 1
        return size

    def feature_size(self, input_size: int) -> int:
        """Side of the last feature map (5b) for a square input: 7 at 224."""
        return self.spatial_sizes(input_size)[-1]

    def check_input(self, x: Tensor) -> None:
        """Raise :class:`InputSizeError` unless the network takes ``x``."""
        check_input(x, self.min_input_size)

    # -- forward ---------------------------------------------------------------------------------

    def _transform_input(self, x: Tensor) -> Tensor:
        # torchvision's ImageNet weights came from TF-slim, trained on inputs in [-1, 1]; this
        # maps ImageNet mean/std-normalized input there (torchvision's transform_input).
        ch0 = x[:, 0:1] * (0.229 / 0.5) + (0.485 - 0.5) / 0.5
        ch1 = x[:, 1:2] * (0.224 / 0.5) + (0.456 - 0.5) / 0.5
        ch2 = x[:, 2:3] * (0.225 / 0.5) + (0.406 - 0.5) / 0.5
        return torch.cat((ch0, ch1, ch2), 1)

    def _forward_trunk(
        self, x: Tensor, with_aux: bool, take: int = 0, stop: int = 4
    ) -> tuple[Tensor, Tensor | None, Tensor | None, list[Tensor]]:
        """conv1 to 5b, with the auxiliary heads if ``with_aux``; the feature maps whose bit is
        set in ``take`` (bit i: :data:`FEATURE_POINTS` [i]) are returned too, and the trunk
        stops after feature ``stop``. A bit mask and plain ifs so that the same code scripts,
        traces (fx, dynamo) and runs eagerly."""
        feats: list[Tensor] = []
        aux1: Tensor | None = None
        aux2: Tensor | None = None
        if self.transform_input:
            x = self._transform_input(x)
        # N x 3 x 224 x 224
        x = self.conv1(x)
        # N x 64 x 112 x 112 (feature 0, stride 2)
        if take & 1:
            feats.append(x)
        if stop == 0:
            return x, aux1, aux2, feats
        x = self._stem(x)
        # N x 192 x 56 x 56 (feature 1, stride 4)
        if take & 2:
            feats.append(x)
        if stop == 1:
            return x, aux1, aux2, feats
        x = self.maxpool2(x)
        # N x 192 x 28 x 28
        x = self.inception3a(x)
        # N x 256 x 28 x 28
        x = self.inception3b(x)
        # N x 480 x 28 x 28 (feature 2, stride 8)
        if take & 4:
            feats.append(x)
        if stop == 2:
            return x, aux1, aux2, feats
        x = self.maxpool3(x)
        # N x 480 x 14 x 14
        x, aux1, aux2 = self._stage4(x, with_aux)
        # N x 832 x 14 x 14 (feature 3, stride 16)
        if take & 8:
            feats.append(x)
        if stop == 3:
            return x, aux1, aux2, feats
        x = self.maxpool4(x)
        # N x 832 x 7 x 7
        x = self.inception5a(x)
        # N x 832 x 7 x 7
        x = self.inception5b(x)
        # N x 1024 x 7 x 7 (feature 4, stride 32)
        if take & 16:
            feats.append(x)
        return x, aux1, aux2, feats

    def _stem(self, x: Tensor) -> Tensor:
        # N x 64 x 112 x 112
        x = self.maxpool1(x)
        # N x 64 x 56 x 56
        if self.norm1 is not None:
            x = self.norm1(x)
        x = self.conv2(x)
        # N x 64 x 56 x 56
        x = self.conv3(x)
        # N x 192 x 56 x 56
        if self.norm2 is not None:
            x = self.norm2(x)
        return x

    def _stage4(self, x: Tensor, with_aux: bool) -> tuple[Tensor, Tensor | None, Tensor | None]:
        # N x 480 x 14 x 14
        aux1: Tensor | None = None
        aux2: Tensor | None = None
        x = self.inception4a(x)
        # N x 512 x 14 x 14
        if with_aux and self.aux1 is not None:
            aux1 = self.aux1(x)
        x = self.inception4b(x)
        # N x 512 x 14 x 14
        x = self.inception4c(x)
        # N x 512 x 14 x 14
        x = self.inception4d(x)
        # N x 528 x 14 x 14
        if with_aux and self.aux2 is not None:
            aux2 = self.aux2(x)
        x = self.inception4e(x)
        # N x 832 x 14 x 14
        return x, aux1, aux2

    def _checked(self, x: Tensor) -> Tensor:
        # The eager one-line input error. TorchScript does not compile the branch (a static if on
        # is_scripting); under torch.fx, checked_input is a leaf of the graph (torch.fx.wrap), so
        # the traced module checks its real inputs; under dynamo (torch.compile, torch.export)
        # it returns at once (is_compiling), so that the graph has no break and a dynamic batch.
        if not torch.jit.is_scripting():
            x = checked_input(x, self.min_input_size)
        return x

    def forward_features(self, x: Tensor) -> Tensor:
        """The trunk, conv1 to inception5b: N x 1024 x 7 x 7 at 224 (no auxiliary heads)."""
        return self._forward_trunk(self._checked(x), False)[0]

    def forward_intermediates(
        self,
        x: Tensor,
        indices: int | list[int] | None = None,
        stop_early: bool = False,
        intermediates_only: bool = False,
    ) -> list[Tensor] | tuple[Tensor, list[Tensor]]:
        """timm's ``forward_intermediates``: the feature maps ``indices`` (of
        :attr:`feature_info`: 0 conv1 /2, 1 conv3 /4, 2 inception3b /8, 3 inception4e /16,
        4 inception5b /32; an int n means the last n; None all) and the final features.

        Returns ``(features, maps)``: ``forward_head(features)`` gives the logits, so one pass
        yields logits and maps. ``intermediates_only=True`` returns the maps alone (and with
        ``stop_early`` skips the layers after the last one asked for).
        """
        take = feature_indices(indices)
        mask = sum(1 << i for i in take)
        stop = max(take) if stop_early and intermediates_only else 4
        final, _, _, maps = self._forward_trunk(self._checked(x), False, mask, stop)
        if intermediates_only:
            return maps
        return final, maps

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Global average pool, dropout 40%, linear. ``pre_logits=True`` stops before dropout."""
        # N x 1024 x 7 x 7
        if self.fc_hidden is not None:  # head="fc": the map flattened, FC 1024, ReLU
            side = self.feature_size(self.config.input_size)
            if x.shape[-2:] != (side, side):
                raise InputSizeError(
                    f"this network's fully connected head reads a {side}x{side} map "
                    f"({self.config.input_size} px input), got {x.shape[-2]}x{x.shape[-1]}"
                )
            x = F.relu(self.fc_hidden(torch.flatten(x, 1)))
        else:
            x = torch.flatten(self.avgpool(x), 1)
        # N x 1024
        if pre_logits:
            return x
        return self.fc(self.dropout(x))
        # N x num_classes

    @overload
    def forward(self, x: Tensor, return_aux: Literal[False] = ...) -> Tensor: ...
    @overload
    def forward(self, x: Tensor, return_aux: Literal[True]) -> GoogLeNetOutputs: ...

    def forward(self, x: Tensor, return_aux: bool = False) -> Tensor | GoogLeNetOutputs:
        """Main logits, or with ``return_aux=True`` a :class:`GoogLeNetOutputs` (see the module)."""
        # isinstance: torch.fx passes a defaulted argument as a Proxy, which cannot be branched
        # on; a traced graph then has the default's output (the logits; trace the auxiliary
        # outputs with concrete_args={"return_aux": True}). TorchScript types it bool.
        want_aux = isinstance(return_aux, bool) and return_aux
        features, aux1, aux2, _ = self._forward_trunk(self._checked(x), want_aux and self.training)
        logits = self.forward_head(features)
        if want_aux:
            return GoogLeNetOutputs(logits, aux1, aux2)
        return logits

    # -- heads -----------------------------------------------------------------------------------

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def classifiers(self) -> list[nn.Linear]:
        """The layers that depend on the number of classes: fc, and aux1.fc2/aux2.fc2 if built."""
        return [self.fc] + [a.fc2 for a in (self.aux1, self.aux2) if a is not None]

    def reset_classifier(self, num_classes: int, class_names: list[str] | None = None) -> None:
        """Replace the classifiers (main and auxiliary) with freshly initialized ones."""
        self.config = dataclasses.replace(
            self.config,
            num_classes=num_classes,
            class_names=tuple(class_names) if class_names is not None else None,
        )
        device = self.fc.weight.device
        self.fc = nn.Linear(self.fc.in_features, num_classes, device=device)
        for aux in (self.aux1, self.aux2):
            if aux is not None:
                aux.fc2 = nn.Linear(1024, num_classes, device=device)
        for layer in self.classifiers():
            self._init_weights(layer)

    def extra_repr(self) -> str:
        return f"preset={self.config.preset!r}, num_classes={self.num_classes}"


def _first(v: int | tuple[int, ...]) -> int:
    return v[0] if isinstance(v, tuple) else v


class FeatureInfo(list):
    """timm's ``feature_info`` for the maps a features model returns: a list of dicts
    (``num_chs``, ``reduction``, ``module``) with timm's accessors. Written here because timm is
    not a dependency; the names and meanings are timm's, so code written for timm backbones
    (``feature_info.channels()``) works unchanged."""

    def channels(self, idx: int | None = None) -> list[int] | int:
        return self._get("num_chs", idx)

    def reduction(self, idx: int | None = None) -> list[int] | int:
        return self._get("reduction", idx)

    def module_name(self, idx: int | None = None) -> list[str] | str:
        return self._get("module", idx)

    def _get(self, key: str, idx: int | None) -> Any:
        return [f[key] for f in self] if idx is None else self[idx][key]


class GoogLeNetFeatures(GoogLeNet):
    """The trunk as a backbone (timm's ``features_only=True``): ``forward`` returns the list of
    maps ``out_indices`` (of :data:`FEATURE_POINTS`; default all five, strides 2 to 32).

    No classifier and no auxiliary heads are built, and the layers with parameters after the last
    map asked for are removed (Identity), so every parameter is used (DDP needs no
    ``find_unused_parameters``).
    The state dict keys are the classifier's (``conv1.conv.weight`` ...), so classification
    weights load into it: :meth:`from_model`, or ``create_model(..., features_only=True)``.
    """

    def __init__(self, config: GoogLeNetConfig | None = None, out_indices: Any = None) -> None:
        config = config or GoogLeNetConfig()
        super().__init__(dataclasses.replace(config, aux_logits=False))
        self.out_indices = tuple(feature_indices(out_indices))
        self._take = sum(1 << i for i in self.out_indices)
        self._stop = max(self.out_indices)
        del self.avgpool, self.dropout, self.fc
        last = self.feature_info[self._stop]["module"]
        names = [n for n, _ in self.named_children()]
        for name in names[names.index(last) + 1 :]:  # never run (the trunk stops before)
            if any(True for _ in getattr(self, name).parameters()):
                setattr(self, name, nn.Identity())
        self.feature_info = FeatureInfo(self.feature_info[i] for i in self.out_indices)

    @classmethod
    def from_model(cls, model: GoogLeNet, out_indices: Any = None) -> GoogLeNetFeatures:
        """The backbone of ``model`` (its weights, copied; the head and aux heads left out)."""
        features = cls(model.config, out_indices).to(next(model.parameters()).device)
        own = features.state_dict()
        features.load_state_dict({k: v for k, v in model.state_dict().items() if k in own})
        return features.train(model.training)

    def forward(self, x: Tensor) -> list[Tensor]:  # type: ignore[override]
        return self._forward_trunk(self._checked(x), False, self._take, self._stop)[3]

    def classifiers(self) -> list[nn.Linear]:
        return []

    def extra_repr(self) -> str:
        return f"preset={self.config.preset!r}, out_indices={self.out_indices}"


# ---------------------------------------------------------------------------------------------
# Presets and the factory
# ---------------------------------------------------------------------------------------------


def paper() -> dict:
    """The paper's network: Table 1 and the BVLC Caffe model, with no deviations.

    Conv biases and a ReLU after every convolution; LRN (size 5, alpha 1e-4, beta 0.75, k 1) after
    pool1 and after conv2/3x3; true 5x5 convolutions; 3x3/2 ceil-mode max pools (after 4e too);
    global average pooling; dropout 40%; auxiliary heads on 4a and 4d (avg pool 5x5/3, 1x1 conv
    128, fc 1024, dropout 70%). Caffe's Xavier initialization with bias 0.2. Caffe's input scale:
    0-255 pixels minus the mean pixel, not divided by a standard deviation (``CAFFE_MEAN``,
    ``CAFFE_STD``): LRN's alpha (1e-4) is tuned to it, and at ImageNet-normalized input, 57x
    smaller, the two LRN layers would be close to the identity.
    """
    return {"mean": CAFFE_MEAN, "std": CAFFE_STD}


def paper_bn() -> dict:
    """The paper's layers with BatchNorm, for training from scratch on small data.

    Deviations from the paper: BatchNorm (eps 1e-3) after every convolution, so no conv biases and
    no LRN (Ioffe & Szegedy 2015 made this change to this very network). Everything else, the
    true 5x5 and the 3x3/2 pool after 4e included, is the paper's. Input: ImageNet's mean and
    std (BatchNorm after the first convolution makes the input's scale irrelevant, and there is
    no LRN tuned to it).
    """
    return {"norm": "batchnorm", "mean": IMAGENET_MEAN, "std": IMAGENET_STD}


def torchvision_port() -> dict:
    """torchvision's ``googlenet``: a port of TF-slim's Inception v1, state-dict compatible.

    Deviations from the paper, each kept so that torchvision's ImageNet weights load unchanged:
    BatchNorm (eps 1e-3) after every convolution and no conv bias; no LRN; a 3x3 kernel in the
    "5x5" branch (pytorch/vision#906); a 2x2/2 max pool after 4e; adaptive 4x4 pooling in the
    auxiliary heads; dropout 20% in the main head; ``transform_input=True`` (the weights expect
    [-1, 1] input, this maps ImageNet-normalized input there; pass ``transform_input=False`` for
    a model trained on normalized input); torchvision's truncated-normal initialization.
    """
    return {
        "norm": "batchnorm",
        "conv5x5_kernel": 3,
        "pool4_kernel": 2,
        "aux_pooling": "adaptive",
        "dropout": 0.2,
        "transform_input": True,
        "init": "trunc_normal",
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
    }


#: The named configurations :func:`create_model` and :func:`preset_config` take: ``paper``
#: (Table 1 and BVLC's Caffe model), ``paper-bn`` (BatchNorm in place of LRN), ``torchvision``
#: (state-dict compatible with torchvision's port); each maps to its fields' function.
PRESETS: dict[str, Callable[[], dict]] = {
    "paper": paper,
    "paper-bn": paper_bn,
    "torchvision": torchvision_port,
}


def preset_config(preset: str = "paper", **fields: Any) -> GoogLeNetConfig:
    """The configuration of a named preset, with ``fields`` (GoogLeNetConfig fields) on top."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return GoogLeNetConfig.from_dict(PRESETS[preset]() | fields | {"preset": preset})


def create_model(
    preset: str = "paper",
    num_classes: int = 1000,
    aux_logits: bool = True,
    *,
    features_only: bool = False,
    out_indices: Any = None,
    **overrides: Any,
) -> GoogLeNet:
    """Build a freshly initialized GoogLeNet from a named preset.

    ``overrides`` are :class:`GoogLeNetConfig` fields (``dropout=0.5``, ``input_size=96``,
    ``class_names=[...]``); an unknown one raises :class:`ConfigError`. ``features_only=True``
    builds the backbone instead (:class:`GoogLeNetFeatures`, timm's interface), returning the
    maps ``out_indices`` (default all five: strides 2, 4, 8, 16, 32).
    """
    config = preset_config(preset, num_classes=num_classes, aux_logits=aux_logits, **overrides)
    if features_only:
        return GoogLeNetFeatures(config, out_indices)
    if out_indices is not None:
        raise ConfigError("out_indices is for features_only=True")
    return GoogLeNet(config)
