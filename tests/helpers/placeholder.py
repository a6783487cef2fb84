"""A torchrun step in which rank 0 has no readable image (tests/test_distributed.py): rank 0
takes the placeholder step, rank 1 trains on a batch; each saves its weights before and after."""

from __future__ import annotations

from pathlib import Path

import torch


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    return torch.randn(4, 3, 32, 32, generator=g), torch.tensor([0, 1, 2, 1])


def build(distributed_env: bool):
    """The model and loop of both the ranks and the single-process reference: same seed, no
    dropout (masks are drawn per process), fp32."""
    from googlenet.model import create_model
    from googlenet.runtime import distributed
    from googlenet.train.config import TrainConfig
    from googlenet.train.loop import make_loop

    d = (
        distributed.setup("cpu")
        if distributed_env
        else distributed.Dist(device=torch.device("cpu"))
    )
    torch.manual_seed(0)
    raw = create_model("paper-bn", num_classes=3, input_size=32, dropout=0.0, aux_dropout=0.0)
    cfg = TrainConfig(data="unused", input_size=32, amp="none", lr=0.1, schedule="cosine")
    return make_loop(cfg, raw, d, steps_per_epoch=10)


def rank_step(rank: int, world: int, tmp: Path) -> None:
    from googlenet.runtime import distributed
    from googlenet.train.loop import placeholder_step, train_step

    loop = build(distributed_env=True)
    before = {k: v.clone() for k, v in loop.raw.state_dict().items()}
    if rank == 0:
        placeholder_step(loop)
    else:
        train_step(loop, *batch())
    after = {k: v.clone() for k, v in loop.raw.state_dict().items()}
    torch.save({"before": before, "after": after}, tmp / f"rank{rank}.pt")
    distributed.cleanup()
