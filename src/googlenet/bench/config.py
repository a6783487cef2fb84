"""What the bench measures: its configuration, a contender, a result row."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError
from ..model import create_model
from ..runtime.backends import (
    BACKENDS,
    available_backends,
)
from .report import render as render  # the CLI renders what run_bench returns

MODES = ("infer", "train", "both")
NUM_CLASSES = 1000


@dataclass
class BenchConfig:
    """What to measure; the defaults are the issue's setting (batch 32, 224x224, CPU)."""

    mode: str = "both"
    preset: str = "torchvision"
    batch_size: int = 32
    input_size: int = 224
    device: str = "cpu"
    repeats: int = 5
    warmup: int = 2
    backend: str = "auto"
    int8: bool = False
    compile: bool = False
    ablation: bool = False
    memory: bool = True
    latency: bool = True
    threads: int | None = None
    settle: float = 0.1  # idle seconds before each timed call (see _time_rounds)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.batch_size < 1 or self.repeats < 1 or self.warmup < 0:
            raise ConfigError("batch size and repeats must be at least 1, warmup at least 0")
        if not 0 <= self.settle <= 10:
            raise ConfigError(f"settle must be from 0 to 10 seconds, got {self.settle}")
        if self.backend not in BACKENDS:
            raise ConfigError(
                f"unknown backend {self.backend!r}; choose one of {', '.join(BACKENDS)}"
            )
        if self.device not in ("cpu", "cuda"):
            raise ConfigError(f"device must be cpu or cuda, got {self.device!r}")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("--device cuda asked for, but no CUDA GPU is available here")
        if self.backend != "auto" and self.backend not in available_backends(self.device):
            raise ConfigError(
                f"backend {self.backend} is not available on {self.device} here "
                f"(available: {', '.join(available_backends(self.device))})"
            )
        if self.int8 and self.device != "cpu":
            raise ConfigError("--int8 runs on the CPU (ONNX Runtime / OpenVINO)")
        probe = create_model(self.preset, aux_logits=False)
        if self.input_size < probe.min_input_size:
            raise ConfigError(
                f"input size {self.input_size} is too small for GoogLeNet "
                f"(at least {probe.min_input_size})"
            )


@dataclass
class Contender:
    """One thing to time: ``build()`` returns the zero-argument call that runs one batch."""

    name: str
    mode: str  # "infer" or "train"
    ours: bool
    build: Callable[[Tensor], Callable[[], Any]]
    dtype: str = "fp32"  # compute dtype, for the fraction of peak
    family: str = "ours"  # whose FLOP count: "ours" (the preset) or "torchvision"
    baseline_key: str | None = None  # names the ratio "ours vs <baseline_key>"


@dataclass
class Result:
    name: str
    mode: str
    ours: bool
    dtype: str
    ms_per_batch: float
    ms_min: float
    ms_max: float
    images_per_s: float
    gflops_per_s: float
    fraction_of_peak: float | None
    latency_ms_b1: float | None = None
    peak_memory_mb: float | None = None
    max_abs_diff: float | None = None


# ---------------------------------------------------------------------------------------------
# Models and steps
# ---------------------------------------------------------------------------------------------
