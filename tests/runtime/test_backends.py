"""The fast inference path gives the plain model's answers: every transformation, every backend."""

from __future__ import annotations

import copy
import importlib.util

import pytest
import torch
import torch.nn.functional as F

import googlenet
from googlenet.errors import ConfigError, GoogLeNetError, InputSizeError
from googlenet.model import ConvBlock
from googlenet.runtime.backends import available_backends, default_backend, optimize_for_inference
from googlenet.runtime.device import amp_dtype, autocast
from googlenet.runtime.fuse import (
    FastLRN,
    FusedGoogLeNet,
    FusedInception,
    fold_batchnorm,
    fuse,
    merge_convs,
)
from googlenet.runtime.sessions import SessionRunner, onnx_bytes
from googlenet.runtime.training import (
    MergedInception,
    prepare_for_training,
    unmerge_inception_1x1s,
)

PRESETS = ["paper", "paper-bn", "torchvision"]
TOL = 1e-4
SESSION_BACKENDS = [
    pytest.param(b, marks=pytest.mark.skipif(importlib.util.find_spec(b) is None, reason=b))
    for b in ("onnxruntime", "openvino")
]


def _randomize_batchnorm(model: torch.nn.Module) -> None:
    """Non-trivial BN statistics and affine parameters, so that folding is really tested."""
    g = torch.Generator().manual_seed(3)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)


def _model(preset: str) -> googlenet.GoogLeNet:
    torch.manual_seed(0)
    model = googlenet.create_model(preset, num_classes=11)
    _randomize_batchnorm(model)
    if preset == "torchvision":
        # torchvision's init (std 0.01) gives logits of ~1e-2: scale the classifier up so that a
        # 1e-4 tolerance means something.
        with torch.no_grad():
            model.fc.weight.mul_(100)
    return model.eval()


@pytest.fixture(scope="module", params=PRESETS)
def preset_model(request) -> googlenet.GoogLeNet:
    return _model(request.param)


def _images(batch: int, size: int) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(batch + size))


def _check_same(model: googlenet.GoogLeNet, fast, sizes=((1, 64), (3, 96))) -> None:
    for batch, size in sizes:
        x = _images(batch, size)
        with torch.no_grad():
            expected = model(x)
        got = fast(x)
        assert got.shape == expected.shape
        assert got.dtype == torch.float32
        assert (got - expected).abs().max().item() <= TOL, (batch, size)


# -- the transformations -----------------------------------------------------------------------


def test_fold_batchnorm_is_exact_in_eval():
    block = ConvBlock(8, 16, 3, padding=1, batchnorm=True)
    _randomize_batchnorm(block)
    block.eval()
    folded = fold_batchnorm(block)
    assert folded.bn is None and folded.conv.bias is not None
    assert block.bn is not None  # the original is untouched
    x = torch.randn(2, 8, 9, 9)
    assert torch.allclose(folded(x), block(x), atol=1e-5)


def test_merge_convs_stacks_outputs():
    blocks = [ConvBlock(12, c, 1) for c in (5, 7, 3)]
    merged = merge_convs(blocks)
    x = torch.randn(2, 12, 6, 6)
    assert torch.allclose(merged(x), torch.cat([b(x) for b in blocks], 1), atol=1e-6)
    with pytest.raises(ValueError):
        merge_convs([ConvBlock(12, 4, 3, padding=1)])


@pytest.mark.parametrize("batchnorm", [False, True])
def test_fused_inception_matches_module(batchnorm):
    module = googlenet.InceptionModule(48, 16, 24, 32, 8, 12, 8, batchnorm=batchnorm)
    _randomize_batchnorm(module)
    module.eval()
    fused = FusedInception(module)
    assert fused.splits == [16, 24, 8]
    x = torch.randn(3, 48, 10, 10)
    with torch.no_grad():
        assert (fused(x) - module(x)).abs().max().item() <= 1e-5


def test_fused_network_structure(preset_model):
    net = fuse(preset_model)
    assert isinstance(net, FusedGoogLeNet)
    assert all(m.bn is None for m in net.modules() if isinstance(m, ConvBlock))
    assert sum(isinstance(m, FusedInception) for m in net.modules()) == 9
    assert (net.input_shift is not None) == preset_model.config.transform_input
    assert (net.norm1 is not None) == (preset_model.config.norm == "lrn")
    # The source model is not modified.
    assert preset_model.conv1.bn is not None or preset_model.config.norm == "lrn"


@pytest.mark.parametrize("channels_last", [False, True])
def test_fused_module_matches_model(preset_model, channels_last):
    net = fuse(preset_model)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)

    def run(x):
        with torch.no_grad():
            return net(x.contiguous(memory_format=torch.channels_last) if channels_last else x)

    _check_same(preset_model, run)


@pytest.mark.parametrize("size, beta", [(5, 0.75), (3, 0.5), (4, 0.75)])
def test_fast_lrn_matches_pytorch(size, beta):
    lrn = torch.nn.LocalResponseNorm(size, alpha=1e-2, beta=beta, k=2.0)
    x = torch.randn(2, 9, 5, 5) * 3
    assert torch.allclose(FastLRN(lrn)(x), lrn(x), rtol=1e-5, atol=1e-6)
    cl = x.contiguous(memory_format=torch.channels_last)
    assert torch.allclose(FastLRN(lrn)(cl), lrn(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("native", [True, False])
def test_lrn_exports_as_operator_or_elementwise(native):
    onnx = pytest.importorskip("onnx")
    net = fuse(_model("paper"))
    graph = onnx.load_from_string(onnx_bytes(net, 64, native_lrn=native)).graph
    ops = [n.op_type for n in graph.node]
    assert ops.count("LRN") == (2 if native else 0)
    assert ("Sqrt" in ops) != native
    assert "BatchNormalization" not in ops and "Pow" not in ops and "If" not in ops
    assert ops.count("Split") == 9  # one merged 1x1 per Inception module


# -- backends -------------------------------------------------------------------------------------


def test_torch_backend_matches(preset_model):
    fast = optimize_for_inference(preset_model, "torch")
    assert fast.backend == "torch" and fast.config is preset_model.config
    _check_same(preset_model, fast)


@pytest.mark.parametrize("backend", SESSION_BACKENDS)
def test_session_backends_match(preset_model, backend):
    fast = optimize_for_inference(preset_model, backend)
    assert fast.backend == backend
    _check_same(preset_model, fast)
    # channels_last input is accepted and gives the same logits
    x = _images(3, 72)
    assert torch.allclose(fast(x), fast(x.contiguous(memory_format=torch.channels_last)))


@pytest.mark.parametrize("backend", SESSION_BACKENDS)
def test_batch_split_across_threads_matches(backend):
    """With 2 threads and split_batch a batch of 3 runs as slices of 2 and 1 on single-threaded
    sessions (ONNX Runtime; OpenVINO runs it whole)."""
    model = _model("paper")
    run = SessionRunner(onnx_bytes(fuse(model), 64), backend, num_threads=2, split_batch=True)
    _check_same(model, run, sizes=((1, 64), (3, 64), (4, 72)))


def test_onnxruntime_gets_the_1x1s_apart_and_the_torch_backend_merged():
    model = _model("torchvision")
    ort_net = optimize_for_inference(model, "onnxruntime").module
    torch_net = optimize_for_inference(model, "torch").module
    assert all(m.reduce1x1 is None for m in ort_net.modules() if isinstance(m, FusedInception))
    assert all(m.heads is None for m in torch_net.modules() if isinstance(m, FusedInception))


@pytest.mark.parametrize("preset", ["paper", "torchvision"])
def test_auto_backend_is_available_and_matches(preset):
    model = _model(preset)
    fast = optimize_for_inference(model)
    assert fast.backend == default_backend("cpu") and fast.backend in available_backends("cpu")
    _check_same(model, fast, sizes=((3, 64),))


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino")
def test_openvino_small_inputs_are_refused_and_auto_avoids_them():
    """OpenVINO refuses a 3x3 max pool on a 2x2 map (the paper's pool after 4e below 48 px)."""
    from googlenet.runtime.backends import openvino_min_input_size

    model = googlenet.create_model("paper", num_classes=3, input_size=32).eval()
    smallest = openvino_min_input_size(model)
    assert model.min_input_size < smallest <= 48
    fast = optimize_for_inference(model, "openvino")
    with pytest.raises(InputSizeError, match=f"{smallest}x{smallest}"):
        fast(torch.randn(1, 3, 32, 32))
    _check_same(model, fast, sizes=((2, smallest),))
    if default_backend("cpu") == "openvino":
        assert optimize_for_inference(model).backend != "openvino"


@pytest.mark.slow
def test_compile_backend_matches():
    model = _model("paper-bn")
    fast = optimize_for_inference(model, "compile")
    _check_same(model, fast, sizes=((3, 64),))


def test_model_left_in_its_mode_and_unchanged():
    model = _model("paper-bn")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimize_for_inference(model, "torch")
    assert not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("backend", ["torch", *SESSION_BACKENDS[1:]])
def test_amp_is_close_but_not_the_contract(backend):
    model = _model("paper-bn")
    fast = optimize_for_inference(model, backend, amp=True)
    x = _images(2, 64)
    with torch.no_grad():
        expected = model(x)
    assert torch.allclose(fast(x), expected, atol=0.2, rtol=0.2)


# -- errors ---------------------------------------------------------------------------------


def test_bad_requests_raise_one_line_errors():
    model = _model("paper-bn")
    with pytest.raises(ConfigError, match="unknown backend"):
        optimize_for_inference(model, "tensorrt")  # type: ignore[arg-type]
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            optimize_for_inference(model, device="cuda")
    with pytest.raises(ConfigError, match="amp"):
        optimize_for_inference(model, "onnxruntime", amp=True)
    with pytest.raises(ConfigError, match="expected a GoogLeNet"):
        fuse(torch.nn.Linear(2, 2))  # type: ignore[arg-type]
    fast = optimize_for_inference(model, "torch")
    with pytest.raises(InputSizeError, match="too small"):
        fast(torch.randn(1, 3, 8, 8))
    with pytest.raises(InputSizeError, match="N x 3 x H x W"):
        fast(torch.randn(1, 1, 64, 64))
    with pytest.raises(GoogLeNetError, match="inference only"):
        fuse(model).train()
    for err in (ConfigError, InputSizeError):
        assert "\n" not in str(err("x"))


# -- training speed -------------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["paper", "torchvision"])
def test_merged_training_step_is_the_same_step(preset):
    """In float64 the merged 1x1s give the same loss, gradients and BN statistics."""
    torch.manual_seed(0)
    plain = googlenet.create_model(preset, num_classes=5).double().train()
    fast = copy.deepcopy(plain)
    prepare_for_training(fast, channels_last=True)
    assert isinstance(fast.inception3a, MergedInception)
    assert fast.state_dict().keys() == plain.state_dict().keys()
    x = torch.randn(3, 3, 64, 64, dtype=torch.float64)
    y = torch.tensor([0, 2, 4])
    losses = []
    for model, inp in ((plain, x), (fast, x.contiguous(memory_format=torch.channels_last))):
        torch.manual_seed(1)  # same dropout masks
        out = model(inp, return_aux=True)
        loss = F.cross_entropy(out.logits, y) + 0.3 * (
            F.cross_entropy(out.aux1, y) + F.cross_entropy(out.aux2, y)
        )
        loss.backward()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(losses[1], rel=1e-10)
    grads = dict(fast.named_parameters())
    for name, p in plain.named_parameters():
        assert torch.allclose(p.grad, grads[name].grad, rtol=1e-8, atol=1e-12), name
    fast_state = fast.state_dict()
    for name, t in plain.state_dict().items():
        assert torch.allclose(t.double(), fast_state[name].double(), rtol=1e-8, atol=1e-12), name
    # eval mode uses the running statistics and agrees too; unmerging restores the plain modules
    plain.eval(), fast.eval()
    with torch.no_grad():
        assert torch.allclose(plain(x), fast(x), atol=1e-10)
    unmerge_inception_1x1s(fast)
    assert type(fast.inception3a) is googlenet.InceptionModule
    with torch.no_grad():
        assert torch.allclose(plain(x), fast(x), atol=1e-10)


def test_autocast_helper():
    dtype = amp_dtype("cpu")
    assert dtype in (None, torch.bfloat16)
    lin = torch.nn.Linear(4, 4)
    with autocast("cpu", enabled=False):
        assert lin(torch.randn(2, 4)).dtype == torch.float32
    with autocast("cpu"):
        assert lin(torch.randn(2, 4)).dtype == (dtype or torch.float32)
    with pytest.raises(ConfigError):
        prepare_for_training(torch.nn.Linear(2, 2))  # type: ignore[arg-type]
