"""Training speed: the same training step, less time per image.

The same training step: :class:`TrainStep` is THE training step: ``googlenet train`` runs it on
a model made ready by :func:`prepare_for_training`, and ``googlenet bench --mode train`` times
that very object, so the speed in BENCHMARKS.md is the speed of the training that ships. What
each piece bought on this project's CPU (2-core AMD EPYC Zen4 with AVX512-BF16; batch 32,
224x224, SGD with momentum and the auxiliary losses; the figures are in BENCHMARKS.md):

* **bf16 autocast** -- the big one. The CPU multiplies bf16 matrices at about twice its fp32 rate
  (AVX512-BF16), and oneDNN's bf16 convolutions accumulate in fp32. The weights, the optimizer
  state and the loss stay fp32 (autocast only casts the inputs of convolutions and matrix
  products), so no loss scaling is needed, unlike fp16. The same on CUDA (tensor cores).
* **channels_last** -- oneDNN's convolutions (forward and backward) are NHWC; NCHW costs a reorder
  around each of them. Pays on CPU and GPU.
* **the three 1x1 convolutions on an Inception module's input merged** -- a small gain; kept since
  it is exact (the merged BatchNorm computes the same per-channel statistics) and leaves the
  state dict unchanged: the merged weights are concatenated from the module's own parameters
  at each step, so gradients, checkpoints and torchvision compatibility are untouched.
* **torch.compile** -- did not pay on this CPU: minutes of compilation on two cores for a
  training step no faster than eager bf16. Off by default; on CUDA it is worth trying.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..model import GoogLeNet, GoogLeNetOutputs, InceptionModule


class MergedInception(InceptionModule):
    """An :class:`InceptionModule` whose three input 1x1 convolutions run as one, for training.

    It *shares* the original module's blocks (same parameter and buffer objects, same names, so
    the same state dict); only ``forward`` differs. ``conv1x1``, ``reduce3x3`` and ``reduce5x5``
    have their weights (and BatchNorm parameters and running statistics) concatenated on the fly:
    the concatenation is a few hundred kilobytes, the activations it saves re-reading are many
    megabytes. In eval mode, and for a BatchNorm whose ``momentum`` is ``None``, it is the same
    computation too.
    """

    def __init__(self, module: InceptionModule) -> None:  # noqa: D107 - shares, does not build
        nn.Module.__init__(self)
        self.in_channels = module.in_channels
        self.out_channels = module.out_channels
        for name, child in module.named_children():
            self.add_module(name, child)
        self.heads = ("conv1x1", "reduce3x3", "reduce5x5")

    def forward(self, x: Tensor) -> Tensor:
        blocks = [getattr(self, n) for n in self.heads]
        splits = [b.conv.out_channels for b in blocks]
        weight = torch.cat([b.conv.weight for b in blocks])
        bns = [b.bn for b in blocks]
        if bns[0] is None:
            bias = torch.cat([b.conv.bias for b in blocks])
            y = F.conv2d(x, weight, bias)
        else:
            y = F.conv2d(x, weight)
            y = _merged_batchnorm(y, bns, self.training)
        b1, r3, r5 = F.relu(y).split(splits, 1)
        b2 = self.conv3x3(r3)
        b3 = self.conv5x5(r5)
        b4 = self.pool_proj(self.pool(x))
        return torch.cat([b1, b2, b3, b4], 1)


def _merged_batchnorm(y: Tensor, bns: list[nn.BatchNorm2d], training: bool) -> Tensor:
    """BatchNorm over stacked channels, with the running statistics written back to each BN.

    BatchNorm is per channel, so one call on the stacked channels equals three calls on the
    parts; F.batch_norm updates the running statistics of the tensors it is given, which here
    are concatenated copies, so the updated values are copied back into each layer's buffers.
    """
    bn0 = bns[0]
    update = training and bn0.track_running_stats
    mean = torch.cat([b.running_mean for b in bns])  # type: ignore[misc]
    var = torch.cat([b.running_var for b in bns])  # type: ignore[misc]
    out = F.batch_norm(
        y,
        mean,
        var,
        torch.cat([b.weight for b in bns]),
        torch.cat([b.bias for b in bns]),
        training=training,
        momentum=cast(float, bn0.momentum),  # never None here: see _mergeable
        eps=bn0.eps,
    )
    if update:
        with torch.no_grad():
            start = 0
            for b in bns:
                n = b.num_features
                b.running_mean.copy_(mean[start : start + n])  # type: ignore[union-attr]
                b.running_var.copy_(var[start : start + n])  # type: ignore[union-attr]
                b.num_batches_tracked.add_(1)  # type: ignore[union-attr]
                start += n
    return out


def merge_inception_1x1s(model: GoogLeNet) -> GoogLeNet:
    """Make every Inception module of ``model`` a :class:`MergedInception` (in place; returned).

    The state dict keeps its keys and tensors; undo with :func:`unmerge_inception_1x1s`.
    """
    for name, child in list(model.named_children()):
        if type(child) is InceptionModule and _mergeable(child):
            setattr(model, name, MergedInception(child))
    return model


def unmerge_inception_1x1s(model: GoogLeNet) -> GoogLeNet:
    """Undo :func:`merge_inception_1x1s` (in place; returned)."""
    for name, child in list(model.named_children()):
        if isinstance(child, MergedInception):
            plain = InceptionModule.__new__(InceptionModule)
            nn.Module.__init__(plain)
            plain.in_channels, plain.out_channels = child.in_channels, child.out_channels
            for sub, block in child.named_children():
                plain.add_module(sub, block)
            setattr(model, name, plain)
    return model


def _mergeable(module: InceptionModule) -> bool:
    bns = [getattr(module, n).bn for n in ("conv1x1", "reduce3x3", "reduce5x5")]
    if all(b is None for b in bns):
        return True
    if any(b is None for b in bns):
        return False
    # A cumulative moving average (momentum None) counts batches per layer: keep it separate.
    return all(b.momentum is not None and b.momentum == bns[0].momentum for b in bns) and all(
        b.eps == bns[0].eps and b.track_running_stats for b in bns
    )


def prepare_for_training(
    model: GoogLeNet,
    *,
    channels_last: bool = True,
    merge_1x1: bool = True,
    compile: bool = False,
) -> nn.Module:
    """Make ``model`` train faster, in place, and return what the loop should call.

    ``channels_last`` converts the parameters (feed it channels_last batches too:
    :func:`to_channels_last`); ``merge_1x1`` runs each Inception module's input 1x1 convolutions
    as one (same state dict); ``compile`` returns ``torch.compile(model)`` (the optimizer and
    checkpoints keep using ``model``). Pair it with :func:`autocast` around forward and loss.
    """
    if not isinstance(model, GoogLeNet):
        raise ConfigError(f"expected a GoogLeNet, got {type(model).__name__}")
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if merge_1x1:
        merge_inception_1x1s(model)
    if compile:
        return torch.compile(model)  # type: ignore[return-value]
    return model


# Where the gradient reaching the network is measured: the stem, the first module, and the
# modules before, at and after the auxiliary heads (4a feeds aux1, 4e comes after aux2).
GRAD_STAGES = ("conv1", "inception3a", "inception4a", "inception4e", "inception5b")


@torch.no_grad()
def stage_grad_norms(model: nn.Module, stages: tuple[str, ...] = GRAD_STAGES) -> dict[str, float]:
    """The L2 norm of the gradient of each stage's parameters (all of them together), read from
    ``.grad`` after a backward pass: how much of the loss's signal reached that depth. Stages
    the model does not have (a reference network) are left out."""
    norms = {}
    for name in stages:
        module = getattr(model, name, None)
        if not isinstance(module, nn.Module):
            continue
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        if grads:
            norms[name] = float(torch.linalg.vector_norm(torch.stack(
                [torch.linalg.vector_norm(g.float()) for g in grads])))  # fmt: skip
    return norms


def training_memory(model: nn.Module, x: Tensor, amp: torch.dtype | None = torch.bfloat16) -> dict:
    """What one training step of ``model`` on the batch ``x`` holds at its peak, in bytes,
    counted rather than sampled (a process's peak RSS mixes in the allocator's caching and every
    earlier step): ``weights`` (fp32 weights, their gradients and SGD's momentum: 3 x the
    parameters) and ``activations`` (every tensor the forward pass saves for backward, each
    storage once, under the step's autocast). The model is left in training mode."""
    own = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in own:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with torch.autocast(x.device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
            model(x, return_aux=True)
    weights = 3 * sum(p.numel() * p.element_size() for p in model.parameters())
    return {"weights": weights, "activations": sum(saved.values())}


def to_channels_last(x: Tensor) -> Tensor:
    """A 4-D batch in channels_last memory format (a no-op if it already is)."""
    return x.contiguous(memory_format=torch.channels_last)


def paper_loss(
    out: GoogLeNetOutputs, target: Tensor, criterion: nn.Module, aux_weight: float = 0.3
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """The paper's loss, main + ``aux_weight`` x (aux1 + aux2), and its three parts."""
    main = criterion(out.logits, target)
    if out.aux1 is None or out.aux2 is None:
        return main, main, None, None
    aux1, aux2 = criterion(out.aux1, target), criterion(out.aux2, target)
    return main + aux_weight * (aux1 + aux2), main, aux1, aux2


class TrainStep:
    """One optimizer step: the batch in the model's memory format, forward and loss inside one
    autocast, backward (through ``scaler`` when given: fp16 needs it), the optimizer's step.

    ``model`` is what :func:`prepare_for_training` returned (possibly DDP-wrapped);
    ``channels_last`` must match how it was prepared. The learning rate, the Polyak average and
    the bookkeeping are the caller's: this is the part whose speed is measured.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        amp: torch.dtype | None = None,
        channels_last: bool = True,
        criterion: nn.Module | None = None,
        aux_weight: float = 0.3,
        scaler: torch.amp.GradScaler | None = None,
    ) -> None:
        self.model, self.optimizer, self.amp = model, optimizer, amp
        self.channels_last = channels_last
        self.criterion = criterion if criterion is not None else nn.CrossEntropyLoss()
        self.aux_weight = aux_weight
        self.scaler = scaler

    def __call__(self, x: Tensor, y: Tensor, weight: float = 1.0) -> tuple[Tensor, Tensor]:
        """Train on ``(x, y)``; ``weight`` scales the loss (0: take part without learning).

        Returns the main logits and the losses (total, main, aux1, aux2; 0 for absent heads),
        detached and left on the device (reading them would synchronize with a GPU).
        """
        if self.channels_last:
            x = to_channels_last(x)
        dtype = self.amp or torch.bfloat16
        with torch.autocast(x.device.type, dtype=dtype, enabled=self.amp is not None):
            out = self.model(x, return_aux=True)
            loss, main, aux1, aux2 = paper_loss(out, y, self.criterion, self.aux_weight)
        self.optimizer.zero_grad(set_to_none=True)
        scaled = loss * weight if weight != 1.0 else loss
        if self.scaler is not None:
            self.scaler.scale(scaled).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            scaled.backward()
            self.optimizer.step()
        zero = loss.new_zeros(())
        parts = [loss, main, aux1 if aux1 is not None else zero, aux2 if aux2 is not None else zero]
        return out.logits.detach(), torch.stack([p.float() for p in parts]).detach()
