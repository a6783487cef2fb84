"""``googlenet demo``: the digits written as an image folder, and the pipeline end to end."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from PIL import Image

from googlenet.demo import write_digits


def listing(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.png"))


def test_digits_become_a_fixed_stratified_image_folder(tmp_path):
    from sklearn.datasets import load_digits

    assert write_digits(tmp_path / "one") == (1438, 359)
    assert write_digits(tmp_path / "two") == (1438, 359)
    assert listing(tmp_path / "one") == listing(tmp_path / "two")  # the split is fixed by seed

    per_class = Counter(load_digits().target.tolist())
    for split, share in (("val", 0.2), ("train", 0.8)):
        for digit in range(10):
            n = len(list((tmp_path / "one" / split / str(digit)).glob("*.png")))
            assert abs(n - share * per_class[digit]) <= 1, (split, digit)

    first = sorted((tmp_path / "one" / "train" / "0").glob("*.png"))[0]
    with Image.open(first) as img:
        assert img.mode == "L" and img.size == (8, 8)
        pixels = np.asarray(img)
    original = load_digits().images[int(first.stem)]
    assert np.array_equal(pixels, (255 - np.round(original * 255 / 16)).astype(np.uint8))
    # A complete folder is reused: nothing is rewritten.
    before = first.stat().st_mtime_ns
    assert write_digits(tmp_path / "one") == (1438, 359)
    assert first.stat().st_mtime_ns == before


@pytest.mark.slow
def test_demo_runs_the_whole_pipeline(tmp_path, run_cli):
    proc = run_cli("demo", "--output-dir", "demo", "--limit", "200", "--epochs", "1", check=True)
    out = proc.stdout
    assert "digits: 160 train + 40 val images" in out
    assert "1 crop(s) at 32 px" in out and "10 crop(s) at 32 px" in out
    assert "a few predictions" in out and "predicted" in out
    for name in (
        "best.safetensors",
        "final.safetensors",
        "polyak.safetensors",
        "metrics.csv",
        "loss.png",
        "accuracy.png",
        "last.pt",
    ):
        assert name in out and (tmp_path / "demo" / "run" / name).is_file()
    assert "demo: val top-1" in out and "s wall time" in out
    again = run_cli("demo", "--output-dir", "demo", "--limit", "200", "--epochs", "1", check=True)
    assert "epoch 1/1" not in again.stderr  # a finished run is re-evaluated, not retrained
