"""Issue 6, point 4: weights files from strangers, given to every command that reads weights.

A pickle that runs code when unpickled (proved live on a marker file, then proved not to run),
truncated and lying safetensors, another network's state dict, a corrupt resume checkpoint:
``predict``, ``cam``, ``export``, ``eval``, ``train --weights``, ``train --resume PATH`` and
``convert-weights`` each refuse each file with one line and exit code 2, and write nothing.
"""

from __future__ import annotations

import io
import json
import pickle
import shutil
import struct
import zipfile
from pathlib import Path

import pytest
import torch
import torchvision
from helpers.reliability import FAST, assert_one_line_error, main, tiny_dataset
from safetensors.torch import load_file, save_file

import googlenet
from googlenet.train import TrainConfig, train

MARKER = "code-ran.txt"  # what the payload writes, in the current directory


class Payload:
    """Unpickled, it runs ``exec``: the classic malicious checkpoint."""

    def __reduce__(self):
        return (exec, (f"open({MARKER!r}, 'w').write('the pickle ran code')",))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """One of each hostile file, and a trained run to take valid pieces from."""
    root = tmp_path_factory.mktemp("hostile")
    tiny_dataset(root / "data")
    train(
        TrainConfig(
            data=str(root / "data"), output_dir=str(root / "run"), epochs=1, input_size=32,
            batch_size=2, workers=0, print_freq=1,
        )
    )  # fmt: skip
    good = root / "run" / "final.safetensors"
    tensors, meta = load_file(good), googlenet.weights.read_metadata(good)
    config = json.loads(meta["googlenet.config"])
    out: dict[str, Path] = {}

    def add(name: str, content: bytes) -> None:
        (root / name).write_bytes(content)
        out[name] = root / name

    def safetensors(name: str, tensors: dict, config_changes: dict | None = None, **meta_over):
        m = dict(meta) | {"googlenet.config": json.dumps(config | (config_changes or {}))}
        m |= meta_over
        save_file(tensors, root / name, metadata=m)
        out[name] = root / name

    buffer = io.BytesIO()
    torch.save({"state_dict": Payload()}, buffer)
    add("code.pth", buffer.getvalue())  # torch's zip format
    add("code_raw.pkl", pickle.dumps(Payload(), protocol=2))  # a bare pickle
    buffer = io.BytesIO()
    torch.save(
        {"config": config, "model": Payload(), "optimizer": {}, "epoch": 1, "rng": []}, buffer
    )
    add("code_checkpoint.pt", buffer.getvalue())
    whole = good.read_bytes()
    add("truncated.safetensors", whole[: len(whole) // 2])
    add("five_bytes.safetensors", whole[:5])
    add("header_bomb.safetensors", struct.pack("<Q", 99_999_999) + b'{"a":' + b" " * 64)
    shape = dict(tensors) | {"conv1.conv.weight": torch.zeros(64, 3, 5, 5)}
    safetensors("wrong_shape.safetensors", shape)
    dtype = dict(tensors) | {"conv1.conv.weight": tensors["conv1.conv.weight"].to(torch.int32)}
    safetensors("wrong_dtype.safetensors", dtype)
    nan = dict(tensors) | {"fc.weight": torch.full_like(tensors["fc.weight"], float("nan"))}
    safetensors("nan.safetensors", nan)
    safetensors("lying_classes.safetensors", tensors, {"num_classes": 5, "class_names": None})
    safetensors("absurd_classes.safetensors", tensors, {"num_classes": 10**12})
    safetensors("absurd_input_size.safetensors", tensors, {"input_size": 10**9})
    safetensors("config_not_json.safetensors", tensors, **{"googlenet.config": "{not json"})
    safetensors("config_a_list.safetensors", tensors, **{"googlenet.config": "[1, 2, 3]"})
    safetensors("config_unknown_key.safetensors", tensors, {"backdoor": True})
    torch.save(torchvision.models.squeezenet1_1().state_dict(), root / "other_network.pth")
    out["other_network.pth"] = root / "other_network.pth"
    torch.save([torch.zeros(3)], root / "a_list.pth")
    out["a_list.pth"] = root / "a_list.pth"
    last = (root / "run" / "last.pt").read_bytes()
    add("truncated_checkpoint.pt", last[: len(last) // 3])
    add("text.pth", b"these are not weights\n")
    add("empty.safetensors", b"")
    return out


def test_the_payload_is_live(tmp_path, monkeypatch, files):
    """The control: unpickled the unsafe way, the files do run code (so the tests below mean
    something). pickle.loads on the bytes, never torch.load(weights_only=False)."""
    monkeypatch.chdir(tmp_path)
    pickle.loads(files["code_raw.pkl"].read_bytes())
    assert (tmp_path / MARKER).read_text() == "the pickle ran code"
    (tmp_path / MARKER).unlink()
    with zipfile.ZipFile(files["code.pth"]) as archive:
        pickle.loads(archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl"))))
    assert (tmp_path / MARKER).is_file()


def commands(weights: Path) -> dict[str, list]:
    """Every command that reads weights, given ``weights``; each would write one output."""
    w = str(weights)
    return {
        "predict": ["predict", "img.png", "--weights", w, "--out", "out.csv"],
        "cam": ["cam", "img.png", "--weights", w, "--out", "out.png"],
        "export": ["export", "--weights", w, "--out", "out.onnx"],
        "eval": ["eval", "--weights", w, "--data", "data/val", "--output", "out.json"],
        "train --weights": [
            "train",
            "--data",
            "data",
            "--weights",
            w,
            "--output-dir",
            "out",
            *FAST,
        ],
        "train --resume": ["train", "--data", "data", "--resume", w, "--output-dir", "out", *FAST],
        "convert-weights": ["convert-weights", w, "out.safetensors"],
    }


HOSTILE = [
    "code.pth", "code_raw.pkl", "code_checkpoint.pt", "truncated.safetensors",
    "five_bytes.safetensors", "header_bomb.safetensors", "wrong_shape.safetensors",
    "wrong_dtype.safetensors", "nan.safetensors", "lying_classes.safetensors",
    "absurd_classes.safetensors", "absurd_input_size.safetensors", "config_not_json.safetensors",
    "config_a_list.safetensors", "config_unknown_key.safetensors", "other_network.pth",
    "a_list.pth", "truncated_checkpoint.pt", "text.pth", "empty.safetensors",
]  # fmt: skip
COMMANDS = list(commands(Path("w")))


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_refuses_every_hostile_file(command, files, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    tiny_dataset(tmp_path / "data")
    shutil.copy(tmp_path / "data" / "val" / "a" / "1-0.png", tmp_path / "img.png")
    for name in HOSTILE:
        code, _, err = main(capsys, *commands(files[name])[command])
        line = assert_one_line_error(code, err, command.split()[0])
        assert name in line, line  # the message names the file
        assert not (tmp_path / MARKER).exists(), f"{name} ran code in {command}"
        assert not list(tmp_path.glob("out*")), f"{command} wrote something for {name}"


def test_predict_refuses_a_pickle_named_onnx(files, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    tiny_dataset(tmp_path / "data")
    shutil.copy(files["code_raw.pkl"], tmp_path / "model.onnx")
    code, _, err = main(capsys, "predict", "data/val", "--weights", "model.onnx")
    assert "not an ONNX model" in assert_one_line_error(code, err, "predict")
    assert not (tmp_path / MARKER).exists()


def damaged_checkpoints(last: Path) -> dict[str, dict]:
    """Checkpoints that torch.load reads (weights_only) but whose contents do not fit."""
    ckpt = torch.load(last, weights_only=True)
    model = dict(ckpt["model"]) | {"fc.weight": torch.zeros(7, 1024)}
    other_optimizer = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.1).state_dict()
    return {
        "missing_keys": {k: v for k, v in ckpt.items() if k not in ("optimizer", "rng")},
        "model_of_other_shape": ckpt | {"model": model},
        "optimizer_of_another_model": ckpt | {"optimizer": other_optimizer},
        "epoch_not_a_number": ckpt | {"epoch": "three"},
        "rng_garbage": ckpt | {"rng": [{"torch": torch.zeros(3), "numpy": 5}]},
        "config_garbage": ckpt | {"config": {"num_classes": -4}},
        "not_a_dict": [1, 2, 3],
    }


def test_a_corrupt_checkpoint_is_refused_on_resume(files, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    tiny_dataset(tmp_path / "data")
    last = files["truncated_checkpoint.pt"].parent / "run" / "last.pt"
    cases = damaged_checkpoints(last)
    cases_files = {name: tmp_path / f"{name}.pt" for name in cases}
    for name, obj in cases.items():
        torch.save(obj, cases_files[name])
    cases_files["truncated"] = files["truncated_checkpoint.pt"]
    cases_files["code"] = files["code_checkpoint.pt"]
    for name, path in cases_files.items():
        # --resume auto: the corrupt file is the run's last.pt.
        run = tmp_path / f"run_{name}"
        run.mkdir()
        shutil.copy(path, run / "last.pt")
        for resume in (["--resume", "auto", "--output-dir", run], ["--resume", run / "last.pt"]):
            code, _, err = main(capsys, "train", "--data", "data", *resume, *FAST)
            line = assert_one_line_error(code, err, "train")
            assert "resume from" in line and str(run / "last.pt") in line, (name, line)
        assert (run / "last.pt").read_bytes() == path.read_bytes()  # left as it was
        assert sorted(p.name for p in run.iterdir()) == ["last.pt"], name
    assert not (tmp_path / MARKER).exists()
