"""The fused inference network: BatchNorm and transform_input folded, 1x1s merged, FastLRN.

Why each fusion, with measurements: the docstring of :mod:`googlenet.runtime.backends`.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from ..errors import ConfigError, GoogLeNetError
from ..model import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ConvBlock,
    GoogLeNet,
    GoogLeNetConfig,
    InceptionModule,
    check_input,
)

# torchvision's transform_input: x' = x * scale + shift per channel (GoogLeNet._transform_input).
_TRANSFORM_SCALE = tuple(s / 0.5 for s in IMAGENET_STD)
_TRANSFORM_SHIFT = tuple((m - 0.5) / 0.5 for m in IMAGENET_MEAN)


# ---------------------------------------------------------------------------------------------
# The fused network
# ---------------------------------------------------------------------------------------------


def fold_batchnorm(block: ConvBlock) -> ConvBlock:
    """A copy of ``block`` with its BatchNorm's running statistics folded into the convolution.

    ``bn(conv(x)) = gamma * (w*x - mean) / sqrt(var + eps) + beta``, a convolution with weights
    ``w * gamma / sqrt(var + eps)`` and bias ``beta - mean * gamma / sqrt(var + eps)``. A block
    without BatchNorm (the paper) is copied unchanged. Valid in eval mode only.
    """
    block = copy.deepcopy(block)
    if block.bn is not None:
        bn, conv = block.bn, block.conv
        assert bn.running_mean is not None and bn.running_var is not None
        conv.weight, conv.bias = fuse_conv_bn_weights(
            conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias
        )
        block.bn = None
    return block


def merge_convs(blocks: list[ConvBlock]) -> ConvBlock:
    """One 1x1 :class:`ConvBlock` whose output channels are the ``blocks``' outputs, stacked.

    The blocks must read the same input and have no BatchNorm left (fold it first). Exact: each
    output channel is computed from the same weights as before, only in one matrix product.
    """
    convs = [b.conv for b in blocks]
    if any(b.bn is not None for b in blocks) or any(c.kernel_size != (1, 1) for c in convs):
        raise ValueError("merge_convs takes 1x1 blocks with BatchNorm already folded")
    w0 = convs[0].weight
    merged = ConvBlock(convs[0].in_channels, sum(c.out_channels for c in convs), 1)
    merged = merged.to(device=w0.device, dtype=w0.dtype)
    with torch.no_grad():
        merged.conv.weight.copy_(torch.cat([c.weight for c in convs]))
        biases = [
            c.bias if c.bias is not None else torch.zeros_like(c.weight[:, 0, 0, 0]) for c in convs
        ]
        merged.conv.bias.copy_(torch.cat(biases))  # type: ignore[union-attr]
    return merged


class FusedInception(nn.Module):
    """An :class:`InceptionModule` for inference: BN folded, the three 1x1s on the input merged.

    ``reduce1x1`` computes ``conv1x1``, ``reduce3x3`` and ``reduce5x5`` at once (channels in that
    order, widths in ``splits``); the 3x3, 5x5 and pool branches are the module's own blocks.
    With ``merge=False`` the three stay separate (``heads``): ONNX Runtime runs them faster so.
    """

    def __init__(self, module: InceptionModule, merge: bool = True) -> None:
        super().__init__()
        heads = [fold_batchnorm(getattr(module, n)) for n in ("conv1x1", "reduce3x3", "reduce5x5")]
        self.splits = [b.conv.out_channels for b in heads]
        self.reduce1x1 = merge_convs(heads) if merge else None
        self.heads = None if merge else nn.ModuleList(heads)
        self.conv3x3 = fold_batchnorm(module.conv3x3)
        self.conv5x5 = fold_batchnorm(module.conv5x5)
        self.pool = module.pool
        self.pool_proj = fold_batchnorm(module.pool_proj)

    def forward(self, x: Tensor) -> Tensor:
        if self.reduce1x1 is not None:
            # N x C_in x H x W -> N x (c1x1 + c3x3_reduce + c5x5_reduce) x H x W, split in three
            b1, r3, r5 = self.reduce1x1(x).split(self.splits, 1)
        else:
            b1, r3, r5 = (head(x) for head in self.heads)  # type: ignore[union-attr]
        b4 = self.pool_proj(self.pool(x))
        return torch.cat([b1, self.conv3x3(r3), self.conv5x5(r5), b4], 1)


class _LRNFunction(torch.autograd.Function):
    """Local response norm as the ONNX ``LRN`` operator when exported (see :class:`FastLRN`)."""

    @staticmethod
    def forward(ctx, x: Tensor, size: int, alpha: float, beta: float, k: float) -> Tensor:
        return F.local_response_norm(x, size, alpha, beta, k)

    @staticmethod
    def symbolic(g, x, size: int, alpha: float, beta: float, k: float):  # pragma: no cover
        return g.op("LRN", x, size_i=size, alpha_f=alpha, beta_f=beta, bias_f=k)


class FastLRN(nn.Module):
    """``nn.LocalResponseNorm`` (same parameters, same result) written for speed.

    ``y = x / (k + alpha / size * sum of x**2 over size neighbouring channels) ** beta``. The sum
    is one average pool over the channel axis (as PyTorch computes it), and for the paper's
    beta = 0.75 the power is ``sqrt(t) * sqrt(sqrt(t))``: two square roots are far cheaper than
    ``pow``'s exp and log, and exact to rounding.

    Exported to ONNX it is either these few elementwise ops or, with ``native_op``, the ``LRN``
    operator (the same formula: for an odd ``size`` its channel window is PyTorch's). Measured
    on the paper preset (batch 8, this CPU): OpenVINO's ``LRN`` kernel is 1.25x faster than the
    decomposition, ONNX Runtime's is 1.2x slower (it takes a third of the network's time), so
    each backend gets its faster form.
    """

    def __init__(self, lrn: nn.LocalResponseNorm) -> None:
        super().__init__()
        self.size, self.alpha, self.beta, self.k = lrn.size, lrn.alpha, lrn.beta, lrn.k
        self.native_op = True

    def forward(self, x: Tensor) -> Tensor:
        if self.size % 2 == 0:  # PyTorch's window is lopsided for even sizes: use its own code
            return F.local_response_norm(x, self.size, self.alpha, self.beta, self.k)
        if self.native_op and torch.onnx.is_in_onnx_export():
            return _LRNFunction.apply(x, self.size, self.alpha, self.beta, self.k)
        pad = self.size // 2
        # N x 1 x C x H x W: average x**2 over `size` channels, zeros beyond the edges.
        mean = F.avg_pool3d((x * x).unsqueeze(1), (self.size, 1, 1), 1, (pad, 0, 0)).squeeze(1)
        t = mean * self.alpha + self.k
        if self.beta == 0.75:
            root = t.sqrt()
            return x / (root * root.sqrt())
        return x / t.pow(self.beta)


class FusedGoogLeNet(nn.Module):
    """GoogLeNet's inference network, fused: ``forward(x)`` returns the same logits as the model.

    Built from a :class:`GoogLeNet` (which it does not modify or keep): BN folded into every
    convolution, ``transform_input`` folded into conv1, the 1x1s of each Inception module merged,
    LRN exportable as one operator, no auxiliary heads or dropout. Eval-only.
    """

    def __init__(self, model: GoogLeNet, merge_1x1: bool = True) -> None:
        super().__init__()
        self.config: GoogLeNetConfig = model.config
        self.min_input_size = model.min_input_size
        self.conv1 = fold_batchnorm(model.conv1)
        self.input_shift: Tensor | None
        self.register_buffer("input_shift", None)
        if model.config.transform_input:
            # x' = scale * x + shift. conv(pad0(scale * x)) == conv_{w * scale}(pad0(x)) exactly;
            # the shift stays outside because conv1 pads with zeros: x + shift / scale.
            scale = torch.tensor(_TRANSFORM_SCALE, dtype=torch.float64)
            shift = torch.tensor(_TRANSFORM_SHIFT, dtype=torch.float64)
            w = self.conv1.conv.weight
            with torch.no_grad():
                w.copy_((w.double() * scale.view(1, 3, 1, 1).to(w.device)).to(w.dtype))
            self.input_shift = (shift / scale).view(1, 3, 1, 1).to(w.device, w.dtype)
        self.maxpool1 = model.maxpool1
        self.norm1 = FastLRN(model.norm1) if model.norm1 is not None else None
        self.conv2 = fold_batchnorm(model.conv2)
        self.conv3 = fold_batchnorm(model.conv3)
        self.norm2 = FastLRN(model.norm2) if model.norm2 is not None else None
        self.maxpool2 = model.maxpool2
        # inception3a ... inception5b with maxpool3/maxpool4 between them, in the model's order.
        self.inceptions = nn.Sequential()
        for name, child in model.named_children():
            if isinstance(child, InceptionModule):
                self.inceptions.add_module(name, FusedInception(child, merge_1x1))
            elif name in ("maxpool3", "maxpool4"):
                self.inceptions.add_module(name, child)
        self.fc = copy.deepcopy(model.fc)
        self.eval()

    def train(self, mode: bool = True) -> FusedGoogLeNet:
        if mode:
            raise GoogLeNetError("a fused GoogLeNet is for inference only: train the GoogLeNet")
        return super().train(False)

    def forward(self, x: Tensor) -> Tensor:
        check_input(x, self.min_input_size)
        if self.input_shift is not None:
            x = x + self.input_shift
        # N x 3 x 224 x 224
        x = self.maxpool1(self.conv1(x))
        # N x 64 x 56 x 56
        if self.norm1 is not None:
            x = self.norm1(x)
        x = self.conv3(self.conv2(x))
        # N x 192 x 56 x 56
        if self.norm2 is not None:
            x = self.norm2(x)
        x = self.inceptions(self.maxpool2(x))
        # N x 1024 x 7 x 7
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        # N x 1024
        return self.fc(x)


def fuse(model: GoogLeNet, *, native_lrn: bool = True, merge_1x1: bool = True) -> FusedGoogLeNet:
    """The fused inference network of ``model`` (a new module on the same device; fp32).

    ``native_lrn=False`` keeps LRN as elementwise ops in an ONNX export (any exporter, any
    runtime) instead of the ``LRN`` operator (see :class:`FastLRN`). ``merge_1x1=False`` keeps
    each Inception module's three 1x1 convolutions apart (what ONNX Runtime runs fastest)."""
    if not isinstance(model, GoogLeNet):
        raise ConfigError(f"expected a GoogLeNet, got {type(model).__name__}")
    c = model.config
    if (c.arch, c.inception, c.head) != ("googlenet", "reduced", "gap"):
        raise ConfigError(
            f"the fused (and exported) form is the paper's network; this one ({c.arch}, "
            f"{c.inception} Inception modules, {c.head} head: a googlenet study variant) runs "
            "as it is, on the eager backend"
        )
    net = FusedGoogLeNet(model, merge_1x1)
    for module in net.modules():
        if isinstance(module, FastLRN):
            module.native_op = native_lrn
    return net
