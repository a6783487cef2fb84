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
   about 2x) and int8 (:mod:`googlenet.quantize`, about 3x) go further, outside the 1e-4
   contract.

The fused network :class:`FusedGoogLeNet` is an ordinary ``nn.Module`` built from the model's own
blocks (:class:`~googlenet.model.ConvBlock`, the pools, the LRN, the classifier), so ``export``
can hand it to ``torch.onnx.export`` as well. Auxiliary heads and dropout are gone: they do
nothing at inference.
"""

from __future__ import annotations

import copy
import functools
import io
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from .errors import ConfigError, GoogLeNetError
from .model import ConvBlock, GoogLeNet, GoogLeNetConfig, InceptionModule, check_input

Backend = Literal["auto", "torch", "compile", "onnxruntime", "openvino"]
BACKENDS: tuple[str, ...] = ("auto", "torch", "compile", "onnxruntime", "openvino")

# torchvision's transform_input: x' = x * scale + shift per channel (GoogLeNet._transform_input).
_TRANSFORM_SCALE = (0.229 / 0.5, 0.224 / 0.5, 0.225 / 0.5)
_TRANSFORM_SHIFT = ((0.485 - 0.5) / 0.5, (0.456 - 0.5) / 0.5, (0.406 - 0.5) / 0.5)


# ---------------------------------------------------------------------------------------------
# The fused network
# ---------------------------------------------------------------------------------------------


def fold_batchnorm(block: ConvBlock) -> ConvBlock:
    """A copy of ``block`` with its BatchNorm's running statistics folded into the convolution.

    ``bn(conv(x)) = gamma * (w*x - mean) / sqrt(var + eps) + beta``, a convolution with weights
    ``w * gamma / sqrt(var + eps)`` and bias ``beta - mean * gamma / sqrt(var + eps)``. A block
    without BatchNorm (the paper) is copied unchanged. Valid in eval mode only.
    """
    block = copy.deepcopy(block)
    if block.bn is not None:
        bn, conv = block.bn, block.conv
        assert bn.running_mean is not None and bn.running_var is not None
        conv.weight, conv.bias = fuse_conv_bn_weights(
            conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias
        )
        block.bn = None
    return block


def merge_convs(blocks: list[ConvBlock]) -> ConvBlock:
    """One 1x1 :class:`ConvBlock` whose output channels are the ``blocks``' outputs, stacked.

    The blocks must read the same input and have no BatchNorm left (fold it first). Exact: each
    output channel is computed from the same weights as before, only in one matrix product.
    """
    convs = [b.conv for b in blocks]
    if any(b.bn is not None for b in blocks) or any(c.kernel_size != (1, 1) for c in convs):
        raise ValueError("merge_convs takes 1x1 blocks with BatchNorm already folded")
    w0 = convs[0].weight
    merged = ConvBlock(convs[0].in_channels, sum(c.out_channels for c in convs), 1)
    merged = merged.to(device=w0.device, dtype=w0.dtype)
    with torch.no_grad():
        merged.conv.weight.copy_(torch.cat([c.weight for c in convs]))
        biases = [
            c.bias if c.bias is not None else torch.zeros_like(c.weight[:, 0, 0, 0]) for c in convs
        ]
        merged.conv.bias.copy_(torch.cat(biases))  # type: ignore[union-attr]
    return merged


class FusedInception(nn.Module):
    """An :class:`InceptionModule` for inference: BN folded, the three 1x1s on the input merged.

    ``reduce1x1`` computes ``conv1x1``, ``reduce3x3`` and ``reduce5x5`` at once (channels in that
    order, widths in ``splits``); the 3x3, 5x5 and pool branches are the module's own blocks.
    With ``merge=False`` the three stay separate (``heads``): ONNX Runtime runs them faster so.
    """

    def __init__(self, module: InceptionModule, merge: bool = True) -> None:
        super().__init__()
        heads = [fold_batchnorm(getattr(module, n)) for n in ("conv1x1", "reduce3x3", "reduce5x5")]
        self.splits = [b.conv.out_channels for b in heads]
        self.reduce1x1 = merge_convs(heads) if merge else None
        self.heads = None if merge else nn.ModuleList(heads)
        self.conv3x3 = fold_batchnorm(module.conv3x3)
        self.conv5x5 = fold_batchnorm(module.conv5x5)
        self.pool = module.pool
        self.pool_proj = fold_batchnorm(module.pool_proj)

    def forward(self, x: Tensor) -> Tensor:
        if self.reduce1x1 is not None:
            # N x C_in x H x W -> N x (c1x1 + c3x3_reduce + c5x5_reduce) x H x W, split in three
            b1, r3, r5 = self.reduce1x1(x).split(self.splits, 1)
        else:
            b1, r3, r5 = (head(x) for head in self.heads)  # type: ignore[union-attr]
        b4 = self.pool_proj(self.pool(x))
        return torch.cat([b1, self.conv3x3(r3), self.conv5x5(r5), b4], 1)


class _LRNFunction(torch.autograd.Function):
    """Local response norm as the ONNX ``LRN`` operator when exported (see :class:`FastLRN`)."""

    @staticmethod
    def forward(ctx, x: Tensor, size: int, alpha: float, beta: float, k: float) -> Tensor:  # type: ignore[override]
        return F.local_response_norm(x, size, alpha, beta, k)

    @staticmethod
    def symbolic(g, x, size: int, alpha: float, beta: float, k: float):  # pragma: no cover
        return g.op("LRN", x, size_i=size, alpha_f=alpha, beta_f=beta, bias_f=k)


class FastLRN(nn.Module):
    """``nn.LocalResponseNorm`` (same parameters, same result) written for speed.

    ``y = x / (k + alpha / size * sum of x**2 over size neighbouring channels) ** beta``. The sum
    is one average pool over the channel axis (as PyTorch computes it), and for the paper's
    beta = 0.75 the power is ``sqrt(t) * sqrt(sqrt(t))``: two square roots are far cheaper than
    ``pow``'s exp and log, and exact to rounding.

    Exported to ONNX it is either these few elementwise ops or, with ``native_op``, the ``LRN``
    operator (the same formula: for an odd ``size`` its channel window is PyTorch's). Measured
    on the paper preset (batch 8, this CPU): OpenVINO's ``LRN`` kernel is 1.25x faster than the
    decomposition, ONNX Runtime's is 1.2x slower (it takes a third of the network's time), so
    each backend gets its faster form.
    """

    def __init__(self, lrn: nn.LocalResponseNorm) -> None:
        super().__init__()
        self.size, self.alpha, self.beta, self.k = lrn.size, lrn.alpha, lrn.beta, lrn.k
        self.native_op = True

    def forward(self, x: Tensor) -> Tensor:
        if self.size % 2 == 0:  # PyTorch's window is lopsided for even sizes: use its own code
            return F.local_response_norm(x, self.size, self.alpha, self.beta, self.k)
        if self.native_op and torch.onnx.is_in_onnx_export():
            return _LRNFunction.apply(x, self.size, self.alpha, self.beta, self.k)
        pad = self.size // 2
        # N x 1 x C x H x W: average x**2 over `size` channels, zeros beyond the edges.
        mean = F.avg_pool3d((x * x).unsqueeze(1), (self.size, 1, 1), 1, (pad, 0, 0)).squeeze(1)
        t = mean * self.alpha + self.k
        if self.beta == 0.75:
            root = t.sqrt()
            return x / (root * root.sqrt())
        return x / t.pow(self.beta)


class FusedGoogLeNet(nn.Module):
    """GoogLeNet's inference network, fused: ``forward(x)`` returns the same logits as the model.

    Built from a :class:`GoogLeNet` (which it does not modify or keep): BN folded into every
    convolution, ``transform_input`` folded into conv1, the 1x1s of each Inception module merged,
    LRN exportable as one operator, no auxiliary heads or dropout. Eval-only.
    """

    def __init__(self, model: GoogLeNet, merge_1x1: bool = True) -> None:
        super().__init__()
        self.config: GoogLeNetConfig = model.config
        self.min_input_size = model.min_input_size
        self.conv1 = fold_batchnorm(model.conv1)
        self.input_shift: Tensor | None
        self.register_buffer("input_shift", None)
        if model.config.transform_input:
            # x' = scale * x + shift. conv(pad0(scale * x)) == conv_{w * scale}(pad0(x)) exactly;
            # the shift stays outside because conv1 pads with zeros: x + shift / scale.
            scale = torch.tensor(_TRANSFORM_SCALE, dtype=torch.float64)
            shift = torch.tensor(_TRANSFORM_SHIFT, dtype=torch.float64)
            w = self.conv1.conv.weight
            with torch.no_grad():
                w.copy_((w.double() * scale.view(1, 3, 1, 1).to(w.device)).to(w.dtype))
            self.input_shift = (shift / scale).view(1, 3, 1, 1).to(w.device, w.dtype)
        self.maxpool1 = model.maxpool1
        self.norm1 = FastLRN(model.norm1) if model.norm1 is not None else None
        self.conv2 = fold_batchnorm(model.conv2)
        self.conv3 = fold_batchnorm(model.conv3)
        self.norm2 = FastLRN(model.norm2) if model.norm2 is not None else None
        self.maxpool2 = model.maxpool2
        # inception3a ... inception5b with maxpool3/maxpool4 between them, in the model's order.
        self.inceptions = nn.Sequential()
        for name, child in model.named_children():
            if isinstance(child, InceptionModule):
                self.inceptions.add_module(name, FusedInception(child, merge_1x1))
            elif name in ("maxpool3", "maxpool4"):
                self.inceptions.add_module(name, child)
        self.fc = copy.deepcopy(model.fc)
        self.eval()

    def train(self, mode: bool = True) -> FusedGoogLeNet:
        if mode:
            raise GoogLeNetError("a fused GoogLeNet is for inference only: train the GoogLeNet")
        return super().train(False)

    def forward(self, x: Tensor) -> Tensor:
        check_input(x, self.min_input_size)
        if self.input_shift is not None:
            x = x + self.input_shift
        # N x 3 x 224 x 224
        x = self.maxpool1(self.conv1(x))
        # N x 64 x 56 x 56
        if self.norm1 is not None:
            x = self.norm1(x)
        x = self.conv3(self.conv2(x))
        # N x 192 x 56 x 56
        if self.norm2 is not None:
            x = self.norm2(x)
        x = self.inceptions(self.maxpool2(x))
        # N x 1024 x 7 x 7
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        # N x 1024
        return self.fc(x)


def fuse(model: GoogLeNet, *, native_lrn: bool = True, merge_1x1: bool = True) -> FusedGoogLeNet:
    """The fused inference network of ``model`` (a new module on the same device; fp32).

    ``native_lrn=False`` keeps LRN as elementwise ops in an ONNX export (any exporter, any
    runtime) instead of the ``LRN`` operator (see :class:`FastLRN`). ``merge_1x1=False`` keeps
    each Inception module's three 1x1 convolutions apart (what ONNX Runtime runs fastest)."""
    if not isinstance(model, GoogLeNet):
        raise ConfigError(f"expected a GoogLeNet, got {type(model).__name__}")
    net = FusedGoogLeNet(model, merge_1x1)
    for module in net.modules():
        if isinstance(module, FastLRN):
            module.native_op = native_lrn
    return net


# ---------------------------------------------------------------------------------------------
# Backends
# ---------------------------------------------------------------------------------------------


def onnx_bytes(
    net: nn.Module, input_size: int = 224, opset: int = 17, native_lrn: bool = True
) -> bytes:
    """``net`` exported to ONNX in memory, batch and spatial size dynamic.

    ``native_lrn``: local response norm as the ``LRN`` operator, else as elementwise ops (see
    :class:`FastLRN` for which runtime prefers which).

    The TorchScript exporter (``dynamo=False``): it takes about a second here against 15-20 s for
    the dynamo exporter, and the graph is the same plain Conv/Relu/MaxPool/Concat chain.
    """
    import warnings

    for module in net.modules():
        if isinstance(module, FastLRN):
            module.native_op = native_lrn
    device = next(net.parameters()).device
    example = torch.zeros(1, 3, input_size, input_size, device=device)
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (example,),
            buf,
            input_names=["images"],
            output_names=["logits"],
            dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"}, "logits": {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
    return buf.getvalue()


def _require(module: str, extra: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise ConfigError(f"backend needs the '{module}' package: pip install 'googlenet[{extra}]'")


def ort_session(model: bytes | str, num_threads: int | None = None):
    """An ONNX Runtime CPU session with every graph optimization on (NCHWc kernels included).

    Without ONNX Runtime's memory pattern (a plan that pre-allocates one block for all of a
    run's activations): 150 MB less peak memory at batch 32 (1072 against 1223 MB for the
    process), the same speed at batch 32 and batch 1."""
    _require("onnxruntime", "onnx")
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_mem_pattern = False
    options.intra_op_num_threads = num_threads or torch.get_num_threads()
    options.log_severity_level = 3
    model = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def openvino_model(
    model: bytes | str, num_threads: int | None = None, streams: int = 1, bf16: bool = False
):
    """An OpenVINO CPU model: for latency with one stream, for throughput with ``streams``
    streams sharing ``num_threads`` threads. fp32 unless ``bf16`` (see the module docstring)."""
    _require("openvino", "openvino")
    import openvino as ov

    core = ov.Core()
    read = core.read_model(model, b"") if isinstance(model, bytes) else core.read_model(str(model))
    config = {
        "PERFORMANCE_HINT": "LATENCY" if streams == 1 else "THROUGHPUT",
        "NUM_STREAMS": streams,
        "INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32",
        "INFERENCE_NUM_THREADS": num_threads or torch.get_num_threads(),
    }
    return core.compile_model(read, "CPU", config)


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
    net: nn.Module, channels_last: bool, amp: bool, device: torch.device
) -> Callable[[Tensor], Tensor]:
    def run(x: Tensor) -> Tensor:
        x = x.to(device, torch.float32)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            return net(x).float()

    return run


def _numpy_in(x: Tensor) -> np.ndarray:
    return x.detach().to("cpu", torch.float32).contiguous().numpy()


class SessionRunner:
    """``images -> logits`` on an ONNX model (bytes or a path) with ONNX Runtime or OpenVINO.

    Two ways to use ``num_threads`` cores:

    * one session that uses every thread (the default);
    * with ``split_batch=True`` (ONNX Runtime), a batch of at least ``num_threads`` images is
      cut into ``num_threads`` slices that run at the same time on single-threaded sessions,
      one slice per core. Measured here at batch 32: about 1.1x the single session while other
      processes loaded the machine (a core never waits for the other at a layer's end), but
      0.95x on an idle machine, so it is off by default.

    Each kind of session is created on first use, so a workload of large batches holds only
    the sliced sessions and one of single images only the other (each holds its own copy of the
    weights, about 30 MB in fp32). Sessions are thread-safe; calls from several threads at once
    are serialized on the slices.
    """

    def __init__(
        self,
        graph: bytes | str,
        backend: str,
        num_threads: int | None = None,
        bf16: bool = False,
        split_batch: bool = False,
    ) -> None:
        if backend not in ("onnxruntime", "openvino"):
            raise ConfigError(f"an ONNX model runs on onnxruntime or openvino, not {backend!r}")
        if bf16 and backend != "openvino":
            raise ConfigError("bf16 (amp) runs on OpenVINO among the session backends")
        self.backend = backend
        self.threads = max(1, num_threads or torch.get_num_threads())
        # Read a file now: sessions are created later (on first use) and the file may be gone.
        self._graph = graph if isinstance(graph, bytes) else Path(graph).read_bytes()
        self._bf16 = bf16
        self._split = split_batch and backend == "onnxruntime"
        self._lock = threading.Lock()
        self._latency: Callable[[np.ndarray], np.ndarray] | None = None
        self._sliced: Callable[[list[np.ndarray]], list[np.ndarray]] | None = None
        # Fail now, not at the first call, if the runtime is missing.
        _require(backend, "onnx" if backend == "onnxruntime" else "openvino")

    def __call__(self, x: Tensor) -> Tensor:
        array = _numpy_in(x)
        # OpenVINO runs whole batches on its own threads: its multi-stream mode, and compiled
        # models driven from worker threads, left the process to crash later (a segfault in a
        # later test), so only ONNX Runtime slices.
        if not self._split or len(array) < self.threads or self.threads == 1:
            logits = self._latency_run()(array)
        else:
            with self._lock:
                logits = np.concatenate(self._sliced_run()(np.array_split(array, self.threads)))
        return torch.from_numpy(logits).to(x.device)

    def _latency_run(self) -> Callable[[np.ndarray], np.ndarray]:
        with self._lock:
            if self._latency is None:
                if self.backend == "onnxruntime":
                    self._latency = _ort_run(ort_session(self._graph, self.threads))
                else:
                    compiled = openvino_model(self._graph, self.threads, bf16=self._bf16)
                    self._latency = _openvino_run(compiled)
            return self._latency

    def _sliced_run(self) -> Callable[[list[np.ndarray]], list[np.ndarray]]:
        # Called with self._lock held.
        if self._sliced is None:
            runs = [_ort_run(ort_session(self._graph, 1)) for _ in range(self.threads)]
            pool = ThreadPoolExecutor(self.threads, thread_name_prefix="googlenet-ort")

            def sliced(parts: list[np.ndarray]) -> list[np.ndarray]:
                futures = [pool.submit(r, p) for r, p in zip(runs, parts, strict=True)]
                return [f.result() for f in futures]

            self._sliced = sliced
        return self._sliced


def _ort_run(session) -> Callable[[np.ndarray], np.ndarray]:
    name = session.get_inputs()[0].name
    return lambda array: session.run(None, {name: array})[0]


def _openvino_run(compiled) -> Callable[[np.ndarray], np.ndarray]:
    # One infer request per thread: a request is not thread-safe, a compiled model is.
    local = threading.local()

    def run(array: np.ndarray) -> np.ndarray:
        request = getattr(local, "request", None)
        if request is None:
            request = local.request = compiled.create_infer_request()
        return np.array(request.infer({0: array})[0], copy=True)

    return run


def session_runner(
    graph: bytes | str,
    backend: str,
    num_threads: int | None = None,
    bf16: bool = False,
    split_batch: bool = False,
) -> Callable[[Tensor], Tensor]:
    """``images -> logits`` running an ONNX model (bytes or a path): a :class:`SessionRunner`.

    Used for our fp32 graph and for int8 files alike.
    """
    return SessionRunner(graph, backend, num_threads, bf16, split_batch)


def available_backends(device: str | torch.device = "cpu") -> list[str]:
    """The concrete backends that can run here on ``device`` (installed packages, device type)."""
    import importlib.util

    if torch.device(device).type != "cpu":
        return ["torch", "compile"]
    found = ["torch", "compile"]
    found += [b for b in ("onnxruntime", "openvino") if importlib.util.find_spec(b) is not None]
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


def default_backend(device: str | torch.device = "cpu", amp: bool = False) -> str:
    """``auto``'s choice: on a CPU ONNX Runtime if installed, else OpenVINO, else PyTorch; on
    other devices PyTorch. With ``amp`` (bf16) on a CPU: OpenVINO, else PyTorch (ONNX Runtime
    has no bf16 convolutions). Why, in the module docstring."""
    available = available_backends(device)
    for backend in ("openvino",) if amp else ("onnxruntime", "openvino"):
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
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if device is None:
        device = next(model.parameters()).device
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda asked for, but no CUDA GPU is available")
    min_size = model.min_input_size
    if backend == "auto":
        backend = default_backend(device, amp)
        if backend == "openvino" and model.config.input_size < openvino_min_input_size(model):
            backend = "torch"  # OpenVINO would refuse the model's own input size
    if backend == "openvino":
        min_size = max(min_size, openvino_min_input_size(model))
    if backend in ("onnxruntime", "openvino") and device.type != "cpu":
        raise ConfigError(
            f"backend {backend} runs on the CPU here; use torch or compile on {device}"
        )
    if amp and backend == "onnxruntime":
        raise ConfigError("amp (bf16) runs on the torch, compile and openvino backends")

    # ONNX Runtime runs the three 1x1s faster apart: its blocked (NCHWc) layout pays a reorder
    # at the split of a merged one (measured: 68.6 against 65.0 images/s, BENCHMARKS.md).
    net = fuse(model, merge_1x1=backend != "onnxruntime").to(device=device, dtype=torch.float32)
    wrap = functools.partial(
        InferenceModel, net.config, backend, min_input_size=min_size, module=net
    )
    if backend in ("onnxruntime", "openvino"):
        graph = onnx_bytes(net.cpu(), model.config.input_size, native_lrn=backend == "openvino")
        return wrap(session_runner(graph, backend, num_threads, bf16=amp))

    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels
    runnable: nn.Module | Callable = net
    if backend == "compile":
        runnable = compile_module(net, device, compile_mode)
    return wrap(_torch_runner(runnable, channels_last, amp, device))


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
