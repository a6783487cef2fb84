"""Models and images that the predict, CAM and export tests make for themselves.

Random weights are fine for checking that two ways of running a network agree, as long as the
activations do not vanish: a freshly initialized BatchNorm network (the torchvision preset) has
running statistics (0, 1) that do not match its activations, so :func:`calibrate` sets them from
a batch first, which gives logits of a realistic size.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, ImageDraw
from torch import nn

import googlenet
from googlenet.data import EvalTransform

CLASSES = ["apple", "Banana", "cherry", "date", "elderberry"]
INPUT_SIZE = 64


def picture(seed: int, size: tuple[int, int] = (80, 64)) -> Image.Image:
    """A small RGB picture: a two-color background and a few filled shapes, different per seed."""
    gen = torch.Generator().manual_seed(seed)

    def color() -> tuple[int, int, int]:
        return tuple(int(v) for v in torch.randint(0, 256, (3,), generator=gen))

    width, height = size
    img = Image.new("RGB", size, color())
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, height // 2, width, height], fill=color())
    for _ in range(3):
        x, y = (int(v) for v in torch.randint(0, min(size) // 2, (2,), generator=gen))
        draw.ellipse([x, y, x + width // 3, y + height // 3], fill=color())
    return img


def write_pictures(folder: Path, count: int, start: int = 0, suffix: str = ".png") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + count):
        path = folder / f"img{i}{suffix}"
        picture(i, (80 + 8 * (i % 3), 64)).save(path)
        paths.append(path)
    return paths


def calibrate(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """Set every BatchNorm's running statistics from the batch ``x``; returns the model in eval."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average: exactly this batch's statistics
    model.train()
    with torch.no_grad():
        model(x)
    return model.eval()


def tiny_model(preset: str = "paper", seed: int = 0, **overrides) -> googlenet.GoogLeNet:
    """A 5-class model at input size 64 with aux heads, random but with realistic activations."""
    torch.manual_seed(seed)
    model = googlenet.create_model(
        preset, num_classes=len(CLASSES), input_size=INPUT_SIZE, class_names=CLASSES, **overrides
    )
    transform = EvalTransform.for_model(model.config)
    batch = torch.cat([transform(picture(100 + i)) for i in range(8)])
    return calibrate(model, batch)


def run_main(capsys, *args) -> tuple[int, str, str]:
    """``googlenet ARGS`` in this process (no interpreter start-up): (exit code, stdout, stderr).

    The subprocess fixture ``run_cli`` costs seconds per call on a busy machine; the tests use
    it where the real process matters (no traceback, the exit status) and this elsewhere.
    """
    from googlenet.cli import main

    capsys.readouterr()
    try:
        code = main([str(a) for a in args])
    except SystemExit as exit:  # argparse errors
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err
