"""``googlenet bench``: our inference and training speed against torchvision's, in one process.

Method (the point of this module is that its numbers can be trusted on a noisy, shared machine):

* every contender is built first, then warmed up (``warmup`` calls each, alternating), then timed
  in ``repeats`` rounds; each round calls every contender once, in an order rotated from round to
  round, so that a burst of load from elsewhere hits all of them alike, and ``settle`` idle
  seconds before each timed call so that one contender's spinning threads do not slow the next;
* random weights at a trained network's scale (:func:`_realistic_weights`), the same in ours and
  torchvision's model for the torchvision preset: with the models' own inits the deep layers
  compute on subnormal floats, which is slow on x86 and not what a trained network does;
* the figure is the **median** time per batch (min and max are kept in the JSON);
* ratios compare contenders **of the same run** only, three ways: the ratio of the medians
  (``ratios``, the headline), the median over rounds of the ratio within each round
  (``ratios_paired``: a burst of load that spans a round cancels out) and the ratio of the best
  times (``ratios_best``: the machine undisturbed). On a quiet machine the three agree; where
  they do not, the machine was busy and the paired figure is the one to trust;
* achieved FLOP/s uses the model's own count (``torch.utils.flop_counter.FlopCounterMode``, one
  multiply-add = 2 FLOPs; backward included for training) and is given as a fraction of the
  FLOP/s this machine reaches on a large matrix product (the best of several, before and after
  the contenders), measured in the same run (fp32, and bf16 for the contenders that compute in
  bf16): nanoGPT's MFU. The bf16 peak is measured again at the end as well;
* peak memory: on CPU the peak resident set size of a fresh process that builds and runs only
  that contender (``VmHWM`` after resetting it once the contender is built, so export and
  compilation are not counted); on CUDA ``torch.cuda.max_memory_allocated`` around its calls.

Contenders, inference: ours (:func:`googlenet.runtime.backends.optimize_for_inference`, the ``auto``
backend unless ``--backend`` says), torchvision's googlenet in eager mode (NCHW, channels_last)
and ONNX Runtime running torchvision's model exported to ONNX; ``--int8`` adds our int8 file.
Training: one step (forward with the auxiliary heads, loss = main + 0.3 * (aux1 + aux2), backward,
SGD with momentum) of ours -- :class:`googlenet.runtime.training.TrainStep` on a model made ready
by :func:`googlenet.runtime.training.prepare_for_training`, with ``--amp auto``: the very step
``googlenet train`` runs by default -- and of torchvision's googlenet, NCHW, channels_last, and
channels_last with the same bf16 autocast.
On CUDA: eager fp32, eager AMP (bf16) channels_last and, with ``--compile``, compiled.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..runtime.device import amp_dtype
from .config import MODES, BenchConfig, Contender, Result
from .contenders import (
    _images,
    _ours,
    _torchvision,
    contenders,
)
from .measure import (
    cuda_peak,
    machine_info,
    matmul_peak,
    read_peak_rss,
    reset_peak_rss,
    time_rounds,
)
from .report import render as render  # the CLI renders what run_bench returns


def flops_per_image(cfg: BenchConfig, family: str, mode: str) -> float:
    """FLOPs (2 per multiply-add) of one image through the model: forward for inference,
    forward with the auxiliary heads plus backward for training."""
    from torch.utils.flop_counter import FlopCounterMode

    train = mode == "train"
    model = _torchvision(cfg, aux=train) if family == "torchvision" else _ours(cfg, aux=train)
    model.train(train)
    x = torch.randn(2, 3, cfg.input_size, cfg.input_size)  # 2: BatchNorm in training needs >1
    counter = FlopCounterMode(display=False)
    with counter:
        if train:
            out = model(x) if family == "torchvision" else model(x, return_aux=True)
            sum(o.sum() for o in out if o is not None).backward()
        else:
            with torch.no_grad():
                model(x)
    return float(counter.get_total_flops()) / 2  # per image: the batch of 2 counted twice


def _peak_memory_probe(cfg: BenchConfig, mode: str, index: int) -> float | None:
    """Peak RSS (MB) of a fresh process that builds contender ``index`` and runs it twice."""
    args = json.dumps({"config": dataclasses.asdict(cfg), "mode": mode, "index": index})
    code = "import sys, googlenet.bench as b; b._memory_child(sys.argv[1])"
    env = os.environ | {"PYTHONWARNINGS": "ignore"}
    if cfg.threads:
        env["OMP_NUM_THREADS"] = str(cfg.threads)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code, args],
            capture_output=True,
            text=True,
            timeout=1800,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return None
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return None
    return json.loads(lines[-1])["peak_rss_mb"]


def _memory_child(arg: str) -> None:  # pragma: no cover - runs in a subprocess
    spec = json.loads(arg)
    cfg = BenchConfig(**spec["config"])
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    contender = contenders(cfg, spec["mode"])[spec["index"]]
    call = contender.build(_images(cfg, cfg.batch_size))
    reset = reset_peak_rss()
    for _ in range(2):
        call()
    peak = read_peak_rss() if reset else None
    if peak is None:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_rss_mb": peak}))


def _max_abs_diffs(
    cfg: BenchConfig, entries: list[Contender], calls: list[Callable[[], Any]], x: Tensor
) -> list[float | None]:
    """Our fp32 inference contenders against the plain model in eval mode, on the bench input:
    the speed must not come from computing something else."""
    checked = [e.ours and e.mode == "infer" and e.dtype == "fp32" for e in entries]
    if not any(checked):
        return [None] * len(entries)
    with torch.no_grad():
        reference = _ours(cfg, aux=False).to(cfg.device).eval()(x)
    return [
        float((call().float() - reference).abs().max()) if check else None
        for check, call in zip(checked, calls, strict=True)
    ]


def run_bench(cfg: BenchConfig, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure everything ``cfg`` asks for; returns the JSON-ready report."""
    say = progress or (lambda _msg: None)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.device == "cuda":
        torch.backends.cudnn.benchmark = True
    say("measuring the large-matmul peak")
    peaks = {"fp32": matmul_peak(cfg.device, torch.float32)}
    if amp_dtype(cfg.device) == torch.bfloat16:
        peaks["bf16"] = matmul_peak(cfg.device, torch.bfloat16)
    report: dict[str, Any] = {
        "config": dataclasses.asdict(cfg),
        "machine": machine_info(cfg.device),
        "matmul_peak_gflops": {k: v / 1e9 for k, v in peaks.items()},
    }
    modes = ["infer", "train"] if cfg.mode == "both" else [cfg.mode]
    for mode in modes:
        report[mode] = _bench_mode(cfg, mode, say)
    # The peak again after the runs; the larger of the two is the machine's.
    final = report["matmul_peak_gflops"]
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        if name in peaks:
            final[name] = max(final[name], matmul_peak(cfg.device, dtype) / 1e9)
    for mode in modes:
        for r in report[mode]["results"]:
            peak = final.get(r["dtype"]) if r["dtype"] in ("fp32", "bf16") else None
            r["fraction_of_peak"] = r["gflops_per_s"] / peak if peak else None
            nominal = report["machine"].get("nominal_bf16_tflops")
            if nominal:  # a GPU we know: the data sheet's dense bf16 peak too
                r["fraction_of_nominal_bf16"] = r["gflops_per_s"] / (1000 * nominal)
    return report


def _bench_mode(cfg: BenchConfig, mode: str, say: Callable[[str], None]) -> dict[str, Any]:
    entries = contenders(cfg, mode)
    x = _images(cfg, cfg.batch_size)
    flops = {fam: flops_per_image(cfg, fam, mode) for fam in {e.family for e in entries}}
    calls = []
    for e in entries:
        say(f"{mode}: building {e.name}")
        calls.append(e.build(x))
    diffs = _max_abs_diffs(cfg, entries, calls, x)
    say(f"{mode}: timing {len(calls)} contenders, {cfg.warmup} warm-up + {cfg.repeats} rounds")
    if cfg.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = time_rounds(calls, cfg.device, cfg.repeats, cfg.warmup, cfg.settle)
    latencies: list[float | None] = [None] * len(entries)
    if mode == "infer" and cfg.latency:
        say(f"{mode}: batch-1 latency")
        x1 = x[:1].clone()
        single = [e.build(x1) for e in entries]
        lat = time_rounds(single, cfg.device, max(cfg.repeats, 10), max(cfg.warmup, 2), cfg.settle)
        latencies = [1000 * statistics.median(t) for t in lat]
        del single
    memory: list[float | None] = [None] * len(entries)
    if cfg.memory:
        for i, e in enumerate(entries):
            say(f"{mode}: peak memory of {e.name}")
            memory[i] = (
                cuda_peak(calls[i]) if cfg.device == "cuda" else _peak_memory_probe(cfg, mode, i)
            )
    results = [
        _result(
            e, mode, times[i], cfg.batch_size, flops[e.family], latencies[i], memory[i], diffs[i]
        )
        for i, e in enumerate(entries)
    ]
    return {
        "flops_per_image": flops,
        "results": [dataclasses.asdict(r) for r in results],
        **_ratios(entries, results, times),
    }


def _result(
    e: Contender,
    mode: str,
    times: list[float],
    batch_size: int,
    flops: float,
    latency: float | None,
    memory: float | None,
    diff: float | None,
) -> Result:
    """One contender's row: the median of its rounds, as images/s and GFLOP/s."""
    median = statistics.median(times)
    ips = batch_size / median
    return Result(
        name=e.name,
        mode=mode,
        ours=e.ours,
        dtype=e.dtype,
        ms_per_batch=1000 * median,
        ms_min=1000 * min(times),
        ms_max=1000 * max(times),
        images_per_s=ips,
        gflops_per_s=flops * ips / 1e9,
        fraction_of_peak=None,  # filled in by run_bench with the final peak
        latency_ms_b1=latency,
        peak_memory_mb=memory,
        max_abs_diff=diff,
    )


def _ratios(
    entries: list[Contender], results: list[Result], times: list[list[float]]
) -> dict[str, dict[str, float]]:
    """Ours against each baseline, and each other form of ours against ours: the ratio of the
    medians, the median of the per-round ratios (paired), and the ratio of the best rounds."""
    ratios: dict[str, float] = {}
    paired: dict[str, float] = {}
    best: dict[str, float] = {}
    for i, (e, r) in enumerate(zip(entries, results, strict=True)):
        if i == 0 or not (e.baseline_key or e.ours):
            continue
        # "ours vs baseline" for the baselines, "variant vs ours" for other forms of ours
        # (int8, other backends, ablations): always > 1 when the first-named is faster.
        fast, slow = (0, i) if e.baseline_key else (i, 0)
        name = f"ours vs {e.baseline_key}" if e.baseline_key else f"{r.name} vs ours"
        ratios[name] = results[fast].images_per_s / results[slow].images_per_s
        paired[name] = statistics.median(
            b / a for a, b in zip(times[fast], times[slow], strict=True)
        )
        best[name] = min(times[slow]) / min(times[fast])
    return {"ratios": ratios, "ratios_paired": paired, "ratios_best": best}


__all__ = [
    "MODES",
    "BenchConfig",
    "Contender",
    "Result",
    "contenders",
    "flops_per_image",
    "infer_contenders",
    "render",
    "run_bench",
    "train_contenders",
]
