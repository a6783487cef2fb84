"""The contenders, side by side: our inference path and training step, torchvision's googlenet
as users run it (eager NCHW and channels_last, its own bf16, ONNX Runtime on its export), int8,
all on the same weights at a trained network's scale."""

from __future__ import annotations

import functools
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..model import GoogLeNet, create_model
from ..runtime.backends import (
    Backend,
    available_backends,
    compile_module,
    default_backend,
    optimize_for_inference,
)
from ..runtime.device import amp_dtype, autocast, resolve_amp
from ..runtime.training import TrainStep, prepare_for_training
from ..weights import convert_torchvision_state_dict
from .config import NUM_CLASSES, BenchConfig, Contender
from .report import render as render  # the CLI renders what run_bench returns


def _seed() -> None:
    torch.manual_seed(0)


_M = TypeVar("_M", bound=nn.Module)


def _realistic_weights(model: _M) -> _M:
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
    # BenchConfig checked its backend against BACKENDS
    backend = cast(Backend, cfg.backend) if cfg.backend != "auto" else default_backend(cfg.device)
    return backend if backend in ("onnxruntime", "openvino") else "onnxruntime"


def _ours_infer(cfg: BenchConfig, backend: Backend, amp: bool, x: Tensor) -> Callable[[], Any]:
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
    # BenchConfig checked its backend against BACKENDS
    backend = cast(Backend, cfg.backend) if cfg.backend != "auto" else default_backend(cfg.device)

    def ours(backend: Backend, amp: bool = False) -> Callable[[Tensor], Callable[[], Any]]:
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
            # torch.compile of a module is a module (OptimizedModule); its stub says Callable
            run = cast(nn.Module, torch.compile(net)) if compiled else net
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
