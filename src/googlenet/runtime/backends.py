"""The fast inference path: the same logits as ``model.eval()(x)``, in less time.

:func:`optimize_for_inference` turns a :class:`~googlenet.model.GoogLeNet` into an eval-only
callable that gives the plain model's logits (max abs difference at most 1e-4, in practice about
1e-6) with less work per image:

1. **BatchNorm folded into the convolutions** (``torchvision``, ``paper-bn``): at inference BN is a
   per-channel affine map, so ``bn(conv(x)) == conv'(x)`` with scaled weights and a bias. One pass
   over each activation map instead of two.
2. **The three 1x1 convolutions that read the same input merged** (``conv1x1``, ``reduce3x3``,
   ``reduce5x5`` in every Inception module): one convolution with their output channels stacked,
   then split. A 1x1 convolution is a matrix product, and one wide product uses the cores better
   than three thin ones (3a's reductions are only 96 and 16 wide). Exact. For the PyTorch and
   OpenVINO backends only: ONNX Runtime's blocked (NCHWc) layout pays a reorder at the split,
   and it runs the three apart faster (68.6 against 65.0 images/s).
3. **transform_input folded into conv1** (``torchvision``): the per-channel scale goes into conv1's
   weights, which is exact; the shift cannot be, since conv1 zero-pads its input and a shifted
   zero is not zero, so it stays as one add on the 3-channel input (cheap: 3 of conv1's 64 maps).
4. **LRN** (``paper``) computed as PyTorch does but with two square roots instead of ``pow``
   (:class:`FastLRN`); exported as the ``LRN`` operator for OpenVINO and as elementwise ops for
   ONNX Runtime, whichever each runs faster.
5. **channels_last** (NHWC) memory format for the PyTorch backends: oneDNN's and cuDNN's fast
   convolution kernels are NHWC, NCHW costs a reorder around every convolution.
6. **One session on all cores** for ONNX Runtime (:class:`SessionRunner`). Splitting the batch
   across single-threaded sessions, one per core, is opt-in (``split_batch=True``): 0.95x on an
   idle machine at batch 32, 1.1x while other processes load it; int8 files use it (1.4x).
7. **A backend**, measured on this project's CPU (2-core AMD EPYC Zen4; BENCHMARKS.md):

   * ``onnxruntime``: ONNX Runtime on our fused graph: ``auto``'s choice on a CPU. OpenVINO
     measured the same within this machine's noise (batch 32 and batch 1, torchvision and paper
     presets, several runs each way), and ONNX Runtime is the dependency the project already
     has for ONNX export and runs every input size.
   * ``openvino``: OpenVINO's CPU plugin on the same graph (``pip install
     'googlenet[openvino]'``), forced to fp32 (on a CPU with AVX512-BF16 it would otherwise
     silently compute in bf16, which breaks the 1e-4 contract). Its bf16 mode (``amp=True``)
     is the fastest way to run the network here, outside the contract. It refuses inputs under
     :func:`openvino_min_input_size` (a max pool larger than its input).
   * ``compile``: ``torch.compile`` with inductor and weight freezing. About 1.7x slower than
     the runtimes on this CPU and minutes of compilation on 2 cores; on CUDA it is the fast
     path (CUDA graphs).
   * ``torch``: the fused network in eager PyTorch, channels_last. Always works, any device; the
     fallback when neither runtime is installed, and ``auto``'s choice on CUDA.

   Why not more: in fp32 this CPU's convolutions already run at its large-matmul rate inside
   both runtimes (ONNX Runtime spends 84% of GoogLeNet's time in Conv, the rest in reorders,
   pools and concatenation), so an fp32 path can only trim that remainder. bf16 (``amp``,
   about 2x) and int8 (:mod:`googlenet.runtime.int8`, about 3x) go further, outside the 1e-4
   contract.

The fused network :class:`FusedGoogLeNet` is an ordinary ``nn.Module`` built from the model's own
blocks (:class:`~googlenet.model.ConvBlock`, the pools, the LRN, the classifier), so ``export``
can hand it to ``torch.onnx.export`` as well. Auxiliary heads and dropout are gone: they do
nothing at inference.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Literal, cast

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..model import GoogLeNet, GoogLeNetConfig, check_input
from .fuse import FusedGoogLeNet, fuse
from .sessions import SessionRunner, onnx_bytes

# "auto" picks the fastest for the device (default_backend); "eager" runs the GoogLeNet module
# itself, unfused: the reference every other backend is tested against.
Backend = Literal["auto", "eager", "torch", "compile", "onnxruntime", "openvino"]
BACKENDS: tuple[str, ...] = ("auto", "eager", "torch", "compile", "onnxruntime", "openvino")


class InferenceModel:
    """What :func:`optimize_for_inference` returns: ``model(images) -> logits``, eval only.

    ``images`` is an N x 3 x H x W float tensor (any memory format); the logits come back as an
    N x num_classes float32 tensor on the images' device. ``backend`` says what runs it,
    ``config`` is the source model's configuration (classes, mean/std, input size) and
    ``module`` the fused PyTorch network the session backends were exported from (``None`` for
    an int8 file, which has no PyTorch form).
    """

    def __init__(
        self,
        config: GoogLeNetConfig,
        backend: str,
        run: Callable[[Tensor], Tensor],
        *,
        min_input_size: int,
        module: FusedGoogLeNet | None = None,
    ) -> None:
        self.config = config
        self.backend = backend
        self.min_input_size = min_input_size
        self.module = module
        self._run = run

    def __call__(self, images: Tensor) -> Tensor:
        check_input(images, self.min_input_size)
        with torch.inference_mode():
            return self._run(images)

    def __repr__(self) -> str:
        return f"InferenceModel(preset={self.config.preset!r}, backend={self.backend!r})"


def _torch_runner(
    net: Callable[[Tensor], Tensor], channels_last: bool, amp: bool, device: torch.device
) -> Callable[[Tensor], Tensor]:
    def run(x: Tensor) -> Tensor:
        x = x.to(device, torch.float32)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            return net(x).float()

    return run


def available_backends(device: str | torch.device = "cpu") -> list[Backend]:
    """The concrete backends that can run here on ``device`` (installed packages, device type)."""
    import importlib.util

    if torch.device(device).type != "cpu":
        return ["torch", "compile"]
    found: list[Backend] = ["torch", "compile"]
    sessions: tuple[Backend, ...] = ("onnxruntime", "openvino")
    found += [b for b in sessions if importlib.util.find_spec(b) is not None]
    return found


def openvino_min_input_size(model: GoogLeNet) -> int:
    """The smallest square input OpenVINO runs ``model`` at.

    OpenVINO refuses a max pool whose window is larger than its input, which PyTorch's (and
    ONNX's) ceil mode accepts: the paper's 3x3/2 pool after 4e meets a 2x2 map below 48 px.
    """
    pools = [model.maxpool1, model.maxpool2, model.maxpool3, model.maxpool4]
    size = model.min_input_size
    while True:
        inputs = model.spatial_sizes(size)[:4]  # what each of the four pools reads
        if all(_first(p.kernel_size) <= n for p, n in zip(pools, inputs, strict=True)):
            return size
        size += 1


def _first(v: int | tuple[int, ...]) -> int:
    return v[0] if isinstance(v, tuple) else v


def default_backend(device: str | torch.device = "cpu", amp: bool = False) -> Backend:
    """``auto``'s choice: on a CPU ONNX Runtime if installed, else OpenVINO, else PyTorch; on
    other devices PyTorch. With ``amp`` (bf16) on a CPU: OpenVINO, else PyTorch (ONNX Runtime
    has no bf16 convolutions). Why, in the module docstring."""
    available = available_backends(device)
    order: tuple[Backend, ...] = ("openvino",) if amp else ("onnxruntime", "openvino")
    for backend in order:
        if backend in available:
            return backend
    return "torch"


def optimize_for_inference(
    model: GoogLeNet,
    backend: Backend = "auto",
    *,
    device: str | torch.device | None = None,
    channels_last: bool = True,
    amp: bool = False,
    num_threads: int | None = None,
    compile_mode: str | None = None,
) -> InferenceModel:
    """The fast, numerically equivalent inference form of ``model``: ``f(images) -> logits``.

    ``backend``: ``auto`` (:func:`default_backend`: OpenVINO or ONNX Runtime on a CPU, eager
    PyTorch on CUDA), ``torch``,
    ``compile``, ``onnxruntime`` or ``openvino``; why each, in the module docstring. ``device``
    defaults to the model's. ``channels_last`` applies to the PyTorch backends. ``amp=True``
    computes in bf16 (PyTorch backends: autocast; ``openvino``: its bf16 precision hint): the
    GPU's fast path and about 1.9x on this AVX512-BF16 CPU, but *not* within the 1e-4 contract
    (bf16 keeps 8 bits of mantissa), so off by default. ``num_threads`` for the session
    backends (default: torch's; see :class:`SessionRunner` for how they are used).
    ``compile_mode`` is passed to ``torch.compile`` (default: weight freezing on CPU,
    ``reduce-overhead``, i.e. CUDA graphs, on CUDA).

    The model is not changed; the returned callable holds its own (folded) copy of the weights.
    """
    device = torch.device(device if device is not None else next(model.parameters()).device)
    backend = _resolve_backend(model, backend, device, amp)
    if backend == "eager":  # the module itself, as it is: no copy, no fusion
        run = _torch_runner(model.eval(), channels_last=False, amp=amp, device=device)
        return InferenceModel(model.config, backend, run, min_input_size=model.min_input_size)
    if not fusable(model.config):  # a study variant: unfused, but in the fast memory format
        own = copy.deepcopy(model).eval().to(device)
        if channels_last:
            own = own.to(memory_format=torch.channels_last)
        run = _torch_runner(own, channels_last, amp, device)
        return InferenceModel(model.config, backend, run, min_input_size=model.min_input_size)
    min_size = model.min_input_size
    if backend == "openvino":
        min_size = max(min_size, openvino_min_input_size(model))
    # ONNX Runtime runs the three 1x1s faster apart: its blocked (NCHWc) layout pays a reorder
    # at the split of a merged one (measured: 68.6 against 65.0 images/s, BENCHMARKS.md).
    net = fuse(model, merge_1x1=backend != "onnxruntime").to(device=device, dtype=torch.float32)
    wrap = functools.partial(
        InferenceModel, net.config, backend, min_input_size=min_size, module=net
    )
    if backend in ("onnxruntime", "openvino"):
        graph = onnx_bytes(net.cpu(), model.config.input_size, native_lrn=backend == "openvino")
        return wrap(SessionRunner(graph, backend, num_threads, bf16=amp))

    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels
    runnable: nn.Module | Callable = net
    if backend == "compile":
        runnable = compile_module(net, device, compile_mode)
    return wrap(_torch_runner(runnable, channels_last, amp, device))


def _resolve_backend(model: GoogLeNet, backend: str, device: torch.device, amp: bool) -> Backend:
    """``auto`` made concrete for ``device``, and a one-line error for a backend that cannot run
    this model here (unknown, on the wrong device, or asked for bf16 it does not have)."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda asked for, but no CUDA GPU is available")
    config = model.config
    if not fusable(config):
        # The fused form is written for the paper's modules and head; the variants that
        # ``googlenet study`` trains run unfused: ``torch`` (``auto``'s choice) in channels_last
        # (2.2x the images/s of NCHW for GoogLeNet at 64 px, bf16, on this CPU), or ``eager``.
        if backend not in ("auto", "eager", "torch"):
            raise ConfigError(
                f"backend {backend} fuses the paper's network; this one ({config.arch}, "
                f"{config.inception} Inception modules, {config.head} head) runs on torch or "
                "eager"
            )
        return "eager" if backend == "eager" else "torch"
    if backend == "auto":
        backend = default_backend(device, amp)
        if backend == "openvino" and model.config.input_size < openvino_min_input_size(model):
            backend = "torch"  # OpenVINO would refuse the model's own input size
    if backend in ("onnxruntime", "openvino") and device.type != "cpu":
        raise ConfigError(
            f"backend {backend} runs on the CPU here; use torch or compile on {device}"
        )
    if amp and backend == "onnxruntime":
        raise ConfigError("amp (bf16) runs on the torch, compile and openvino backends")
    return cast(Backend, backend)  # one of BACKENDS: checked above


def fusable(config: GoogLeNetConfig) -> bool:
    """Whether :func:`~googlenet.runtime.fuse.fuse` applies: the paper's modules and head."""
    return (config.arch, config.inception, config.head) == ("googlenet", "reduced", "gap")


def compile_module(net: nn.Module, device: torch.device, mode: str | None = None) -> Callable:
    """``torch.compile`` for inference: freezing (weights become constants that inductor can
    pre-pack for oneDNN) on CPU; on CUDA ``reduce-overhead``: CUDA graphs replay the whole network
    as one launch, which matters at small batches where GoogLeNet's ~60 small kernels are bound by
    launch latency. (``max-autotune`` also searches kernel configurations: minutes of compile
    time, too long for ``benchmarks/gpu.sh``'s five-minute budget.)"""
    if device.type == "cuda":
        return torch.compile(net, mode=mode or "reduce-overhead", dynamic=False)
    if mode is not None:
        return torch.compile(net, mode=mode, dynamic=False)
    return torch.compile(net, options={"freezing": True}, dynamic=False)
