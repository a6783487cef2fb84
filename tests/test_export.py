"""`googlenet export`: ONNX, TorchScript and ExportedProgram files that compute what PyTorch does.

Each exported file is loaded here independently of the export code (ONNX Runtime, torch.jit,
torch.export) and compared with the PyTorch model on pictures the test draws, for the paper
preset (LRN, true 5x5) and the torchvision one (BatchNorm, transform_input).
"""

from __future__ import annotations

import copy
import io
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from helpers.inference import INPUT_SIZE, run_main, tiny_model, write_pictures
from PIL import Image

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
    proc = run_cli("export", "--weights", case.weights, "--out", out, "--static-batch")
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stdout and "batch size 1" in proc.stdout and proc.stderr == ""
    assert "input: float32 1 x 3 x 64 x 64" in proc.stdout  # the contract, with its numbers
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
    result = export(model, path, "onnx", opset=opset, dynamic_batch=False)
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
    from helpers.folders import make_dataset

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
    # The reported figures, recomputed with ONNX Runtime's own session on the file (not the
    # package's runner) and the plain PyTorch model, on the 8 images `calibration_batch` picks.
    from googlenet.export import calibration_batch

    images = calibration_batch(model.config, calib, 8)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])

    def int8_logits(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])

    with torch.no_grad():
        fp32 = model.eval()(images)
    got = int8_logits(images)
    agree = float((got.argmax(1) == fp32.argmax(1)).float().mean())
    assert f"top-1 agrees with fp32 on {agree:.1%} of them" in stdout
    reported = float(stdout.split("logit = ")[1].split()[0])
    # printed to 3 significant digits; a second session on the same file computes the same
    assert reported == pytest.approx(float((got - fp32).abs().max()), rel=5e-3)
    # The int8 file is self-describing: predict and eval take it like any weights.
    picture_paths = write_pictures(tmp_path / "pics", 2)
    code, stdout, err = run_main(capsys, "predict", "--weights", out, "--format", "json",
                                 *picture_paths)  # fmt: skip
    assert code == 0, err
    transform = EvalTransform.for_model(model.config)
    for row, path in zip(json.loads(stdout), picture_paths, strict=True):
        probs = int8_logits(transform(open_image(path))).softmax(1)[0]
        ranked = probs.argsort(descending=True).tolist()
        assert [r["class"] for r in row["topk"]] == [model.config.class_names[i] for i in ranked]
        # probabilities of one int8 graph on one input: float32 rounding only
        assert [r["prob"] for r in row["topk"]] == pytest.approx(probs[ranked].tolist(), abs=1e-4)
    root = make_dataset(tmp_path / "data", tuple(model.config.class_names), train=1, val=2)
    code, stdout, err = run_main(capsys, "eval", "--weights", out, "--data", root,
                                 "--format", "json")  # fmt: skip
    assert code == 0, err
    hits = 0
    for label, name in enumerate(model.config.class_names):
        for path in sorted((root / "val" / name).iterdir()):
            hits += int(int8_logits(transform(open_image(path))).argmax()) == label
    n = 2 * len(model.config.class_names)
    assert json.loads(stdout)["n"] == n
    assert json.loads(stdout)["top1"] == pytest.approx(100 * hits / n, abs=1e-3)


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


# -- the input contract, as docs/guide/export.md states it, outside the package ----------------

# Run in a fresh interpreter: it may import torch and nothing else of ours.
TORCHSCRIPT_ONLY = """
import json, sys, torch
extra = {"googlenet.config.json": ""}
module = torch.jit.load(sys.argv[1], _extra_files=extra)
x = torch.load(sys.argv[2], weights_only=True)
with torch.no_grad():
    torch.save(module(x), sys.argv[3])
assert not any(name.startswith("googlenet") for name in sys.modules), "imported googlenet"
print(json.loads(extra["googlenet.config.json"])["input_size"])
"""


def readme_preprocess(path: Path, config: dict) -> np.ndarray:
    """The export page's recipe with PIL and numpy only: RGB, the short side to 256 x S / 224
    (bilinear), a center S x S crop, [0, 1], the stored mean and std; 1 x 3 x S x S float32."""
    s = config["input_size"]
    img = Image.open(path).convert("RGB")
    short = round(256 * s / 224)
    w, h = img.size
    size = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)
    img = img.resize(size, Image.Resampling.BILINEAR)
    left, top = int(round((size[0] - s) / 2.0)), int(round((size[1] - s) / 2.0))
    x = np.asarray(img.crop((left, top, left + s, top + s)), dtype=np.float32) / 255.0
    x = (x - np.array(config["mean"], np.float32)) / np.array(config["std"], np.float32)
    return x.transpose(2, 0, 1)[None]


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


@slow
@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
def test_exported_files_work_outside_the_package_as_the_readme_says(tmp_path, capsys):
    """`googlenet export` (defaults: ONNX, any batch size) run by a bare ONNX Runtime session at
    batch 1 and 4, and the TorchScript file by a process that imports only torch, both fed the
    export page's preprocessing: the probabilities of `googlenet predict`. The pictures are exactly
    the resize size (73 px for 64), so that PIL's and torchvision's resampling cannot differ."""
    model = tiny_model("paper", seed=6)
    weights = googlenet.save_weights(model, tmp_path / "m.safetensors")
    images = [tmp_path / f"{i}.png" for i in range(4)]
    for i, path in enumerate(images):
        Image.fromarray(np.uint8(np.random.default_rng(i).integers(0, 256, (73, 73, 3)))).save(path)
    code, out, err = run_main(capsys, "export", "--weights", weights)
    assert code == 0 and "any batch size" in out and "input: float32 N x 3 x 64 x 64" in out, err
    code, out, err = run_main(capsys, "predict", *images, "--weights", weights, "--format", "json",
                              "--topk", "5", "-j", "0", "--backend", "eager")  # fmt: skip
    assert code == 0, err
    want = np.array([[c["prob"] for c in sorted(p["topk"], key=lambda c: c["index"])]
                     for p in json.loads(out)])  # fmt: skip

    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    config = json.loads(session.get_modelmeta().custom_metadata_map["googlenet.config"])
    batch = np.concatenate([readme_preprocess(p, config) for p in images])
    (name,) = (i.name for i in session.get_inputs())
    four = session.run(None, {name: batch})[0]
    ones = np.concatenate([session.run(None, {name: batch[i : i + 1]})[0] for i in range(4)])
    assert np.abs(softmax(four) - want).max() < 1e-4
    assert np.abs(softmax(ones) - want).max() < 1e-4

    code, out, err = run_main(capsys, "export", "--weights", weights, "--format", "torchscript")
    assert code == 0, err
    torch.save(torch.from_numpy(batch), tmp_path / "x.pt")
    proc = subprocess.run(
        [sys.executable, "-c", TORCHSCRIPT_ONLY, tmp_path / "m.pt", tmp_path / "x.pt",
         tmp_path / "y.pt"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.strip() == "64", proc.stderr
    got = torch.load(tmp_path / "y.pt", weights_only=True).numpy()
    assert np.abs(softmax(got) - want).max() < 1e-4
