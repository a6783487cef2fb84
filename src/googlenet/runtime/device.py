"""Where and in what precision a network runs: one ``--device`` rule and one ``--amp`` rule
for every command (:func:`pick_device`, :data:`AMP_DTYPES`, :func:`amp_dtype`, :func:`autocast`)."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from ..errors import ConfigError

# The precisions --amp names (besides "none" and "auto").
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# --amp's values, the same in every subcommand: auto = bf16 where the hardware does it fast, else
# fp32; none = fp32.
AMP_CHOICES = ("auto", "bf16", "fp16", "none")


def pick_device(name: str | torch.device | None, local_rank: int = 0) -> torch.device:
    """``--device`` for every command: ``cpu``, ``cuda`` (this process's GPU under torchrun),
    ``cuda:N``, ``mps``, or None/``auto`` for the best here (CUDA, else MPS, else the CPU).
    An unknown or unavailable device is a one-line :class:`ConfigError`."""
    if name is None or str(name) == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        else:
            name = "mps" if torch.backends.mps.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError) as err:
        raise ConfigError(
            f"unknown device {str(name)!r}: --device must be auto, cpu, cuda, cuda:N or mps"
        ) from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {name}: CUDA is not available on this machine")
        return torch.device("cuda", local_rank) if dev.index is None else dev
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"--device {name}: MPS is not available on this machine")
    if dev.type not in ("cpu", "mps"):
        raise ConfigError(f"--device must be auto, cpu, cuda, cuda:N or mps, got {str(name)!r}")
    return dev


def amp_dtype(device: str | torch.device) -> torch.dtype | None:
    """bf16 where the hardware does it fast (AVX512-BF16/AMX CPUs, CUDA since Ampere), else None."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu":
        # torch's own probes (private, hence the getattr): AVX512-BF16 or AMX tiles.
        probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        fast = any(getattr(torch.cpu, p, lambda: False)() for p in probes)
        return torch.bfloat16 if fast else None
    return None


@contextlib.contextmanager
def autocast(device: str | torch.device, enabled: bool = True) -> Iterator[None]:
    """bf16 autocast for forward and loss (fp16 on pre-Ampere GPUs: use a GradScaler there).

    A no-op where the hardware has no fast bf16 (:func:`amp_dtype` is None) or ``enabled`` is
    false, so the loop can always wrap its step in it.
    """
    device = torch.device(device)
    dtype = amp_dtype(device) if enabled else None
    if dtype is None:
        yield
        return
    with torch.autocast(device.type, dtype=dtype):
        yield


def resolve_amp(amp: str | None, device: str | torch.device) -> torch.dtype | None:
    """The dtype autocast runs in for ``--amp`` on ``device``; None is plain fp32.

    ``auto`` is bf16 where :func:`amp_dtype` says the hardware does bf16 fast (never fp16, which
    needs loss scaling and can overflow: asked for by name only), else fp32.
    """
    if amp in (None, "none"):
        return None
    if amp == "auto":
        return torch.bfloat16 if amp_dtype(device) == torch.bfloat16 else None
    if amp == "bf16":
        return torch.bfloat16
    if amp == "fp16":
        return torch.float16
    raise ConfigError(f"--amp must be one of {', '.join(AMP_CHOICES)}, got {amp!r}")


def idle_cpus(interval: float = 0.25, stat: Path = Path("/proc/stat")) -> float | None:
    """How many CPUs sat idle over the next ``interval`` seconds (Linux's /proc/stat); None where
    it cannot be read."""

    def read() -> tuple[int, int, int]:
        lines = stat.read_text().splitlines()
        fields = [int(v) for v in lines[0].split()[1:]]
        cpus = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
        return sum(fields[:8]), fields[3] + fields[4], cpus  # total, idle + iowait (jiffies)

    try:
        total0, idle0, cpus = read()
        time.sleep(interval)
        total1, idle1, _ = read()
    except (OSError, ValueError, IndexError):
        return None
    return cpus * (idle1 - idle0) / max(total1 - total0, 1)


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity mask, else ``os.cpu_count()``."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return available or os.cpu_count() or 1


def cpu_threads(available: int, idle: float | None) -> int:
    """Threads for ``--threads auto``: the usable CPUs that are idle now, at least one.

    Why not all of them: the OpenMP threads of every layer wait for each other at its end, and
    one thread sharing a core with another busy process makes the others spin until the
    scheduler gives it back. Measured with the demo's step on the 2-core machine under load
    (BENCHMARKS.md): 2 threads ran 5x slower than 1.
    """
    if idle is None:
        return available
    return max(1, min(available, int(idle + 0.5)))


def training_threads(threads: int | str | None, log: logging.Logger | None = None) -> int:
    """The thread count a training run computes on, fixed before its first step and recorded.

    ``threads`` is ``--threads``: a number; None (the default) for a count that does not depend on
    the machine's load: ``OMP_NUM_THREADS`` when set, else every usable CPU; ``auto`` for the
    CPUs idle now (:func:`cpu_threads`: faster on a busy machine, but another load gives another
    count, and another count sums floats in another order, so other weights). The default also
    samples the load, only to warn on ``log`` (given where the CPUs compute the step): with CPUs
    busy it is several times slower than ``auto``.
    """
    if threads is not None and threads != "auto":
        return int(threads)
    available = usable_cpus()
    if threads is None and os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    if threads is None and log is None:
        return available
    fit = cpu_threads(available, idle_cpus())
    if threads == "auto":
        return fit
    if fit < available and log is not None:
        log.warning(
            "%d of %d CPUs are busy with other processes: this run computes on %d threads, so "
            "that its weights do not depend on the load, and may run several times slower; "
            "--threads %d (or auto) is faster now, but gives other weights than --threads %d",
            available - fit,
            available,
            available,
            fit,
            available,
        )
    return available


def set_deterministic(device: torch.device, on: bool = True) -> None:
    """``--deterministic``: torch's deterministic algorithms (an op that has none stops the run
    with an error rather than vary), and on CUDA what they need besides: cuBLAS's fixed
    workspace (``CUBLAS_WORKSPACE_CONFIG``, read when cuBLAS starts: set before the first
    matmul), cuDNN's deterministic kernels and no benchmarking (which picks kernels by timing,
    so by the machine's load). The thread count is fixed by :func:`training_threads`."""
    if on and device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(on)
    torch.backends.cudnn.deterministic = on
    if on:
        torch.backends.cudnn.benchmark = False
