"""Issue 6, point 3: a folder of hostile and odd images.

Every kind of bad file the issue names sits beside every kind of valid but unusual image, in
the training, validation and prediction folders. ``train``, ``eval`` and ``predict`` finish,
name every bad file and count exactly the bad ones; the odd valid images are used; ``--strict``
stops at the first bad file with one line.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from helpers.folders import make_image_folder
from helpers.reliability import FAST, assert_one_line_error, is_root, main, png
from PIL import Image

from googlenet import DataError
from googlenet.data import ImageFolder, open_image


def bad_files(folder: Path) -> dict[str, str]:
    """Write every kind of bad file into ``folder``; returns name -> what the error must say."""
    folder.mkdir(parents=True, exist_ok=True)
    jpeg = io.BytesIO()
    Image.new("RGB", (40, 36), (200, 30, 30)).save(jpeg, "JPEG")
    (folder / "truncated.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("this is not a JPEG\n")
    # Decompression bombs: tiny files whose headers declare 30000 x 30000 (900 M pixels, over
    # PIL's own limit) and 12000 x 10000 (120 M pixels, over ours only).
    (folder / "bomb.png").write_bytes(png(30000, 30000, 8, 2, b"\x00" * 64))
    (folder / "bomb_small.png").write_bytes(png(12000, 10000, 8, 0, b"\x00" * 64))
    os.symlink("loop.jpg", folder / "loop.jpg")  # a symlink to itself
    os.symlink("missing.png", folder / "dangling.png")
    os.mkfifo(folder / "fifo.png")  # opened for reading, it would block forever
    expected = {
        "truncated.jpg": "not a readable image",
        "empty.jpg": "not a readable image",
        "text.jpg": "not a readable image",
        "bomb.png": "decompression bomb",
        "bomb_small.png": "decompression bomb",
        "loop.jpg": "not a readable image",
        "dangling.png": "no such file",
        "fifo.png": "not a regular file",
    }
    if not is_root():  # root reads anything: there, the dangling link and the FIFO stand for it
        (folder / "unreadable.png").write_bytes(png(8, 8, 8, 0, b"\x00" * 72))
        os.chmod(folder / "unreadable.png", 0)
        expected["unreadable.png"] = "not a readable image"
    return expected


def odd_images(folder: Path) -> dict[str, tuple[int, int]]:
    """Write valid images in every unusual mode; returns name -> (width, height) once decoded."""
    folder.mkdir(parents=True, exist_ok=True)
    there = set(os.listdir(folder))
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (36, 40, 3), dtype=np.uint8)
    Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpg")
    Image.fromarray((rng.integers(0, 65535, (36, 40))).astype(np.uint16)).save(
        folder / "gray16.png"
    )
    rows = b"".join(
        b"\x00" + rng.integers(0, 256, 40 * 6, dtype=np.uint8).tobytes() for _ in range(36)
    )
    (folder / "rgb48.png").write_bytes(png(40, 36, 16, 2, rows))  # 16 bits per channel
    Image.fromarray(rgb).convert("P").save(folder / "palette.png")
    Image.fromarray(rgb).convert("P").save(folder / "palette_transparent.png", transparency=0)
    Image.fromarray(rgb).convert("L").save(folder / "gray.png")
    Image.fromarray(rgb).convert("1").save(folder / "bilevel.png")
    Image.fromarray(rgb).convert("RGBA").save(folder / "rgba.png")
    Image.fromarray(rgb).convert("LA").save(folder / "la.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees to display
    Image.fromarray(rgb).save(folder / "exif_rotated.jpg", exif=exif)
    sizes = {name: (40, 36) for name in set(os.listdir(folder)) - there}
    sizes["exif_rotated.jpg"] = (36, 40)
    return sizes


def test_each_bad_file_is_refused_and_each_odd_image_decodes(tmp_path):
    bad = bad_files(tmp_path / "bad")
    for name, message in bad.items():
        with pytest.raises(DataError, match=message) as err:
            open_image(tmp_path / "bad" / name)
        assert name in str(err.value) and "\n" not in str(err.value)
    for name, size in odd_images(tmp_path / "odd").items():
        image = open_image(tmp_path / "odd" / name)
        assert image.mode == "RGB" and image.size == size, name
    gray16 = np.asarray(open_image(tmp_path / "odd" / "gray16.png"))
    assert gray16.std() > 20  # rescaled from 16 bits, not clipped to white


def test_a_symlink_loop_between_folders_is_walked_once(tmp_path):
    make_image_folder(tmp_path / "train", classes=("a", "b"), per_class=2)
    os.symlink("..", tmp_path / "train" / "a" / "up")  # a/up/a/up/a/... and a/up/b
    (tmp_path / "train" / "b" / "more").mkdir()
    os.symlink("../../b", tmp_path / "train" / "b" / "more" / "again")
    dataset = ImageFolder(tmp_path / "train", None)
    assert len(dataset) == 4 and sorted(dataset.targets) == [0, 0, 1, 1]


def test_a_file_without_read_permission(tmp_path):
    if is_root():
        pytest.skip(
            "running as root, which reads a chmod 000 file; the corrupt-data tests use a "
            "dangling symlink and a FIFO as unreadable files instead"
        )
    path = tmp_path / "secret.png"
    path.write_bytes(png(8, 8, 8, 0, b"\x00" * 72))
    path.chmod(0)
    with pytest.raises(DataError, match="secret.png: not a readable image"):
        open_image(path)


def zoo(root: Path) -> tuple[dict[str, str], list[str]]:
    """root/{train,val}/{a,b}: good images, odd valid images and bad files in class a."""
    expected_bad, odd = {}, []
    for split in ("train", "val"):
        make_image_folder(root / split, classes=("a", "b"), per_class=2, seed=len(split))
        bad = bad_files(root / split / "a")
        expected_bad |= {f"{split}/a/{name}": message for name, message in bad.items()}
        odd += [f"{split}/b/{n}" for n in odd_images(root / split / "b")]
    return expected_bad, odd


@pytest.mark.slow
def test_train_eval_and_predict_finish_naming_and_counting_what_they_skip(
    tmp_path, monkeypatch, capsys, caplog
):
    monkeypatch.chdir(tmp_path)
    bad, odd = zoo(tmp_path / "data")
    n_bad = {split: sum(k.startswith(split) for k in bad) for split in ("train", "val")}
    n_good = {split: 2 * 2 + sum(k.startswith(split) for k in odd) for split in ("train", "val")}

    # train: one epoch; every bad file named once (train and val), the count in metrics.csv.
    args = ["train", "--data", "data", "--output-dir", "run", "--epochs", "1", *FAST, "-b", "4"]
    code, out, err = main(capsys, *args)
    assert code == 0, err
    logged = caplog.text
    for path, message in bad.items():
        lines = [x for x in logged.splitlines() if f"data/{path}" in x and "skipped" in x]
        assert len(lines) == 1 and message in lines[0], (path, lines)
    for path in odd:
        assert f"data/{path}" not in logged, path  # used, not skipped
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert int(rows[0]["skipped"]) == n_bad["train"]

    # eval: the odd images scored, the bad ones named and counted.
    caplog.clear()
    report = tmp_path / "report.json"
    code, out, err = main(
        capsys, "eval", "--weights", "run/final.safetensors", "--data", "data/val", "-j", "0",
        "--output", report,
    )  # fmt: skip
    assert code == 2, err  # the same exit code as predict for the same outcome
    result = json.loads(report.read_text())
    assert result["n"] == n_good["val"] and result["skipped"] == n_bad["val"]
    assert f"skipped {n_bad['val']} unreadable image(s)" in out
    for path, message in bad.items():
        if path.startswith("val"):
            assert any(f"data/{path}" in x and message in x for x in caplog.text.splitlines())

    # predict: a result for each valid image, a line for each bad one, the count, exit code 2.
    code, out, err = main(
        capsys, "predict", "data/val", "--weights", "run/final.safetensors", "-j", "0",
        "--format", "jsonl",
    )  # fmt: skip
    assert code == 2 and "Traceback" not in err
    predicted = {json.loads(line)["path"] for line in out.splitlines()}
    assert len(predicted) == n_good["val"]
    assert {f"data/{p}" for p in odd if p.startswith("val")} <= predicted
    for path, message in bad.items():
        if path.startswith("val"):
            assert any(f"data/{path}" in x and message in x for x in err.splitlines()), path
    total = n_good["val"] + n_bad["val"]
    assert f"error: {n_bad['val']} of {total} input(s) failed" in err.splitlines()[-1]


@pytest.mark.slow
def test_strict_stops_at_the_first_bad_file_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    bad, _ = zoo(tmp_path / "data")
    code, _, err = main(
        capsys, "train", "--data", "data", "--output-dir", "run", "--epochs", "1", "--strict",
        *FAST, "-b", "4",
    )  # fmt: skip
    line = assert_one_line_error(code, err, "train")
    assert "--strict" in line and any(f"data/{p}" in line for p in bad if p.startswith("train"))
    assert not (tmp_path / "run" / "last.pt").exists()

    make_image_folder(tmp_path / "ok" / "train", classes=("a", "b"), per_class=2)
    code, _, err = main(
        capsys, "train", "--data", "ok", "--output-dir", "okrun", "--epochs", "1", *FAST, "-b", "4"
    )
    assert code == 0, err
    weights = "okrun/final.safetensors"
    code, _, err = main(
        capsys, "eval", "--weights", weights, "--data", "data/val", "--strict", "-j", "0"
    )
    line = assert_one_line_error(code, err, "eval")
    assert "--strict" in line and any(f"data/{p}" in line for p in bad if p.startswith("val"))
    code, out, err = main(
        capsys, "predict", "data/val", "--weights", weights, "--strict", "-j", "0",
        "--out", "p.csv", "--format", "csv",
    )  # fmt: skip
    line = assert_one_line_error(code, err, "predict")
    assert "--strict" in line and any(f"data/{p}" in line for p in bad if p.startswith("val"))
    assert not (tmp_path / "p.csv").exists()  # stopped: no half-written results
