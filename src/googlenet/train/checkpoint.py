"""Checkpoints: everything to continue a run exactly (weights, Polyak average, optimizer, grad
scaler, counters, every rank's RNG states, the metrics so far, the arguments), as plain tensors
and values, so that they load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel

from ..errors import ConfigError, GoogLeNetError, first_line
from ..fileio import torch_save
from ..model import GoogLeNet
from ..runtime.distributed import Dist
from ..weights import save_weights
from .config import SCHEDULE_VERSION, plain, saved_args
from .loop import EpochProgress, Loop

log = logging.getLogger("googlenet.train")


def rng_state() -> dict[str, Any]:
    """This process's RNG states (torch, CUDA, numpy, Python), as plain tensors and values."""
    np_state: tuple[Any, ...] = np.random.get_state(legacy=True)  # type: ignore[assignment]
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
        "scheduler": {
            "schedule": loop.cfg.schedule,
            "step": loop.step,
            "version": SCHEDULE_VERSION,  # what "paper" means: see config.saved_args
        },
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


def gather(d: Dist, sums: list[float]) -> tuple[list[dict[str, Any]], list[list[float]]]:
    """Every rank's RNG state and epoch sums, on every rank (rank 0 writes them)."""
    if not d.enabled:
        return [rng_state()], [list(sums)]
    states: list[Any] = [None] * d.world
    torch.distributed.all_gather_object(states, (rng_state(), list(sums)))
    return [s[0] for s in states], [s[1] for s in states]


def restore(loop: Loop, ckpt: dict[str, Any]) -> tuple[int, float, list, EpochProgress | None]:
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
    args = saved_args(ckpt)
    changed = {
        k: (v, getattr(loop.cfg, k))
        for k, v in args.items()
        if k not in ("resume",) and plain(getattr(loop.cfg, k, v)) != plain(v)
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


@contextlib.contextmanager
def checkpoint_errors(path: Path | None):
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
            f"({type(err).__name__}: {first_line(err)[:200]})"
        ) from err


def save_epoch_files(
    out: Path, loop: Loop, epoch: int, row: dict, best: float, rows: list, rng: list
) -> float:
    """The epoch's files: best.safetensors and best.pt (unless ``--no-best-checkpoint``) when val
    top-1 improved (the better of the model and its Polyak average), then last.pt. Returns the
    best top-1 so far."""
    candidates = [("model", row.get("val_top1"), loop.raw)]
    if loop.polyak is not None:
        candidates.append(("polyak", row.get("polyak_top1"), unwrap(loop.polyak)))
    which, top1, module = max(candidates, key=lambda c: -1.0 if c[1] is None else c[1])
    if top1 is not None and top1 > best:
        best = top1
        meta = {"epoch": str(epoch), "val_top1": f"{top1:.4f}", "weights": which}
        save_weights(module, out / "best.safetensors", meta)
        if loop.cfg.best_checkpoint:
            save_checkpoint(out / "best.pt", loop, epoch, best, rows, rng)
    save_checkpoint(out / "last.pt", loop, epoch, best, rows, rng)
    return best


def unwrap(polyak: AveragedModel) -> GoogLeNet:
    return polyak.module  # type: ignore[return-value]


def _tupled_deep(value: Any) -> Any:
    return tuple(_tupled_deep(v) for v in value) if isinstance(value, list | tuple) else value
