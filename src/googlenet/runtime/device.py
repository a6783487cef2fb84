"""Where and in what precision a network runs: one ``--device`` rule and one ``--amp`` rule
for every command (:func:`pick_device`, :data:`AMP_DTYPES`, :func:`amp_dtype`, :func:`autocast`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from ..errors import ConfigError

# The precisions --amp names (besides "none" and "auto").
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


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
