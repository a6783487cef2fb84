"""Numbers and pictures: top-k, confusion matrices, the per-epoch log (CSV, JSONL, TensorBoard)
and the PNG plots. Shared by training and evaluation; every file is written atomically."""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from .fileio import atomic_save, atomic_write_text

log = logging.getLogger(__name__)


class MetricsLog:
    """One row per epoch, kept in memory and rewritten whole (atomically) to ``metrics.csv`` and
    ``metrics.jsonl``, so the files are never half-written and a resumed run, which restores the
    rows from its checkpoint, never duplicates or loses one. TensorBoard event files go to
    ``tensorboard/`` when tensorboard is installed."""

    def __init__(self, out_dir: Path, rows: list[dict[str, Any]] | None = None) -> None:
        self.out_dir = out_dir
        self.rows: list[dict[str, Any]] = list(rows or [])
        self._tb = _tensorboard_writer(out_dir / "tensorboard", purge_step=len(self.rows) + 1)

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        columns = list(dict.fromkeys(key for r in self.rows for key in r))
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.out_dir / "metrics.csv", text.getvalue())
        lines = "".join(json.dumps(r) + "\n" for r in self.rows)
        atomic_write_text(self.out_dir / "metrics.jsonl", lines)
        if self._tb is not None:
            for key, value in row.items():
                if isinstance(value, int | float) and key != "epoch" and math.isfinite(value):
                    self._tb.add_scalar(key, value, row["epoch"])
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def _tensorboard_writer(path: Path, purge_step: int):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # the optional extra is not installed
        log.debug(
            "tensorboard is not installed: no event files (pip install googlenet[tensorboard])"
        )
        return None
    return SummaryWriter(str(path), purge_step=purge_step)


# ---------------------------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------------------------


def pyplot() -> Any:
    """matplotlib's pyplot on the file-only Agg backend (no display needed), imported on use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path, dpi: int = 110) -> Path:
    """``fig`` as a PNG at ``path``, written atomically, then closed."""
    atomic_save(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight"))
    pyplot().close(fig)
    return path


def plot_curves(rows: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """``loss.png`` (train loss, main and auxiliary) and ``accuracy.png`` (val top-1/top-5, the
    Polyak average's top-1) from the per-epoch rows."""
    plt = pyplot()

    def series(key: str) -> tuple[list[int], list[float]]:
        pts = [(r["epoch"], r[key]) for r in rows if isinstance(r.get(key), int | float)]
        pts = [(e, v) for e, v in pts if math.isfinite(v)]
        return [e for e, _ in pts], [v for _, v in pts]

    paths = []
    for name, keys, ylabel in (
        (
            "loss",
            ("train_loss", "train_loss_main", "train_loss_aux1", "train_loss_aux2", "val_loss"),
            "loss",
        ),
        ("accuracy", ("train_top1", "val_top1", "val_top5", "polyak_top1"), "accuracy (%)"),
    ):
        fig, ax = plt.subplots(figsize=(6, 4))
        for key in keys:
            x, y = series(key)
            if y:
                ax.plot(x, y, marker="o" if len(x) < 30 else None, label=key)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
        paths.append(save_figure(fig, out_dir / f"{name}.png"))
    return paths


def plot_confusion(
    matrix: Tensor, row_names: Sequence[str], col_names: Sequence[str], path: Path, title: str = ""
) -> Path:
    """A confusion matrix as a PNG: rows true classes, columns predictions, counts normalized per
    row. Class names are written along the axes up to 40 classes."""
    plt = pyplot()
    counts = matrix.double()
    rates = counts / counts.sum(dim=1, keepdim=True).clamp(min=1)
    side = min(12.0, 3 + 0.3 * max(len(row_names), len(col_names)))
    fig, ax = plt.subplots(figsize=(side, side * len(row_names) / max(len(col_names), 1) + 1))
    image = ax.imshow(rates.numpy(), cmap="Blues", vmin=0, vmax=1, aspect="auto")
    fig.colorbar(image, ax=ax, fraction=0.046, label="fraction of the true class")
    if len(col_names) <= 40:
        ax.set_xticks(range(len(col_names)), col_names, rotation=90, fontsize=8)
    if len(row_names) <= 40:
        ax.set_yticks(range(len(row_names)), row_names, fontsize=8)
        if len(col_names) <= 40:
            for i in range(len(row_names)):
                for j in range(len(col_names)):
                    if counts[i, j] > 0:
                        color = "white" if rates[i, j] > 0.5 else "black"
                        ax.text(
                            j,
                            i,
                            int(counts[i, j]),
                            ha="center",
                            va="center",
                            fontsize=7,
                            color=color,
                        )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    return save_figure(fig, path)
