"""Training on an image folder with the paper's recipe, on one CPU or many GPUs (torchrun).

The loop is flat (nanoGPT's and torchvision's reference script are the models): :func:`train`
reads the data and builds or restores everything, :func:`train_one_epoch` and
:func:`validate` do one pass each, checkpoints are plain dicts.

The recipe (SPEC section 2): SGD with momentum 0.9, weight decay 2e-4 (not on biases: Caffe's
``decay_mult: 0``), loss = main + 0.3 x (aux1 + aux2), the learning rate times 0.96 every 8 epochs
(scaled to the run's length by default, see :func:`lr_at`), Polyak averaging of the weights, the
augmentation of :class:`~googlenet.data.TrainTransform`.

Determinism: the model is built from ``seed``; each image's augmentation is seeded by
(seed, epoch, image) (:class:`~googlenet.data.TrainSampler`); dropout draws from the torch RNG
seeded with ``seed + rank``, whose state every checkpoint keeps per rank. So a resumed run
continues the unbroken one exactly (bitwise on CPU), and N processes with batch B/N match one
with batch B (up to float summation order).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import pickle
import random
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

from . import data, distributed, faults
from .distributed import Dist
from .errors import ConfigError, DataError, GoogLeNetError, Interrupted
from .evaluate import AMP_DTYPES, evaluate
from .fileio import atomic_write_text, remove_stale_temporaries, torch_save
from .metrics import MetricsLog, plot_curves
from .model import GoogLeNet, GoogLeNetConfig, GoogLeNetOutputs, create_model
from .weights import load, save_weights

log = logging.getLogger(__name__)

SCHEDULES = ("paper", "cosine", "step")
# The BVLC solver ran 10M iterations of batch 32 (250 epochs) with the rate x0.96 every 320k
# iterations (8 epochs): 31 decays. Scaled runs keep that shape over their own length.
PAPER_EPOCHS, PAPER_STEP_EPOCHS, PAPER_GAMMA = 250, 8.0, 0.96
RUN_FILES = ("last.pt", "config.json", "metrics.csv")


class TrainingDiverged(GoogLeNetError):
    """The loss became NaN or infinite."""


@dataclass
class TrainConfig:
    """Everything ``googlenet train`` takes; the flags are torchvision's reference script's."""

    data: str
    val: str | None = None
    output_dir: str | None = None  # default runs/<data folder name>-<preset>
    preset: str = "paper"
    weights: str | None = None  # fine-tune from these (ours, or torchvision's .pth)
    input_size: int | None = None  # default 224, or the input size of --weights
    epochs: int = 90
    batch_size: int = 32  # per process, as in torchvision's reference script
    workers: int = min(8, os.cpu_count() or 1)
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 2e-4
    schedule: str = "paper"
    lr_step_size: float | None = None  # epochs; paper: 8 x epochs / 250, step: 30
    lr_gamma: float | None = None  # paper: 0.96, step: 0.1
    warmup_epochs: float = 0.0
    polyak: bool = False
    polyak_decay: float = 0.999
    label_smoothing: float = 0.0
    aux_weight: float = 0.3  # 0 drops the auxiliary heads
    dropout: float | None = None  # main head; default: the preset's (0.4 for the paper)
    aux_dropout: float | None = None
    freeze_trunk: bool = False
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: float = 0.5
    jitter: float = 0.4
    lighting: float = 0.1
    mean: tuple[float, float, float] | None = None  # default ImageNet's, or the weights'
    std: tuple[float, float, float] | None = None
    amp: str | None = None  # bf16 | fp16
    channels_last: bool = False
    compile: str | None = None  # a torch.compile backend: inductor, aot_eager, ...
    device: str | None = None  # default cuda if available
    seed: int = 0
    resume: str | None = None  # a checkpoint, or "auto": <output_dir>/last.pt if it exists
    save_every: int = 0  # also write last.pt every N steps (0: at the end of each epoch only)
    strict: bool = False  # stop at the first unreadable image instead of skipping it
    print_freq: int = 10

    def __post_init__(self) -> None:
        problems = []
        if self.schedule not in SCHEDULES:
            problems.append(f"--schedule must be one of {', '.join(SCHEDULES)}")
        if self.amp is not None and self.amp not in AMP_DTYPES:
            problems.append("--amp must be bf16 or fp16")
        if not (0 < self.scale[0] <= self.scale[1] <= 1):
            problems.append(f"--scale needs 0 < MIN <= MAX <= 1, got {self.scale}")
        if not (0 < self.ratio[0] <= self.ratio[1]):
            problems.append(f"--ratio needs 0 < MIN <= MAX, got {self.ratio}")
        if not 0 <= self.polyak_decay < 1:
            problems.append(f"--polyak-decay must be in [0, 1), got {self.polyak_decay}")
        if not 0 <= self.label_smoothing < 1:
            problems.append(f"--label-smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.freeze_trunk and self.weights is None:
            problems.append("--freeze-trunk needs --weights (a frozen random trunk learns nothing)")
        if self.weights is not None and self.resume not in (None, "auto"):
            problems.append(
                "--weights starts a run and --resume PATH continues one (its weights are in the "
                "checkpoint): pass one of them"
            )
        if not 0 <= self.momentum < 1:
            problems.append(f"--momentum must be in [0, 1), got {self.momentum}")
        if not 0 <= self.hflip <= 1:
            problems.append(f"--hflip is a probability, in [0, 1], got {self.hflip}")
        if self.lr_gamma is not None and not 0 < self.lr_gamma <= 1:
            problems.append(f"--lr-gamma is a decay factor, in (0, 1], got {self.lr_gamma}")
        for name in ("mean", "std"):
            values = getattr(self, name)
            if values is not None and not all(math.isfinite(v) for v in values):
                problems.append(f"--{name} must be finite numbers, got {values}")
        if not 0 <= self.seed < 2**63:
            problems.append(f"--seed must be in [0, 2**63), got {self.seed}")
        if self.save_every < 0:
            problems.append(f"--save-every must be 0 or more, got {self.save_every}")
        if problems:
            raise ConfigError("; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------------
# Recipe pieces: loss, schedule, model, optimizer
# ---------------------------------------------------------------------------------------------


def googlenet_loss(
    out: GoogLeNetOutputs, target: Tensor, criterion: nn.Module, aux_weight: float
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """The paper's loss, main + ``aux_weight`` x (aux1 + aux2), and its three parts."""
    main = criterion(out.logits, target)
    if out.aux1 is None or out.aux2 is None:
        return main, main, None, None
    aux1, aux2 = criterion(out.aux1, target), criterion(out.aux2, target)
    return main + aux_weight * (aux1 + aux2), main, aux1, aux2


def lr_at(step: int, steps_per_epoch: int, cfg: TrainConfig) -> float:
    """The learning rate at optimizer step ``step``: a pure function, so resuming needs no state.

    ``paper``: ``lr x 0.96 ** floor(epoch / S)``; ``S`` defaults to ``8 x epochs / 250``, the
    BVLC solver's 31 decays of 4% (8 epochs each over 250) squeezed into the run, ending at 0.28 x
    ``lr`` whatever its length; ``--lr-step-size 8`` gives the paper's literal rule. ``step``:
    torchvision's (x0.1 every 30 epochs). ``cosine``: half a cosine from ``lr`` to 0. Epochs are
    fractional (``step / steps_per_epoch``), so short runs decay smoothly. Warmup multiplies by a
    linear ramp over ``--warmup-epochs``.
    """
    epoch = step / steps_per_epoch
    if cfg.schedule == "cosine":
        factor = 0.5 * (1 + math.cos(math.pi * min(epoch / cfg.epochs, 1.0)))
    else:
        paper = cfg.schedule == "paper"
        default_size = PAPER_STEP_EPOCHS * cfg.epochs / PAPER_EPOCHS if paper else 30.0
        size = cfg.lr_step_size or default_size
        gamma = cfg.lr_gamma if cfg.lr_gamma is not None else (PAPER_GAMMA if paper else 0.1)
        factor = gamma ** math.floor(epoch / size + 1e-9)
    if epoch < cfg.warmup_epochs:
        factor *= (step + 1) / (cfg.warmup_epochs * steps_per_epoch)
    return cfg.lr * factor


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
    aux = cfg.aux_weight > 0 and not cfg.freeze_trunk
    if ckpt is not None:
        model = GoogLeNet(GoogLeNetConfig.from_dict(_tupled(ckpt["config"])))
        model.load_state_dict(ckpt["model"])
        if list(model.config.class_names or []) != classes:
            raise DataError(
                f"the checkpoint was trained on classes {_short(model.config.class_names)}, "
                f"the data has {_short(classes)}; resume with the same data"
            )
        return model
    if cfg.weights is None:
        return create_model(
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


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.SGD:
    """SGD with momentum; weight decay on weights only, not biases or norm parameters (Caffe's
    GoogLeNet sets ``decay_mult: 0`` on every bias)."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() > 1]
    no_decay = [p for p in params if p.dim() <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay}]
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=0.0)


def polyak_average(model: nn.Module, decay: float) -> AveragedModel:
    """An exponential moving average of the weights (and BatchNorm statistics), Polyak-style.

    The decay ramps up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates (timm's EMA
    warmup), so that short runs average their late weights rather than their initialization.
    """

    @torch.no_grad()
    def ema(averaged: list[Tensor], current: list[Tensor], n: Tensor | int) -> None:
        # Called once per (device, dtype) group; integer buffers (BatchNorm's batch counter)
        # are copied, not averaged.
        if not averaged[0].is_floating_point():
            torch._foreach_copy_(averaged, current)
            return
        d = min(decay, (1 + int(n)) / (10 + int(n)))
        torch._foreach_lerp_(averaged, current, 1 - d)

    return AveragedModel(model, multi_avg_fn=ema, use_buffers=True)


# ---------------------------------------------------------------------------------------------
# One epoch
# ---------------------------------------------------------------------------------------------


@dataclass
class Loop:
    """What the epoch functions share: the model as called, its parts, the run's settings."""

    model: nn.Module  # as called: compiled and/or DDP-wrapped
    raw: GoogLeNet  # the module itself: what is saved and averaged
    polyak: AveragedModel | None
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    criterion: nn.Module
    cfg: TrainConfig
    dist: Dist
    steps_per_epoch: int
    step: int = 0
    stop: StopSignals | None = None  # SIGINT/SIGTERM seen, while train() runs
    saved: str = ""  # the last checkpoint written or resumed from, for messages
    probe: Tensor | None = None  # the last batch trained on: checked again before a checkpoint

    def autocast(self):
        dtype = AMP_DTYPES.get(self.cfg.amp or "", torch.bfloat16)
        return torch.autocast(self.dist.device.type, dtype=dtype, enabled=self.cfg.amp is not None)

    def to_device(self, batch: data.Batch) -> tuple[Tensor, Tensor]:
        x = batch.images.to(self.dist.device, non_blocking=True)
        if self.cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, batch.labels.to(self.dist.device, non_blocking=True)


def train_step(loop: Loop, x: Tensor, y: Tensor, weight: float = 1.0) -> tuple[Tensor, Tensor]:
    """One optimizer step: the scheduled learning rate, forward and loss in one autocast,
    backward through the grad scaler (a pass-through unless fp16), SGD, the Polyak update.

    ``weight`` scales the loss; 0 is a rank's share of a torchrun step when it has no readable
    image (see :func:`train_one_epoch`).

    Returns the main logits and the losses (total, main, aux1, aux2; 0 for absent heads),
    detached and left on the device: reading them would synchronize with a GPU every step.
    """
    lr = lr_at(loop.step, loop.steps_per_epoch, loop.cfg)
    for group in loop.optimizer.param_groups:
        group["lr"] = lr
    with loop.autocast():
        out = loop.model(x, return_aux=True)
        loss, main, aux1, aux2 = googlenet_loss(out, y, loop.criterion, loop.cfg.aux_weight)
    loop.optimizer.zero_grad(set_to_none=True)
    loop.scaler.scale(loss * weight if weight != 1.0 else loss).backward()
    loop.scaler.step(loop.optimizer)
    loop.scaler.update()
    if loop.polyak is not None:
        loop.polyak.update_parameters(loop.raw)
    loop.step += 1
    zero = loss.new_zeros(())
    losses = [loss, main, aux1 if aux1 is not None else zero, aux2 if aux2 is not None else zero]
    return out.logits.detach(), torch.stack(losses).detach()


@dataclass
class EpochProgress:
    """Where an epoch stands: batches done and this rank's sums (loss, main, aux1, aux2,
    correct, images, skipped). A checkpoint taken mid-epoch keeps it, so that a resumed epoch
    goes on from the next batch and reports the same numbers as one never interrupted."""

    batch: int = 0
    sums: list[float] = dataclasses.field(default_factory=lambda: [0.0] * 7)


def train_one_epoch(
    loop: Loop,
    loader,
    epoch: int,
    skipped: set[str],
    start: EpochProgress | None = None,
    checkpoint=None,
) -> dict[str, float] | None:
    """One pass over the training set; returns the epoch's mean losses, top-1, images/s.

    ``start`` resumes an epoch part-way. ``checkpoint(progress)`` is called every
    ``--save-every`` steps and when SIGINT/SIGTERM asks the run to stop, after which this
    returns None.

    Under torchrun the ranks agree before each step, in one small all-reduce on the CPU, on
    three things that one rank may see alone: a stop signal (all stop at the same step), a batch
    of which no image could be read (that rank takes part in the step with a placeholder batch
    of loss weight 0, so DDP's gradient all-reduce still pairs up, instead of skipping the step
    and leaving the others waiting for it forever; the step's gradient is then the other ranks'
    mean times (world - 1) / world), and, with ``--strict``, an unreadable image (all stop,
    naming it).
    """
    cfg, device = loop.cfg, loop.dist.device
    _train_mode(loop.raw, cfg.freeze_trunk)
    start = start or EpochProgress()
    loader.sampler.set_epoch(epoch, start=start.batch * loader.batch_size)
    # loss, main, aux1, aux2, correct, images: summed on the device, read every print_freq steps
    sums = torch.tensor(start.sums[:6], dtype=torch.float64, device=device)
    n_skipped = int(start.sums[6])
    before = (start.batch, start.sums[5])  # what an earlier process did of this epoch
    bar = _progress(loader, epoch, cfg.epochs, loop.dist, initial=start.batch)
    began = time.perf_counter()
    for i, batch in enumerate(bar, start=start.batch):
        faults.inject("step", loop.step)
        if not (cfg.strict and loop.dist.enabled):  # there, _agree stops every rank
            n_skipped += _report_skipped(batch.skipped, skipped, cfg.strict)
        has_data = batch.labels.numel() > 0
        stop, any_data = _agree(loop, has_data, batch.skipped)
        if stop:
            if checkpoint is not None:
                checkpoint(EpochProgress(i, sums.tolist() + [n_skipped]))
            return None
        if not any_data:
            continue
        if has_data:
            x, y = loop.to_device(batch)
            logits, losses = train_step(loop, x, y)
            loop.probe = x
            sums[:4] += losses.double() * y.numel()
            sums[4] += (logits.argmax(1) == y).sum()
            sums[5] += y.numel()
        else:
            train_step(loop, *_placeholder_batch(loop), weight=0.0)
        last = i + 1 == len(loader)
        if (i + 1) % cfg.print_freq == 0 or last:
            _check_finite(sums[0], loop, epoch)
            lr = loop.optimizer.param_groups[0]["lr"]
            _show(bar, sums, i + 1, len(loader), lr, began, loop.dist, before)
        if cfg.save_every and loop.step % cfg.save_every == 0 and not last and checkpoint:
            checkpoint(EpochProgress(i + 1, sums.tolist() + [n_skipped]))
    totals = distributed.all_reduce_sum(sums.tolist() + [n_skipped, before[1]], device)
    seconds = time.perf_counter() - began
    n = max(totals[5], 1.0)
    return {
        "lr": lr_at(loop.step - 1, loop.steps_per_epoch, cfg) if loop.step else cfg.lr,
        "train_loss": totals[0] / n,
        "train_loss_main": totals[1] / n,
        "train_loss_aux1": totals[2] / n if loop.raw.aux1 is not None else float("nan"),
        "train_loss_aux2": totals[3] / n if loop.raw.aux2 is not None else float("nan"),
        "train_top1": 100.0 * totals[4] / n,
        "images_per_s": (totals[5] - totals[7]) / seconds,
        "epoch_time_s": seconds,
        "skipped": int(totals[6]),
    }


def _agree(loop: Loop, has_data: bool, bad: list[data.Skipped]) -> tuple[bool, bool]:
    """(stop now?, does any rank have images for this step?), the same answers on every rank."""
    signum = loop.stop.signum if loop.stop is not None else None
    d = loop.dist
    if not d.enabled:
        return signum is not None, has_data
    strict_bad = loop.cfg.strict and bool(bad)
    flags = distributed.all_reduce_max([signum or 0, float(has_data), float(strict_bad)], d.device)
    if flags[2]:
        _strict_stop(loop, bad[0].reason if strict_bad else None)
    if flags[0] and loop.stop is not None:
        loop.stop.signum = int(flags[0])  # another rank may have been the one signalled
    return flags[0] > 0, flags[1] > 0


def _strict_stop(loop: Loop, reason: str | None) -> None:
    """``--strict``: stop every rank, with the message of the first unreadable image any saw.
    Under torchrun a collective: every rank calls it once one of them has a bad image."""
    if loop.dist.enabled:
        reasons: list[Any] = [None] * loop.dist.world
        torch.distributed.all_gather_object(reasons, reason)
        reason = next((r for r in reasons if r is not None), None)
    if reason is not None:
        raise DataError(f"{reason} (--strict: stopping at the first unreadable image)")


def _placeholder_batch(loop: Loop) -> tuple[Tensor, Tensor]:
    """Two black images of class 0: what a rank without a readable image computes a step on."""
    size = loop.raw.config.input_size
    x = torch.zeros(2, 3, size, size, device=loop.dist.device)
    if loop.cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, torch.zeros(2, dtype=torch.long, device=loop.dist.device)


def validate(
    model: nn.Module, loader, loop: Loop, prefix: str, skipped: set[str] | None = None
) -> dict[str, float]:
    """Single-crop validation summed over the ranks: ``{prefix}_top1``, ``_top5``, ``_loss``.

    Unreadable validation images are reported (once each, in ``skipped``) like training ones,
    and stop the run under ``--strict``.
    """
    bad: list[data.Skipped] = []
    counts = evaluate(
        [model],
        loader,
        loop.dist.device,
        amp=loop.cfg.amp,
        channels_last=loop.cfg.channels_last,
        on_skipped=bad.append,
    )
    if loop.cfg.strict:
        failed = distributed.any_rank(bool(bad), loop.dist.device)
        if failed:
            _strict_stop(loop, bad[0].reason if bad else None)
    _report_skipped(bad, skipped if skipped is not None else set(), strict=False)
    counts = counts.all_reduce(loop.dist.device)
    return {
        f"{prefix}_loss": counts.loss,
        f"{prefix}_top1": counts.top1,
        f"{prefix}_top5": counts.top5,
    }


def _train_mode(model: GoogLeNet, freeze_trunk: bool) -> None:
    """Training mode; with a frozen trunk only the head's dropout trains (BatchNorm statistics of
    a frozen trunk stay those of its weights)."""
    model.train()
    if freeze_trunk:
        model.eval()
        model.dropout.train()


def _report_skipped(items: list[data.Skipped], seen: set[str], strict: bool) -> int:
    for item in items:
        if strict:
            raise DataError(f"{item.reason} (--strict: stopping at the first unreadable image)")
        if item.path not in seen:
            seen.add(item.path)
            log.warning("skipped %s", item.reason)
    return len(items)


def _check_finite(loss_sum: Tensor, loop: Loop, epoch: int, weights: bool = False) -> None:
    """Stop (every rank) if the loss is NaN or infinite; with ``weights``, also if the weights
    are, or if they make the last batch's logits so.

    Called before every checkpoint with ``weights=True``. The loss a step reports comes from the
    weights before its update, so the update that blows up goes unseen until the next step:
    weights of 1e10, finite but useless, would be saved as the "last good checkpoint". One
    forward pass of the last batch (eval mode, float32, no gradient, no random numbers drawn)
    sees them first.
    """
    bad = not math.isfinite(float(loss_sum))
    if weights and not bad:
        bad = not all(bool(torch.isfinite(p).all()) for p in loop.raw.parameters())
    if weights and not bad and loop.probe is not None:
        with torch.no_grad():
            loop.raw.eval()
            bad = not bool(torch.isfinite(loop.raw(loop.probe.float())).all())
            _train_mode(loop.raw, loop.cfg.freeze_trunk)
    if distributed.any_rank(bad, loop.dist.device):
        lr = lr_at(max(loop.step - 1, 0), loop.steps_per_epoch, loop.cfg)
        kept = (
            f"{loop.saved} is the last good checkpoint"
            if loop.saved
            else "no checkpoint had been written yet"
        )
        raise TrainingDiverged(
            f"the loss became NaN or infinite in epoch {epoch + 1} (step {loop.step}, lr "
            f"{lr:.3g}): training diverged and stopped without saving; {kept}. Lower the "
            f"learning rate (e.g. --lr {loop.cfg.lr / 10:.3g}) or warm it up (--warmup-epochs 1)"
            + (", then continue with --resume auto" if loop.saved else "")
        )


class StopSignals:
    """SIGINT (Ctrl-C) and SIGTERM (a scheduler's preemption) ask the run to stop after its current
    step, with a checkpoint; a second one stops at once (the default behaviour). Installed only
    in the main thread, for the duration of a ``with`` block; the previous handlers come back."""

    def __init__(self, announce: bool = True) -> None:
        self.signum: int | None = None
        self.finished = False  # the run has stopped and saved: later signals change nothing
        self.announce = announce
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: object) -> None:
        if self.finished:
            return
        if self.signum is not None:  # the second signal: give up at once
            self.__exit__()
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            os.kill(os.getpid(), signum)
            return
        self.signum = signum
        if self.announce:
            name = signal.Signals(signum).name
            os.write(
                2,
                f"googlenet: {name}: stopping after this step with a checkpoint "
                f"({name} again: stop at once)\n".encode(),
            )


def _progress(loader, epoch: int, epochs: int, d: Dist, initial: int = 0):
    """A tqdm bar (images/s via the postfix, ETA by tqdm) on a terminal, rank 0 only."""
    if d.is_main and sys.stderr.isatty():
        from tqdm import tqdm

        desc = f"epoch {epoch + 1}/{epochs}"
        return tqdm(loader, desc=desc, leave=False, dynamic_ncols=True, initial=initial)
    return loader


def _show(
    bar,
    sums: Tensor,
    done: int,
    total: int,
    lr: float,
    start: float,
    d: Dist,
    before: tuple[int, float] = (0, 0.0),
) -> None:
    """Progress after ``done`` of ``total`` batches; ``before``: the batches and images of this
    epoch that a process before a resume did (not part of this one's speed)."""
    if not d.is_main:
        return
    images = float(sums[5])
    loss = float(sums[0]) / max(images, 1.0)
    elapsed = max(time.perf_counter() - start, 1e-9)
    speed = (images - before[1]) * d.world / elapsed
    if hasattr(bar, "set_postfix_str"):
        bar.set_postfix_str(f"loss {loss:.4f} lr {lr:.3g} {speed:.1f} img/s")
        return
    eta = (total - done) * elapsed / max(done - before[0], 1)
    log.info("  [%d/%d] loss %.4f lr %.3g %.1f img/s eta %.0fs", done, total, loss, lr, speed, eta)


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------


def rng_state() -> dict[str, Any]:
    """This process's RNG states (torch, CUDA, numpy, Python), as plain tensors and values."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    random.setstate(_tupled_deep(state["python"]))


def save_checkpoint(
    path: Path,
    loop: Loop,
    epoch: int,
    best: float,
    rows: list,
    rng: list,
    batch: int = 0,
    epoch_sums: list | None = None,
) -> None:
    """Everything to continue exactly: weights, average, optimizer, scaler, counters, the RNG of
    every rank, the metrics so far, the arguments. Only tensors and plain values, so it loads
    with ``torch.load(weights_only=True)`` (and ``googlenet.load`` reads its weights).

    ``epoch`` counts the epochs done; a checkpoint taken part-way through the next one (by
    ``--save-every`` or a stop signal) also has ``batch``, the batches of it done, and
    ``epoch_sums``, each rank's running sums for its metrics row.
    """
    obj = {
        "config": loop.raw.config.to_dict(),
        "model": loop.raw.state_dict(),
        "polyak": loop.polyak.state_dict() if loop.polyak is not None else None,
        "optimizer": loop.optimizer.state_dict(),
        "scheduler": {"schedule": loop.cfg.schedule, "step": loop.step},
        "scaler": loop.scaler.state_dict(),
        "epoch": epoch,
        "batch": batch,
        "epoch_sums": epoch_sums,
        "step": loop.step,
        "best_top1": best,
        "metrics": rows,
        "rng": rng,
        "args": loop.cfg.to_dict(),
        "world_size": loop.dist.world,
    }
    torch_save(obj, path)


def read_checkpoint(path: Path, device: torch.device) -> dict[str, Any]:
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as err:
        raise GoogLeNetError(
            f"refusing to resume from {path}: it holds Python objects that only an unsafe "
            "unpickling could rebuild (torch.load weights_only=True refused it)"
        ) from err
    except Exception as err:  # any failure means: not a checkpoint we can use
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise GoogLeNetError(
            f"cannot resume from {path}: not a readable checkpoint ({reason[:200]}); "
            "resume from another one with --resume PATH (e.g. best.pt beside it)"
        ) from err
    keys = {"config", "model", "optimizer", "epoch", "rng"}
    if not isinstance(ckpt, dict) or not keys <= set(ckpt):
        raise GoogLeNetError(f"cannot resume from {path}: not a googlenet training checkpoint")
    return ckpt


def _gather(d: Dist, sums: list[float]) -> tuple[list[dict[str, Any]], list[list[float]]]:
    """Every rank's RNG state and epoch sums, on every rank (rank 0 writes them)."""
    if not d.enabled:
        return [rng_state()], [list(sums)]
    states: list[Any] = [None] * d.world
    torch.distributed.all_gather_object(states, (rng_state(), list(sums)))
    return [s[0] for s in states], [s[1] for s in states]


def _restore(loop: Loop, ckpt: dict[str, Any]) -> tuple[int, float, list, EpochProgress | None]:
    """Load a checkpoint's state into the loop; returns (first epoch, best top-1, metric rows,
    where to resume that epoch if the checkpoint was taken part-way through it)."""
    loop.optimizer.load_state_dict(ckpt["optimizer"])
    loop.scaler.load_state_dict(ckpt["scaler"])
    if loop.polyak is not None and ckpt.get("polyak") is not None:
        loop.polyak.load_state_dict(ckpt["polyak"])
    elif loop.polyak is not None:
        log.warning("the checkpoint has no Polyak average: starting one now")
    loop.step = int(ckpt["step"])
    epoch, batch = int(ckpt["epoch"]), int(ckpt.get("batch") or 0)
    same_world = len(ckpt["rng"]) == loop.dist.world
    if same_world:
        set_rng_state(ckpt["rng"][loop.dist.rank])
    else:
        log.warning(
            "checkpoint from %d process(es), resuming on %d: RNG states re-seeded",
            len(ckpt["rng"]),
            loop.dist.world,
        )
        torch.manual_seed(loop.cfg.seed + loop.dist.rank + epoch)
    args = ckpt.get("args") or {}
    changed = {
        k: (v, getattr(loop.cfg, k))
        for k, v in args.items()
        if k not in ("resume",) and _plain(getattr(loop.cfg, k, v)) != _plain(v)
    }
    if changed:
        log.warning(
            "resuming with changed arguments: %s",
            ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changed.items()),
        )
    progress = None
    if batch:
        if same_world and args.get("batch_size") == loop.cfg.batch_size:
            sums = ckpt["epoch_sums"][loop.dist.rank]
            progress = EpochProgress(batch, [float(v) for v in sums])
        else:  # the batches done were cut for another geometry: redo the epoch
            log.warning(
                "the checkpoint was taken in epoch %d with another batch size or number of "
                "processes: that epoch starts over",
                epoch + 1,
            )
            loop.step -= batch
    return epoch, float(ckpt["best_top1"]), list(ckpt["metrics"]), progress


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train as ``cfg`` says (under torchrun: this process's share); returns a summary dict."""
    d = distributed.setup(cfg.device)
    if not d.is_main:
        logging.getLogger("googlenet").setLevel(logging.WARNING)
    # Installed for the whole run, process group teardown included: torchrun sends SIGTERM to
    # the ranks still running when one has exited, and a rank that has saved and is on its way
    # out must not be killed before it has said so.
    with StopSignals(announce=d.is_main) as stop:
        return _train_here(cfg, d, stop)


def _train_here(cfg: TrainConfig, d: Dist, stop: StopSignals) -> dict[str, Any]:
    try:
        return _train(cfg, d, stop)
    except torch.OutOfMemoryError as err:
        raise GoogLeNetError(_oom_message(cfg, d)) from err
    except RuntimeError as err:
        if "can't allocate memory" in str(err) or "out of memory" in str(err):
            raise GoogLeNetError(_oom_message(cfg, d)) from err
        if d.enabled and _is_peer_failure(err):
            failed = GoogLeNetError(
                f"process {d.rank} of {d.world} stopped: another process of the job failed or "
                f"was killed ({_peer_reason(err)})"
            )
            failed.every_rank = False
            failed.exit_code = 1
            raise failed from err
        raise
    finally:
        distributed.cleanup()


def _train(cfg: TrainConfig, d: Dist, stop: StopSignals) -> dict[str, Any]:
    out, resume = _output_dir(cfg)
    distributed.barrier()  # every rank has looked at the output directory before rank 0 writes
    train_dir, val_dir = data.resolve_splits(cfg.data, cfg.val)
    classes = data.find_classes(train_dir)
    ckpt = read_checkpoint(resume, d.device) if resume else None
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    with _checkpoint_errors(resume):
        raw = build_model(cfg, classes, ckpt).to(d.device)
    mc = raw.config
    if mc.input_size < raw.min_input_size:  # before anything is written, not at the first step
        raise ConfigError(
            f"--input-size {mc.input_size} is too small for the {mc.preset} network: the "
            f"smallest size it takes is {raw.min_input_size}"
        )
    train_set, val_set, train_loader, val_loader = build_loaders(cfg, d, mc, train_dir, val_dir)
    loop = make_loop(cfg, raw, d, steps_per_epoch=len(train_loader))
    torch.manual_seed(cfg.seed + d.rank)  # dropout: different masks on different ranks
    start_epoch, best, rows, progress = 0, -1.0, [], None
    if ckpt is not None:
        with _checkpoint_errors(resume):
            start_epoch, best, rows, progress = _restore(loop, ckpt)
        at = f"batch {progress.batch} of {len(train_loader)} of " if progress else "the end of "
        loop.saved = f"{resume} ({at}epoch {start_epoch + bool(progress)}, step {loop.step})"
    if d.is_main:
        out.mkdir(parents=True, exist_ok=True)
        for tmp in remove_stale_temporaries(out):
            log.info("removed %s, left by a write that was killed", tmp.name)
        if loop.saved:
            log.info("resuming from %s", loop.saved)
        _write_config(out, cfg, mc, train_set, val_set, d)
        log.info(
            "training %s on %d images%s, %d epoch(s) on %s x %d, into %s",
            _describe(cfg, mc),
            len(train_set),
            f" + {len(val_set)} val" if val_set else "",
            cfg.epochs,
            d.device,
            d.world,
            out,
        )
    metrics = MetricsLog(out, rows) if d.is_main else None
    skipped: set[str] = set()
    last = out / "last.pt"

    def save_part(epoch: int, part: EpochProgress) -> None:
        """A checkpoint part-way through ``epoch`` (--save-every, or a stop signal)."""
        _check_finite(torch.tensor(part.sums[0]), loop, epoch, weights=True)
        rng, sums = _gather(d, part.sums)
        rows = metrics.rows if metrics else []
        _on_rank0(
            loop, lambda: save_checkpoint(last, loop, epoch, best, rows, rng, part.batch, sums)
        )
        n = len(train_loader)
        loop.saved = f"{last} (batch {part.batch} of {n} of epoch {epoch + 1}, step {loop.step})"

    loop.stop = stop
    if _agree(loop, True, [])[0] and start_epoch < cfg.epochs:  # a signal during the set-up
        raise _interrupted(loop, early=True)
    for epoch in range(start_epoch, cfg.epochs):
        stats = train_one_epoch(
            loop,
            train_loader,
            epoch,
            skipped,
            start=progress if epoch == start_epoch else None,
            checkpoint=lambda part, epoch=epoch: save_part(epoch, part),
        )
        if stats is None:
            raise _interrupted(loop)
        row = {"epoch": epoch + 1, "step": loop.step, **stats}
        if val_loader is not None:
            row |= validate(raw, val_loader, loop, "val", skipped)
            if loop.polyak is not None:
                row |= validate(loop.polyak.module, val_loader, loop, "polyak", skipped)
        _check_finite(torch.tensor(row["train_loss"]), loop, epoch, weights=True)
        rng, _ = _gather(d, [])

        def save_epoch(row=row, epoch=epoch, rng=rng) -> None:
            nonlocal best
            _log_epoch(row, cfg.epochs)
            metrics.append(row)
            best = _save_epoch(out, loop, epoch + 1, row, best, metrics.rows, rng)

        _on_rank0(loop, save_epoch)
        loop.saved = f"{last} (the end of epoch {epoch + 1}, step {loop.step})"
        if _agree(loop, True, [])[0] and epoch + 1 < cfg.epochs:
            raise _interrupted(loop)
    loop.stop = None  # from here on a signal is too late to stop anything: the run finishes
    distributed.barrier()
    if not d.is_main:
        return {}
    metrics.close()
    save_weights(raw, out / "final.safetensors", {"epoch": str(cfg.epochs)})
    if loop.polyak is not None:
        save_weights(_unwrap(loop.polyak), out / "polyak.safetensors", {"epoch": str(cfg.epochs)})
    plot_curves(metrics.rows, out)
    return {"output_dir": out, "best_top1": best, "epochs": cfg.epochs, "metrics": metrics.rows}


def _on_rank0(loop: Loop, write) -> None:
    """Run ``write`` (checkpoint files) on rank 0, then stop every rank if it failed: the others
    must not train on while nothing is saved, nor wait forever for a rank that has quit."""
    error: GoogLeNetError | None = None
    if loop.dist.is_main:
        try:
            write()
        except GoogLeNetError as err:
            error = err
    if distributed.any_rank(error is not None, loop.dist.device):
        kept = f"{loop.saved} is intact" if loop.saved else "no earlier checkpoint was written"
        raise GoogLeNetError(
            f"{error or 'rank 0 could not write a checkpoint'}; {kept}. Free some space or "
            "make the directory writable, then continue with --resume auto"
        ) from error


def _interrupted(loop: Loop, early: bool = False) -> Interrupted:
    """The error that ends a run stopped by a signal, its checkpoint written (``loop.saved``)."""
    stop = loop.stop
    signum = stop.signum if stop is not None and stop.signum else signal.SIGINT
    if stop is not None:
        stop.finished = True
    name = signal.Signals(signum).name
    if early:
        return Interrupted(f"stopped by {name} before training began: nothing new to save", signum)
    return Interrupted(
        f"stopped by {name}: saved {loop.saved}; continue with --resume auto", signum
    )


@contextlib.contextmanager
def _checkpoint_errors(path: Path | None):
    """A checkpoint that torch.load read but whose contents do not fit together (a damaged or
    hand-made file) is a one-line error, not a traceback from deep inside the optimizer."""
    try:
        yield
    except ConfigError as err:  # its model configuration
        if path is None:  # not resuming: the arguments are at fault
            raise
        raise GoogLeNetError(f"cannot resume from {path}: {err}") from err
    except GoogLeNetError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError, AttributeError) as err:
        raise GoogLeNetError(
            f"cannot resume from {path}: the checkpoint is damaged or not from this program "
            f"({type(err).__name__}: {_first_line(err)[:200]})"
        ) from err


def _is_peer_failure(err: RuntimeError) -> bool:
    """Whether a collective failed because another process of the job died (gloo, NCCL)."""
    text = str(err).lower()
    signs = ("connection closed by peer", "connection reset", "broken pipe", "timed out", "nccl")
    return isinstance(err, torch.distributed.DistError) or any(s in text for s in signs)


def _peer_reason(err: BaseException) -> str:
    """The gist of a gloo/NCCL error: "Read error [127.0.0.1]:23724: Connection reset by peer"
    without the source location in front or the advice after."""
    text = re.sub(r"^\[[^\]]*\]\s*", "", _first_line(err))
    return text.split(". ")[0][:160]


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def build_loaders(
    cfg: TrainConfig, d: Dist, mc: GoogLeNetConfig, train_dir: Path, val_dir: Path | None
):
    """The train and val image folders and their loaders, this rank's shard of each."""
    train_tf = data.TrainTransform(
        mc.input_size, mc.mean, mc.std, cfg.scale, cfg.ratio, cfg.hflip, cfg.jitter, cfg.lighting
    )
    train_set = data.ImageFolder(train_dir, train_tf)
    classes = train_set.classes
    val_set = (
        data.ImageFolder(val_dir, data.EvalTransform.for_model(mc), classes) if val_dir else None
    )
    sampler = data.TrainSampler(train_set, d.world, d.rank, shuffle=True, seed=cfg.seed)
    pin = d.device.type == "cuda"
    train_loader = data.make_loader(
        train_set,
        sampler,
        cfg.batch_size,
        cfg.workers,
        drop_last=True,
        pin_memory=pin,
        seed=cfg.seed,
    )
    if len(train_loader) == 0:
        raise DataError(
            f"{train_dir} has {len(train_set)} images, fewer than one batch of "
            f"{cfg.batch_size} x {d.world} process(es); use a smaller -b"
        )
    val_loader = None
    if val_set is not None:
        val_loader = data.make_loader(
            val_set,
            data.ShardSampler(len(val_set), d.rank, d.world),
            cfg.batch_size,
            cfg.workers,
            pin_memory=pin,
        )
    else:
        log.warning("no validation set (%s/val): no val metrics and no best.* files", cfg.data)
    return train_set, val_set, train_loader, val_loader


def make_loop(cfg: TrainConfig, raw: GoogLeNet, d: Dist, steps_per_epoch: int) -> Loop:
    """Wrap the model for speed and for torchrun (channels-last, torch.compile, DDP) and build
    what trains it: optimizer, grad scaler, loss, Polyak average."""
    _configure_backends(cfg, d.device)
    if cfg.channels_last:
        raw = raw.to(memory_format=torch.channels_last)
    model: nn.Module = _compiled(raw, cfg.compile) if cfg.compile else raw
    if d.enabled:
        ids = [d.device.index] if d.device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    return Loop(
        model=model,
        raw=raw,
        polyak=polyak_average(raw, cfg.polyak_decay) if cfg.polyak else None,
        optimizer=build_optimizer(raw, cfg),
        scaler=torch.amp.GradScaler(d.device.type, enabled=cfg.amp == "fp16"),
        criterion=nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing),
        cfg=cfg,
        dist=d,
        steps_per_epoch=steps_per_epoch,
    )


def _compiled(model: nn.Module, backend: str) -> nn.Module:
    from torch._dynamo.exc import InvalidBackend

    try:
        return torch.compile(model, backend=backend)
    except InvalidBackend:
        from torch._dynamo import list_backends

        names = ", ".join(list_backends(exclude_tags=()))
        raise ConfigError(
            f"--compile: unknown backend {backend!r}; choose one of {names}"
        ) from None


def _save_epoch(
    out: Path, loop: Loop, epoch: int, row: dict, best: float, rows: list, rng: list
) -> float:
    """The epoch's files: best.safetensors and best.pt when val top-1 improved (the better of the
    model and its Polyak average), then last.pt. Returns the best top-1 so far."""
    candidates = [("model", row.get("val_top1"), loop.raw)]
    if loop.polyak is not None:
        candidates.append(("polyak", row.get("polyak_top1"), _unwrap(loop.polyak)))
    which, top1, module = max(candidates, key=lambda c: -1.0 if c[1] is None else c[1])
    if top1 is not None and top1 > best:
        best = top1
        meta = {"epoch": str(epoch), "val_top1": f"{top1:.4f}", "weights": which}
        save_weights(module, out / "best.safetensors", meta)
        save_checkpoint(out / "best.pt", loop, epoch, best, rows, rng)
    save_checkpoint(out / "last.pt", loop, epoch, best, rows, rng)
    return best


def _unwrap(polyak: AveragedModel) -> GoogLeNet:
    return polyak.module  # type: ignore[return-value]


def _output_dir(cfg: TrainConfig) -> tuple[Path, Path | None]:
    """The output directory and the checkpoint to resume from; refuse to overwrite a run."""
    if cfg.resume not in (None, "auto"):
        resume = Path(cfg.resume)
        if not resume.is_file():
            raise ConfigError(f"--resume {resume}: no such checkpoint")
        out = Path(cfg.output_dir) if cfg.output_dir else resume.parent
        held = [f for f in RUN_FILES if (out / f).exists()]
        if held and out.resolve() != resume.parent.resolve():
            raise ConfigError(
                f"--output-dir {out} holds another run ({held[0]}) than the checkpoint "
                f"{resume}: continue that run in its own directory, or give an empty one"
            )
        return out, resume
    name = f"{Path(cfg.data).resolve().name}-{cfg.preset}"
    out = Path(cfg.output_dir) if cfg.output_dir else Path("runs") / name
    last = out / "last.pt"
    if cfg.resume == "auto":
        return out, last if last.is_file() else None
    held = [f for f in RUN_FILES if (out / f).exists()]
    if held:
        raise ConfigError(
            f"output directory {out} already holds a run ({held[0]}); continue it with "
            "--resume auto, or choose another --output-dir"
        )
    return out, None


def _configure_backends(cfg: TrainConfig, device: torch.device) -> None:
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def _write_config(
    out: Path, cfg: TrainConfig, mc: GoogLeNetConfig, train_set, val_set, d: Dist
) -> None:
    """``config.json``: the arguments, the model configuration and the data, resolved."""
    resolved = {
        "args": cfg.to_dict(),
        "model": mc.to_dict(),
        "data": {
            "train": str(train_set.root),
            "train_images": len(train_set),
            "val": str(val_set.root) if val_set else None,
            "val_images": len(val_set) if val_set else 0,
        },
        "world_size": d.world,
        "device": str(d.device),
        "global_batch_size": cfg.batch_size * d.world,
        "torch": torch.__version__,
    }
    atomic_write_text(out / "config.json", json.dumps(resolved, indent=2) + "\n")


def _describe(cfg: TrainConfig, mc: GoogLeNetConfig) -> str:
    how = f"fine-tuned from {cfg.weights}" if cfg.weights else "from scratch"
    return f"{mc.preset} ({how}, {mc.num_classes} classes, {mc.input_size} px)"


def _log_epoch(row: dict[str, Any], epochs: int) -> None:
    val = ""
    if "val_top1" in row:
        val = f"  val top-1 {row['val_top1']:.2f}% top-5 {row['val_top5']:.2f}%"
    if "polyak_top1" in row:
        val += f"  polyak top-1 {row['polyak_top1']:.2f}%"
    if row["skipped"]:
        log.warning("epoch %d: skipped %d unreadable image(s)", row["epoch"], row["skipped"])
    log.info(
        "epoch %d/%d  loss %.4f (main %.4f)%s  lr %.3g  %.1f img/s  %.1fs",
        row["epoch"],
        epochs,
        row["train_loss"],
        row["train_loss_main"],
        val,
        row["lr"],
        row["images_per_s"],
        row["epoch_time_s"],
    )


def _oom_message(cfg: TrainConfig, d: Dist) -> str:
    return (
        f"out of memory on {d.device} with -b {cfg.batch_size} at {cfg.input_size or 224} px; "
        f"try -b {max(1, cfg.batch_size // 2)}, --amp bf16 or a smaller --input-size"
    )


def _tupled(config: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}


def _tupled_deep(value: Any) -> Any:
    return tuple(_tupled_deep(v) for v in value) if isinstance(value, list | tuple) else value


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _short(names) -> str:
    names = list(names or [])
    return "[" + ", ".join(names[:4]) + (", ..." if len(names) > 4 else "") + f"] ({len(names)})"
