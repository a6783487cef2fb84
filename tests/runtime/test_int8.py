"""int8: a calibrated file that agrees with the fp32 model, carries its configuration, and
refuses bad input with one-line errors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
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


def _calibration() -> torch.Tensor:
    """48 images whose first 32 (the first batch) are dimmed 20x: activation ranges taken from
    the first image or the first batch alone would clip the test images' activations (relative
    error 0.94 measured), from all 48 they cover them (0.027)."""
    images = _images(48)
    images[:32] *= 0.05
    return images


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[googlenet.GoogLeNet, Path]:
    torch.manual_seed(0)
    model = googlenet.create_model(
        "paper-bn", num_classes=10, input_size=64, class_names=[str(i) for i in range(10)]
    ).eval()
    path = tmp_path_factory.mktemp("int8") / "tiny-int8.onnx"
    assert quantize_int8(model, _calibration(), path) == path
    return model, path


def test_int8_file_is_quantized_and_carries_the_config(tiny):
    model, path = tiny
    graph = onnx.load(str(path)).graph
    ops = [n.op_type for n in graph.node]
    assert ops.count("QuantizeLinear") > 30 and ops.count("DequantizeLinear") > 30
    assert read_config(path) == model.config
    # Per channel by default: each convolution's weights get one scale per output channel (78
    # vector scales measured in this graph, the fused 1x1s included); per tensor they are scalars.
    sizes = {i.name: int(np.prod(i.dims)) for i in graph.initializer}
    scales = [sizes.get(n.input[1], 1) for n in graph.node if n.op_type == "DequantizeLinear"]
    assert sum(size > 1 for size in scales) > 30
    assert 64 in scales  # conv1's 64 filters


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
        # Each of the ~20 quantized layers on the path rounds to a 1/255 of its range (~5 sd of a
        # ReLU'd activation): noise 5/255/sqrt(12) = 0.6% of the signal per layer, sqrt(20) x
        # that = 2.7% on the logits (2.7% measured). 5% leaves room; calibration on only the
        # first image or batch gives 94%, a wrong scale or zero point more.
        relative = (got - expected).norm() / expected.norm()
        assert relative < 0.05, relative.item()


def test_quantize_from_an_onnx_file(tiny, tmp_path):
    from googlenet.runtime.fuse import fuse
    from googlenet.runtime.int8 import set_onnx_config
    from googlenet.runtime.sessions import onnx_bytes

    model, _ = tiny
    proto = onnx.load_from_string(onnx_bytes(fuse(model), 64))
    foreign = tmp_path / "foreign.onnx"
    onnx.save(proto, str(foreign))
    set_onnx_config(proto, model.config)
    note = proto.metadata_props.add()  # another tool's metadata travels along, untouched
    note.key, note.value = "converted_by", "a test"
    ours = tmp_path / "fp32.onnx"
    onnx.save(proto, str(ours))
    out = quantize_int8(ours, [_images(8), _images(8, seed=1)], tmp_path / "q.onnx")
    x = _images(2, seed=5)
    with torch.no_grad():
        expected = model(x)
    got = load_int8(out, "onnxruntime")(x)
    assert ((got - expected).norm() / expected.norm()) < 0.1
    assert read_config(out) == model.config
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


def test_calibration_takes_single_images_and_checks_the_channels(tiny, tmp_path):
    model, _ = tiny
    with pytest.raises(ConfigError, match="N x 3 x H x W"):
        quantize_int8(model, torch.randn(2, 1, 64, 64), tmp_path / "x.onnx")
    # an iterable of single 3 x H x W images (as a folder reader yields them), dimmed first ones
    # in float64, which the calibration converts to the model's float32
    images = list(_calibration()[24:].double())
    out = quantize_int8(model, images, tmp_path / "singles.onnx")
    x = _images(2, seed=12)
    with torch.no_grad():
        expected = model(x)
    got = load_int8(out, "onnxruntime")(x)
    assert float((got - expected).norm() / expected.norm()) < 0.05  # see test_int8_agrees_with_fp32


def test_one_calibration_image_is_enough_and_none_is_refused(tiny, tmp_path):
    model, _ = tiny
    out = quantize_int8(model, _images(1), tmp_path / "one.onnx")
    assert load_int8(out, "onnxruntime")(_images(1, seed=3)).shape == (1, 10)
    with pytest.raises(ConfigError) as err:
        quantize_int8(model, torch.empty(0, 3, 64, 64), tmp_path / "x.onnx")
    assert str(err.value) == "quantize_int8 needs at least one calibration image"
    assert not (tmp_path / "x.onnx").exists()


def test_without_onnxruntime_quantizing_names_the_extra(tiny, tmp_path, monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "onnxruntime" else find_spec(name, *a),
    )
    with pytest.raises(ConfigError) as err:
        quantize_int8(tiny[0], _images(1), tmp_path / "x.onnx")
    assert str(err.value) == "this needs the 'onnxruntime' package: pip install 'googlenet[onnx]'"
