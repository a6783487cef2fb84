"""The command line's shared grammar (googlenet.cli.args), table-driven over every subcommand.

One flag for one thing, with the same option strings, type, choices and (where the thing is the
same) default in every subcommand that has it; every default shown in --help; old spellings
kept as hidden aliases; the same exit code for the same outcome; nothing overwritten without
--force.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
from pathlib import Path

import pytest
import torch
from helpers.folders import make_image_folder

import googlenet
from googlenet import cli
from googlenet.cli import args as cli_args
from googlenet.model import PRESETS
from googlenet.runtime.backends import BACKENDS
from googlenet.runtime.device import amp_dtype, resolve_amp


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def action(parser: argparse.ArgumentParser, option: str) -> argparse.Action | None:
    """The option as --help shows it (a hidden old spelling is not the flag)."""
    shown = (a for a in parser._actions if a.help != argparse.SUPPRESS)
    return next((a for a in shown if option in a.option_strings), None)


# flag -> (option strings, type, choices, default or PER_COMMAND); every subcommand with the
# flag must declare it exactly so.
PER_COMMAND = object()
SHARED = {
    "--device": (["--device"], cli_args.device_name, None, "auto"),
    "--amp": (["--amp"], None, list(cli_args.AMP_CHOICES), PER_COMMAND),
    "--batch-size": (["-b", "--batch-size"], cli_args.positive_int, None, PER_COMMAND),
    "--workers": (["-j", "--workers"], cli_args.nonnegative_int, None, PER_COMMAND),
    "--backend": (["--backend"], None, list(BACKENDS), "auto"),
    "--crops": (["--crops"], int, [1, 10, 144], 1),
    "--resize": (["--resize"], None, ["shorter", "squash"], "shorter"),
    "--format": (["--format"], None, PER_COMMAND, PER_COMMAND),
    "--preset": (["--preset"], None, list(PRESETS), "paper"),
    "--weights": (["--weights"], cli_args.existing_file, None, None),
    "--input-size": (["--input-size"], cli_args.input_size, None, PER_COMMAND),
    "--output": (["-o", "--output"], Path, None, PER_COMMAND),
    "--output-dir": (["--output-dir"], PER_COMMAND, None, PER_COMMAND),
    "--force": (["--force"], None, None, False),
}
# Where each shared flag must be (a subcommand that loses one fails here).
HAS = {
    "--device": {"predict", "cam", "train", "eval", "bench", "serve"},
    "--amp": {"predict", "train", "eval"},
    "--batch-size": {"predict", "train", "eval", "bench", "study"},
    "--workers": {"predict", "train", "eval", "demo", "bench", "shard", "study"},
    "--backend": {"predict", "eval", "bench", "serve"},
    "--crops": {"predict", "eval"},
    "--resize": {"predict", "eval"},
    "--format": {"summary", "predict", "export", "eval", "bench"},
    "--preset": {"summary", "train", "bench"},
    "--weights": {"predict", "cam", "export", "train", "eval", "serve"},
    "--input-size": {"summary", "train", "demo", "bench", "study"},
    "--output": {"convert-weights", "predict", "cam", "export", "eval", "bench"},
    "--output-dir": {"train", "demo", "shard", "study"},
    "--force": {"convert-weights", "predict", "cam", "export", "eval", "bench"},
}
# The one flag that names another thing on purpose: serve's --workers are server processes,
# uvicorn's spelling, not -j's decoding processes.
OTHER_THING = {("serve", "--workers")}
CASES = [
    (flag, name)
    for flag in SHARED
    for name in sorted(subcommands())
    if (name, flag) not in OTHER_THING
]


@pytest.mark.parametrize("flag, command", CASES, ids=[f"{c} {f}" for f, c in CASES])
def test_a_shared_flag_is_the_same_in_every_subcommand(flag, command):
    found = action(subcommands()[command], flag)
    assert (found is not None) == (command in HAS[flag]), f"{command} {flag}"
    if found is None:
        return
    options, kind, choices, default = SHARED[flag]
    assert found.option_strings == options
    if kind is not PER_COMMAND:
        assert found.type is kind
    if choices is not PER_COMMAND:
        assert (list(found.choices) if found.choices else None) == choices
    if default is not PER_COMMAND:
        assert found.default == default


def test_amp_means_one_thing():
    """auto|bf16|fp16|none everywhere; a bare --amp is bf16 (predict's old boolean flag);
    auto infers in fp32 (the 1e-4 contract) and trains in bf16 where the device does it fast."""
    for name, parser in subcommands().items():
        amp = action(parser, "--amp")
        if amp is not None:
            assert amp.nargs == "?" and amp.const == "bf16", name
            assert amp.default == ("auto" if name == "train" else "none"), name
    assert cli_args.inference_amp("auto") is None and cli_args.inference_amp("none") is None
    assert cli_args.inference_amp("bf16") == "bf16" and cli_args.inference_amp("fp16") == "fp16"
    fast = amp_dtype("cpu") == torch.bfloat16  # AVX512-BF16 or AMX
    assert resolve_amp("auto", "cpu") == (torch.bfloat16 if fast else None)
    assert resolve_amp("none", "cpu") is None and resolve_amp("fp16", "cpu") == torch.float16
    parser = cli.build_parser()
    assert parser.parse_args(["predict", "x.png", "--weights", __file__, "--amp"]).amp == "bf16"


@pytest.mark.parametrize("command", sorted(subcommands()))
def test_every_default_is_shown_in_help(command):
    parser = subcommands()[command]
    text = " ".join(parser.format_help().split())
    for a in parser._actions:
        if a.help == argparse.SUPPRESS or not a.option_strings or a.dest == "help":
            continue
        assert a.help, f"{command} {a.option_strings} has no help"
        if a.default is not None and not isinstance(a.default, bool):
            shown = " ".join(a.help.split())
            assert "default" in parser._get_formatter()._get_help_string(a), (command, a.dest)
            assert shown.split(" (")[0] in text


@pytest.mark.parametrize(
    "argv, dest, value",
    [
        (["predict", "x.png", "--weights", __file__, "--out", "p.csv"], "output", Path("p.csv")),
        (["cam", "x.png", "--weights", __file__, "--out", "c.png"], "output", Path("c.png")),
        (["export", "--weights", __file__, "--out", "m.onnx"], "output", Path("m.onnx")),
        (["export", "--weights", __file__, "--dynamic-batch"], "dynamic_batch", True),
        (["train", "--data", "d", "--weight-decay", "0.1"], "weight_decay", 0.1),
        (["eval", "--weights", __file__, "--data", "d", "--amp", "bf16"], "amp", "bf16"),
    ],
)
def test_old_spellings_still_parse_and_are_hidden(argv, dest, value):
    assert getattr(cli.build_parser().parse_args(argv), dest) == value
    old = next(a for a in argv if a.startswith("--") and a not in ("--weights", "--data"))
    help_text = subcommands()[argv[0]].format_help()
    if old in ("--out", "--dynamic-batch"):  # not among the options; named once at the end
        options, _, epilog = help_text.partition("Still accepted:")
        assert f"{old} " not in options and f"{old}," not in options and f"{old} (now" in epilog


@pytest.mark.parametrize(
    "kind, text, expected",
    [
        (cli.positive_int, "3", 3),
        (cli.positive_int, "0", None),
        (cli.positive_int, "1.5", None),
        (cli.nonnegative_int, "0", 0),
        (cli.nonnegative_int, "-1", None),
        (cli.positive_float, "0.5", 0.5),
        (cli.positive_float, "0", None),
        (cli.positive_float, "inf", None),
        (cli.nonnegative_float, "0", 0.0),
        (cli.nonnegative_float, "nan", None),
        (cli.nonnegative_float, "-1e-9", None),
    ],
)
def test_number_types_come_from_one_factory(kind, text, expected):
    if expected is None:
        with pytest.raises(argparse.ArgumentTypeError):
            kind(text)
    else:
        value = kind(text)
        assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("text", ["auto", "cpu", "cuda", "cuda:1", "mps"])
def test_device_spellings_accepted(text):
    assert cli_args.device_name(text) == text


@pytest.mark.parametrize("text", ["tpu", "cuda:", "gpu", "CPU", "cuda:x"])
def test_device_spellings_refused(text):
    with pytest.raises(argparse.ArgumentTypeError, match="--device must be"):
        cli_args.device_name(text)


# -- outcomes: overwriting, exit codes --------------------------------------------------------


def run(*argv) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = cli.main([str(a) for a in argv])
        except SystemExit as exit:
            code = exit.code
    return code, err.getvalue()


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    model = googlenet.create_model(
        "paper", num_classes=2, aux_logits=False, input_size=32, class_names=("a", "b")
    )
    return googlenet.save_weights(model, root / "w.safetensors") or root / "w.safetensors"


def test_writers_refuse_to_overwrite_without_force(weights, tmp_path):
    make_image_folder(tmp_path / "val", classes=("a", "b"), per_class=1)
    image = next((tmp_path / "val" / "a").iterdir())
    target = tmp_path / "taken.txt"
    for argv in [
        ["predict", image, "--weights", weights, "-o", target, "-j", "0"],
        ["eval", "--weights", weights, "--data", tmp_path, "-j", "0", "-o", target],
        ["convert-weights", weights, target],
        ["export", "--weights", weights, "-o", target],
        ["bench", "-o", target],
    ]:
        target.write_text("mine")
        code, err = run(*argv)
        assert code == 2 and "already exists" in err and "--force" in err, (argv, err)
        assert target.read_text() == "mine"
    code, err = run("predict", image, "--weights", weights, "-o", target, "-j", "0", "--force")
    assert code == 0 and target.read_text() != "mine", err


def test_unreadable_inputs_exit_2_in_predict_and_eval_alike(weights, tmp_path, caplog):
    make_image_folder(tmp_path / "val", classes=("a", "b"), per_class=1)
    (tmp_path / "val" / "b" / "zz.png").write_bytes(b"\x89PNG\r\n\x1a\n but then nothing")
    for argv in [
        ["predict", tmp_path / "val", "--weights", weights, "-j", "0"],
        ["eval", "--weights", weights, "--data", tmp_path, "-j", "0", "-o", tmp_path / "r.json"],
    ]:
        caplog.clear()
        code, err = run(*argv)
        assert code == 2 and "zz.png" in err + caplog.text, (argv, err)
        assert "error: 1 of 3 input(s) failed" in err.strip().splitlines()[-1], err


def test_topk_beyond_the_classes_is_capped_with_a_note(weights, tmp_path):
    make_image_folder(tmp_path, classes=("a",), per_class=1)
    code, err = run("predict", tmp_path / "a", "--weights", weights, "--topk", "10", "-j", "0")
    assert code == 0 and "--topk 10, but the model knows 2 classes" in err


def test_progress_lines_when_stderr_is_not_a_terminal(weights, tmp_path, monkeypatch, caplog):
    import googlenet.progress

    monkeypatch.setattr(googlenet.progress, "EVERY_S", 0.0)
    caplog.set_level(logging.INFO)
    make_image_folder(tmp_path / "val", classes=("a", "b"), per_class=2)
    code, err = run("predict", tmp_path / "val", "--weights", weights, "-j", "0")
    assert code == 0 and "1/4 image(s)" in err and "eta" in err, err
    code, err = run("eval", "--weights", weights, "--data", tmp_path, "-j", "0", "-b", "1",
                    "-o", tmp_path / "r.json")  # fmt: skip
    assert code == 0 and "eval, 1 crop(s): 1/4 batches" in caplog.text and "eta" in caplog.text, err
