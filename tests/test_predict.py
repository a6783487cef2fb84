"""`googlenet predict` and the Predictor API, on models and images the tests make."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.inference import (
    CLASSES,
    INPUT_SIZE,
    picture,
    run_main,
    tiny_model,
    write_pictures,
)
from PIL import Image

import googlenet
from googlenet.data import EvalTransform, find_images, multi_crop, normalize
from googlenet.runtime.backends import BACKENDS
from googlenet.runtime.predictor import Predictor


@pytest.fixture(scope="module")
def model() -> googlenet.GoogLeNet:
    return tiny_model("paper", seed=1)


@pytest.fixture(scope="module")
def weights(model, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    googlenet.save_weights(model, path)
    return path


@pytest.fixture(scope="module")
def predictor(model) -> Predictor:
    return Predictor(model, device="cpu")


def expected_probs(model: googlenet.GoogLeNet, image: Image.Image, crops: int = 1) -> torch.Tensor:
    """Softmax of the model on the image's crops, averaged: the definition, written out."""
    x = EvalTransform.for_model(model.config, crops)(image)
    with torch.no_grad():
        return model.eval()(x).softmax(-1).mean(0)


# -- the API ------------------------------------------------------------------------------------


def test_predictions_are_the_models_softmax_on_center_crops(model, predictor):
    images = [picture(i) for i in range(3)]
    preds = predictor(images, topk=5)
    assert [p.path for p in preds] == [None] * 3
    for image, pred in zip(images, preds, strict=True):
        want = expected_probs(model, image)
        assert [s.index for s in pred.topk] == want.argsort(descending=True).tolist()
        assert [s.name for s in pred.topk] == [CLASSES[s.index] for s in pred.topk]
        for s in pred.topk:
            assert s.prob == pytest.approx(float(want[s.index]), abs=1e-6)
        assert sum(s.prob for s in pred.topk) == pytest.approx(1.0, abs=1e-5)


def test_paths_pil_and_tensors_give_the_same_answer(predictor, tmp_path):
    path = write_pictures(tmp_path, 1)[0]
    image = Image.open(path).convert("RGB")
    uint8 = torch.from_numpy(np.array(image)).permute(2, 0, 1)
    from_path = predictor.probabilities([path])
    assert torch.allclose(predictor.probabilities([image]), from_path, atol=1e-6)
    assert torch.allclose(predictor.probabilities([uint8]), from_path, atol=1e-6)
    # float tensors in [0, 1] are images too (resized in float, so only close)
    assert torch.allclose(predictor.probabilities(uint8[None] / 255.0), from_path, atol=2e-3)
    # a single path comes back as a list of one, with the path
    (pred,) = predictor(str(path), topk=2)
    assert pred.path == str(path) and len(pred.topk) == 2


def test_ten_crops_average_the_probabilities_of_each_crop(model):
    image = picture(7, (96, 72))
    pred_probs = Predictor(model, crops=10).probabilities([image])[0]
    pixels = torch.from_numpy(np.array(image)).permute(2, 0, 1)
    crops = normalize(multi_crop(pixels, INPUT_SIZE, 10), model.config.mean, model.config.std)
    assert crops.shape == (10, 3, INPUT_SIZE, INPUT_SIZE)
    with torch.no_grad():
        want = model(crops).softmax(-1).mean(0)
    assert torch.allclose(pred_probs, want, atol=1e-6)
    assert not torch.allclose(pred_probs, expected_probs(model, image, crops=1), atol=1e-6)


def test_logits_is_the_model_on_a_normalized_batch(model, predictor):
    x = torch.randn(3, 3, INPUT_SIZE, INPUT_SIZE)
    with torch.no_grad():
        want = model(x)
    # The default backend is the fast inference path: the same logits within 1e-4.
    assert predictor.backend == "auto"
    assert (predictor.logits(x) - want).abs().max() <= 1e-4
    # "eager" runs the module itself: bit for bit.
    assert torch.equal(Predictor(model, device="cpu", backend="eager").logits(x), want)
    with pytest.raises(googlenet.InputSizeError):
        predictor.logits(torch.randn(1, 3, 8, 8))


def test_backend_is_pluggable_by_factory_and_by_name(model):
    calls = []

    def counting(net):
        def run(x):
            calls.append(x.shape[0])
            return net(x) * 2  # a backend that visibly changes the answer

        return run

    p = Predictor(model, backend=counting)
    x = torch.randn(2, 3, INPUT_SIZE, INPUT_SIZE)
    with torch.no_grad():
        assert torch.allclose(p.logits(x), model(x) * 2)
    p([picture(0), picture(1), picture(2)])
    assert calls == [2, 3]  # logits() and the batched __call__ both go through the backend

    assert "eager" in BACKENDS and Predictor(model, backend="eager").backend == "eager"
    with pytest.raises(googlenet.ConfigError, match="unknown backend 'nope'.*eager"):
        Predictor(model, backend="nope")


def test_stream_reports_unreadable_files_in_order_with_workers(predictor, tmp_path):
    paths = write_pictures(tmp_path, 5)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    order = paths[:2] + [bad] + paths[2:]
    predictor.batch_size = 2
    try:
        serial = list(predictor.stream(order, topk=3, workers=0))
        parallel = list(predictor.stream(order, topk=3, workers=2))
    finally:
        predictor.batch_size = 32
    assert [p.path for p in serial] == [str(p) for p in order]
    assert serial == parallel
    assert [p.ok for p in serial] == [True, True, False, True, True, True]
    assert "broken.jpg" in serial[2].error and serial[2].topk == ()
    (alone,) = predictor(order[0], topk=3)  # another batch: equal up to float rounding
    assert [s.index for s in serial[0].topk] == [s.index for s in alone.topk]
    assert [s.prob for s in serial[0].topk] == pytest.approx([s.prob for s in alone.topk])


def test_class_index_by_name_case_and_number(predictor):
    assert predictor.class_index("cherry") == 2
    assert predictor.class_index("banana") == 1
    assert predictor.class_index("4") == 4
    with pytest.raises(googlenet.ConfigError, match="no class 'chery'.*did you mean 'cherry'"):
        predictor.class_index("chery")
    with pytest.raises(googlenet.ConfigError, match="out of range"):
        predictor.class_index(5)


def test_find_images_walks_folders_and_globs(tmp_path):
    a = write_pictures(tmp_path / "a", 2)
    b = write_pictures(tmp_path / "a" / "deeper", 1, start=5, suffix=".jpg")
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    found, problems = find_images([tmp_path / "a", str(tmp_path / "a" / "*.png"), "nowhere.png"])
    assert found == a + b  # recursive, sorted, deduplicated, .txt skipped in folders
    assert problems == ["nowhere.png: no such file or directory"]
    assert find_images([str(tmp_path / "*.gif")])[1][0].endswith("no file matches this pattern")


def test_torchvision_weights_predict_like_torchvision(tmp_path):
    """A torchvision googlenet state dict: ImageNet class names, torchvision's own numbers."""
    from helpers.inference import calibrate
    from torchvision.models import googlenet as tv_googlenet

    torch.manual_seed(0)
    tv = tv_googlenet(weights=None, aux_logits=True, init_weights=True, transform_input=True)
    image = picture(3, (300, 240))
    x = EvalTransform(224, googlenet.model.IMAGENET_MEAN, googlenet.model.IMAGENET_STD)(image)
    calibrate(tv, torch.cat([x, x.flip(-1), x.flip(-2)]))
    path = tmp_path / "googlenet-tv.pth"
    torch.save(tv.state_dict(), path)

    predictor = Predictor.from_file(path, device="cpu")
    assert predictor.model.aux1 is None  # dropped: never used at inference
    (pred,) = predictor([image], topk=3)
    with torch.no_grad():
        want = tv(x).softmax(-1)[0]
    top = want.topk(3)
    assert [s.index for s in pred.topk] == top.indices.tolist()
    assert [s.prob for s in pred.topk] == pytest.approx(top.values.tolist(), abs=1e-5)
    assert pred.topk[0].name == googlenet.weights.imagenet_categories()[top.indices[0]]


# -- the command line ---------------------------------------------------------------------------


def test_cli_predict_json_matches_the_api(run_cli, weights, predictor, tmp_path):
    paths = write_pictures(tmp_path / "imgs", 3)
    write_pictures(tmp_path / "imgs" / "sub", 1, start=9)
    proc = run_cli("predict", "--weights", weights, tmp_path / "imgs", "--topk", "2",
                   "--format", "json", "-b", "2")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert [Path(r["path"]).name for r in out] == ["img0.png", "img1.png", "img2.png", "img9.png"]
    for record, path in zip(out[:3], paths, strict=True):
        (want,) = predictor(path, topk=2)
        assert record["topk"] == [
            {"class": s.name, "index": s.index, "prob": pytest.approx(s.prob, abs=1e-5)}
            for s in want.topk
        ]
    assert "Traceback" not in proc.stderr


def test_cli_predict_formats_and_out_file(capsys, weights, tmp_path):
    paths = write_pictures(tmp_path, 2)
    args = ("predict", "--weights", weights, *paths, "--topk", "3")
    code, out, _ = run_main(capsys, *args, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [(Path(r["path"]).name, r["rank"]) for r in rows] == [
        (f"img{i}.png", str(k)) for i in range(2) for k in (1, 2, 3)
    ]
    assert all(r["class"] in CLASSES and 0 <= float(r["prob"]) <= 1 for r in rows)

    code, out, _ = run_main(capsys, *args, "--format", "jsonl")
    assert [len(json.loads(line)["topk"]) for line in out.splitlines()] == [3, 3]

    code, out, _ = run_main(capsys, *args)
    assert code == 0 and str(paths[0]) in out and "%" in out

    target = tmp_path / "preds.json"
    code, out, err = run_main(capsys, *args, "--format", "json", "--out", target)
    assert code == 0 and out == "" and "predicted 2 image(s)" in err
    assert len(json.loads(target.read_text())) == 2


def test_cli_predict_skips_and_counts_unreadable_files(capsys, weights, tmp_path):
    paths = write_pictures(tmp_path, 2)
    bad = tmp_path / "fake.png"
    bad.write_text("this is text, not a PNG")
    code, out, err = run_main(capsys, "predict", "--weights", weights, paths[0], bad, paths[1],
                              tmp_path / "gone.jpg", "--format", "jsonl")  # fmt: skip
    assert code == 2
    assert [json.loads(line)["path"] for line in out.splitlines()] == list(map(str, paths))
    assert "fake.png: not a readable image" in err
    assert "gone.jpg: no such file or directory" in err
    assert "2 of 4 input(s) failed" in err


def test_cli_predict_not_an_image_alone(run_cli, weights, tmp_path):
    bad = tmp_path / "photo.jpg"
    bad.write_bytes(b"GIF89a but truncated")
    proc = run_cli("predict", "--weights", weights, bad)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "photo.jpg: not a readable image" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
@pytest.mark.parametrize(
    "content, message",
    [
        (b"just some text", "is not a weights file"),
        (None, "is not a weights file"),  # an image given as weights
        ("torchscript", "is a TorchScript archive"),
    ],
)
def test_cli_predict_weights_of_the_wrong_kind(capsys, tmp_path, content, message):
    path = tmp_path / "weights.bin"
    if content is None:
        picture(0).save(path, format="PNG")
    elif content == "torchscript":
        scripted = torch.jit.script(torch.nn.Linear(2, 2))
        torch.jit.save(scripted, str(path))
    else:
        path.write_bytes(content)
    image = write_pictures(tmp_path, 1)[0]
    code, out, err = run_main(capsys, "predict", "--weights", path, image)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


def test_cli_predict_usage_errors(capsys, weights, tmp_path):
    image = write_pictures(tmp_path, 1)[0]
    code, _, err = run_main(capsys, "predict", "--weights", weights, image,
                            "--out", tmp_path / "no" / "p.csv")  # fmt: skip
    assert code == 2 and "directory" in err and "does not exist" in err
    assert not (tmp_path / "no").exists()
    if not torch.cuda.is_available():
        code, _, err = run_main(capsys, "predict", "--weights", weights, image, "--device", "cuda")
        assert code == 2 and "not available" in err
    code, _, err = run_main(capsys, "predict", "--weights", weights, tmp_path / "empty*.png")
    assert code == 2 and "no file matches" in err
    for args in (
        ("--weights", tmp_path / "missing.safetensors", image),
        ("--weights", weights, image, "--crops", "3"),
        ("--weights", weights, image, "--topk", "0"),
        ("--weights", weights, image, "--backend", "warp-drive"),
        ("--weights", weights, image, "--device", "gpu9"),
    ):
        code, _, err = run_main(capsys, "predict", *args)
        assert code == 2 and len(err.strip().splitlines()) == 1, err


# -- bf16 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["auto", "torch", "eager"])
def test_amp_predicts_like_fp32_within_bf16_precision(model, predictor, backend):
    fast = Predictor(model, device="cpu", backend=backend, amp=True)
    images = [picture(i) for i in range(4)]
    want, got = predictor.probabilities(images), fast.probabilities(images)
    assert got.dtype == torch.float32 and got.shape == want.shape
    # bf16 keeps 8 bits of mantissa: close to fp32, not equal to it
    assert torch.allclose(got, want, atol=3e-2)
    assert (got.argmax(1) == want.argmax(1)).float().mean() >= 0.75


def test_amp_needs_a_backend_with_bf16(model, weights, tmp_path, capsys):
    # --amp means the same on every backend that computes in bf16 (eager included: autocast);
    # ONNX Runtime has no bf16 convolutions, so it refuses rather than silently running fp32.
    with pytest.raises(googlenet.ConfigError, match="runs on the torch, compile and openvino"):
        Predictor(model, device="cpu", backend="onnxruntime", amp=True)
    image = write_pictures(tmp_path, 1)[0]
    code, out, _ = run_main(capsys, "predict", "--weights", weights, "--amp", "bf16", image)
    assert code == 0 and image.name in out
    code, _, err = run_main(
        capsys, "predict", "--weights", weights, "--amp", "bf16", "--backend", "onnxruntime", image
    )
    assert code == 2 and "onnxruntime" not in err.split(":")[0] and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and "openvino" in err
