"""Caffe .caffemodel import, checked against OpenCV's Caffe importer running BVLC's deploy.prototxt.

The tests write their own GoogLeNet .caffemodel files (random weights at a trained network's
scale, every layer of train_val.prototxt, current and legacy V1 layouts) and never need BVLC's
53 MB download.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from helpers.caffe import (
    DEPLOY,
    TRAIN_VAL,
    caffe_input,
    googlenet_layers,
    prototxt_layers,
    random_blobs,
    write_caffemodel,
)
from helpers.inference import picture, run_main
from safetensors import safe_open

import googlenet
from googlenet.data import EvalTransform, multi_crop, normalize
from googlenet.weights import caffe
from googlenet.weights.caffe_proto import BlobProto

# One worker builds the module's 53 MB files once (pytest -n 2 --dist loadgroup).
pytestmark = pytest.mark.xdist_group("caffe")


@pytest.fixture
def cv2():
    """OpenCV 4 (the dev extra pins it: OpenCV 5 dropped the Caffe importer)."""
    return pytest.importorskip("cv2")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """One set of random GoogLeNet weights, written in both layouts (about 0.5 s each)."""
    folder = tmp_path_factory.mktemp("caffe")
    blobs = random_blobs(seed=0)
    current = write_caffemodel(folder / "googlenet.caffemodel", blobs)
    legacy = write_caffemodel(folder / "googlenet_v1.caffemodel", blobs, legacy=True)
    return blobs, current, legacy


@pytest.fixture(scope="module")
def imported(files):
    return googlenet.load(files[1]).eval()


def images(n: int = 2, size: int = 224, seed: int = 1) -> np.ndarray:
    """N x H x W x 3 uint8 RGB pictures: smooth color fields with edges, not white noise."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (n, size // 8, size // 8, 3)).astype(np.uint8)
    pictures = base.repeat(8, axis=1).repeat(8, axis=2)
    return np.clip(pictures + rng.integers(-20, 20, pictures.shape), 0, 255).astype(np.uint8)


def test_helper_describes_every_layer_of_train_val():
    """The test files hold every layer with parameters of BVLC's train_val.prototxt (aux heads
    included) with its num_output, and nothing else; deploy.prototxt is the same without aux."""
    want = prototxt_layers(TRAIN_VAL)
    have = googlenet_layers()
    assert set(have) == set(want) and len(want) == 3 + 9 * 6 + 2 * 3 + 1
    assert all(have[name][0][0] == num_output for name, (_, num_output) in want.items())
    deploy = set(prototxt_layers(DEPLOY))
    assert deploy == {k for k in want if not k.startswith(("loss1/", "loss2/"))}


def test_matches_opencv_caffe_runtime(files, imported, cv2):
    """OpenCV runs BVLC's deploy.prototxt on the file with BGR 0-255-minus-mean input; ours takes
    the same pictures as RGB through the preprocessing recorded in the weights."""
    _, current, _ = files
    net = cv2.dnn.readNetFromCaffe(str(DEPLOY), str(current))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.enableWinograd(False)  # exact convolutions: Winograd trades accuracy for speed
    rgb = images()
    net.setInput(caffe_input(rgb))
    want_logits, want_prob = net.forward(["loss3/classifier", "prob"])
    want_logits, want_prob = want_logits.reshape(len(rgb), -1), want_prob.reshape(len(rgb), -1)

    config = imported.config
    x = normalize(torch.from_numpy(rgb).permute(0, 3, 1, 2), config.mean, config.std)
    with torch.no_grad():
        logits = imported(x).numpy()
    assert want_logits.std() > 1.0 and want_prob.max() > 0.1  # a meaningful comparison
    # 1e-4 relative to the logits' scale (a logit near 0 has no meaningful relative error).
    np.testing.assert_allclose(
        logits, want_logits, rtol=1e-4, atol=1e-4 * np.abs(want_logits).max()
    )
    np.testing.assert_allclose(torch.softmax(torch.from_numpy(logits), 1), want_prob, atol=1e-5)
    assert (logits.argmax(1) == want_logits.argmax(1)).all()


def test_configuration_records_caffe_preprocessing(imported):
    config = imported.config
    assert config.preset == "paper" and config.num_classes == 1000 and config.aux_logits
    assert config.class_names == tuple(googlenet.weights.imagenet_categories())
    # 0-255 pixels minus (R 123, G 117, B 104), no std: exactly Caffe's input from [0, 1] RGB.
    x = torch.tensor([[[[0.0]], [[128 / 255]], [[1.0]]]])
    m, s = torch.tensor(config.mean).view(3, 1, 1), torch.tensor(config.std).view(3, 1, 1)
    assert ((x - m) / s).flatten().tolist() == pytest.approx([-123, 11, 151], abs=1e-4)


def test_aux_heads_are_the_files_loss1_loss2_and_conv1_is_rgb(files, imported):
    blobs = files[0]
    state = imported.state_dict()
    for n in (1, 2):
        for layer, ours in (("conv", "conv.conv"), ("fc", "fc1"), ("classifier", "fc2")):
            weight, bias = blobs[f"loss{n}/{layer}"]
            assert torch.equal(state[f"aux{n}.{ours}.weight"], torch.from_numpy(weight))
            assert torch.equal(state[f"aux{n}.{ours}.bias"], torch.from_numpy(bias))
    conv1 = torch.from_numpy(blobs["conv1/7x7_s2"][0])
    assert torch.equal(state["conv1.conv.weight"], conv1[:, [2, 1, 0]])
    assert torch.equal(state["fc.weight"], torch.from_numpy(blobs["loss3/classifier"][0]))


def test_legacy_v1_layout_gives_the_same_model(files, imported, tmp_path):
    """BVLC's 2014 layout; recognized by its bytes under any file name (a download saved as
    ``bvlc_googlenet.caffemodel.1``)."""
    renamed = tmp_path / "bvlc_googlenet.caffemodel.1"
    renamed.write_bytes(files[2].read_bytes())
    legacy = googlenet.load(renamed)
    assert legacy.config == imported.config
    want = imported.state_dict()
    got = legacy.state_dict()
    assert got.keys() == want.keys()
    assert all(torch.equal(got[k], want[k]) for k in want)


def test_names_bvlcs_release_file_by_sha1(files, monkeypatch, caplog):
    import hashlib

    current = files[1]
    caplog.set_level(logging.DEBUG, logger="googlenet.weights.caffe")
    googlenet.load(current, aux_logits=False)
    assert "not BVLC's release file" in caplog.text
    caplog.clear()
    monkeypatch.setattr(
        caffe, "BVLC_GOOGLENET_SHA1", hashlib.sha1(current.read_bytes()).hexdigest()
    )
    model = googlenet.load(current, aux_logits=False)
    assert "is BVLC's bvlc_googlenet.caffemodel" in caplog.text and model.aux1 is None


def test_other_class_counts_import_with_names_from_a_file(tmp_path, capsys):
    """A Places365-style GoogLeNet: same layer names, 365 classes, names from --classes; its
    classifier renamed the Caffe fine-tuning way (loss3/classifier_places) is still found."""
    blobs = random_blobs(365, aux=False, seed=3)
    blobs["loss3/classifier_places"] = blobs.pop("loss3/classifier")
    src = write_caffemodel(tmp_path / "places.caffemodel", blobs)
    numbered = googlenet.load(src)
    fc = torch.from_numpy(blobs["loss3/classifier_places"][0])
    assert torch.equal(numbered.fc.weight.detach(), fc)
    assert numbered.num_classes == 365 and numbered.config.class_names is None
    assert numbered.aux1 is None  # no loss1/loss2 layers in the file
    names = tmp_path / "categories.txt"
    names.write_text("".join(f"/a/place_{i}\n" for i in range(365)))
    out = tmp_path / "places.safetensors"
    code, stdout, err = run_main(capsys, "convert-weights", src, out, "--classes", names)
    assert code == 0 and "365 classes" in stdout, err
    model = googlenet.load(out)
    assert model.config.class_names[7] == "/a/place_7" and model.config.mean == numbered.config.mean
    names.write_text("only\nthree\nnames\n")
    code, _, err = run_main(capsys, "convert-weights", src, tmp_path / "bad.safetensors",
                            "--classes", names)  # fmt: skip
    assert code == 2 and "3 class names given for 365 classes" in err
    assert not (tmp_path / "bad.safetensors").exists()


@pytest.mark.slow
def test_cli_convert_predict_and_export(files, tmp_path, capsys, cv2):
    """convert-weights (with --no-aux), then predict, eval and export with no extra flags: the
    top-1 of predict (either --resize) and eval --resize squash is OpenCV's Caffe's on the same
    crop."""
    out = tmp_path / "bvlc.safetensors"
    code, stdout, err = run_main(capsys, "convert-weights", files[1], out, "--no-aux")
    assert code == 0, err
    assert "preset paper, 1000 classes" in stdout and "aux heads dropped" in stdout
    with safe_open(str(out), framework="pt") as f:
        assert not any(k.startswith("aux") for k in f.keys())
        assert json.loads(f.metadata()["googlenet.config"])["std"] == [1 / 255] * 3

    image = tmp_path / "picture.png"
    picture(7, size=(300, 240)).save(image)
    pixels = torch.from_numpy(np.array(picture(7, size=(300, 240)))).permute(2, 0, 1)
    net = cv2.dnn.readNetFromCaffe(str(DEPLOY), str(files[1]))
    for resize in ("shorter", "squash"):
        code, stdout, err = run_main(capsys, "predict", "--weights", files[1], image, "--format",
                                     "json", "--topk", "1", "--resize", resize)  # fmt: skip
        assert code == 0, err
        top1 = json.loads(stdout)[0]["topk"][0]
        crop = multi_crop(pixels, 224, 1, resize=resize)
        net.setInput(caffe_input(crop.permute(0, 2, 3, 1).numpy()))
        prob = net.forward("prob").reshape(-1)
        assert top1["index"] == int(prob.argmax())
        assert top1["prob"] == pytest.approx(float(prob.max()), abs=1e-4)
        assert top1["class"] == googlenet.weights.imagenet_categories()[top1["index"]]

    # eval --resize squash: the picture filed under the class OpenCV gives its squashed crop.
    folder = tmp_path / "val" / top1["class"]  # top1 is from the last loop round, "squash"
    folder.mkdir(parents=True)
    picture(7, size=(300, 240)).save(folder / "picture.png")
    report_path = tmp_path / "report.json"
    args = ["--data", tmp_path, "--resize", "squash", "-j", "0", "--output", report_path]
    code, stdout, err = run_main(capsys, "eval", "--weights", files[1], *args)
    assert code == 0, err
    report = json.loads(report_path.read_text())
    assert report["resize"] == "squash" and report["n"] == 1 and report["top1"] == 100.0

    onnx = tmp_path / "bvlc.onnx"
    code, stdout, err = run_main(capsys, "export", "--weights", out, "--out", onnx)
    assert code == 0, err
    assert onnx.stat().st_size > 20_000_000


def _alexnet(path):
    blobs = {"conv1": [np.zeros((96, 3, 11, 11), np.float32), np.zeros(96, np.float32)],
             "fc8": [np.zeros((1000, 4096), np.float32), np.zeros(1000, np.float32)]}  # fmt: skip
    write_caffemodel(path, blobs, name="AlexNet")


def _wrong_shape(path):
    blobs = random_blobs(seed=5)
    blobs["inception_3a/5x5"][0] = np.zeros((32, 16, 3, 3), np.float32)  # torchvision's 3x3
    write_caffemodel(path, blobs, legacy=True)


def _mean_file(path):
    blob = BlobProto(num=1, channels=3, height=4, width=4)
    blob.data.extend([110.0] * 48)
    path.write_bytes(blob.SerializeToString())


def _truncated(path, files):
    data = files[2].read_bytes()
    path.write_bytes(data[: len(data) // 3])


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p, f: _truncated(p, f), "is not a readable .caffemodel"),
        (lambda p, f: _alexnet(p), "Caffe model of another network ('AlexNet', layers 'conv1'"),
        (lambda p, f: _wrong_shape(p), "layer 'inception_3a/5x5' has weight of shape [32, 16, 3"),
        (lambda p, f: _mean_file(p), "holds no Caffe layers"),
        (lambda p, f: p.write_bytes(b""), "is empty"),
        (lambda p, f: p.write_bytes(DEPLOY.read_bytes()), "is a text .prototxt"),
        (lambda p, f: write_caffemodel(p, {}), "has 3 layers but no weights"),
    ],
    ids=[
        "truncated",
        "alexnet",
        "wrong-shape",
        "not-a-netparameter",
        "empty",
        "prototxt",
        "no-weights",
    ],  # fmt: skip
)
def test_cli_bad_caffemodels_one_line_exit_2_nothing_written(
    files, tmp_path, capsys, make, message
):
    src = tmp_path / "bad.caffemodel"
    make(src, files)
    out = tmp_path / "out" / "w.safetensors"
    out.parent.mkdir()
    code, stdout, err = run_main(capsys, "convert-weights", src, out)
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert list(out.parent.iterdir()) == []


def test_missing_protobuf_names_the_extra(files, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "googlenet.weights.caffe_proto", None)
    with pytest.raises(googlenet.WeightsError, match=r"googlenet\[caffe\]"):
        googlenet.load(files[1])


def test_squash_resize_is_caffes_256x256_then_center_crop():
    """--resize squash: both sides to 256 (the aspect is lost), then the center 224; the default
    keeps the aspect. On a 2:1 image whose pixels are their column index the crops' first and
    last columns tell where each one was cut."""
    image = torch.arange(200).repeat(3, 100, 1).to(torch.uint8)  # 3 x 100 x 200
    squash = multi_crop(image, 224, 1, resize="squash")[0, 0, 112]
    shorter = multi_crop(image, 224, 1)[0, 0, 112]
    assert 10 <= squash[0] <= 16 and 184 <= squash[-1] <= 190  # columns 16..240 of 256
    assert 53 <= shorter[0] <= 59 and 140 <= shorter[-1] <= 146  # columns 144..368 of 512
    ten = EvalTransform(64, (0, 0, 0), (1, 1, 1), crops=10, resize="squash")
    assert ten(picture(1, size=(120, 60))).shape == (10, 3, 64, 64)
    with pytest.raises(googlenet.DataError, match="--resize"):
        EvalTransform(64, (0, 0, 0), (1, 1, 1), resize="stretch")


def test_cli_process_exits_2_on_a_damaged_file_without_traceback(files, tmp_path, run_cli):
    """The real process (the other CLI tests run main() in this one): status 2, one line."""
    src = tmp_path / "bvlc_googlenet.caffemodel"
    _truncated(src, files)
    proc = run_cli("convert-weights", src, tmp_path / "w.safetensors")
    assert proc.returncode == 2 and "is not a readable .caffemodel" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "w.safetensors").exists()


def test_the_key_map_keeps_every_layer_in_any_order_and_squeezes_only_legacy_ones():
    """The pure map, by hand: an unknown layer anywhere keeps its Caffe name (so the strict load
    names it) without losing the layers around it; a layer without its bias blob gives its
    weight alone; legacy 4-D fully connected blobs of a one-class classifier keep that class."""
    conv1 = torch.arange(2 * 3 * 1 * 1, dtype=torch.float32).reshape(2, 3, 1, 1)
    blobs = {
        "conv1/7x7_s2": [conv1, torch.ones(2)],
        "mystery": [torch.zeros(2), torch.zeros(3)],
        "conv2/3x3_reduce": [torch.ones(4, 2, 1, 1)],  # weight only: no bias blob
        "loss3/classifier": [torch.full((1, 1, 1, 8), 2.0), torch.full((1, 1, 1, 1), 3.0)],
    }
    out = caffe.convert_caffe_blobs(blobs)
    assert sorted(out) == [
        "conv1.conv.bias",
        "conv1.conv.weight",
        "conv2.conv.weight",
        "fc.bias",
        "fc.weight",
        "mystery.blob0",
        "mystery.blob1",
    ]
    assert torch.equal(out["conv1.conv.weight"], conv1[:, [2, 1, 0]])  # BGR -> RGB
    assert out["mystery.blob1"].shape == (3,)
    assert out["conv2.conv.weight"].shape == (4, 2, 1, 1)
    assert torch.equal(out["fc.weight"], torch.full((1, 8), 2.0))  # 1 x 1 x out x in -> out x in
    assert torch.equal(out["fc.bias"], torch.full((1,), 3.0))  # 1 x 1 x 1 x out -> out


def test_a_renamed_classifier_of_any_head_gets_its_bvlc_name_back():
    """Fine-tuning renames a head's classifier (``loss3/classifier_places``); each of the three
    heads is looked at on its own, and a rename is only taken when it is its head's one unknown
    layer (layers unknown elsewhere do not count)."""
    w = [torch.zeros(1)]
    full = {f"loss{n}/classifier": w for n in (1, 2, 3)}
    assert caffe.renamed_classifiers(full) == {}
    for n in (1, 2, 3):
        blobs = {k: v for k, v in full.items() if k != f"loss{n}/classifier"}
        blobs |= {f"loss{n}/classifier_places": w, "extra/layer": w}
        assert caffe.renamed_classifiers(blobs) == {
            f"loss{n}/classifier_places": f"loss{n}/classifier"
        }
    two = {"loss3/classifier_a": w, "loss3/classifier_b": w}  # ambiguous: left alone
    assert caffe.renamed_classifiers(two) == {}
