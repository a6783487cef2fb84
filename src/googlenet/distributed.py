"""torchrun support: one process per GPU (or per CPU slot), DDP, I/O on rank 0 only.

``torchrun --nproc-per-node N -m googlenet train ...`` starts N copies of the command with
``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` in their environment; :func:`setup` reads them and
joins the process group: NCCL when the processes drive CUDA devices, gloo on CPUs (where the same
code is tested with 2 processes). Without those variables everything here is a no-op and the run
is an ordinary single process.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .errors import ConfigError


@dataclass(frozen=True)
class Dist:
    """Where this process stands: its rank among ``world`` processes and the device it drives."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that prints, writes files and draws the progress bar."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def pick_device(name: str | None, local_rank: int = 0) -> torch.device:
    """``--device``: ``cuda`` (this process's GPU under torchrun), ``cpu``, or None for the best."""
    if name is None:
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda was asked for but CUDA is not available")
        return torch.device("cuda", local_rank) if name == "cuda" else torch.device(name)
    if name != "cpu":
        raise ConfigError(f"--device must be cpu or cuda[:N], got {name!r}")
    return torch.device("cpu")


def setup(device: str | None = None) -> Dist:
    """Join the process group if torchrun started us; pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(device=pick_device(device))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(
            backend="nccl" if dev.type == "cuda" else "gloo",
            timeout=datetime.timedelta(minutes=30),
            device_id=dev if dev.type == "cuda" else None,
        )
    return Dist(rank=rank, world=world, local_rank=local_rank, device=dev)


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Sum a few numbers over the ranks (counts, loss sums); identity in a single process."""
    if not dist.is_initialized():
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank if ``flag`` is true on any (a NaN seen by one rank stops all of them)."""
    return all_reduce_sum([float(flag)], device)[0] > 0


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
