"""Tiny image folders for the training, evaluation and distributed tests.

Each class has its own dominant color plus noise, so a network can tell them apart in a few steps
and accuracies mean something; images are small (40 x 36) and few.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

COLORS = [(220, 30, 30), (30, 200, 40), (40, 50, 230), (230, 220, 30), (200, 40, 210)]


def make_image_folder(
    root: Path, classes=("a", "b", "c"), per_class=4, seed=0, suffix="png"
) -> Path:
    rng = np.random.default_rng(seed)
    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            noise = rng.integers(-40, 40, (36, 40, 3))
            pixels = np.clip(np.array(COLORS[k % len(COLORS)]) + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{seed}-{i}.{suffix}")
    return root


def make_dataset(root: Path, classes=("a", "b", "c"), train=4, val=2, suffix="png") -> Path:
    """``root/train/<class>`` with ``train`` images per class and ``root/val/<class>``."""
    make_image_folder(root / "train", classes, train, seed=0, suffix=suffix)
    make_image_folder(root / "val", classes, val, seed=1, suffix=suffix)
    return root


# The tests' training run: tiny images, batches of 4, no loader processes, a log line per step.
FAST = ["--input-size", "32", "-b", "4", "-j", "0", "--print-freq", "1"]


def train_args(data: str = "data", out: str = "run", epochs: int = 1, *extra: str) -> list[str]:
    """``googlenet train``'s command line in the tests: ``data`` into ``out`` for ``epochs``, fast,
    then ``extra`` (later flags override FAST's)."""
    return ["train", "--data", data, "--output-dir", out, "--epochs", str(epochs), *FAST, *extra]
