"""The paper's recipe: its loss, learning-rate schedules, the model to train, SGD's parameter
groups (Caffe's per-parameter rates and decays) and the Polyak average.

The recipe (section 6): SGD with momentum 0.9, weight decay 2e-4 on weights only, biases at
``--bias-lr-mult`` x the rate (Caffe's ``lr_mult: 2 decay_mult: 0`` on every bias; 1 for the
torchvision preset), loss = main + 0.3 x (aux1 + aux2), the learning rate times 0.96 every 8
epochs (``paper``; ``paper-scaled`` fits the 31 decays into the run's length, see
:func:`lr_at`) or Caffe's ``poly``, Polyak
averaging of the weights, the augmentation of :class:`~googlenet.data.TrainTransform`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

from ..errors import DataError
from ..model import GoogLeNet, GoogLeNetConfig
from ..networks import build, create
from ..runtime.training import paper_loss
from ..weights import load
from .config import PAPER_EPOCHS, PAPER_GAMMA, PAPER_STEP_EPOCHS, TrainConfig, tupled

log = logging.getLogger("googlenet.train")

googlenet_loss = paper_loss  # the loss lives with the training step it is part of


def lr_at(step: int, steps_per_epoch: int, cfg: TrainConfig) -> float:
    """The learning rate at optimizer step ``step``: a pure function, so resuming needs no state.

    ``poly``: Caffe's ``lr x (1 - step / steps) ** power`` over the whole run (the BVLC weights
    were trained with power 0.5, quick_solver.prototxt). ``paper``: the paper's rule as written,
    ``lr x 0.96 ** floor(epoch / 8)``. ``paper-scaled``: the same with a step of ``8 x epochs /
    250`` epochs, the BVLC solver's 31 decays of 4% squeezed into the run, ending at 0.28 x ``lr``
    whatever its length. ``--lr-step-size`` and ``--lr-gamma`` replace either's. ``step``:
    torchvision's (x0.1 every 30 epochs). ``cosine``: half a cosine from ``lr`` to 0. Epochs are
    fractional (``step / steps_per_epoch``), so short runs decay smoothly. Warmup multiplies by a
    linear ramp over ``--warmup-epochs``.
    """
    epoch = step / steps_per_epoch
    if cfg.replan_step is not None and cfg.replan_lr is not None and step >= cfg.replan_step:
        return _replanned_lr(step, steps_per_epoch, cfg)
    if cfg.schedule == "poly":
        factor = max(0.0, 1.0 - step / (cfg.epochs * steps_per_epoch)) ** cfg.poly_power
    elif cfg.schedule == "cosine":
        factor = 0.5 * (1 + math.cos(math.pi * min(epoch / cfg.epochs, 1.0)))
    else:
        size = cfg.lr_step_size or default_step_size(cfg)
        paper = cfg.schedule.startswith("paper")
        gamma = cfg.lr_gamma if cfg.lr_gamma is not None else (PAPER_GAMMA if paper else 0.1)
        factor = gamma ** math.floor(epoch / size + 1e-9)
    if epoch < cfg.warmup_epochs:
        factor *= (step + 1) / (cfg.warmup_epochs * steps_per_epoch)
    return cfg.lr * factor


def default_step_size(cfg: TrainConfig) -> float:
    """Epochs between decays of a step schedule without ``--lr-step-size``."""
    if cfg.schedule == "paper":
        return PAPER_STEP_EPOCHS
    if cfg.schedule == "paper-scaled":
        return PAPER_STEP_EPOCHS * cfg.epochs / PAPER_EPOCHS
    return 30.0


def _replanned_lr(step: int, steps_per_epoch: int, cfg: TrainConfig) -> float:
    """A cosine or poly schedule re-planned at ``replan_step`` (the run's length changed): from
    the rate it had there down to 0 over the steps that remain."""
    start, total = cfg.replan_step or 0, cfg.epochs * steps_per_epoch
    progress = min(1.0, (step - start) / max(total - start, 1))
    if cfg.schedule == "poly":
        factor = (1.0 - progress) ** cfg.poly_power
    else:
        factor = 0.5 * (1 + math.cos(math.pi * progress))
    return (cfg.replan_lr or 0.0) * factor


def replan(cfg: TrainConfig, old: TrainConfig, step: int, steps_per_epoch: int) -> TrainConfig:
    """``cfg``, a resumed run whose length changed from ``old.epochs``, with a schedule that goes
    on from the rate the run had at ``step``: the step schedules keep the pace of their decays,
    cosine and poly decay from the last step's rate to 0 over the new remaining length."""
    if cfg.schedule in ("paper", "paper-scaled", "step"):
        return dataclasses.replace(cfg, lr_step_size=old.lr_step_size or default_step_size(old))
    last = lr_at(max(step - 1, 0), steps_per_epoch, old)  # the rate of the last step taken
    return dataclasses.replace(cfg, replan_step=step, replan_lr=last)


def build_model(cfg: TrainConfig, classes: list[str], ckpt: dict | None) -> GoogLeNet:
    """A fresh model, one fine-tuned from ``--weights``, or the one a checkpoint holds.

    Fine-tuning answer for the auxiliary heads: they are kept and trained with the main head
    (weight ``--aux-weight``), their last layers re-initialized with ``fc`` when the classes
    change; ``--aux-weight 0`` and ``--freeze-trunk`` drop them (with a frozen trunk they could
    only train themselves, and they are never used at inference).
    """
    overrides: dict[str, Any] = {}
    for name in ("input_size", "mean", "std", "dropout", "aux_dropout"):
        if getattr(cfg, name) is not None:
            overrides[name] = getattr(cfg, name)
    for name in ("arch", "inception", "head"):  # the variants, only where not the paper's
        if getattr(cfg, name) != getattr(TrainConfig, name):
            overrides[name] = getattr(cfg, name)
    aux = cfg.aux_weight > 0 and not cfg.freeze_trunk
    if ckpt is not None:
        model = build(GoogLeNetConfig.from_dict(tupled(ckpt["config"])))
        model.load_state_dict(ckpt["model"])
        if list(model.config.class_names or []) != classes:
            raise DataError(
                f"the checkpoint was trained on classes {short(model.config.class_names)}, "
                f"the data has {short(classes)}; resume with the same data"
            )
        return model
    if cfg.weights is None:
        return create(
            cfg.preset, num_classes=len(classes), aux_logits=aux, class_names=classes, **overrides
        )
    model = load(cfg.weights, num_classes=len(classes), aux_logits=aux, **overrides)
    if model.config.class_names is not None and list(model.config.class_names) != classes:
        if len(model.config.class_names) == len(classes):
            log.warning(
                "%s: classes differ from the data's: classifier re-initialized", cfg.weights
            )
            model.reset_classifier(len(classes), classes)
    model.config = dataclasses.replace(model.config, class_names=tuple(classes))
    if cfg.freeze_trunk:
        trainable = {id(p) for layer in model.classifiers() for p in layer.parameters()}
        for p in model.parameters():
            p.requires_grad_(id(p) in trainable)
    return model


def parameter_groups(model: nn.Module, weight_decay: float, bias_lr_mult: float) -> list[dict]:
    """SGD's parameter groups, Caffe's way: weights decay at the base rate; convolution and
    fully connected biases learn at ``bias_lr_mult`` x the rate without decay (BVLC's
    ``param { lr_mult: 2 decay_mult: 0 }``); normalization parameters at the base rate without
    decay. ``lr_mult`` is read by :func:`set_lr` at every step."""
    biases = {
        id(m.bias)
        for m in model.modules()
        if isinstance(m, nn.Conv2d | nn.Linear) and m.bias is not None
    }
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {
            "params": [p for p in params if p.dim() > 1],
            "weight_decay": weight_decay,
            "lr_mult": 1.0,
        },
        {
            "params": [p for p in params if id(p) in biases],
            "weight_decay": 0.0,
            "lr_mult": bias_lr_mult,
        },
        {
            "params": [p for p in params if p.dim() <= 1 and id(p) not in biases],
            "weight_decay": 0.0,
            "lr_mult": 1.0,
        },
    ]
    return [g for g in groups if g["params"]]


def build_optimizer(model: GoogLeNet, cfg: TrainConfig) -> torch.optim.SGD:
    """SGD with momentum over :func:`parameter_groups`, with the model's preset's bias rate."""
    groups = parameter_groups(model, cfg.weight_decay, cfg.bias_lr(model.config.preset))
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=0.0)


def set_lr(optimizer: torch.optim.Optimizer, lr: float, momentum_style: str = "pytorch") -> None:
    """The scheduled rate, times each group's ``lr_mult``.

    ``momentum_style="caffe"`` makes ``torch.optim.SGD`` take Caffe's step (config.py,
    MOMENTUM_STYLES): SGD's buffer is Caffe's ``v`` divided by the rate of the step that wrote
    it, so when the rate changes from ``old`` to ``new`` the buffers are scaled by ``old / new``
    and SGD's next step is exactly Caffe's (v' = m v + new g; w -= v'). torch's SGD (its fused
    foreach kernels, its state dict) is kept rather than a hand-written optimizer.
    """
    for group in optimizer.param_groups:
        old, new = group["lr"], lr * group.get("lr_mult", 1.0)
        if momentum_style == "caffe" and new > 0 and old != new:
            buffers = [
                optimizer.state[p]["momentum_buffer"]
                for p in group["params"]
                if optimizer.state.get(p, {}).get("momentum_buffer") is not None
            ]
            if buffers:
                torch._foreach_mul_(buffers, old / new)
        group["lr"] = new


def average_of(model: nn.Module, cfg: TrainConfig) -> AveragedModel | None:
    """What ``--polyak`` keeps (None without it): ``--average ema`` (:func:`polyak_average`) or
    ``--average polyak`` (:func:`arithmetic_average`)."""
    if not cfg.polyak:
        return None
    if cfg.average == "polyak":
        return arithmetic_average(model)
    return polyak_average(model, cfg.polyak_decay)


def arithmetic_average(model: nn.Module) -> AveragedModel:
    """Polyak and Juditsky's average: the arithmetic mean of the iterates it is given (and of the
    BatchNorm statistics), each with the same weight, ``a_n = a + (w - a) / n``
    (``AveragedModel``'s default, as SWA uses it)."""
    return AveragedModel(model, use_buffers=True)


def polyak_average(model: nn.Module, decay: float) -> AveragedModel:
    """An exponential moving average of the weights (and BatchNorm statistics), Polyak-style.

    The decay ramps up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates (timm's EMA
    warmup), so that short runs average their late weights rather than their initialization.
    """

    @torch.no_grad()
    def ema(
        averaged: list[Tensor] | tuple[Tensor, ...],
        current: list[Tensor] | tuple[Tensor, ...],
        n: Tensor | int,
    ) -> None:
        # Called once per (device, dtype) group; integer buffers (BatchNorm's batch counter)
        # are copied, not averaged.
        if not averaged[0].is_floating_point():
            torch._foreach_copy_(averaged, current)
            return
        d = min(decay, (1 + int(n)) / (10 + int(n)))
        torch._foreach_lerp_(averaged, current, 1 - d)

    return AveragedModel(model, multi_avg_fn=ema, use_buffers=True)


def short(names) -> str:
    names = list(names or [])
    return "[" + ", ".join(names[:4]) + (", ..." if len(names) > 4 else "") + f"] ({len(names)})"
