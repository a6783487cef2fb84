"""One epoch: the loop's state, the training step as the run calls it, one pass over the training
set, one over the validation set, and the checks on the way (finite losses, ranks that agree).

The step itself is :class:`googlenet.runtime.training.TrainStep`, the one ``googlenet bench
--mode train`` times; :func:`make_loop` prepares the model for it
(:func:`googlenet.runtime.training.prepare_for_training`: channels_last, merged 1x1s) and picks
its autocast dtype (``--amp auto``: bf16 where the hardware does it fast).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import sys
import time
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

from .. import data, faults
from ..errors import ConfigError, DataError, GoogLeNetError
from ..model import GoogLeNet
from ..runtime import distributed
from ..runtime.device import resolve_amp, set_deterministic, training_threads
from ..runtime.distributed import Dist
from ..runtime.evaluation import evaluate
from ..runtime.training import TrainStep, prepare_for_training, stage_grad_norms
from .config import TrainConfig
from .recipe import average_of, build_optimizer, lr_at, set_lr
from .signals import StopSignals

log = logging.getLogger("googlenet.train")
AMP_NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16"}


class TrainingDiverged(GoogLeNetError):
    """The loss became NaN or infinite."""


@dataclass
class Loop:
    """What the epoch functions share: the model as called, its parts, the run's settings."""

    model: nn.Module  # as called: prepared, compiled and/or DDP-wrapped
    raw: GoogLeNet  # the module itself: what is saved and averaged
    polyak: AveragedModel | None
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    step_fn: TrainStep
    cfg: TrainConfig
    dist: Dist
    steps_per_epoch: int
    step: int = 0
    stop: StopSignals | None = None  # SIGINT/SIGTERM seen, while train() runs
    saved: str = ""  # the last checkpoint written or resumed from, for messages
    # --log-grad-norms: {"step": n, "conv1": norm, ...} for each of the first steps (rank 0)
    grad_norms: list[dict[str, float]] = dataclasses.field(default_factory=list)
    probe: Tensor | None = None  # the last batch trained on: checked again before a checkpoint
    momentum_style: str = "pytorch"  # caffe or pytorch: see config.MOMENTUM_STYLES

    @property
    def amp(self) -> str | None:
        """The autocast dtype's name (bf16, fp16), None for fp32: what validation runs in too."""
        return AMP_NAMES.get(self.step_fn.amp)  # type: ignore[arg-type]

    def to_device(self, batch: data.Batch) -> tuple[Tensor, Tensor]:
        x = batch.images.to(self.dist.device, non_blocking=True)
        return x, batch.labels.to(self.dist.device, non_blocking=True)


def make_loop(cfg: TrainConfig, raw: GoogLeNet, d: Dist, steps_per_epoch: int) -> Loop:
    """Prepare the model for the training step (channels_last, merged 1x1s, torch.compile), wrap
    it for torchrun (DDP) and build what trains it: optimizer, grad scaler, loss, Polyak average."""
    _configure_backends(d.device, cfg)
    amp = resolve_amp(cfg.amp, d.device)
    model = prepare_for_training(raw, channels_last=cfg.channels_last, merge_1x1=cfg.merge_1x1)
    model = _compiled(model, cfg.compile) if cfg.compile else model
    if d.enabled:
        ids = [d.device.index] if d.device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    optimizer = build_optimizer(raw, cfg)
    scaler = torch.amp.GradScaler(d.device.type, enabled=amp == torch.float16)
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    step_fn = TrainStep(
        model,
        optimizer,
        amp=amp,
        channels_last=cfg.channels_last,
        criterion=criterion,
        aux_weight=cfg.aux_weight,
        scaler=scaler,
    )
    return Loop(
        model=model,
        raw=raw,
        polyak=average_of(raw, cfg),
        optimizer=optimizer,
        scaler=scaler,
        step_fn=step_fn,
        cfg=cfg,
        dist=d,
        steps_per_epoch=steps_per_epoch,
        momentum_style=cfg.momentum_rule(raw.config.preset),
    )


def train_step(loop: Loop, x: Tensor, y: Tensor, weight: float = 1.0) -> tuple[Tensor, Tensor]:
    """One optimizer step of the run: the scheduled learning rate, :class:`TrainStep`, the Polyak
    update. ``weight`` scales the loss; 0 is a rank's share of a torchrun step when it has no
    readable image (see :func:`train_one_epoch`). Returns the main logits and the four losses."""
    set_lr(loop.optimizer, lr_at(loop.step, loop.steps_per_epoch, loop.cfg), loop.momentum_style)
    logits, losses = loop.step_fn(x, y, weight)
    if loop.step < loop.cfg.log_grad_norms and loop.dist.is_main:
        # The gradients of this step are still in .grad (the next step clears them).
        loop.grad_norms.append({"step": loop.step + 1, **stage_grad_norms(loop.raw)})
    if loop.polyak is not None and loop.step >= loop.cfg.polyak_start * loop.steps_per_epoch:
        loop.polyak.update_parameters(loop.raw)
    loop.step += 1
    return logits, losses


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
    returns None. Under torchrun the ranks agree before each step (:func:`_agree`).
    """
    cfg = loop.cfg
    _train_mode(loop.raw, cfg.freeze_trunk)
    start = start or EpochProgress()
    loader.sampler.set_epoch(epoch, start=start.batch * loader.batch_size)
    # loss, main, aux1, aux2, correct, images: summed on the device, read every print_freq steps
    sums = torch.tensor(start.sums[:6], dtype=torch.float64, device=loop.dist.device)
    n_skipped = int(start.sums[6])
    before = (start.batch, start.sums[5])  # what an earlier process did of this epoch
    bar = _progress(loader, epoch, cfg.epochs, loop.dist, initial=start.batch)
    began = time.perf_counter()
    timed = (
        None  # from the first batch: the loader's start-up (workers, a resume's skip) is not speed
    )
    for i, batch in enumerate(bar, start=start.batch):
        timed = timed or time.perf_counter()
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
        _train_batch(loop, batch if has_data else None, sums)
        last = i + 1 == len(loader)
        if (i + 1) % cfg.print_freq == 0 or last:
            _check_finite(sums[0], loop, epoch)
            lr = loop.optimizer.param_groups[0]["lr"]
            _show(bar, sums, i + 1, len(loader), lr, timed, loop.dist, before, cfg.epochs - epoch)
        if cfg.save_every and loop.step % cfg.save_every == 0 and not last and checkpoint:
            checkpoint(EpochProgress(i + 1, sums.tolist() + [n_skipped]))
    totals = distributed.all_reduce_sum(sums.tolist() + [n_skipped, before[1]], loop.dist.device)
    now = time.perf_counter()
    return _epoch_stats(loop, totals, now - began, now - (timed or began))


def _train_batch(loop: Loop, batch: data.Batch | None, sums: Tensor) -> None:
    """A step on ``batch``, added to the epoch's ``sums``; a :func:`placeholder_step` when this
    rank has no readable image."""
    if batch is None:
        placeholder_step(loop)
        return
    x, y = loop.to_device(batch)
    logits, losses = train_step(loop, x, y)
    loop.probe = x
    sums[:4] += losses.double() * y.numel()
    sums[4] += (logits.argmax(1) == y).sum()
    sums[5] += y.numel()


def _epoch_stats(loop: Loop, totals: list[float], seconds: float, computing: float) -> dict:
    """The epoch's row; ``computing``: the seconds from its first batch (images/s)."""
    n = max(totals[5], 1.0)
    cfg = loop.cfg
    return {
        "lr": lr_at(loop.step - 1, loop.steps_per_epoch, cfg) if loop.step else cfg.lr,
        "train_loss": totals[0] / n,
        "train_loss_main": totals[1] / n,
        "train_loss_aux1": totals[2] / n if loop.raw.aux1 is not None else float("nan"),
        "train_loss_aux2": totals[3] / n if loop.raw.aux2 is not None else float("nan"),
        "train_top1": 100.0 * totals[4] / n,
        "images_per_s": (totals[5] - totals[7]) / max(computing, 1e-9),
        "epoch_time_s": seconds,
        "skipped": int(totals[6]),
    }


def _agree(loop: Loop, has_data: bool, bad: list[data.Skipped]) -> tuple[bool, bool]:
    """(stop now?, does any rank have images for this step?), the same answers on every rank.

    Under torchrun the ranks agree before each step, in one small all-reduce on the CPU, on
    three things that one rank may see alone: a stop signal (all stop at the same step), a batch
    of which no image could be read (that rank takes part in the step with a placeholder batch
    of loss weight 0, so DDP's gradient all-reduce still pairs up, instead of skipping the step
    and leaving the others waiting for it forever; the step's gradient is then the other ranks'
    mean times (world - 1) / world), and, with ``--strict``, an unreadable image (all stop,
    naming it).
    """
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


def placeholder_step(loop: Loop) -> None:
    """This rank's share of a torchrun step in which it has no readable image.

    DDP's gradient all-reduce must still pair up, so the rank runs the step on a placeholder
    batch with loss weight 0: its gradient is exactly 0 and the step's update is the other
    ranks' mean gradient times (world - 1) / world, the same update on every rank. The forward
    pass in training mode would also move BatchNorm's running statistics towards black images
    (and rank 0's buffers are the ones DDP broadcasts): every buffer is put back as it was.
    """
    kept = [b.detach().clone() for b in loop.raw.buffers()]
    train_step(loop, *_placeholder_batch(loop), weight=0.0)
    with torch.no_grad():
        for buffer, old in zip(loop.raw.buffers(), kept, strict=True):
            buffer.copy_(old)


def _placeholder_batch(loop: Loop) -> tuple[Tensor, Tensor]:
    """Two black images of class 0: what a rank without a readable image computes a step on."""
    size = loop.raw.config.input_size
    x = torch.zeros(2, 3, size, size, device=loop.dist.device)
    return x, torch.zeros(2, dtype=torch.long, device=loop.dist.device)


def validate(
    model: nn.Module, loader, loop: Loop, prefix: str, skipped: set[str] | None = None
) -> dict[str, float | None]:
    """Single-crop validation summed over the ranks: ``{prefix}_top1``, ``_top5``, ``_loss``.

    Unreadable validation images are reported (once each, in ``skipped``) like training ones,
    and stop the run under ``--strict``.
    """
    bad: list[data.Skipped] = []
    counts = evaluate(
        [model],
        loader,
        loop.dist.device,
        amp=loop.amp,
        channels_last=loop.cfg.channels_last,
        on_skipped=bad.append,
    )
    if loop.cfg.strict:
        failed = distributed.any_rank(bool(bad), loop.dist.device)
        if failed:
            _strict_stop(loop, bad[0].reason if bad else None)
    _report_skipped(bad, skipped if skipped is not None else set(), strict=False)
    counts = counts.all_reduce(loop.dist.device)
    # Top-5 of a model that knows 5 classes or fewer is always 100%: None (n/a, no curve).
    meaningful = counts.confusion.shape[1] > 5
    return {
        f"{prefix}_loss": counts.loss,
        f"{prefix}_top1": counts.top1,
        f"{prefix}_top5": counts.top5 if meaningful else None,
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
    epochs_left: int = 1,
) -> None:
    """Progress after ``done`` of ``total`` batches; ``before``: the batches and images of this
    epoch that a process before a resume did (not part of this one's speed); ``epochs_left``
    (this one included) makes the ETA the whole run's (validation time not counted)."""
    if not d.is_main:
        return
    images = float(sums[5])
    loss = float(sums[0]) / max(images, 1.0)
    elapsed = max(time.perf_counter() - start, 1e-9)
    speed = (images - before[1]) * d.world / elapsed
    per_batch = elapsed / max(done - before[0], 1)
    eta = _duration((total - done + (epochs_left - 1) * total) * per_batch)
    if hasattr(bar, "set_postfix_str"):
        bar.set_postfix_str(f"loss {loss:.4f} lr {lr:.3g} {speed:.1f} img/s run eta {eta}")
        return
    log.info("  [%d/%d] loss %.4f lr %.3g %.1f img/s run eta %s", done, total, loss, lr, speed, eta)


def _duration(seconds: float) -> str:
    """``42s``, ``7m05s`` or ``3h07m``: an ETA a person reads at a glance."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    return f"{s // 60}m{s % 60:02d}s" if s < 3600 else f"{s // 3600}h{s % 3600 // 60:02d}m"


def log_epoch(row: dict[str, Any], epochs: int) -> None:
    val = ""
    if "val_top1" in row:
        top5 = row["val_top5"]
        top5 = "n/a" if top5 is None else f"{top5:.2f}%"  # n/a: 5 classes or fewer
        val = f"  val top-1 {row['val_top1']:.2f}% top-5 {top5}"
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


def _compiled(model: nn.Module, backend: str) -> nn.Module:
    from torch._dynamo.exc import InvalidBackend

    try:
        # torch.compile of a module is a module (OptimizedModule); its stub says Callable
        return cast(nn.Module, torch.compile(model, backend=backend))
    except InvalidBackend:
        from torch._dynamo import list_backends

        names = ", ".join(list_backends(exclude_tags=()))
        raise ConfigError(
            f"--compile: unknown backend {backend!r}; choose one of {names}"
        ) from None


def _configure_backends(device: torch.device, cfg: TrainConfig) -> None:
    """What decides the order of the float sums besides the model: the thread count (recorded in
    the run's configuration by :func:`fix_float_order`; else chosen here), ``--deterministic``,
    and on CUDA without it cuDNN's benchmarking and TF32 (fast, but kernels picked by timing)."""
    threads = cfg.threads if isinstance(cfg.threads, int) else training_threads(cfg.threads, log)
    torch.set_num_threads(threads)
    set_deterministic(device, cfg.deterministic)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not cfg.deterministic
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
