"""int8: post-training static quantization of the fused network, and running the result.

:func:`quantize_int8` takes a :class:`~googlenet.model.GoogLeNet` (or an fp32 ONNX file of one),
exports the fused inference graph (BN folded, 1x1s merged: see :mod:`googlenet.runtime.backends`),
calibrates activation ranges on real images and writes an int8 ONNX file in QDQ form
(QuantizeLinear/DequantizeLinear around each convolution): any ONNX runtime reads it, and both
ONNX Runtime and OpenVINO turn the pairs into int8 kernels (AVX512-VNNI on this CPU).

Choices, measured on the project's CPU (figures in BENCHMARKS.md):

* **ONNX Runtime's quantize_static** over torch.ao (whose x86 int8 convolutions, FBGEMM, need
  the eager model rewritten with quant stubs, and run slower than a runtime's) and over NNCF
  (a large extra dependency for the same QDQ file).
* **Weights int8 per output channel, symmetric; activations uint8 per tensor.** Every quantized
  activation follows a ReLU, so it is non-negative and uint8 with zero point 0 wastes no code;
  per-channel weights matter because BN folding gives each channel its own scale.
* **Calibration** by min/max over the calibration images (a few hundred images are plenty;
  percentile calibration was not needed to stay within 0.5 point of fp32 top-1 on the digits).
* **The classifier (Gemm) stays fp32**: a 1024-wide product per image costs nothing and keeps
  the logits exact to the features.

The model's configuration (classes, mean/std, input size) is stored in the ONNX file's metadata
under ``googlenet.config``, so ``predict`` and ``eval`` can load the file on its own with
:func:`load_int8`.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError, WeightsError, require
from ..fileio import atomic_save
from ..model import GoogLeNet, GoogLeNetConfig
from ..weights import CONFIG_KEY, config_from_json
from .backends import (
    InferenceModel,
    default_backend,
    fuse,
    onnx_bytes,
    openvino_min_input_size,
)
from .sessions import SessionRunner

INPUT_NAME = "images"


def _batches(images: Tensor | Iterable[Tensor], batch_size: int = 32) -> Iterator[np.ndarray]:
    """Calibration images as float32 NCHW numpy batches."""
    if isinstance(images, Tensor):
        if images.dim() != 4 or images.shape[1] != 3:
            raise ConfigError(
                f"calibration images must be an N x 3 x H x W tensor, got {tuple(images.shape)}"
            )
        images = images.split(batch_size)
    for batch in images:
        if batch.dim() == 3:
            batch = batch.unsqueeze(0)
        yield batch.detach().to("cpu", torch.float32).contiguous().numpy()


def _onnx_model(model_or_onnx: GoogLeNet | str | os.PathLike[str]):
    """The fp32 ONNX graph to quantize, with the configuration in its metadata."""
    import onnx

    if isinstance(model_or_onnx, GoogLeNet):
        config = model_or_onnx.config
        proto = onnx.load_from_string(onnx_bytes(fuse(model_or_onnx).cpu(), config.input_size))
        set_onnx_config(proto, config)
        return proto
    path = Path(model_or_onnx)
    if not path.is_file():
        raise WeightsError(f"ONNX file {path} does not exist")
    try:
        proto = onnx.load(str(path))
    except Exception as err:  # onnx raises DecodeError and friends
        raise WeightsError(f"{path} is not a readable ONNX model ({err})") from err
    if len(proto.graph.input) != 1:
        raise WeightsError(f"{path} has {len(proto.graph.input)} inputs; expected one image batch")
    return proto


def set_onnx_config(proto, config: GoogLeNetConfig) -> None:
    """Store ``config`` as JSON in an ONNX ModelProto's ``metadata_props["googlenet.config"]``
    (the key ``export`` uses too), replacing any earlier entry."""
    for entry in list(proto.metadata_props):
        if entry.key == CONFIG_KEY:
            proto.metadata_props.remove(entry)
    entry = proto.metadata_props.add()
    entry.key, entry.value = CONFIG_KEY, json.dumps(config.to_dict())


def quantize_int8(
    model_or_onnx: GoogLeNet | str | os.PathLike[str],
    calibration_images: Tensor | Iterable[Tensor],
    out_path: str | os.PathLike[str],
    *,
    per_channel: bool = True,
) -> Path:
    """Write an int8 (QDQ) ONNX file of ``model_or_onnx``, calibrated on ``calibration_images``.

    ``model_or_onnx``: a GoogLeNet (its fused inference graph is exported) or an fp32 ONNX file
    with one image input. ``calibration_images``: preprocessed images as the model takes them
    (normalized, N x 3 x H x W, at the size the model will see), a tensor or an iterable of
    batches; a few hundred representative images. Written atomically; returns ``out_path``.
    """
    require("onnxruntime", extra="onnx")
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    proto = _onnx_model(model_or_onnx)
    batches = list(_batches(calibration_images))
    if not batches or sum(len(b) for b in batches) == 0:
        raise ConfigError("quantize_int8 needs at least one calibration image")
    out_path = Path(out_path)
    with tempfile.TemporaryDirectory(prefix="googlenet-int8-") as tmp:
        fp32, prepped, int8 = (Path(tmp) / n for n in ("fp32.onnx", "prep.onnx", "int8.onnx"))
        onnx.save(proto, str(fp32))
        # Shape inference and constant folding first, as ONNX Runtime recommends: the quantizer
        # needs every tensor's shape to place its Q/DQ pairs.
        quant_pre_process(str(fp32), str(prepped), skip_symbolic_shape=True)
        _quantize_static(prepped, int8, proto.graph.input[0].name, batches, per_channel)
        quantized = onnx.load(str(int8))
        for entry in proto.metadata_props:
            if entry.key == CONFIG_KEY:
                set_onnx_config(quantized, GoogLeNetConfig.from_dict(config_from_json(entry.value)))
        atomic_save(out_path, lambda p: onnx.save(quantized, p))
    return out_path


def _quantize_static(
    src: Path, dst: Path, input_name: str, batches: list[np.ndarray], per_channel: bool
) -> None:
    """ONNX Runtime's static quantizer on every calibration batch: QDQ, int8 weights (symmetric,
    per channel), uint8 activations (MinMax ranges over all the batches)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._it, None)
            return None if batch is None else {input_name: batch}

    # The quantizer logs a line per tensor on the root logger: keep the user's log readable.
    logging.disable(logging.INFO)
    try:
        quantize_static(
            str(src),
            str(dst),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["Conv", "MaxPool", "Concat", "Split", "GlobalAveragePool"],
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
        )
    finally:
        logging.disable(logging.NOTSET)


def read_config(path: str | os.PathLike[str]) -> GoogLeNetConfig:
    """The model configuration stored in an ONNX file written by :func:`quantize_int8`."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"ONNX file {path} does not exist")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as err:
        raise WeightsError(f"{path} is not a readable ONNX model ({err})") from err
    meta = {e.key: e.value for e in proto.metadata_props}
    if CONFIG_KEY not in meta:
        raise WeightsError(
            f"{path} has no '{CONFIG_KEY}' metadata: it was not written by googlenet"
        )
    try:
        return GoogLeNetConfig.from_dict(config_from_json(meta[CONFIG_KEY]))
    except (ConfigError, TypeError, ValueError) as err:
        raise WeightsError(f"{path} has an invalid model configuration: {err}") from err


def load_int8(
    path: str | os.PathLike[str], backend: str = "auto", num_threads: int | None = None
) -> InferenceModel:
    """An int8 file from :func:`quantize_int8`, ready to call: ``model(images) -> logits``.

    ``backend``: ``onnxruntime``, ``openvino`` or ``auto`` (the CPU default of
    :func:`~googlenet.runtime.backends.default_backend`).
    """
    config = read_config(path)
    # Sizes only (no weights are read): the smallest input, and OpenVINO's (see inference).
    skeleton = GoogLeNet(GoogLeNetConfig.from_dict(config.to_dict() | {"aux_logits": False}))
    min_size = skeleton.min_input_size
    if backend == "auto":
        backend = default_backend("cpu")
        small = config.input_size < openvino_min_input_size(skeleton)
        if backend != "openvino" or small:
            backend = "onnxruntime"
    if backend == "openvino":
        min_size = max(min_size, openvino_min_input_size(skeleton))
    # int8 runs 1.4x faster with the batch split over single-threaded sessions, one per core
    # (198.6 against 139.8 images/s at batch 32 on the idle 2-core machine, BENCHMARKS.md):
    # ONNX Runtime's quantized kernels leave one of two threads idle much of the time.
    run = SessionRunner(str(path), backend, num_threads, split_batch=True)
    return InferenceModel(config, f"{backend}-int8", run, min_input_size=min_size)
