"""ONNX Runtime and OpenVINO sessions: one way to open each runtime, one runner for both.

Used by the fast inference path on our fused graph, by int8 files and by exported ``.onnx``
files (:class:`OnnxModel`).
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import ConfigError, InputSizeError, WeightsError, first_line, require
from ..model import GoogLeNetConfig
from ..weights import CONFIG_KEY, config_from_json
from .fuse import FastLRN


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
            buf,  # type: ignore[arg-type]  # the legacy exporter takes file objects
            input_names=["images"],
            output_names=["logits"],
            dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"}, "logits": {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
    return buf.getvalue()


def ort_session(model: bytes | str, num_threads: int | None = None):
    """An ONNX Runtime CPU session with every graph optimization on (NCHWc kernels included).

    Without ONNX Runtime's memory pattern (a plan that pre-allocates one block for all of a
    run's activations): 150 MB less peak memory at batch 32 (1072 against 1223 MB for the
    process), the same speed at batch 32 and batch 1."""
    require("onnxruntime", extra="onnx")
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
    require("openvino", extra="openvino")
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
        require(backend, extra="onnx" if backend == "onnxruntime" else "openvino")

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


class OnnxModel:
    """An exported ``.onnx`` GoogLeNet run by ONNX Runtime: normalized batch in, logits out.

    ``config`` comes from the file's metadata, written at export. A file exported without
    ``--dynamic-batch`` takes a fixed batch size; larger batches are run in chunks of it.
    """

    def __init__(self, path: str | os.PathLike[str], device: str | torch.device = "cpu") -> None:
        require("onnx", "onnxruntime", extra="onnx")
        import onnxruntime as ort

        self.path = Path(path)
        providers = ["CPUExecutionProvider"]
        if torch.device(device).type == "cuda":
            providers.insert(0, "CUDAExecutionProvider")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: ORT's warnings are not the user's business
        try:
            self.session = ort.InferenceSession(
                str(self.path), options, providers=_available(ort, providers)
            )
        except Exception as err:  # ORT raises its own exception types from C++
            raise WeightsError(
                f"{self.path} is not an ONNX model ONNX Runtime can run ({first_line(err)})"
            ) from err
        meta = self.session.get_modelmeta().custom_metadata_map
        if CONFIG_KEY not in meta:
            raise WeightsError(
                f"{self.path} has no '{CONFIG_KEY}' metadata: export it with `googlenet export`"
            )
        try:
            self.config = GoogLeNetConfig.from_dict(config_from_json(meta[CONFIG_KEY]))
        except (ConfigError, TypeError, ValueError) as err:
            raise WeightsError(f"{self.path}: invalid model configuration in its metadata") from err
        graph_input = self.session.get_inputs()[0]
        self.input_name = graph_input.name
        batch = graph_input.shape[0]
        self.fixed_batch = batch if isinstance(batch, int) else None

    def __call__(self, x: Tensor) -> Tensor:
        """Logits of an N x 3 x S x S normalized float batch (S: the exported input size)."""
        size = self.config.input_size
        if x.dim() != 4 or tuple(x.shape[1:]) != (3, size, size):
            raise InputSizeError(
                f"{self.path} takes N x 3 x {size} x {size} batches, got {tuple(x.shape)}"
            )
        array = x.detach().to("cpu", torch.float32).contiguous().numpy()
        step = self.fixed_batch or len(array) or 1
        outputs = []
        for start in range(0, len(array), step):
            chunk = array[start : start + step]
            real = len(chunk)
            if self.fixed_batch and real < step:  # pad the last chunk to the fixed batch size
                chunk = np.concatenate([chunk, np.zeros((step - real, *chunk.shape[1:]), "f4")])
            outputs.append(self.session.run(None, {self.input_name: chunk})[0][:real])
        return torch.from_numpy(np.concatenate(outputs)) if outputs else torch.empty(0)


def _available(ort: Any, wanted: list[str]) -> list[str]:
    have = set(ort.get_available_providers())
    return [p for p in wanted if p in have] or ["CPUExecutionProvider"]


def is_onnx_file(path: str | os.PathLike[str]) -> bool:
    """An ``.onnx`` name, or a protobuf that starts the way every ONNX ModelProto does."""
    if str(path).lower().endswith(".onnx"):
        return True
    with open(path, "rb") as f:
        head = f.read(2)
    # Field 1 (ir_version, a varint) comes first: tag byte 0x08, then a small version number.
    return len(head) == 2 and head[0] == 0x08 and 3 <= head[1] < 32


# -- TorchScript ---------------------------------------------------------------------------------
