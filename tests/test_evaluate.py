"""``googlenet eval``: top-1/top-5 over 1, 10 and 144 crops and ensembles, reports, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers.folders import make_dataset, make_image_folder

import googlenet
from googlenet import cli
from googlenet.data import EvalTransform, open_image
from googlenet.export import export

CLASSES = ("a", "b", "c")
SIX = ("a", "b", "c", "d", "e", "f")  # more than 5 classes, so that top-5 can miss


def weights_file(path: Path, classes=CLASSES, seed=0, spread_on: Path | None = None) -> Path:
    """Untrained weights whose predictions differ from image to image and crop to crop.

    An untrained paper network gives nearly the same features for every image, so its classifier
    is rebuilt around the features of the images under ``spread_on``: ``fc(f) = W (f - mean) / sd``
    with a random ``W``, which makes the class ranking depend on the image.
    """
    torch.manual_seed(seed)
    # ImageNet-normalized input, not the paper preset's Caffe scale: at 0-255 an initialized
    # network's LRN flattens the features across images, and the spread classifier below would
    # divide by that vanishing spread (logits of 1e4-1e5, where float order decides the ranking).
    model = googlenet.create_model(
        "paper",
        num_classes=len(classes),
        class_names=classes,
        input_size=32,
        mean=googlenet.model.IMAGENET_MEAN,
        std=googlenet.model.IMAGENET_STD,
    ).eval()
    if spread_on is not None:
        spread_classifier(model, spread_on)
    googlenet.save_weights(model, path)
    return path


def spread_classifier(model: googlenet.GoogLeNet, folder: Path) -> None:
    """Rebuild ``model.fc`` around the features of the images under ``folder`` (see weights_file;
    draws ``W`` from torch's global generator)."""
    transform = EvalTransform.for_model(model.config, 10)
    with torch.no_grad():
        feats = torch.cat(
            [
                model.forward_head(
                    model.forward_features(transform(open_image(p))), pre_logits=True
                )
                for p in sorted(folder.rglob("*.png"))
            ]
        )
        mean, sd = feats.mean(0), feats.std(0).clamp_min(1e-12)
        w = torch.randn(model.fc.out_features, feats.shape[1]) / feats.shape[1] ** 0.5 * 3
        model.fc.weight.copy_(w / sd)
        model.fc.bias.copy_(-(w / sd) @ mean)


def expected(weights: list[Path], folder: Path, crops: int) -> tuple[float, float, int]:
    """Top-1/top-5 computed by hand: softmax averaged over the crops, then over the models."""
    models = [googlenet.load(w).eval() for w in weights]
    transform = EvalTransform.for_model(models[0].config, crops)
    top1 = top5 = n = 0
    for label, name in enumerate(sorted(p.name for p in folder.iterdir())):
        for path in sorted((folder / name).iterdir()):
            x = transform(open_image(path))
            with torch.no_grad():
                probs = torch.stack([m(x).softmax(1).mean(0) for m in models]).mean(0)
            ranked = probs.argsort(descending=True).tolist()
            top1 += ranked[0] == label
            top5 += label in ranked[:5]
            n += 1
    return 100 * top1 / n, 100 * top5 / n, n


def run_eval(capsys, *args) -> tuple[int, str, str]:
    code = cli.main(["eval", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("crops", [1, 10])
def test_accuracy_is_the_softmax_average_over_crops_and_models(tmp_path, capsys, crops):
    make_dataset(tmp_path / "data", classes=SIX, val=2)
    val = tmp_path / "data" / "val"
    w1 = weights_file(tmp_path / "m1.safetensors", SIX, seed=0, spread_on=val)
    w2 = weights_file(tmp_path / "m2.safetensors", SIX, seed=1, spread_on=val)
    for weights in ([w1], [w1, w2]):
        code, out, _ = run_eval(
            capsys,
            "--weights",
            *weights,
            "--data",
            tmp_path / "data",
            "--crops",
            crops,
            "--format",
            "json",
            "-j",
            "0",
        )
        assert code == 0
        report = json.loads(out)
        top1, top5, n = expected(weights, tmp_path / "data" / "val", crops)
        assert report["n"] == n == 12 and report["crops"] == crops
        assert 0 < top1 < 100  # predictions differ, so wrong averaging would show
        assert report["top1"] == pytest.approx(top1, abs=1e-3)
        assert report["top5"] == pytest.approx(top5, abs=1e-3)
        assert report["top1_error"] == pytest.approx(100 - top1, abs=1e-3)
        # the ensemble's probabilities are the mean of the models' (tolerance: see by_hand)
        assert report["loss"] == pytest.approx(by_hand(weights, val, crops)["loss"], abs=2e-3)
        assert report["models"] == [str(w) for w in weights]
        assert set(report["per_class"]) == set(SIX)
        assert sum(c["n"] for c in report["per_class"].values()) == 12
        written = Path(report["json"])
        assert written.parent == tmp_path and json.loads(written.read_text())["n"] == 12
        assert Path(report["confusion_matrix"]).read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / f"m1.ensemble2.eval-{crops}crop.json").is_file()


def test_144_crops_and_the_table(tmp_path, capsys):
    # Six classes (so top-5 can miss) and a classifier spread over these images (so the ranking
    # depends on the image and the crop); the figures are recomputed by hand (`by_hand`).
    make_image_folder(tmp_path / "val", SIX, per_class=1)
    w = weights_file(tmp_path / "w.safetensors", SIX, seed=2, spread_on=tmp_path / "val")
    code, out, _ = run_eval(
        capsys,
        "--weights",
        w,
        "--data",
        tmp_path,
        "--crops",
        "144",
        "--per-class",
        "-b",
        "144",
        "-j",
        "0",
    )
    assert code == 0
    hand = by_hand([w], tmp_path / "val", 144)
    assert 0 < hand["top5"] < 100 and 0 < hand["top1"] < 100  # both figures can be wrong
    assert "144 crop(s) at 32 px" in out and f"{hand['top1']:>9.2f}%" in out
    assert f"{hand['top5']:>9.2f}%" in out
    for name in SIX:
        assert any(line.startswith(name) for line in out.splitlines())
    report = json.loads((tmp_path / "w.eval-144crop.json").read_text())
    assert_matches_by_hand(report, hand)


def test_a_model_with_more_classes_is_matched_by_name(tmp_path, capsys):
    make_image_folder(tmp_path / "val", classes=("c", "a"), per_class=2)
    w = weights_file(tmp_path / "w.safetensors", classes=("a", "b", "c", "d", "e", "f"))
    code, out, _ = run_eval(
        capsys, "--weights", w, "--data", tmp_path, "--format", "json", "-j", "0"
    )
    report = json.loads(out)
    model = googlenet.load(w).eval()
    transform = EvalTransform.for_model(model.config)
    hits = 0
    for name in ("a", "c"):
        for path in sorted((tmp_path / "val" / name).iterdir()):
            hits += int(model(transform(open_image(path))).argmax()) == "abcdef".index(name)
    assert code == 0 and report["top1"] == pytest.approx(100 * hits / 4, abs=1e-3)
    assert report["classes"] == 2 and set(report["per_class"]) == {"a", "c"}


def test_torchvision_weights_without_class_names_map_by_folder_order(tmp_path, capsys):
    import torchvision

    torch.manual_seed(0)
    tv = torchvision.models.googlenet(
        weights=None, aux_logits=False, init_weights=True, num_classes=3
    )
    make_image_folder(tmp_path / "val", per_class=3)
    torch.save(tv.state_dict(), tmp_path / "tv.pth")
    # A classifier spread over these images (as in weights_file), so the ranking depends on the
    # image and a wrong class mapping changes the figures.
    ours = googlenet.load(tmp_path / "tv.pth").eval()
    torch.manual_seed(5)  # the classifier's draw (66.7% top-1), whatever loading drew before it
    spread_classifier(ours, tmp_path / "val")
    tv.fc.load_state_dict(ours.fc.state_dict())
    torch.save(tv.state_dict(), tmp_path / "tv.pth")
    code, out, _ = run_eval(
        capsys, "--weights", tmp_path / "tv.pth", "--data", tmp_path, "--format", "json", "-j", "0"
    )
    assert code == 0 and json.loads(out)["n"] == 9
    # Model output k is the k-th class folder in sorted order ("a", "b", "c").
    hand = by_hand([tmp_path / "tv.pth"], tmp_path / "val", 1)
    assert 0 < hand["top1"] < 100
    assert_matches_by_hand(json.loads(out), hand)


def test_weights_for_other_classes_are_refused(tmp_path, capsys):
    make_image_folder(tmp_path / "val", per_class=1)
    w = weights_file(tmp_path / "w.safetensors", classes=("x", "a", "c", "z"))
    code, _, err = run_eval(capsys, "--weights", w, "--data", tmp_path, "-j", "0")
    assert code == 2 and "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("googlenet eval: error:") and "do not include the data's 'b'" in line


def test_an_ensemble_must_share_its_classes(tmp_path, capsys):
    make_image_folder(tmp_path / "val", per_class=1)
    w1 = weights_file(tmp_path / "w1.safetensors")
    w2 = weights_file(tmp_path / "w2.safetensors", classes=("a", "b", "d"))
    code, _, err = run_eval(capsys, "--weights", w1, w2, "--data", tmp_path, "-j", "0")
    assert code == 2 and "do not know the same classes" in err


def test_unreadable_images_are_skipped_and_reported(tmp_path, capsys, caplog):
    make_image_folder(tmp_path / "val", per_class=2)
    (tmp_path / "val" / "b" / "zz.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    w = weights_file(tmp_path / "w.safetensors")
    code, out, err = run_eval(capsys, "--weights", w, "--data", tmp_path, "-j", "0")
    assert code == 2 and "skipped 1 unreadable image(s)" in out  # exit 2, as predict
    assert "error: 1 of 7 input(s) failed" in err
    assert "skipped 1 unreadable image(s), e.g." in caplog.text and "zz.jpg" in caplog.text


def test_missing_data_directory(tmp_path, capsys):
    w = weights_file(tmp_path / "w.safetensors")
    code, _, err = run_eval(capsys, "--weights", w, "--data", tmp_path / "nope")
    assert code == 2 and "data directory" in err and "does not exist" in err


@pytest.mark.slow
def test_eval_cli_end_to_end(tmp_path, run_cli):
    make_dataset(tmp_path / "data")
    weights_file(tmp_path / "w.safetensors")
    proc = run_cli(
        "eval", "--weights", "w.safetensors", "--data", "data", "--crops", "10", check=True
    )
    assert "top-1" in proc.stdout and "top-5" in proc.stdout and "10 crop(s)" in proc.stdout
    assert (tmp_path / "w.eval-10crop.json").is_file()
    assert (tmp_path / "w.eval-10crop.confusion.png").is_file()


def test_eval_runs_the_fast_path_and_exported_onnx_with_the_same_numbers(tmp_path, capsys):
    """`eval` runs PyTorch weights on the fast inference path by default; `--backend eager` runs
    the plain module; an exported `.onnx` runs on ONNX Runtime. All three score the same."""
    root = make_dataset(tmp_path / "data", CLASSES, train=1, val=4)
    w = weights_file(tmp_path / "w.safetensors", spread_on=root / "val")
    onnx_path = tmp_path / "w.onnx"
    code, _, err = run_eval(capsys, "--weights", w, "--data", root, "--format", "json",
                            "--output", tmp_path / "fast.json")  # fmt: skip
    assert code == 0, err
    fast = json.loads((tmp_path / "fast.json").read_text())
    code, _, err = run_eval(capsys, "--weights", w, "--data", root, "--backend", "eager",
                            "--output", tmp_path / "eager.json")  # fmt: skip
    assert code == 0, err
    eager = json.loads((tmp_path / "eager.json").read_text())
    # This classifier divides by the features' tiny spread across images (see weights_file), so
    # it amplifies float summation-order differences to ~3e-4: check the export at 1e-3.
    export(googlenet.load(w), onnx_path, "onnx", dynamic_batch=True, atol=1e-3)
    code, _, err = run_eval(capsys, "--weights", onnx_path, "--data", root,
                            "--output", tmp_path / "onnx.json")  # fmt: skip
    assert code == 0, err
    exported = json.loads((tmp_path / "onnx.json").read_text())
    top1, top5, n = expected([w], root / "val", 1)
    for report in (fast, eager, exported):
        assert top5 == 100 and report["top5"] is None  # 3 classes: top-5 is n/a
        assert (report["top1"], report["n"]) == (round(top1, 4), n)
        assert abs(report["loss"] - eager["loss"]) < 1e-3


def test_an_ensemble_shows_each_models_own_score_labelled_by_run(tmp_path, capsys):
    make_dataset(tmp_path / "data", classes=SIX, val=2)
    val = tmp_path / "data" / "val"
    runs = [tmp_path / "runA", tmp_path / "runB"]
    for seed, run in enumerate(runs):
        run.mkdir()
        weights_file(run / "best.safetensors", SIX, seed=seed, spread_on=val)
    weights = [run / "best.safetensors" for run in runs]
    code, out, err = run_eval(capsys, "--weights", *weights, "--data", tmp_path / "data",
                              "-j", "0", "-o", tmp_path / "r.json")  # fmt: skip
    assert code == 0, err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["labels"] == ["runA/best.safetensors", "runB/best.safetensors"]
    for member, w in zip(report["members"], weights, strict=True):
        top1, top5, _ = expected([w], val, 1)
        assert member["top1"] == pytest.approx(top1, abs=1e-3)
        assert member["top5"] == pytest.approx(top5, abs=1e-3)
        assert f"alone: {member['label']}: top-1 {member['top1']:.2f}%" in out


def by_hand(weights: list[Path], folder: Path, crops: int) -> dict:
    """The report's figures recomputed image by image: each model's softmax averaged over the
    crops, then over the models; labels by sorted folder name; loss = mean -log p(label).
    Also the loss a scorer of the first crop alone would give (to show the test can tell)."""
    models = [googlenet.load(w).eval() for w in weights]
    transform = EvalTransform.for_model(models[0].config, crops)
    rows = []
    for label, name in enumerate(sorted(p.name for p in folder.iterdir())):
        for path in sorted((folder / name).iterdir()):
            with torch.no_grad():
                probs = torch.stack([m(transform(open_image(path))).softmax(1) for m in models])
            probs = probs.clamp_min(1e-12)  # as the report: -log of at least 1e-12
            mean = probs.mean(1).mean(0)
            ranked = mean.argsort(descending=True).tolist()
            first = probs[:, 0].mean(0)
            rows.append((name, ranked[0] == label, label in ranked[:5], mean[label], first[label]))
    n = len(rows)
    per_class = {
        name: {
            "n": sum(r[0] == name for r in rows),
            "top1": 100 * sum(r[1] for r in rows if r[0] == name) / sum(r[0] == name for r in rows),
            "top5": 100 * sum(r[2] for r in rows if r[0] == name) / sum(r[0] == name for r in rows),
        }
        for name in dict.fromkeys(r[0] for r in rows)
    }
    return {
        "num_classes": models[0].config.num_classes,
        "n": n,
        "top1": 100 * sum(r[1] for r in rows) / n,
        "top5": 100 * sum(r[2] for r in rows) / n,
        "loss": -sum(float(r[3].log()) for r in rows) / n,
        "first_crop_loss": -sum(float(r[4].log()) for r in rows) / n,
        "per_class": per_class,
    }


def assert_matches_by_hand(report: dict, hand: dict) -> None:
    """Counts exactly (reported to 4 decimals); the loss to 2e-3: the spread classifier turns
    float summation-order differences into logit differences of ~3e-4 (see the ONNX test),
    and a wrong crop rule or class map moves the loss by tenths (checked by the callers)."""
    assert report["n"] == hand["n"]
    assert report["top1"] == pytest.approx(hand["top1"], abs=1e-3)
    # top-5 of a model that knows 5 classes or fewer is always 100%: reported as n/a (None)
    top5_means_something = hand["num_classes"] > 5
    if top5_means_something:
        assert report["top5"] == pytest.approx(hand["top5"], abs=1e-3)
    else:
        assert report["top5"] is None and report["top5_note"]
    assert report["loss"] == pytest.approx(hand["loss"], abs=2e-3)
    for name, c in hand["per_class"].items():
        got = report["per_class"][name]
        assert got["n"] == c["n"]
        assert got["top1"] == pytest.approx(c["top1"], abs=1e-3), name
        if top5_means_something:
            assert got["top5"] == pytest.approx(c["top5"], abs=1e-3), name
        else:
            assert got["top5"] is None, name


@pytest.mark.parametrize("crops", [10, 144])
def test_eval_scores_the_average_of_the_crops_not_one_crop(tmp_path, capsys, crops):
    """The paper's 10- and 144-crop figures (section 7) average the softmax over the crops: a
    scorer of the first crop alone gives a loss 0.08-0.3 away (at least 25x the tolerance,
    asserted below), and other top-1 hits per class."""
    make_image_folder(tmp_path / "val", SIX, per_class=2)
    w = weights_file(tmp_path / "w.safetensors", SIX, seed=1, spread_on=tmp_path / "val")
    code, out, err = run_eval(
        capsys, "--weights", w, "--data", tmp_path, "--crops", crops, "--format", "json",
        "-b", "4", "-j", "0",
    )  # fmt: skip
    assert code == 0, err
    hand = by_hand([w], tmp_path / "val", crops)
    assert abs(hand["first_crop_loss"] - hand["loss"]) > 0.05  # the test can tell
    assert_matches_by_hand(json.loads(out), hand)
