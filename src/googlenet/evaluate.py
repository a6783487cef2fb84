"""Evaluation: top-1/top-5 with 1, 10 or the paper's 144 crops, one model or an ensemble.

As in the paper (section 7), the softmax probabilities are averaged over the crops of an image
and over the models of an ensemble, and the averaged distribution is what is ranked. Every
forward pass goes through :meth:`~googlenet.runtime.predictor.Predictor.logits`, as in `predict`.

The data's classes are matched to the weights' by name (a folder of 10 ImageNet classes can be
scored by a 1,000-class model); where the names do not overlap at all but the counts agree
(ImageNet's ``n01440764`` folders against torchvision's ``tench``), the folders in sorted order
are taken to be the weights' classes in order, with a warning.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from . import data
from .data import shards as data_shards
from .errors import ConfigError, DataError, GoogLeNetError, WeightsError
from .fileio import atomic_write_text
from .metrics import plot_confusion
from .model import GoogLeNetConfig
from .progress import Progress

if TYPE_CHECKING:
    from .runtime.predictor import Predictor

log = logging.getLogger(__name__)


from .runtime.evaluation import EvalCounts, evaluate  # noqa: E402

# ---------------------------------------------------------------------------------------------


def match_classes(config: GoogLeNetConfig, classes: list[str], weights: str | Path) -> Tensor:
    """For each class folder of the data, the index of that class in the model (see the module)."""
    names = list(config.class_names or [])
    if names and all(c in names for c in classes):
        return torch.tensor([names.index(c) for c in classes])
    overlap = set(names) & set(classes)
    if config.num_classes == len(classes) and not overlap:
        if names:
            log.warning(
                "%s: the class names of the weights (e.g. %r) are not the folder names (e.g. %r): "
                "assuming the sorted folders are the weights' classes in order",
                weights,
                names[0],
                classes[0],
            )
        return torch.arange(len(classes))
    missing = [c for c in classes if c not in names]
    raise WeightsError(
        f"{weights} was trained on {config.num_classes} classes"
        + (f" that do not include the data's {missing[0]!r}" if names else "")
        + f", the data has {len(classes)} ({', '.join(classes[:3])}, ...); evaluate weights "
        "trained on these classes"
    )


def load_models(
    weights: Sequence[str | Path], device: torch.device, backend: str = "auto", amp: bool = False
) -> list[Predictor]:
    """Load an ensemble; its members must preprocess alike and know the same classes.

    Each member is a :class:`~googlenet.predict.Predictor`: PyTorch weights run on ``backend``
    (by default the fast inference path), ``.onnx`` files (exported, or int8) on ONNX Runtime.
    """
    from .runtime.predictor import Predictor

    models = [Predictor.from_file(w, device=device, backend=backend, amp=amp) for w in weights]
    first = models[0].config
    for path, model in zip(weights[1:], models[1:], strict=True):
        c = model.config
        if (c.input_size, c.mean, c.std) != (first.input_size, first.mean, first.std):
            raise ConfigError(
                f"{path} expects {c.input_size} px input with mean {c.mean}, {weights[0]} "
                f"{first.input_size} px with mean {first.mean}: an ensemble needs one preprocessing"
            )
        if c.num_classes != first.num_classes or c.class_names != first.class_names:
            raise WeightsError(f"{path} and {weights[0]} do not know the same classes")
    return models


def evaluate_weights(
    weights: Sequence[str | Path],
    data_dir: str | Path,
    *,
    crops: int = 1,
    batch_size: int = 64,
    workers: int = 2,
    device: str | None = None,
    amp: str | None = None,
    backend: str = "auto",
    output: str | Path | None = None,
    strict: bool = False,
    resize: str = "shorter",
    plot: bool = True,
) -> dict[str, Any]:
    """``googlenet eval``: score weights (an ensemble if several) on an image folder.

    ``data_dir`` is a folder of class folders, or a dataset root with a ``val/`` inside.
    ``batch_size`` counts crops per forward pass, so memory does not grow with ``crops``.
    ``backend`` runs PyTorch weights (see :data:`googlenet.runtime.backends.BACKENDS`);
    ``amp="bf16"`` runs that backend in bf16 as ``predict --amp bf16`` does (the same
    probabilities), ``"fp16"`` the plain module under fp16 autocast (GPUs without bf16). Writes
    the report as JSON and the confusion matrix as PNG (unless ``plot`` is false) beside the
    first weights (or at ``output``) and returns the report. Unreadable images are named on
    stderr as they come, skipped and counted (``skipped`` in the report); ``strict`` stops at
    the first one. ``resize="squash"`` resizes to 256x256 before the crops (BVLC Caffe's test
    protocol).
    """
    from .runtime.device import pick_device

    start = time.perf_counter()
    dev = pick_device(device)
    fp16 = amp == "fp16"
    predictors = load_models(weights, dev, "eager" if fp16 else backend, amp=amp == "bf16")
    config = predictors[0].config
    transform = data.EvalTransform.for_model(config, crops, resize)
    dataset, loader = _eval_loader(data_dir, transform, max(1, batch_size // crops), workers, dev)
    folder = dataset.root
    label_map = match_classes(config, dataset.classes, weights[0])
    models = [p.logits for p in predictors]
    counts = evaluate(
        models,
        _Progress(loader, crops),
        dev,
        label_map=label_map,
        amp="fp16" if fp16 else None,
        on_skipped=_skip_or_stop(strict),
    )
    if counts.skipped:
        log.warning(
            "skipped %d unreadable image(s), e.g. %s", len(counts.skipped), counts.skipped[0]
        )
    if counts.n == 0:
        raise GoogLeNetError(f"no readable image in {folder}")
    report = _report(counts, dataset.classes, config, weights, folder, crops)
    report["resize"] = resize
    report["seconds"] = round(time.perf_counter() - start, 3)
    path = output or default_report_path(weights, crops)
    _write_report(report, counts, dataset.classes, path, plot)
    return report


def _eval_loader(
    data_dir: str | Path, transform, images_per_batch: int, workers: int, dev: torch.device
) -> tuple[Any, Any]:
    """The dataset and one-pass loader for ``data_dir``: tar shards (OUT, OUT/val, a pattern, a
    URL), a folder of class folders, or a dataset root with a ``val/`` inside."""
    if data_shards.is_shard_spec(data_dir):
        return data_shards.eval_loader(
            data_dir, transform, images_per_batch, workers, dev.type == "cuda"
        )
    folder = Path(data_dir) / "val" if (Path(data_dir) / "val").is_dir() else Path(data_dir)
    dataset = data.ImageFolder(folder, transform)
    sampler = data.ShardSampler(len(dataset))
    loader = data.make_loader(
        dataset, sampler, images_per_batch, workers, pin_memory=dev.type == "cuda"
    )
    return dataset, loader


def _skip_or_stop(strict: bool) -> Callable[[data.Skipped], None]:
    def report(item: data.Skipped) -> None:
        if strict:
            raise DataError(f"{item.reason} (--strict: stopping at the first unreadable image)")
        log.warning("skipped %s", item.reason)

    return report


def _report(
    counts: EvalCounts,
    classes: list[str],
    config: GoogLeNetConfig,
    weights,
    folder: Path,
    crops: int,
) -> dict[str, Any]:
    per_n = counts.confusion.sum(1)
    top5 = config.num_classes > 5  # else every image is in the top 5: a figure that means nothing
    per_class = {
        name: {
            "n": int(per_n[i]),
            "top1": _pct(counts.correct[i], per_n[i]),
            "top5": _pct(counts.top5_hits[i], per_n[i]) if top5 else None,
        }
        for i, name in enumerate(classes)
    }
    report: dict[str, Any] = {
        "top1": round(counts.top1, 4),
        "top5": round(counts.top5, 4) if top5 else None,
        "top1_error": round(100 - counts.top1, 4),
        "top5_error": round(100 - counts.top5, 4) if top5 else None,
        "n": counts.n,
        "crops": crops,
        "models": [str(w) for w in weights],
        "labels": run_labels(weights),
        "data": str(folder),
        "classes": len(classes),
        "loss": round(counts.loss, 6) if math.isfinite(counts.loss) else None,
        "skipped": len(counts.skipped),
        "input_size": config.input_size,
        "per_class": per_class,
    }
    if not top5:
        report["top5_note"] = f"n/a: the model knows {config.num_classes} classes, top-5 needs 6+"
    if counts.members is not None:
        report["members"] = [
            {
                "weights": str(w),
                "label": label,
                "top1": _pct(hits[0], counts.n),
                "top5": _pct(hits[1], counts.n) if top5 else None,
            }
            for w, label, hits in zip(weights, report["labels"], counts.members, strict=True)
        ]
    return report


def run_labels(weights: Sequence[str | Path]) -> list[str]:
    """A short name for each model: its file name, or ``run/file`` when file names repeat
    (``runA/best.safetensors``, ``runB/best.safetensors``)."""
    names = [Path(w).name for w in weights]
    if len(set(names)) == len(names):
        return names
    return [f"{Path(w).parent.name}/{Path(w).name}" for w in weights]


class _Progress:
    """The loader, shown as it goes (:class:`~googlenet.progress.Progress`: a tqdm bar on a
    terminal, else a log line with the rate and the ETA every few seconds)."""

    def __init__(self, loader, crops: int) -> None:
        self.loader, self.dataset, self.crops = loader, loader.dataset, crops

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        desc = f"eval, {self.crops} crop(s)"
        with Progress(len(self.loader), "batches", log.info, desc=desc, leave=False) as progress:
            for batch in self.loader:
                yield batch
                progress.update()


def _pct(hits, n) -> float | None:
    return round(100.0 * float(hits) / float(n), 4) if n else None


def default_report_path(weights: Sequence[str | Path], crops: int) -> Path:
    """Where ``eval`` writes its JSON report by default: beside the first weights."""
    first = Path(weights[0])
    ensemble = f".ensemble{len(weights)}" if len(weights) > 1 else ""
    return first.with_name(f"{first.stem}{ensemble}.eval-{crops}crop.json")


def _write_report(
    report: dict, counts: EvalCounts, classes: list[str], path: str | Path, plot: bool = True
) -> None:
    """The JSON report and, beside it, the confusion matrix PNG (data classes x the model's
    classes among them, plus one "other" column for predictions outside the data's classes)."""
    path = Path(path)
    png = path.with_suffix(".confusion.png")
    cols = counts.confusion[:, counts.label_map]
    col_names = list(classes)
    if counts.confusion.shape[1] > len(classes):
        other = counts.confusion.sum(1) - cols.sum(1)
        cols, col_names = torch.cat([cols, other.view(-1, 1)], 1), col_names + ["other"]
    report["json"], report["confusion_matrix"] = str(path), str(png) if plot else None
    try:
        if plot:
            title = f"{', '.join(report['labels'])}: top-1 {report['top1']:.2f}%"
            title = f"{title}, {report['crops']} crop(s)"
            plot_confusion(cols, classes, col_names, png, title=title)
        atomic_write_text(path, json.dumps(report, indent=2) + "\n")
    except GoogLeNetError as err:  # a read-only weights folder: the report is still printed
        log.warning("%s (pass --output to write the report elsewhere)", err)
        report["json"] = report["confusion_matrix"] = None


def render(report: dict[str, Any], fmt: str = "table", per_class: bool = False) -> str:
    """The report as a table for people or as JSON for programs."""
    if fmt == "json":
        return json.dumps(report, indent=2)
    models = report["models"]
    lines = [
        f"{len(models)} model(s): {', '.join(models)}",
        f"data: {report['data']} ({report['n']} images, {report['classes']} classes, "
        f"{report['crops']} crop(s) at {report['input_size']} px"
        + (", squashed to a square first)" if report.get("resize") == "squash" else ")"),
        "",
        f"{'':8}{'accuracy':>10}{'error':>10}",
        f"{'top-1':8}{report['top1']:>9.2f}%{report['top1_error']:>9.2f}%",
        f"{'top-5':8}{report['top5']:>9.2f}%{report['top5_error']:>9.2f}%"
        if report["top5"] is not None
        else f"{'top-5':8}{'n/a':>10}  ({report['top5_note'].removeprefix('n/a: ')})",
    ]
    for m in report.get("members", []):
        t5 = f", top-5 {m['top5']:.2f}%" if m["top5"] is not None else ""
        lines.append(f"  alone: {m['label']}: top-1 {m['top1']:.2f}%{t5}")
    if report["skipped"]:
        lines.append(f"skipped {report['skipped']} unreadable image(s)")
    if per_class:
        width = max(5, *(len(name) for name in report["per_class"])) + 2
        lines += ["", f"{'class':<{width}}{'n':>6}{'top-1':>9}{'top-5':>9}"]
        for name, c in report["per_class"].items():
            t1 = f"{c['top1']:.1f}%" if c["top1"] is not None else "-"
            t5 = f"{c['top5']:.1f}%" if c["top5"] is not None else "-"
            lines.append(f"{name:<{width}}{c['n']:>6}{t1:>9}{t5:>9}")
    if report.get("json"):
        wrote = [report["json"], report["confusion_matrix"]]
        lines += ["", "wrote " + " and ".join(str(w) for w in wrote if w)]
    return "\n".join(lines)
