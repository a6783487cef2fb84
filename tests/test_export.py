"""`googlenet export`: ONNX, TorchScript and ExportedProgram files that compute what PyTorch does.

Each exported file is loaded here independently of the export code (ONNX Runtime, torch.jit,
torch.export) and compared with the PyTorch model on pictures the test draws, for the paper
preset (LRN, true 5x5) and the torchvision one (BatchNorm, transform_input).
"""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from _inference_helpers import INPUT_SIZE, run_main, tiny_model, write_pictures

import googlenet
from googlenet.data import EvalTransform, open_image
from googlenet.export import CONFIG_FILE, ExportError, export
from googlenet.runtime.predictor import Predictor

ATOL = 1e-4
# Tests on `case` share its two ONNX exports (about 10 s each on two busy cores): slow.
slow = pytest.mark.slow
paper_only = pytest.mark.parametrize("case", ["paper"], indirect=True)


def image_batch(model: googlenet.GoogLeNet, paths: list[Path]) -> torch.Tensor:
    transform = EvalTransform.for_model(model.config)
    return torch.cat([transform(open_image(p)) for p in paths])


def reference(model: googlenet.GoogLeNet, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model.eval()(x).numpy()


@pytest.fixture(scope="module", params=["paper", "torchvision"])
def case(request, tmp_path_factory) -> SimpleNamespace:
    """A model of the preset, its weights file, three pictures, and its dynamic-batch ONNX."""
    preset = request.param
    folder = tmp_path_factory.mktemp(preset)
    model = tiny_model(preset, seed=3)
    weights = folder / "tiny.safetensors"
    googlenet.save_weights(model, weights)
    images = write_pictures(folder / "images", 3)
    onnx_path = folder / "tiny.onnx"
    result = export(model, onnx_path, "onnx", dynamic_batch=True, check_images=images)
    return SimpleNamespace(preset=preset, model=model, weights=weights, images=images,
                           onnx=onnx_path, result=result)  # fmt: skip


@slow
def test_onnx_matches_pytorch_on_real_images(case):
    x = image_batch(case.model, case.images)
    session = ort.InferenceSession(str(case.onnx), providers=["CPUExecutionProvider"])
    (graph_input,) = session.get_inputs()
    assert graph_input.shape[1:] == [3, INPUT_SIZE, INPUT_SIZE]
    assert isinstance(graph_input.shape[0], str)  # a dynamic batch; traced with 2, run with 3
    (got,) = session.run(None, {graph_input.name: x.numpy()})
    want = reference(case.model, x)
    assert np.abs(want).max() > 0.05  # logits of a real size, not a vanishing network
    diff = float(np.abs(got - want).max())
    assert diff <= ATOL
    assert case.result.max_abs_diff <= ATOL and case.result.checked_images == 3
    print(f"{case.preset}: ONNX vs PyTorch max abs diff {diff:.2e}")


@slow
def test_onnx_file_is_valid_self_describing_and_has_no_aux_heads(case):
    proto = onnx.load(str(case.onnx))
    onnx.checker.check_model(proto, full_check=True)
    assert min(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) == 18
    meta = {p.key: p.value for p in proto.metadata_props}
    config = json.loads(meta["googlenet.config"])
    assert config["preset"] == case.preset and config["input_size"] == INPUT_SIZE
    assert config["class_names"] == list(case.model.config.class_names)
    assert config["aux_logits"] is False
    names = [i.name for i in proto.graph.initializer] + [n.name for n in proto.graph.node]
    assert not [n for n in names if "aux" in n]
    assert [o.name for o in proto.graph.output] == ["logits"]


@slow
def test_predict_on_onnx_gives_the_same_answers(case):
    onnx_predictor = Predictor.from_file(case.onnx)
    torch_predictor = Predictor.from_file(case.weights)
    assert onnx_predictor.backend == "onnxruntime" and onnx_predictor.class_names[0] == "apple"
    got = onnx_predictor(case.images, topk=5)
    want = torch_predictor(case.images, topk=5)
    for g, w in zip(got, want, strict=True):
        assert [s.index for s in g.topk] == [s.index for s in w.topk]
        assert [s.prob for s in g.topk] == pytest.approx([s.prob for s in w.topk], abs=1e-5)
    with pytest.raises(googlenet.WeightsError, match="need the PyTorch weights"):
        onnx_predictor.cam(case.images[0])
    with pytest.raises(googlenet.ConfigError, match="runs as exported"):
        Predictor.from_file(case.onnx, amp=True)  # bf16 is for PyTorch weights


@slow
@paper_only
def test_cli_export_then_predict_with_onnx(run_cli, capsys, case, tmp_path):
    """The real command, a batch-of-one ONNX file, and predict through ONNX Runtime: the same
    JSON as predicting with the PyTorch weights (several images through a fixed batch of 1)."""
    out = tmp_path / "model.onnx"
    proc = run_cli("export", "--weights", case.weights, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stdout and "batch size 1" in proc.stdout and proc.stderr == ""
    results = {}
    for weights in (out, case.weights):
        code, stdout, err = run_main(capsys, "predict", "--weights", weights, *case.images,
                                     "--format", "json")  # fmt: skip
        assert code == 0, err
        results[weights.suffix] = json.loads(stdout)
    for got, want in zip(results[".onnx"], results[".safetensors"], strict=True):
        assert got["path"] == want["path"]
        assert [c["index"] for c in got["topk"]] == [c["index"] for c in want["topk"]]
        assert [c["prob"] for c in got["topk"]] == pytest.approx(
            [c["prob"] for c in want["topk"]], abs=1e-5
        )


@slow
@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")  # TorchScript is deprecated
@pytest.mark.parametrize("fmt", ["torchscript", "exported-program"])
def test_torchscript_and_exported_program_match_pytorch(case, fmt, tmp_path):
    path = tmp_path / f"model.{fmt}"
    result = export(case.model, path, fmt, dynamic_batch=True, check_images=case.images)
    assert result.max_abs_diff <= ATOL
    x = image_batch(case.model, case.images)
    if fmt == "torchscript":
        extra = {CONFIG_FILE: ""}
        module = torch.jit.load(str(path), _extra_files=extra)
    else:
        extra = {CONFIG_FILE: ""}
        module = torch.export.load(io.BytesIO(path.read_bytes()), extra_files=extra).module()
    assert json.loads(extra[CONFIG_FILE])["preset"] == case.preset
    with torch.no_grad():
        got = module(x).numpy()
    assert float(np.abs(got - reference(case.model, x)).max()) <= ATOL


@pytest.mark.parametrize("opset", [13, pytest.param(18, marks=slow)])
def test_lrn_exports_exactly_with_both_exporters(opset, tmp_path):
    """The paper's LRN, where it matters: with conv1 scaled up, removing the two LRN layers
    changes the logits by far more than the tolerance, and the export still matches. Opset 13
    goes through PyTorch's legacy exporter, 18 through the torch.export-based one."""
    model = tiny_model("paper", seed=4)
    with torch.no_grad():
        model.conv1.conv.weight.mul_(60)  # activations in the hundreds, as in Caffe's 0-255 input
    x = torch.randn(3, 3, INPUT_SIZE, INPUT_SIZE)
    want = reference(model, x)
    without_lrn = copy.deepcopy(model)
    without_lrn.norm1 = without_lrn.norm2 = torch.nn.Identity()
    assert np.abs(reference(without_lrn, x) - want).max() > 100 * ATOL

    path = tmp_path / "lrn.onnx"
    result = export(model, path, "onnx", opset=opset)
    proto = onnx.load(str(path))
    assert result.opset == opset
    assert [o.version for o in proto.opset_import if o.domain == ""] == [opset]
    predictor = Predictor.from_file(path)
    assert predictor.config.input_size == INPUT_SIZE  # the config travelled with the file
    assert np.abs(predictor.logits(x).numpy() - want).max() <= ATOL  # 3 images, batch-1 file


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
def test_a_failed_check_writes_nothing(tmp_path):
    model = tiny_model("paper", seed=5)
    path = tmp_path / "model.pt"
    with pytest.raises(ExportError, match="differ from PyTorch's"):
        export(model, path, "torchscript", atol=-1.0)  # no file can pass
    assert list(tmp_path.iterdir()) == []


@slow
@paper_only
def test_cli_export_bad_inputs(capsys, case, tmp_path):
    text = tmp_path / "notes.safetensors"
    text.write_text("not weights")
    no_config = tmp_path / "foreign.onnx"
    x, y = (onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [1, 3]) for n in "xy")
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    onnx.save(onnx.helper.make_model(graph), str(no_config))  # a valid ONNX file, not ours
    cases = [
        (("--weights", text, "--out", tmp_path / "a.onnx"), "not a weights file"),
        (("--weights", case.weights, "--out", tmp_path / "none" / "a.onnx"), "does not exist"),
        (("--weights", case.weights, "--out", tmp_path / "a.onnx", "--opset", "3"), "--opset"),
        (
            (
                "--weights",
                case.weights,
                "--out",
                tmp_path / "a.pt",
                "--format",
                "torchscript",
                "--opset",
                "18",
            ),
            "--opset is for ONNX",
        ),  # fmt: skip
        (("--weights", case.weights, "--out", tmp_path / "a", "--format", "tflite"), "choice"),
    ]
    for args, message in cases:
        code, out, err = run_main(capsys, "export", *args)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign.onnx", "notes.safetensors"]
    # weights of the wrong kind for predict and cam: an ONNX file without our configuration,
    # and an ONNX file where CAMs need PyTorch weights
    code, _, err = run_main(capsys, "predict", "--weights", no_config, case.images[0])
    assert code == 2 and "no 'googlenet.config' metadata" in err
    code, _, err = run_main(capsys, "cam", "--weights", case.onnx, case.images[0],
                            "--out", tmp_path / "c.png")  # fmt: skip
    assert code == 2 and "need the PyTorch weights" in err and not (tmp_path / "c.png").exists()


def test_export_fuses_by_default_and_no_fuse_keeps_the_plain_graph(tmp_path):
    model = tiny_model("torchvision", seed=4)
    fused, plain = tmp_path / "fused.onnx", tmp_path / "plain.onnx"
    a = export(model, fused, "onnx")
    b = export(model, plain, "onnx", fuse=False)
    assert a.max_abs_diff <= ATOL and b.max_abs_diff <= ATOL

    def ops(path):
        return [n.op_type for n in onnx.load(str(path)).graph.node]

    # BatchNorm and transform_input folded away: the plain graph computes transform_input with
    # per-channel Slice/Mul/Add ops, the fused one with one Add before conv1.
    assert "BatchNormalization" not in ops(fused)
    assert "Slice" in ops(plain) and "Slice" not in ops(fused)
    assert ops(fused).count("Conv") == ops(plain).count("Conv")
    assert len(ops(fused)) < len(ops(plain))


@slow
def test_cli_int8_export_then_predict_and_eval(tmp_path, capsys):
    from folders import make_dataset

    model = tiny_model("paper", seed=5)
    weights = tmp_path / "w.safetensors"
    googlenet.save_weights(model, weights)
    calib = tmp_path / "calib"
    write_pictures(calib / "sub", 12)
    out = tmp_path / "w-int8.onnx"
    code, stdout, err = run_main(capsys, "export", "--weights", weights, "--out", out, "--int8",
                                 "--calibration", calib, "--calibration-count", 8)  # fmt: skip
    assert code == 0, err
    assert "calibrated on 8 images" in stdout and "top-1 agrees" in stdout
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    # The int8 file is self-describing: predict and eval take it like any weights.
    picture_paths = write_pictures(tmp_path / "pics", 2)
    code, stdout, err = run_main(capsys, "predict", "--weights", out, "--format", "json",
                                 *picture_paths)  # fmt: skip
    assert code == 0, err
    assert [r["topk"][0]["class"] for r in json.loads(stdout)] != []
    root = make_dataset(tmp_path / "data", tuple(model.config.class_names), train=1, val=1)
    code, stdout, err = run_main(capsys, "eval", "--weights", out, "--data", root,
                                 "--format", "json")  # fmt: skip
    assert code == 0, err
    assert json.loads(stdout)["n"] == len(model.config.class_names)


def test_cli_int8_needs_calibration_and_onnx(tmp_path, capsys):
    model = tiny_model("paper", seed=5)
    weights = tmp_path / "w.safetensors"
    googlenet.save_weights(model, weights)
    for args, message in [
        (["--int8"], "--int8 and --calibration DIR go together"),
        (["--int8", "--calibration", tmp_path, "--format", "torchscript"], "fused ONNX"),
        (["--int8", "--calibration", tmp_path / "nope"], "is not a directory"),
        (["--int8", "--calibration", tmp_path], "holds no image files"),
    ]:
        (tmp_path / "empty").mkdir(exist_ok=True)
        code, _, err = run_main(capsys, "export", "--weights", weights,
                                "--out", tmp_path / "x.onnx", *args)  # fmt: skip
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "x.onnx").exists()
