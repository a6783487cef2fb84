"""Class activation maps (`googlenet cam`, `Predictor.cam`), on models built so the answer is
known."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers.inference import CLASSES, INPUT_SIZE, picture, run_main, tiny_model, write_pictures
from PIL import Image, ImageDraw

import googlenet
from googlenet.runtime.cam import cam_input, class_activation_maps
from googlenet.runtime.predictor import Predictor


@pytest.fixture(scope="module")
def model() -> googlenet.GoogLeNet:
    return tiny_model("paper-bn", seed=2)


@pytest.fixture(scope="module")
def weights(model, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    googlenet.save_weights(model, path)
    return path


def test_a_classifier_that_reads_one_channel_has_that_channels_map():
    """fc reads channel 17 of 5b for class 'cherry': its CAM is channel 17's map, exactly."""
    net = googlenet.create_model("paper", num_classes=5, input_size=INPUT_SIZE, class_names=CLASSES)
    net.eval()
    with torch.no_grad():
        net.fc.weight.zero_()
        net.fc.bias.zero_()
        net.fc.weight[2, 17] = 1.0
    image = picture(4, (96, 64))
    (cam,) = Predictor(net).cam(image, classes=["cherry"])
    with torch.no_grad():
        features = net.forward_features(cam_input(image, net.config))[0]
    assert cam.name == "cherry" and cam.index == 2
    assert cam.cam.shape == features.shape[1:]  # the 5b grid, wider than tall like the image
    assert cam.cam.shape[1] > cam.cam.shape[0]
    torch.testing.assert_close(cam.cam, features[17])


def test_the_mean_of_each_map_plus_the_bias_is_the_logit(model):
    """Global average pooling is linear: CAM_c averaged over positions + b_c = logit_c."""
    x = cam_input(picture(5, (80, 64)), model.config)
    with torch.no_grad():
        maps, logits = class_activation_maps(model, x)
        direct = model(x)[0]
    assert maps.shape[0] == len(CLASSES)
    torch.testing.assert_close(maps.mean((1, 2)) + model.fc.bias, logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits, direct, atol=1e-5, rtol=1e-5)


def test_the_heatmap_lands_where_the_evidence_is():
    """A trunk whose feature map is the image's redness: class 'apple' reads it, so its heatmap,
    resized onto the (non-square) image, peaks inside the red square and not elsewhere."""
    net = googlenet.create_model("paper", num_classes=5, input_size=INPUT_SIZE, class_names=CLASSES)

    def redness(x: torch.Tensor) -> torch.Tensor:
        red = x[:, :1] - x[:, 1:].mean(1, keepdim=True)  # N x 1 x H x W
        return F.avg_pool2d(red, 8).expand(-1, 1024, -1, -1)  # N x 1024 x H/8 x W/8

    net.forward_features = redness
    with torch.no_grad():
        net.fc.weight.zero_()
        net.fc.weight[0, 0] = 1.0
    image = Image.new("RGB", (120, 72), (90, 110, 100))
    ImageDraw.Draw(image).rectangle([80, 40, 103, 63], fill=(230, 20, 20))
    (cam,) = Predictor(net.eval()).cam(image, classes=["apple"])
    heat = cam.heatmap(*image.size)
    assert heat.shape == (72, 120) and heat.min() == 0.0 and heat.max() == pytest.approx(1.0)
    y, x = np.unravel_index(heat.argmax(), heat.shape)
    assert 80 <= x <= 103 and 40 <= y <= 63
    assert heat[:30, :60].max() < 0.2  # far from the square: cold


def test_topk_maps_are_the_most_probable_classes(model):
    maps = Predictor(model).cam(picture(6), topk=3)
    probs = [m.prob for m in maps]
    assert probs == sorted(probs, reverse=True) and len(maps) == 3
    x = cam_input(picture(6), model.config)
    with torch.no_grad():
        want = model(x)[0].softmax(-1).topk(3)
    assert [m.index for m in maps] == want.indices.tolist()


# -- the command line ---------------------------------------------------------------------------


def test_cli_cam_one_png_per_image_into_a_folder(capsys, weights, tmp_path):
    write_pictures(tmp_path / "in", 2)
    write_pictures(tmp_path / "in" / "more", 1, start=0)  # same name, other folder
    out = tmp_path / "cams"
    code, _, err = run_main(capsys, "cam", "--weights", weights, tmp_path / "in", "--out", out,
                            "--topk", "2")  # fmt: skip
    assert code == 0, err
    names = sorted(p.name for p in out.iterdir())
    assert names == ["img0_cam.png", "img0_cam2.png", "img1_cam.png"]
    one_panel = tmp_path / "single.png"
    code, _, err = run_main(capsys, "cam", "--weights", weights, tmp_path / "in" / "img0.png",
                            "--class", "Banana", "--out", one_panel)  # fmt: skip
    assert code == 0 and "Banana" in err
    with Image.open(out / "img0_cam.png") as two, Image.open(one_panel) as one:
        assert two.format == one.format == "PNG"
        assert two.width > 1.3 * one.width  # input + two maps against input + one map
    assert not list(tmp_path.glob("**/.*.tmp"))


def test_cli_cam_bad_inputs(capsys, weights, tmp_path):
    image = write_pictures(tmp_path, 1)[0]
    cases = [
        (("--class", "durian", "--out", tmp_path / "x.png"), "no class 'durian'"),
        (("--out", tmp_path / "missing" / "x.png"), "does not exist"),
        (("--out", tmp_path / "missing" / "folder"), "does not exist"),
        (("--cmap", "rainbow-unicorn", "--out", tmp_path / "x.png"), "colormap"),
        (("--class", "apple", "--topk", "2", "--out", tmp_path / "x.png"), "not allowed"),
    ]
    for args, message in cases:
        code, out, err = run_main(capsys, "cam", "--weights", weights, image, *args)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "missing").exists()
    two = write_pictures(tmp_path / "two", 2)
    code, _, err = run_main(capsys, "cam", "--weights", weights, *two, "--out", tmp_path / "a.png")
    assert code == 2 and "give a folder" in err


def test_cli_cam_skips_what_is_not_an_image(run_cli, weights, tmp_path):
    good = write_pictures(tmp_path, 1)[0]
    bad = tmp_path / "scan.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n but then nothing")
    proc = run_cli("cam", "--weights", weights, bad, good, "--out", tmp_path / "out")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "scan.png: not a readable image" in proc.stderr
    assert "1 of 2 input(s) failed" in proc.stderr
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["img0_cam.png"]


def test_cli_cam_gives_predicts_probability_too_and_keeps_what_is_there(capsys, weights, tmp_path):
    image = write_pictures(tmp_path, 1)[0]
    out = tmp_path / "c.png"
    code, _, err = run_main(capsys, "cam", "--weights", weights, image, "--class", "Banana",
                            "-o", out)  # fmt: skip
    assert code == 0, err
    code, stdout, _ = run_main(capsys, "predict", image, "--weights", weights, "--format", "json")
    prob = next(c["prob"] for c in json.loads(stdout)[0]["topk"] if c["class"] == "Banana")
    assert f"{prob:.1%} in predict" in err and "on the whole image" in err
    before = out.read_bytes()
    code, _, err = run_main(capsys, "cam", "--weights", weights, image, "-o", out)
    assert code == 2 and "already exists" in err and out.read_bytes() == before
    code, _, err = run_main(capsys, "cam", "--weights", weights, image, "-o", out, "--force")
    assert code == 0, err
    code, _, err = run_main(capsys, "cam", "--weights", weights, image, "--class", "hexagon")
    assert code == 2 and "apple, Banana, cherry" in err  # what there is, when nothing is close
