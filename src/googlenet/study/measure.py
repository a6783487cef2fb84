"""One arm, one seed: train it with ``googlenet train``'s own code, evaluate it with ``googlenet
eval``'s, and keep what the report needs. And, once an arm, what its network costs.

Nothing here trains or evaluates by itself: :func:`train_arm` builds a
:class:`~googlenet.train.TrainConfig` and calls :func:`googlenet.train.train` (its run directory
is kept: ``googlenet train --resume auto --output-dir RUN`` continues it, ``googlenet eval``
scores it), then :func:`googlenet.evaluate.evaluate_weights` on the validation and training
folders.
"""

from __future__ import annotations

import logging
import statistics
import time
from pathlib import Path
from typing import Any, TypeVar

import torch

from .plan import Arm

log = logging.getLogger("googlenet.study")
M = TypeVar("M", bound=torch.nn.Module)
CURVE_KEYS = ("train_loss", "train_loss_main", "train_top1", "val_loss", "val_top1")


def run_dir(runs: Path, arm: Arm, seed: int) -> Path:
    return runs / arm.name / f"seed{seed}"


def train_run(arm: Arm, seed: int, base: dict[str, Any], runs: Path) -> dict[str, Any]:
    """Train (or finish: ``--resume auto``) one seed of ``arm``: ``googlenet train``'s summary.
    Under torchrun every process calls it (the study's group is the run's)."""
    from ..train import TrainConfig, train

    out = run_dir(runs, arm, seed)
    return train(TrainConfig(**(arm.settings(base) | {"seed": seed, "output_dir": str(out)})))


def train_arm(
    arm: Arm, seed: int, base: dict[str, Any], runs: Path, train_dir: Path, val_dir: Path
) -> dict[str, Any]:
    """Train (or finish) one seed of ``arm``, evaluate it; its record."""
    from ..evaluate import evaluate_weights
    from ..train.run import read_grad_norms

    start = time.perf_counter()
    out = run_dir(runs, arm, seed)
    result = train_run(arm, seed, base, runs)
    weights = out / "final.safetensors"
    scores = {}
    for split, folder in (("val", val_dir), ("train", train_dir)):
        report = evaluate_weights(
            [weights], folder, crops=1, workers=0, backend="torch", amp="bf16",
            output=out / f"eval-{split}-1crop.json", plot=False,
        )  # fmt: skip
        scores[split] = report["top1"]
    rows = result["metrics"]
    steps = read_grad_norms(out, 10**12)
    stages = [k for k in (steps[0] if steps else {}) if k != "step"]
    return {
        "arm": arm.name,
        "seed": seed,
        "run_dir": str(out),
        "weights": str(weights),
        "val_top1": scores["val"],
        "train_top1": scores["train"],
        "overfit_gap": scores["train"] - scores["val"],
        "curves": {k: [r.get(k) for r in rows] for k in CURVE_KEYS},
        "train_images_per_s": statistics.median(r["images_per_s"] for r in rows),
        "grad_norms": {s: [r[s] for r in steps] for s in stages},
        "seconds": round(time.perf_counter() - start, 1),
    }


def costs(arms: list[Arm], base: dict[str, Any], classes: list[str], rounds: int = 5) -> dict:
    """What each arm's network costs, measured on the model ``googlenet train`` builds for it:
    parameters (those used at inference: the auxiliary heads are not), multiply-adds per image,
    training memory (counted, at the study's batch) and inference images/s (batch 32, eval
    mode, the training step's bf16 autocast and channels_last). The arms are timed in turns,
    one batch each, ``rounds`` times, and the fastest turn kept (timeit's rule: on a machine
    shared with other work, the slower turns measure the other work): a load that comes and
    goes then slows no arm more than another. The networks are built without their random
    initialization (a constant instead: the values change none of these costs, and drawing
    VGG-16's and the naive network's would take longer than timing them)."""
    from ..analysis import measure, params_of
    from ..runtime.device import pick_device
    from ..runtime.training import training_memory
    from ..train import TrainConfig
    from ..train.recipe import build_model

    out, models = {}, {}
    for arm in arms:
        cfg = TrainConfig(**arm.settings(base))
        with torch.device("meta"):
            model = build_model(cfg, classes, None)
        model = _filled(model.to_empty(device="cpu"))
        size = model.config.input_size
        params, macs = measure(model.eval(), torch.zeros(1, 3, size, size))
        aux = sum(params_of(a) for a in (model.aux1, model.aux2) if a is not None)
        memory = training_memory(model, torch.zeros(cfg.batch_size, 3, size, size))
        out[arm.name] = {
            "params": params - aux,
            "params_with_aux": params,
            "macs": macs,
            "train_memory_mb": (memory["weights"] + memory["activations"]) / 2**20,
            "memory_batch": cfg.batch_size,
        }
        models[arm.name] = model.eval().to(memory_format=torch.channels_last)
    times: dict[str, list[float]] = {name: [] for name in models}
    dev = pick_device(None)  # where the study trains: the GPU when there is one
    x = torch.randn(32, 3, size, size, device=dev).contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16):
        warm = 1 if rounds < 3 else 2  # the first turns create and warm the kernels
        for turn in range(rounds + warm):
            for name, model in models.items():
                model.to(dev)
                t = time.perf_counter()
                model(x)
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)
                if turn >= warm:
                    times[name].append(time.perf_counter() - t)
                model.cpu()  # one network on the device at a time
    for name in models:
        out[name]["infer_images_per_s"] = 32 / min(times[name])
    return out


def _filled(model: M, value: float = 0.01) -> M:
    """``model``'s tensors set to a constant: finite, and no subnormal numbers (which slow a CPU's
    arithmetic down) in memory that ``to_empty`` left as it found it."""
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            tensor.fill_(value) if tensor.is_floating_point() else tensor.zero_()
    return model


def table3(weights: list[str], val_dir: Path, out: Path, crops=(1, 10, 144)) -> dict[str, Any]:
    """The Table 3 grid: the seeds' models scored with 1, 10 and 144 crops, each alone and all
    averaged (``googlenet eval`` with several weights: softmax averaged over crops and models).
    Top-1 error per (crops, model or ensemble)."""
    from ..evaluate import evaluate_weights

    grid = {}
    for n in crops:
        report = evaluate_weights(
            weights, val_dir, crops=n, workers=0, backend="torch", amp="bf16",
            output=out / f"table3-{n}crops.json", plot=False,
        )  # fmt: skip
        members = report.get("members") or [{"top1": report["top1"]}]
        grid[str(n)] = {
            "alone": [round(100 - m["top1"], 4) for m in members],
            "ensemble": round(100 - report["top1"], 4),
            "images": report["n"],
        }
    return grid
