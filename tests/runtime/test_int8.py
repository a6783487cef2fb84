"""int8: a calibrated file that agrees with the fp32 model, carries its configuration, and
refuses bad input with one-line errors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

import googlenet
from googlenet.errors import ConfigError, WeightsError

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from googlenet.runtime.int8 import load_int8, quantize_int8, read_config  # noqa: E402

BACKENDS = [
    pytest.param(b, marks=pytest.mark.skipif(importlib.util.find_spec(b) is None, reason=b))
    for b in ("onnxruntime", "openvino")
]


def _images(n: int, size: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[googlenet.GoogLeNet, Path]:
    torch.manual_seed(0)
    model = googlenet.create_model(
        "paper-bn", num_classes=10, input_size=64, class_names=[str(i) for i in range(10)]
    ).eval()
    path = tmp_path_factory.mktemp("int8") / "tiny-int8.onnx"
    assert quantize_int8(model, _images(48), path) == path
    return model, path


def test_int8_file_is_quantized_and_carries_the_config(tiny):
    model, path = tiny
    graph = onnx.load(str(path)).graph
    ops = [n.op_type for n in graph.node]
    assert ops.count("QuantizeLinear") > 30 and ops.count("DequantizeLinear") > 30
    assert read_config(path) == model.config


@pytest.mark.parametrize("backend", BACKENDS)
def test_int8_agrees_with_fp32(tiny, backend):
    model, path = tiny
    int8 = load_int8(path, backend)
    assert int8.config.class_names == model.config.class_names
    for batch in (1, 3):
        x = _images(batch, seed=batch + 10)
        with torch.no_grad():
            expected = model(x)
        got = int8(x)
        assert got.shape == expected.shape and got.dtype == torch.float32
        relative = (got - expected).norm() / expected.norm()
        assert relative < 0.1, relative.item()


def test_quantize_from_an_onnx_file(tiny, tmp_path):
    from googlenet.runtime.fuse import fuse
    from googlenet.runtime.int8 import set_onnx_config
    from googlenet.runtime.sessions import onnx_bytes

    model, _ = tiny
    proto = onnx.load_from_string(onnx_bytes(fuse(model), 64))
    foreign = tmp_path / "foreign.onnx"
    onnx.save(proto, str(foreign))
    set_onnx_config(proto, model.config)
    ours = tmp_path / "fp32.onnx"
    onnx.save(proto, str(ours))
    out = quantize_int8(ours, [_images(8), _images(8, seed=1)], tmp_path / "q.onnx")
    x = _images(2, seed=5)
    with torch.no_grad():
        expected = model(x)
    got = load_int8(out, "onnxruntime")(x)
    assert ((got - expected).norm() / expected.norm()) < 0.1
    # A foreign ONNX file quantizes, but has no configuration to run it with.
    out = quantize_int8(foreign, _images(4), tmp_path / "q2.onnx")
    with pytest.raises(WeightsError, match="no 'googlenet.config'"):
        load_int8(out)


def test_loaded_int8_model_outlives_its_file(tiny, tmp_path):
    model, path = tiny
    copy = tmp_path / "copy.onnx"
    copy.write_bytes(path.read_bytes())
    int8 = load_int8(copy, "onnxruntime", num_threads=2)
    copy.unlink()
    x = _images(4, seed=7)
    assert int8(x).shape == (4, 10) and int8(x[:1]).shape == (1, 10)


def test_bad_inputs(tiny, tmp_path):
    model, path = tiny
    with pytest.raises(ConfigError, match="at least one calibration image"):
        quantize_int8(model, [], tmp_path / "x.onnx")
    with pytest.raises(ConfigError, match="N x 3 x H x W"):
        quantize_int8(model, torch.randn(4, 64, 64), tmp_path / "x.onnx")
    with pytest.raises(WeightsError, match="does not exist"):
        quantize_int8(tmp_path / "missing.onnx", _images(2), tmp_path / "x.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(WeightsError, match="not a readable ONNX model"):
        read_config(junk)
    with pytest.raises(WeightsError, match="does not exist"):
        load_int8(tmp_path / "missing.onnx")
    with pytest.raises(ConfigError, match="onnxruntime or openvino"):
        load_int8(path, "torch")
    with pytest.raises(googlenet.InputSizeError):
        load_int8(path, "onnxruntime")(torch.randn(1, 3, 8, 8))
    assert not (tmp_path / "x.onnx").exists()
