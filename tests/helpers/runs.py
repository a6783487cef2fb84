"""Comparing two training runs that should agree up to float summation order (helpers for the
distributed tests; see tests/test_distributed.py for why these tolerances)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file


def initial(classes: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """The weights a run with seed 0, 32 px, no dropout starts from."""
    import googlenet

    torch.manual_seed(0)
    model = googlenet.create_model(
        "paper",
        num_classes=len(classes),
        input_size=32,
        dropout=0.0,
        aux_dropout=0.0,
        class_names=classes,
    )
    return dict(model.state_dict())


def assert_same_training(one: Path, two: Path, start: dict[str, torch.Tensor]) -> None:
    """final and polyak weights of runs ``one`` and ``two`` agree: each tensor within 10% of its
    own displacement from ``start``, all together within 2%; every tensor trained."""
    for name in ("final.safetensors", "polyak.safetensors"):
        a, b = load_file(one / name), load_file(two / name)
        assert a.keys() == b.keys()
        moved = {k: float((a[k] - start[k]).norm()) for k in a}
        apart = {k: float((b[k] - a[k]).norm()) for k in a}
        assert all(moved[k] > 0 for k in a)  # every tensor trained: the comparison means something
        worst = max(a, key=lambda k: apart[k] / moved[k])
        assert apart[worst] <= 0.10 * moved[worst], (name, worst, apart[worst] / moved[worst])
        total_apart = sum(v**2 for v in apart.values()) ** 0.5
        assert total_apart <= 0.02 * sum(v**2 for v in moved.values()) ** 0.5, name
