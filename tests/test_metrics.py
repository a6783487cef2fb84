"""metrics: the per-epoch log and the plots."""

from __future__ import annotations

import csv
import json

import torch
from PIL import Image

from googlenet.metrics import MetricsLog, plot_confusion, plot_curves


def test_metrics_log_rewrites_csv_and_jsonl_with_every_column(tmp_path):
    log = MetricsLog(tmp_path, rows=[{"epoch": 1, "train_loss": 2.0}])
    log.append({"epoch": 2, "train_loss": 1.5, "val_top1": 50.0})
    log.close()
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert rows[0]["val_top1"] == "" and rows[1]["val_top1"] == "50.0"
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["train_loss"] for line in lines] == [2.0, 1.5]


def test_curves_are_png_files_with_the_series(tmp_path):
    rows = [{"epoch": e, "train_loss": 3 - e, "val_top1": 10 * e} for e in range(1, 4)]
    paths = plot_curves(rows, tmp_path)
    assert {p.name for p in paths} == {"loss.png", "accuracy.png"}
    for p in paths:
        with Image.open(p) as img:
            assert img.format == "PNG" and img.size[0] > 100


def test_confusion_plot_is_written(tmp_path):
    matrix = torch.tensor([[3, 1], [0, 4]])
    path = plot_confusion(matrix, ["a", "b"], ["a", "b"], tmp_path / "c.png", title="t")
    with Image.open(path) as img:
        assert img.format == "PNG"
