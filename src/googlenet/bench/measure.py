"""How the bench measures: timing rounds, the large-matmul peak, peak memory, the machine."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from typing import Any

import torch

# Nominal dense bf16 tensor-core peaks (FLOP/s) of GPUs we may meet, from the vendors' data
# sheets; the measured large-matmul figure is reported beside it.
GPU_BF16_PEAK = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "A10": 125e12}


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def matmul_peak(device: str, dtype: torch.dtype, repeats: int = 5) -> float:
    """FLOP/s of a large square matrix product: the machine's practical peak for ``dtype``.

    The best of ``repeats`` (not the median): a peak is what the machine can do, and on a
    shared machine every disturbance only lowers it. n = 3072 on a CPU (58 GFLOP, a fraction of
    a second at the fp32 rate of 2 Zen4 cores; smaller products do not reach the peak).
    """
    n = 8192 if device == "cuda" else 3072
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b  # warm-up: first-call allocation and kernel selection
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def time_rounds(
    calls: list[Callable[[], Any]], device: str, repeats: int, warmup: int, settle: float = 0.0
) -> list[list[float]]:
    """Warm up then time ``repeats`` rounds, each calling every contender once, rotated.

    ``settle`` seconds of idle time come before each timed call: ONNX Runtime's and OpenMP's
    worker threads spin for a while after a call returns, and on 2 cores the spinning threads
    of one contender took a core from the next (ONNX Runtime at batch 1: 42 ms alternating
    back to back, 17 ms with 0.1 s between calls, 15 ms alone)."""
    for _ in range(warmup):
        for call in calls:
            call()
    sync(device)
    times: list[list[float]] = [[] for _ in calls]
    for r in range(repeats):
        order = list(range(len(calls)))
        order = order[r % len(order) :] + order[: r % len(order)]
        for i in order:
            sync(device)
            time.sleep(settle)
            t = time.perf_counter()
            calls[i]()
            sync(device)
            times[i].append(time.perf_counter() - t)
    return times


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux 4.0+: write 5 to clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def read_peak_rss() -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def cuda_peak(call: Callable[[], Any]) -> float:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    call()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 2**20


def machine_info(device: str) -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": device,
    }
    try:
        import torchvision

        info["torchvision"] = torchvision.__version__
    except ImportError:  # pragma: no cover
        pass
    for pkg in ("onnxruntime", "openvino"):
        try:
            info[pkg] = __import__(pkg).__version__
        except ImportError:
            pass
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
        nominal = [v for k, v in GPU_BF16_PEAK.items() if k in info["gpu"]]
        info["nominal_bf16_tflops"] = nominal[0] / 1e12 if nominal else None
    else:
        info["cpu"] = cpu_name()
        info["cores"] = os.cpu_count()
    return info


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
