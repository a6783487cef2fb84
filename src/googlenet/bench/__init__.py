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
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..model import GoogLeNet, create_model
from ..runtime.backends import (
    BACKENDS,
    available_backends,
    compile_module,
    default_backend,
    optimize_for_inference,
)
from ..runtime.device import amp_dtype, autocast, resolve_amp
from ..runtime.training import TrainStep, prepare_for_training
from ..weights import convert_torchvision_state_dict
from .measure import (
    cuda_peak,
    machine_info,
    matmul_peak,
    read_peak_rss,
    reset_peak_rss,
    time_rounds,
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


def _seed() -> None:
    torch.manual_seed(0)


def _realistic_weights(model: nn.Module) -> nn.Module:
    """Random weights that keep activations at the scale of a trained network's (about 1).

    Both inits the models come with shrink the signal layer after layer in eval mode
    (torchvision's normal(0, 0.01) leaves logits of ~1e-12 after the trunk): the deep layers
    then compute on subnormal floats, which x86 CPUs process tens of times slower, and a
    benchmark on them measures that, not the network. He (Kaiming) normal weights on the
    convolutions and fully connected layers keep the variance through the ReLUs."""
    _seed()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=m.in_features**-0.5)
    return model


def _ours(cfg: BenchConfig, aux: bool) -> GoogLeNet:
    """Our model. For the torchvision preset, the very weights of :func:`_torchvision`'s model,
    so that the two compute the same function."""
    _seed()
    model = create_model(
        cfg.preset, num_classes=NUM_CLASSES, aux_logits=aux, input_size=cfg.input_size
    )
    if cfg.preset == "torchvision":
        tv = _torchvision(cfg, aux).state_dict()
        model.load_state_dict(convert_torchvision_state_dict(tv))
        return model
    return _realistic_weights(model)


def _torchvision(cfg: BenchConfig, aux: bool) -> nn.Module:
    """torchvision's googlenet, :func:`_realistic_weights`; ``transform_input`` as our preset has
    it."""
    import torchvision

    _seed()
    transform = cfg.preset == "torchvision"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "scipy is slow" init warning
        net = torchvision.models.googlenet(
            weights=None, aux_logits=aux, init_weights=False, transform_input=transform
        )
    return _realistic_weights(net)


def _infer_call(net: Callable[[Tensor], Tensor], x: Tensor) -> Callable[[], Tensor]:
    def call() -> Tensor:
        with torch.inference_mode():
            return net(x)

    return call


def _train_call(model: nn.Module, x: Tensor, y: Tensor, *, amp: bool) -> Callable[[], Tensor]:
    """torchvision's googlenet: the textbook SGD-with-momentum step on main + 0.3 * (aux1 + aux2),
    the paper's loss (ours is :class:`googlenet.runtime.training.TrainStep`, the same work)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()

    def step() -> Tensor:
        with autocast(x.device, enabled=amp):
            out = model(x)
            logits, aux1, aux2 = out.logits, out.aux_logits1, out.aux_logits2
            loss = F.cross_entropy(logits, y) + 0.3 * (
                F.cross_entropy(aux1, y) + F.cross_entropy(aux2, y)
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


def _cl(x: Tensor) -> Tensor:
    return x.contiguous(memory_format=torch.channels_last)


def _tv_onnxruntime(cfg: BenchConfig) -> Callable[[Tensor], Callable[[], Any]]:
    """ONNX Runtime on torchvision's googlenet exported as is (ORT folds BN itself), in a session
    with ONNX Runtime's defaults (as a user would make it) on the bench's threads."""

    def build(x: Tensor) -> Callable[[], Any]:
        import onnxruntime as ort

        from ..runtime.sessions import onnx_bytes

        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.log_severity_level = 3
        graph = onnx_bytes(_torchvision(cfg, aux=False).eval(), cfg.input_size)
        session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        array = x.numpy()
        return lambda: session.run(None, {"images": array})

    return build


def _int8(cfg: BenchConfig) -> Callable[[Tensor], Callable[[], Any]]:
    def build(x: Tensor) -> Callable[[], Any]:
        from ..runtime.int8 import load_int8, quantize_int8

        _seed()
        calibration = torch.randn(2 * cfg.batch_size, 3, cfg.input_size, cfg.input_size)
        with tempfile.TemporaryDirectory(prefix="googlenet-bench-") as tmp:
            path = quantize_int8(_ours(cfg, aux=False).eval(), calibration, Path(tmp) / "int8.onnx")
            net = load_int8(path, _session_backend(cfg))
        return _infer_call(net, x)

    return build


def _session_backend(cfg: BenchConfig) -> str:
    backend = cfg.backend if cfg.backend != "auto" else default_backend(cfg.device)
    return backend if backend in ("onnxruntime", "openvino") else "onnxruntime"


def _ours_infer(cfg: BenchConfig, backend: str, amp: bool, x: Tensor) -> Callable[[], Any]:
    """Our inference call: the fast path on ``backend`` (what predict and eval run)."""
    model = _ours(cfg, aux=False).to(cfg.device).eval()
    return _infer_call(optimize_for_inference(model, backend, amp=amp), x)


def _tv_infer(
    cfg: BenchConfig, channels_last: bool, amp: bool, compiled: bool, x: Tensor
) -> Callable[[], Any]:
    """torchvision's googlenet as a user would run it: eager (or compiled), with autocast."""
    net = _torchvision(cfg, aux=False).to(cfg.device).eval()
    if channels_last:
        net, x = net.to(memory_format=torch.channels_last), _cl(x)
    run: Callable = compile_module(net, torch.device(cfg.device)) if compiled else net

    def call() -> Tensor:
        with torch.inference_mode(), autocast(cfg.device, enabled=amp):
            return run(x)

    return call


def infer_contenders(cfg: BenchConfig) -> list[Contender]:
    """Ours first (the ratios are ours / each baseline), then the baselines."""
    cuda = cfg.device == "cuda"
    backend = cfg.backend if cfg.backend != "auto" else default_backend(cfg.device)

    def ours(backend: str, amp: bool = False) -> Callable[[Tensor], Callable[[], Any]]:
        return functools.partial(_ours_infer, cfg, backend, amp)

    def tv(channels_last: bool, amp: bool = False, compiled: bool = False):
        return functools.partial(_tv_infer, cfg, channels_last, amp, compiled)

    out: list[Contender] = []

    def add(name, build, ours=False, dtype="fp32", baseline=None) -> None:
        family = "ours" if ours else "torchvision"
        out.append(Contender(name, "infer", ours, build, dtype, family, baseline))

    if cuda:
        add(f"googlenet {backend} fp32 channels_last", ours(backend), True)
        add("googlenet torch bf16 channels_last", ours("torch", True), True, "bf16")
        if cfg.compile:
            add("googlenet compiled bf16", ours("compile", True), True, "bf16")
        add("torchvision eager fp32 NCHW", tv(False), baseline="torchvision eager NCHW")
        add(
            "torchvision eager bf16 channels_last",
            tv(True, True),
            dtype="bf16",
            baseline="torchvision eager AMP channels_last",
        )
        if cfg.compile:
            add(
                "torchvision compiled bf16 channels_last",
                tv(True, True, True),
                dtype="bf16",
                baseline="torchvision compiled",
            )
        return out
    add(f"googlenet {backend}", ours(backend), True)
    if cfg.ablation:
        for extra in available_backends("cpu"):
            if extra != backend and (extra != "compile" or cfg.compile):
                add(f"googlenet {extra}", ours(extra), True)
        if "openvino" in available_backends("cpu") and amp_dtype("cpu") is not None:
            add("googlenet openvino bf16 (not exact)", ours("openvino", True), True, "bf16")
    if cfg.int8:
        add(f"googlenet int8 {_session_backend(cfg)}", _int8(cfg), True, "int8")
    add("torchvision eager NCHW", tv(False), baseline="torchvision eager NCHW")
    add("torchvision eager channels_last", tv(True), baseline="torchvision eager channels_last")
    if "onnxruntime" in available_backends("cpu"):
        add("torchvision onnxruntime", _tv_onnxruntime(cfg), baseline="torchvision onnxruntime")
    if cfg.compile:
        add(
            "torchvision compiled channels_last",
            tv(True, False, True),
            baseline="torchvision compiled",
        )
    return out


def train_contenders(cfg: BenchConfig) -> list[Contender]:
    """Ours (the TrainStep `googlenet train` runs) first, then torchvision's same step."""
    dev = cfg.device
    has_amp = resolve_amp("auto", dev) is not None

    def ours(amp: bool, merge: bool = True, compiled: bool = False):
        def build(x: Tensor) -> Callable[[], Any]:
            model = _ours(cfg, aux=True).to(dev)
            run = prepare_for_training(model, merge_1x1=merge, compile=compiled)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            step = TrainStep(run, optimizer, amp=resolve_amp("auto" if amp else "none", dev))
            y = _labels(cfg)
            model.train()
            return lambda: step(x, y)[1]

        return build

    def tv(channels_last: bool, amp: bool, compiled: bool = False):
        def build(x: Tensor) -> Callable[[], Any]:
            net = _torchvision(cfg, aux=True).to(dev)
            if channels_last:
                net, x = net.to(memory_format=torch.channels_last), _cl(x)
            run = torch.compile(net) if compiled else net
            return _train_call(run, x, _labels(cfg), amp=amp)

        return build

    out: list[Contender] = []
    amp = "bf16" if has_amp else "fp32"

    def add(name, build, ours=False, dtype="fp32", baseline=None) -> None:
        family = "ours" if ours else "torchvision"
        out.append(Contender(name, "train", ours, build, dtype, family, baseline))

    add(f"googlenet {amp} channels_last merged-1x1", ours(has_amp), True, amp)
    if cfg.ablation:
        add("googlenet fp32 channels_last", ours(False, False), True)
        add("googlenet fp32 channels_last merged-1x1", ours(False), True)
        if has_amp:
            add("googlenet bf16 channels_last", ours(True, False), True, "bf16")
    if cfg.compile:
        add(f"googlenet compiled {amp}", ours(has_amp, True, True), True, amp)
    add("torchvision NCHW fp32", tv(False, False), baseline="torchvision NCHW")
    add("torchvision channels_last fp32", tv(True, False), baseline="torchvision channels_last")
    if has_amp:
        add(
            "torchvision channels_last bf16",
            tv(True, True),
            dtype="bf16",
            baseline="torchvision channels_last bf16",
        )
    if cfg.compile:
        add(
            f"torchvision compiled {amp}",
            tv(True, has_amp, True),
            dtype=amp,
            baseline="torchvision compiled",
        )
    return out


def _labels(cfg: BenchConfig) -> Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, NUM_CLASSES, (cfg.batch_size,), generator=g).to(cfg.device)


def _images(cfg: BenchConfig, batch: int) -> Tensor:
    g = torch.Generator().manual_seed(2)
    return torch.randn(batch, 3, cfg.input_size, cfg.input_size, generator=g).to(cfg.device)


def contenders(cfg: BenchConfig, mode: str) -> list[Contender]:
    return infer_contenders(cfg) if mode == "infer" else train_contenders(cfg)


# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------


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
