"""Two processes on gloo over the loopback, in-process (no torchrun): for tests of one torchrun
step, which need a process group but not a whole run. ``run_ranks(fn, tmp)`` spawns the ranks,
each calling ``fn(rank, world, tmp)``; ``fn`` must be importable (defined in a module here)."""

from __future__ import annotations

import multiprocessing
import os
import socket
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(fn, rank: int, world: int, port: int, tmp: Path) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
        OMP_NUM_THREADS="1",
    )
    import torch

    torch.set_num_threads(1)
    fn(rank, world, tmp)


def run_ranks(fn, tmp: Path, world: int = 2, timeout: float = 120) -> None:
    """Run ``fn`` on ``world`` ranks; fails (naming the exit codes) unless every rank exits 0."""
    ctx = multiprocessing.get_context("spawn")
    port = free_port()
    procs = [ctx.Process(target=_rank_main, args=(fn, r, world, port, tmp)) for r in range(world)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout)
    for p in procs:
        if p.is_alive():
            p.kill()
    codes = [p.exitcode for p in procs]
    assert codes == [0] * world, f"rank exit codes {codes}"
