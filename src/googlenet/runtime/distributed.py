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

from .device import pick_device

# Under NCCL, a gloo group for the few flags the ranks agree on before every step (a stop signal,
# a batch without images): CPU tensors, so that reading the answer does not wait for the GPU.
_control: dist.ProcessGroup | None = None


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
        timeout = datetime.timedelta(minutes=30)
        store, rank, world = next(dist.rendezvous("env://", timeout=timeout))
        # torchrun keeps one TCP store for all the restarts of a job (--max-restarts), and the
        # keys of an attempt outlive it: a restarted rank could read the address of a process
        # that died in the attempt before and fail to connect ("Gloo connectFullMesh failed ...
        # Connection refused"). A prefix per attempt keeps them apart.
        attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
        dist.init_process_group(
            backend="nccl" if dev.type == "cuda" else "gloo",
            store=dist.PrefixStore(f"googlenet/attempt{attempt}", store),
            rank=rank,
            world_size=world,
            timeout=timeout,
            device_id=dev if dev.type == "cuda" else None,
        )
        global _control
        # new_group's stub adds GroupMember.NON_GROUP_MEMBER (-100), which a rank of it never gets
        _control = dist.new_group(backend="gloo") if dev.type == "cuda" else None  # type: ignore[assignment]
    return Dist(rank=rank, world=world, local_rank=local_rank, device=dev)


def joined() -> bool:
    """Whether this process is in a process group already (a caller set it up: the study)."""
    return dist.is_initialized()


def cleanup() -> None:
    global _control
    if dist.is_initialized():
        dist.destroy_process_group()
    _control = None


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Sum a few numbers over the ranks (counts, loss sums); identity in a single process."""
    if not dist.is_initialized():
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def all_reduce_max(values: list[float], device: torch.device) -> list[float]:
    """The largest of each number over the ranks (flags, a signal number); identity alone.
    Host-side values: on the CPU through the control group when there is one."""
    if not dist.is_initialized():
        return list(values)
    on = torch.device("cpu") if _control is not None else device
    t = torch.tensor(values, dtype=torch.float64, device=on)
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=_control)
    return t.tolist()


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank if ``flag`` is true on any (a NaN seen by one rank stops all of them)."""
    return all_reduce_sum([float(flag)], device)[0] > 0


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
