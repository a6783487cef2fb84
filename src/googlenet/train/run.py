"""``train()``: a run from its arguments to its files. Sets up (the run directory, the data, the
model, a resumed checkpoint), runs the epochs, writes each epoch's files on rank 0, and turns
what can go wrong (out of memory, a peer that died) into one-line errors.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import data
from ..data import shards as data_shards
from ..errors import ConfigError, DataError, GoogLeNetError
from ..fileio import atomic_write_text, output_lock, remove_stale_temporaries
from ..metrics import MetricsLog, plot_curves
from ..model import GoogLeNetConfig
from ..runtime import distributed
from ..runtime.device import resolve_amp, training_threads
from ..runtime.distributed import Dist
from ..weights import save_weights
from .checkpoint import (
    checkpoint_errors,
    gather,
    read_checkpoint,
    restore,
    save_checkpoint,
    save_epoch_files,
    unwrap,
)
from .config import TrainConfig, plain, saved_args
from .loop import (
    AMP_NAMES,
    EpochProgress,
    Loop,
    _agree,
    _check_finite,
    log_epoch,
    make_loop,
    train_one_epoch,
    validate,
)
from .recipe import build_model, lr_at, replan
from .signals import StopSignals, interrupted, is_peer_failure, peer_reason

log = logging.getLogger("googlenet.train")
RUN_FILES = ("last.pt", "config.json", "metrics.csv")  # a directory holding one holds a run


def train(cfg: TrainConfig, given: set[str] | None = None) -> dict[str, Any]:
    """Train as ``cfg`` says (under torchrun: this process's share); returns a summary dict.

    ``given``: the flags typed on the command line. When the run resumes, the others take the
    checkpoint's values (:meth:`TrainConfig.merge_resumed`); None (the API) keeps ``cfg`` as is.
    """
    owned = not distributed.joined()  # a group its caller set up (the study's) stays up
    d = distributed.setup(cfg.device)
    if not d.is_main:
        logging.getLogger("googlenet").setLevel(logging.WARNING)
    # Installed for the whole run, process group teardown included: torchrun sends SIGTERM to
    # the ranks still running when one has exited, and a rank that has saved and is on its way
    # out must not be killed before it has said so.
    with StopSignals(announce=d.is_main) as stop:
        return _train_here(cfg, d, stop, given, owned)


def _train_here(
    cfg: TrainConfig, d: Dist, stop: StopSignals, given: set[str] | None, owned: bool = True
) -> dict[str, Any]:
    try:
        with _run_lock(cfg, d):
            return _train(cfg, d, stop, given)
    except torch.OutOfMemoryError as err:
        raise GoogLeNetError(_oom_message(cfg, d)) from err
    except RuntimeError as err:
        if "can't allocate memory" in str(err) or "out of memory" in str(err):
            raise GoogLeNetError(_oom_message(cfg, d)) from err
        if "does not have a deterministic implementation" in str(err):
            op = str(err).split()[0]
            raise GoogLeNetError(
                f"--deterministic: {op} has no deterministic implementation on {d.device}; "
                "train without --deterministic, or on another device or preset"
            ) from err
        if d.enabled and is_peer_failure(err):
            failed = GoogLeNetError(
                f"process {d.rank} of {d.world} stopped: another process of the job failed or "
                f"was killed ({peer_reason(err)})"
            )
            failed.every_rank = False
            failed.exit_code = 1
            raise failed from err
        raise
    finally:
        if owned:
            distributed.cleanup()


@dataclass
class Run:
    """A run set up: its directory, loop, loaders, and where it starts."""

    out: Path
    loop: Loop
    train_loader: Any
    val_loader: Any
    start_epoch: int = 0
    best: float = -1.0
    rows: list | None = None
    progress: EpochProgress | None = None


def _train(cfg: TrainConfig, d: Dist, stop: StopSignals, given: set[str] | None) -> dict[str, Any]:
    run = _set_up(cfg, d, given)
    try:
        return _run(run, d, stop)
    finally:  # workers still alive at exit would hang it (data.close_loader)
        data.close_loader(run.train_loader)
        data.close_loader(run.val_loader)


def _run(run: Run, d: Dist, stop: StopSignals) -> dict[str, Any]:
    loop = run.loop
    cfg = loop.cfg  # merged with the resumed run's own settings
    metrics = MetricsLog(run.out, run.rows or []) if d.is_main else None
    loop.stop = stop
    if _agree(loop, True, [])[0] and run.start_epoch < cfg.epochs:  # a signal during the set-up
        raise interrupted(loop.stop, loop.saved, early=True)
    skipped: set[str] = set()
    for epoch in range(run.start_epoch, cfg.epochs):
        _one_epoch(run, epoch, metrics, skipped)
    loop.stop = None  # from here on a signal is too late to stop anything: the run finishes
    distributed.barrier()
    if not d.is_main or metrics is None:
        return {}
    metrics.close()
    save_weights(loop.raw, run.out / "final.safetensors", {"epoch": str(cfg.epochs)})
    if loop.polyak is not None:
        meta = {"epoch": str(cfg.epochs)}
        save_weights(unwrap(loop.polyak), run.out / "polyak.safetensors", meta)
    plot_curves(metrics.rows, run.out)
    return {
        "output_dir": run.out,
        "best_top1": run.best,
        "epochs": cfg.epochs,
        "metrics": metrics.rows,
    }


def _set_up(cfg: TrainConfig, d: Dist, given: set[str] | None) -> Run:
    """The run directory, the data, the model and its loop, restored from a checkpoint if any."""
    out, resume = _output_dir(cfg)
    distributed.barrier()  # every rank has looked at the output directory before rank 0 writes
    ckpt = read_checkpoint(resume, d.device) if resume else None
    saved = saved_args(ckpt) if ckpt is not None else None
    if saved is not None and given is not None:
        with checkpoint_errors(resume):
            cfg = cfg.merge_resumed(saved, given)
    cfg = fix_float_order(cfg, d, saved, given)
    if not cfg.data:
        raise ConfigError(f"nothing to resume in {out} (no last.pt): give --data DIR to start")
    train_dir, val_dir, classes = data_shards.resolve(cfg.data, cfg.val)  # shards or folders
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    with checkpoint_errors(resume):
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
    run = Run(out, loop, train_loader, val_loader)
    if ckpt is not None:
        with checkpoint_errors(resume):
            run.start_epoch, run.best, run.rows, run.progress = restore(loop, ckpt)
        progress = run.progress
        at = f"batch {progress.batch} of {len(train_loader)} of " if progress else "the end of "
        loop.saved = f"{resume} ({at}epoch {run.start_epoch + bool(progress)}, step {loop.step})"
        _extend(loop, saved or {}, loop.step)
        loop.grad_norms = read_grad_norms(out, loop.step)
    if d.is_main:
        _open_run_dir(out, loop.cfg, mc, loop, train_set, val_set)
    return run


FLOAT_ORDER = ("device", "amp", "threads", "deterministic", "channels_last", "merge_1x1", "compile")


def fix_float_order(
    cfg: TrainConfig, d: Dist, saved: dict[str, Any] | None, given: set[str] | None
) -> TrainConfig:
    """``cfg`` with what decides the order of the float sums resolved, as the run records it
    (config.json, the checkpoint's arguments) and ``--resume`` reuses it: the device's type
    (cpu, cuda, mps), the autocast dtype (bf16, fp16 or none rather than auto) and the thread
    count (:func:`~googlenet.runtime.device.training_threads`).

    A resumed run whose device this machine's ``--device auto`` would change stops, asking for
    ``--device``; a float-order flag given anew is applied with a warning: the run then goes on,
    but its weights no longer match an unbroken run's bit for bit.
    """
    device = cfg.device if cfg.device not in (None, "auto") else d.device.type
    if saved and saved.get("device") and torch.device(saved["device"]).type != d.device.type:
        if given is not None and "device" not in given:
            raise ConfigError(
                f"the run trained on {saved['device']}, but --device auto picks {d.device} here: "
                f"give --device {torch.device(saved['device']).type} to go on as it ran, or "
                f"--device {d.device.type} to move it (its weights then differ from an unbroken "
                "run's in the last bits)"
            )
    amp = AMP_NAMES.get(resolve_amp(cfg.amp, d.device), "none")  # type: ignore[arg-type]
    threads = training_threads(cfg.threads, log if d.device.type == "cpu" else None)
    fixed = dataclasses.replace(cfg, device=device, amp=amp, threads=threads)
    if saved and given:
        for name in FLOAT_ORDER:
            old, new = saved.get(name), getattr(fixed, name)
            if name in given and old is not None and plain(old) != plain(new):
                log.warning(
                    "--%s %s differs from the run's %s: it goes on, but its weights will differ "
                    "from an unbroken run's in the last bits",
                    name.replace("_", "-"),
                    new,
                    old,
                )
    return fixed


def _extend(loop: Loop, saved: dict[str, Any], step: int) -> None:
    """A resumed run given another --epochs: re-plan its schedule from its rate, and say so."""
    cfg = loop.cfg
    old_epochs = int(saved.get("epochs", cfg.epochs))
    if old_epochs == cfg.epochs:
        return
    known = {f for f in saved if f in TrainConfig.__dataclass_fields__}
    fields: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v for k, v in saved.items() if k in known
    }
    old = TrainConfig(**fields)
    loop.cfg = replan(cfg, old, step, loop.steps_per_epoch)
    lr = lr_at(step, loop.steps_per_epoch, loop.cfg)
    log.info(
        "the run had %d epoch(s), now %d: its %s schedule goes on from lr %.3g at step %d%s",
        old_epochs,
        cfg.epochs,
        cfg.schedule,
        lr,
        step,
        " and decays over the new length" if cfg.schedule in ("cosine", "poly") else "",
    )


def _open_run_dir(out: Path, cfg: TrainConfig, mc: GoogLeNetConfig, loop: Loop, train_set, val_set):
    """Rank 0: the run directory, cleaned of killed writes, its config.json, the opening line."""
    d = loop.dist
    out.mkdir(parents=True, exist_ok=True)
    for tmp in remove_stale_temporaries(out):
        log.info("removed %s, left by a write that was killed", tmp.name)
    if loop.saved:
        log.info("resuming from %s", loop.saved)
    _write_config(out, cfg, mc, train_set, val_set, d)
    log.info(
        "training %s on %d images%s, %d epoch(s) on %s x %d (%s), into %s",
        _describe(cfg, mc),
        len(train_set),
        f" + {len(val_set)} val" if val_set else "",
        cfg.epochs,
        d.device,
        d.world,
        _describe_step(loop),
        out,
    )


def _one_epoch(run: Run, epoch: int, metrics: MetricsLog | None, skipped: set[str]) -> None:
    """Train one epoch, validate, write its files (rank 0); stop here if a signal says so."""
    loop, cfg, d = run.loop, run.loop.cfg, run.loop.dist
    last = run.out / "last.pt"

    def save_part(part: EpochProgress) -> None:
        """A checkpoint part-way through ``epoch`` (--save-every, or a stop signal)."""
        _check_finite(torch.tensor(part.sums[0]), loop, epoch, weights=True)
        rng, sums = gather(d, part.sums)
        rows = metrics.rows if metrics else []

        def write() -> None:
            save_checkpoint(last, loop, epoch, run.best, rows, rng, part.batch, sums)
            write_grad_norms(run.out, loop)

        _on_rank0(loop, write)
        n = len(run.train_loader)
        loop.saved = f"{last} (batch {part.batch} of {n} of epoch {epoch + 1}, step {loop.step})"

    start = run.progress if epoch == run.start_epoch else None
    stats = train_one_epoch(loop, run.train_loader, epoch, skipped, start, save_part)
    if stats is None:
        raise interrupted(loop.stop, loop.saved)
    row: dict[str, float | None] = {"epoch": epoch + 1, "step": loop.step, **stats}
    if run.val_loader is not None:
        row |= validate(loop.raw, run.val_loader, loop, "val", skipped)
        if loop.polyak is not None:
            row |= validate(loop.polyak.module, run.val_loader, loop, "polyak", skipped)
    _check_finite(torch.tensor(row["train_loss"]), loop, epoch, weights=True)
    rng, _ = gather(d, [])

    def save_epoch() -> None:
        assert metrics is not None
        log_epoch(row, cfg.epochs)
        metrics.append(row)
        run.best = save_epoch_files(run.out, loop, epoch + 1, row, run.best, metrics.rows, rng)
        write_grad_norms(run.out, loop)

    _on_rank0(loop, save_epoch)
    loop.saved = f"{last} (the end of epoch {epoch + 1}, step {loop.step})"
    if _agree(loop, True, [])[0] and epoch + 1 < cfg.epochs:
        raise interrupted(loop.stop, loop.saved)


GRAD_NORMS_FILE = "grad_norms.csv"


def write_grad_norms(out: Path, loop: Loop) -> None:
    """``grad_norms.csv`` (--log-grad-norms): a step per row, a stage per column."""
    if not loop.grad_norms:
        return
    columns = list(loop.grad_norms[0])
    lines = [",".join(columns)]
    lines += [
        ",".join(f"{row.get(c, float('nan')):.6g}" for c in columns) for row in loop.grad_norms
    ]
    atomic_write_text(out / GRAD_NORMS_FILE, "\n".join(lines) + "\n")


def read_grad_norms(out: Path, step: int) -> list[dict[str, float]]:
    """The rows of ``grad_norms.csv`` up to ``step`` (a resumed run goes on from its checkpoint;
    rows a killed process wrote after it are dropped)."""
    path = out / GRAD_NORMS_FILE
    if not path.is_file():
        return []
    header, *body = path.read_text().splitlines()
    names = header.split(",")
    rows = [dict(zip(names, map(float, line.split(",")), strict=True)) for line in body if line]
    return [r | {"step": int(r["step"])} for r in rows if r["step"] <= step]


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


def build_loaders(
    cfg: TrainConfig, d: Dist, mc: GoogLeNetConfig, train_dir: Path, val_dir: Path | None
):
    """The train and val image folders and their loaders, this rank's shard of each."""
    augment = data.TrainTransform(
        mc.input_size, mc.mean, mc.std, cfg.scale, cfg.ratio, cfg.hflip, cfg.jitter, cfg.lighting
    )
    decode_on = _decode_device(cfg.decode, d.device)
    train_tf = augment if decode_on is None else data.Deferred(augment)
    built = _loaders(cfg, d, mc, train_dir, val_dir, train_tf)
    if decode_on is None:
        return built
    train_set, val_set, train_loader, val_loader = built
    return train_set, val_set, data.DeviceDecoder(train_loader, augment, decode_on), val_loader


def _decode_device(decode: str, device: torch.device) -> torch.device | None:
    """Where the training images are decoded (``--decode``): None for the loader workers."""
    if decode == "cpu":
        return None
    if decode == "gpu" and device.type != "cuda":
        log.warning(
            "--decode gpu: training on %s, not a GPU; decoding in the loader workers instead "
            "(--decode cpu)",
            device,
        )
        return None
    return device


def _loaders(cfg: TrainConfig, d: Dist, mc: GoogLeNetConfig, train_dir, val_dir, train_tf):
    if isinstance(train_dir, data_shards.ShardSet):  # streamed from tar shards
        eval_tf = data.EvalTransform.for_model(mc)
        kw = dict(batch_size=cfg.batch_size, workers=cfg.workers, seed=cfg.seed)
        pin = d.device.type == "cuda"
        return data_shards.loaders(
            train_dir, val_dir, train_tf, eval_tf, rank=d.rank, world=d.world, pin_memory=pin, **kw
        )
    train_set = data.ImageFolder(train_dir, train_tf)
    classes = train_set.classes
    val_set = (
        data.ImageFolder(val_dir, data.EvalTransform.for_model(mc), classes) if val_dir else None
    )
    sampler = data.TrainSampler(train_set, d.world, d.rank, shuffle=True, seed=cfg.seed)
    pin = d.device.type == "cuda"
    drop = _drop_last(len(sampler), cfg.batch_size, mc, d)
    train_loader = data.make_loader(
        train_set,
        sampler,
        cfg.batch_size,
        cfg.workers,
        drop_last=drop,
        pin_memory=pin,
        seed=cfg.seed,
        persistent=True,
        spawn=True,  # beside the TensorBoard writer's and the process group's threads
    )
    if len(train_loader) == 0:
        raise DataError(
            f"{train_dir} has {len(train_set)} image(s): one image per process is a batch of one, "
            "which BatchNorm cannot normalize; add images or train the paper preset (LRN)"
        )
    val_loader = None
    if val_set is not None:
        val_loader = data.make_loader(
            val_set,
            data.ShardSampler(len(val_set), d.rank, d.world),
            cfg.batch_size,
            cfg.workers,
            pin_memory=pin,
            persistent=True,
            spawn=True,
        )
    else:
        log.warning("no validation set (%s/val): no val metrics and no best.* files", cfg.data)
    return train_set, val_set, train_loader, val_loader


def _drop_last(per_rank: int, batch_size: int, mc: GoogLeNetConfig, d: Dist) -> bool:
    """Whether each epoch drops its last, partial batch: only when it would break training, i.e.
    when it holds one image and the network has BatchNorm (which cannot normalize a batch of one
    at the 1x1 maps of inception 5). Every process has the same number of batches either way
    (the sampler pads the shards to one length), so DDP's steps pair up. Says what is left out."""
    if per_rank % batch_size != 1 or mc.norm != "batchnorm":
        return False
    if d.is_main and per_rank > 1:
        log.warning(
            "each epoch leaves out 1 image per process (%d of %d): the last batch would hold one "
            "image, which BatchNorm cannot normalize",
            d.world,
            per_rank * d.world,
        )
    return True


@contextlib.contextmanager
def _run_lock(cfg: TrainConfig, d: Dist):
    """Rank 0 holds the output directory's lock for the whole job, taken before anything looks
    at the directory: a second run into it stops at once (exit 2) instead of overwriting."""
    error: GoogLeNetError | None = None
    with contextlib.ExitStack() as held:
        if d.is_main:
            try:
                held.enter_context(output_lock(_run_dir(cfg), "train"))
            except GoogLeNetError as err:
                error = err
        if distributed.any_rank(error is not None, d.device):
            raise error or GoogLeNetError("rank 0 could not lock the output directory")
        yield


def _run_dir(cfg: TrainConfig) -> Path:
    """--output-dir; by default the checkpoint's folder, or runs/<data folder name>-<preset>."""
    if cfg.output_dir:
        return Path(cfg.output_dir)
    if cfg.resume not in (None, "auto"):
        return Path(cfg.resume).parent
    if not cfg.data:
        raise ConfigError("--resume auto without --data needs the run's --output-dir")
    return Path("runs") / f"{Path(cfg.data).resolve().name}-{cfg.preset}"


def _output_dir(cfg: TrainConfig) -> tuple[Path, Path | None]:
    """The output directory and the checkpoint to resume from; refuse to overwrite a run."""
    if cfg.resume not in (None, "auto"):
        resume = Path(cfg.resume)
        if not resume.is_file():
            raise ConfigError(f"--resume {resume}: no such checkpoint")
        out = _run_dir(cfg)
        held = [f for f in RUN_FILES if (out / f).exists()]
        if held and out.resolve() != resume.parent.resolve():
            raise ConfigError(
                f"--output-dir {out} holds another run ({held[0]}) than the checkpoint "
                f"{resume}: continue that run in its own directory, or give an empty one"
            )
        return out, resume
    out = _run_dir(cfg)
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


def _describe_step(loop: Loop) -> str:
    """How the training step runs: "bf16 autocast, channels_last, merged 1x1s"."""
    cfg = loop.cfg
    parts = [f"{loop.amp} autocast" if loop.amp else "fp32"]
    parts += ["channels_last"] if cfg.channels_last else []
    parts += ["merged 1x1s"] if cfg.merge_1x1 else []
    parts += [f"torch.compile {cfg.compile}"] if cfg.compile else []
    parts += [f"{cfg.threads} thread(s)"] if loop.dist.device.type == "cpu" else []
    parts += ["deterministic"] if cfg.deterministic else []
    return ", ".join(parts)


def _oom_message(cfg: TrainConfig, d: Dist) -> str:
    return (
        f"out of memory on {d.device} with -b {cfg.batch_size} at {cfg.input_size or 224} px; "
        f"try -b {max(1, cfg.batch_size // 2)}, --amp bf16 or a smaller --input-size"
    )
