"""Hubs: save_pretrained / from_pretrained through huggingface_hub's mixin on local folders (no
network), the model card, and torch.hub.load on this checkout with source="local"."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers.inference import CLASSES, tiny_model

import googlenet

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model() -> googlenet.GoogLeNet:
    return tiny_model("paper", seed=3, aux_logits=False)


def logits(model: googlenet.GoogLeNet) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)))


def test_save_and_load_pretrained_give_the_same_logits(model, tmp_path):
    pytest.importorskip("huggingface_hub")
    model.save_pretrained(tmp_path / "saved")
    files = sorted(p.name for p in (tmp_path / "saved").iterdir())
    assert files == ["README.md", "config.json", "model.safetensors"]
    loaded = googlenet.from_pretrained(tmp_path / "saved")
    assert loaded.config == model.config
    assert torch.equal(logits(loaded), logits(model))
    again = googlenet.GoogLeNet.from_pretrained(str(tmp_path / "saved"))
    assert torch.equal(logits(again), logits(model))
    config = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert config["class_names"] == CLASSES and config["preset"] == "paper"


def test_model_card_names_preset_classes_data_and_metrics(model, tmp_path):
    pytest.importorskip("huggingface_hub")
    run = tmp_path / "run"
    run.mkdir()
    data = {"train": "/data/fruit/train", "train_images": 500, "val": None, "val_images": 0}
    (run / "config.json").write_text(json.dumps({"data": data}))
    with (run / "metrics.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, ["epoch", "train_loss", "val_top1"])
        writer.writeheader()
        writer.writerows([{"epoch": 1, "train_loss": 1.5, "val_top1": 40.0},
                          {"epoch": 2, "train_loss": 0.9, "val_top1": 61.25}])  # fmt: skip
    model.save_pretrained(tmp_path / "saved", run_dir=run)
    card = (tmp_path / "saved" / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: googlenet")
    assert "preset `paper`" in card and "elderberry" in card
    assert "/data/fruit/train (500 images)" in card and "| val_top1 | 61.25 |" in card
    model.save_pretrained(tmp_path / "bare")
    assert "Not recorded" in (tmp_path / "bare" / "README.md").read_text()


def test_from_pretrained_on_a_folder_without_weights_is_one_line(tmp_path):
    pytest.importorskip("huggingface_hub")
    with pytest.raises(googlenet.WeightsError, match="has no model.safetensors"):
        googlenet.from_pretrained(tmp_path)


def test_torch_hub_load_on_the_checkout(model, tmp_path):
    pretrained = tmp_path / "saved.safetensors"
    googlenet.save_weights(model, pretrained)
    loaded = torch.hub.load(str(ROOT), "googlenet", source="local", weights=str(pretrained))
    assert torch.equal(logits(loaded), logits(model))
    fresh = torch.hub.load(str(ROOT), "googlenet", source="local", preset="paper-bn",
                           num_classes=7, input_size=64)  # fmt: skip
    assert fresh.config.preset == "paper-bn" and fresh.config.num_classes == 7


@pytest.mark.slow
def test_import_googlenet_does_not_import_huggingface_hub():
    code = "import sys, googlenet; print('huggingface_hub' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_hub_extra_is_one_line_naming_it(model, tmp_path, monkeypatch):
    from googlenet import hub

    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails as if not installed
    hub._hub_class.cache_clear()
    try:
        with pytest.raises(googlenet.ConfigError, match=r"pip install 'googlenet\[hub\]'"):
            model.save_pretrained(tmp_path / "x")
    finally:
        hub._hub_class.cache_clear()
