"""Issue 6, point 5: bad arguments to every subcommand end as exit code 2 and one line.

Three layers:

* generated from the parser itself: every option of every subcommand whose type or choices can
  refuse a value gets the values it must refuse (zero and negative counts, NaN and infinite
  rates, unknown choices, missing files). A subcommand added later is covered by this layer as
  soon as it is registered in ``cli.COMMANDS``;
* property-based (hypothesis): any value drawn from the refused ranges, for any such option,
  and any text at all for the argument types;
* a table of what only the command can know: conflicting flags, files that are not there, values
  the model or the data rule out. Extend ``TABLE`` for a new subcommand's own checks (or list it
  in ``EXTENSION_POINT`` meanwhile).

In this process (``cli.main``) for speed, plus a few real subprocess runs.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import shutil

import pytest
from helpers.folders import make_image_folder
from helpers.reliability import FAST, assert_one_line_error, main, tiny_dataset
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import googlenet
from googlenet import cli

# -- generated from the parser ----------------------------------------------------------------

REFUSED: dict = {
    cli.positive_int: ["0", "-1", "-999999999999", "1.5", "abc", ""],
    cli.nonnegative_int: ["-1", "-7", "2.5", "x"],
    cli.positive_float: ["0", "-0.5", "-1e-12", "nan", "inf", "-inf", "x"],
    cli.nonnegative_float: ["-1", "-1e-9", "nan", "inf", "x"],
    cli.input_size: ["0", "-32", "100000", "2.5"],
    cli.existing_file: ["no/such/file.safetensors"],
    int: ["x", "1.5"],
    float: ["x"],
}


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def refusable() -> list[tuple[str, str, argparse.Action]]:
    """(subcommand, option string, action) for every option that can refuse a value."""
    out = []
    for name, parser in subcommands().items():
        for action in parser._actions:
            if action.option_strings and (action.choices or action.type in REFUSED):
                out.append((name, action.option_strings[-1], action))
    return out


def bad_values(action: argparse.Action) -> list[str]:
    values = list(REFUSED.get(action.type, []))
    if action.choices:
        values += ["no-such-choice"] + (["0", "-1", "7"] if action.type is int else [])
    return values


def argv_with(command: str, option: str, action: argparse.Action, value: str) -> list[str]:
    """``command option value`` (with a valid filler for options that take several values)."""
    n = action.nargs if isinstance(action.nargs, int) else 1
    return [command, option, value, *["1"] * (n - 1)]


def parse_error(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = cli.main(argv)
        except SystemExit as exit:
            code = exit.code
    return code, err.getvalue()


def test_every_subcommand_is_covered():
    """The generated checks reach every subcommand; a new one without refusable options or
    without a base case below would go unchecked, so it must be listed here."""
    names = set(subcommands())
    assert {
        "summary",
        "convert-weights",
        "predict",
        "cam",
        "export",
        "train",
        "eval",
        "demo",
    } <= names
    with_options = {name for name, _, _ in refusable()}
    assert names == with_options, f"no refusable option found for {names - with_options}"
    tabled = {case[0][0] for case in TABLE}
    assert names <= tabled | set(EXTENSION_POINT), (
        f"add TABLE cases for {names - tabled - set(EXTENSION_POINT)}"
    )


CASES = [
    pytest.param(argv_with(c, o, a, v), o, id=f"{c} {o} {v!r}")
    for c, o, a in refusable()
    for v in bad_values(a)
]


@pytest.mark.parametrize("argv, option", CASES)
def test_a_refused_value_is_one_line_exit_2(argv, option):
    code, err = parse_error(argv)
    line = assert_one_line_error(code, err)
    assert option in line and line.startswith(f"googlenet {argv[0]}: error: argument"), line


# -- property-based ---------------------------------------------------------------------------

NUMERIC = [(c, o, a) for c, o, a in refusable() if a.type in REFUSED and a.type not in (int, float)]
NUMERIC = [x for x in NUMERIC if x[2].type is not cli.existing_file]


def refused_numbers(kind) -> st.SearchStrategy[str]:
    """Text of values ``kind`` must refuse."""
    if kind in (cli.positive_int, cli.input_size):
        ints = st.integers(max_value=0)
        if kind is cli.input_size:
            ints = ints | st.integers(min_value=googlenet.model.MAX_INPUT_SIZE + 1)
        return ints.map(str) | st.floats(allow_nan=False, allow_infinity=False).filter(
            lambda f: f != int(f)
        ).map(repr)
    if kind is cli.nonnegative_int:
        return st.integers(max_value=-1).map(str)
    if kind is cli.positive_float:
        return st.floats(max_value=0.0).map(repr) | st.sampled_from(["nan", "inf", "-inf"])
    return st.floats(max_value=-1e-300).map(repr) | st.sampled_from(["nan", "inf", "NaN"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_refused_number_for_any_option_is_one_line_exit_2(data):
    command, option, action = data.draw(st.sampled_from(NUMERIC))
    value = data.draw(refused_numbers(action.type))
    code, err = parse_error(argv_with(command, option, action, value))
    line = assert_one_line_error(code, err)
    assert option in line


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=30) | st.from_regex(r"-?[0-9]{1,40}(\.[0-9]*)?(e-?[0-9]+)?"))
def test_argument_types_return_a_valid_value_or_refuse_never_crash(text):
    for kind, valid in (
        (cli.positive_int, lambda v: isinstance(v, int) and v >= 1),
        (cli.nonnegative_int, lambda v: isinstance(v, int) and v >= 0),
        (cli.input_size, lambda v: 1 <= v <= googlenet.model.MAX_INPUT_SIZE),
        (cli.positive_float, lambda v: math.isfinite(v) and v > 0),
        (cli.nonnegative_float, lambda v: math.isfinite(v) and v >= 0),
    ):
        try:
            value = kind(text)
        except argparse.ArgumentTypeError as err:
            assert "\n" not in str(err)
        else:
            assert valid(value), (kind.__name__, text, value)


# -- what only the command knows: conflicts, missing paths, values the model rules out --------

W, IMG = "w.safetensors", "img.png"
TRAIN = ["train", "--data", "data", "--epochs", "1", *FAST]
TABLE = [
    (["summary", "--num-classes", "1000000000"], "num_classes must be 1 to 1,000,000"),
    (["summary", "--input-size", "8"], "too small"),
    (["summary", "--compare", "no-such-net"], "unknown torchvision model"),
    (["convert-weights", W, "out.pth"], "should end in .safetensors"),
    (["convert-weights", W, "no/dir/out.safetensors"], "does not exist"),
    (["convert-weights", W, "out.safetensors", "--num-classes", "2000000"], "num_classes"),
    (["convert-weights", W, "a.safetensors", "-o", "b.safetensors"], "not both"),
    (["convert-weights", W, W], "already exists: pass --force"),
    (["predict", "missing.png", "--weights", W], "missing.png: no such file or directory"),
    (["predict", "nothing*.png", "--weights", W], "no file matches"),
    (["predict", IMG, "--weights", W, "--device", "tpu"], "unknown device"),
    (["predict", IMG, "--weights", W, "--out", "no/dir/p.csv"], "does not exist"),
    (["cam", IMG, "--weights", W, "--out", "c.png", "--class", "a", "--topk", "2"], "not allowed"),
    (["cam", IMG, "--weights", W, "--out", "c.png", "--alpha", "2"], "--alpha"),
    (["cam", IMG, "--weights", W, "--out", "c.png", "--cmap", "no-such-map"], "colormap"),
    (["cam", IMG, "--weights", W, "--out", "c.png", "--class", "zebra"], "no class 'zebra'"),
    (["cam", IMG, "data/val/a/1-0.png", "--weights", W, "--out", "c.png"], "give a folder"),
    (["cam", "missing.png", "--weights", W, "--out", "c.png"], "no such file"),
    (["cam", IMG, "--weights", W, "--out", "no/dir/c.png"], "does not exist"),
    (["export", "--weights", W, "--out", "m.onnx", "--opset", "5"], "--opset must be"),
    (
        ["export", "--weights", W, "--out", "m.pt", "--format", "torchscript", "--opset", "18"],
        "--opset is for ONNX",
    ),
    (["export", "--weights", W, "--out", "no/dir/m.onnx"], "does not exist"),
    (["export", "--weights", W, "--static-batch", "--dynamic-batch"], "contradict"),
    (["export", "--weights", W, "--format", "torchscript", "-o", W], "the weights file itself"),
    (["predict", IMG, "--weights", W, "--amp", "fp16"], "use --amp bf16"),
    (["predict", IMG, "--weights", W, "-o", W], "already exists: pass --force"),
    ([*TRAIN, "--freeze-trunk"], "--freeze-trunk needs --weights"),
    ([*TRAIN, "--resume", "runA/last.pt", "--weights", W], "pass one of them"),
    ([*TRAIN, "--resume", "runA/last.pt", "--output-dir", "runB"], "holds another run"),
    ([*TRAIN, "--resume", "missing.pt"], "no such checkpoint"),
    ([*TRAIN, "--output-dir", "runB"], "already holds a run"),
    ([*TRAIN, "--scale", "0.5", "0.2"], "--scale needs"),
    ([*TRAIN, "--scale", "0.5", "2"], "--scale needs"),
    ([*TRAIN, "--ratio", "2", "1"], "--ratio needs"),
    ([*TRAIN, "--momentum", "1.5"], "--momentum"),
    ([*TRAIN, "--hflip", "2"], "--hflip"),
    ([*TRAIN, "--lr-gamma", "3"], "--lr-gamma"),
    ([*TRAIN, "--mean", "nan", "0", "0"], "--mean"),
    ([*TRAIN, "--seed", "-1"], "--seed"),
    ([*TRAIN, "--seed", "99999999999999999999999"], "--seed"),
    ([*TRAIN, "--polyak-decay", "1"], "--polyak-decay"),
    ([*TRAIN, "--label-smoothing", "1"], "--label-smoothing"),
    ([*TRAIN, "--dropout", "1"], "dropout must be in [0, 1)"),
    ([*TRAIN, "--input-size", "8"], "too small"),
    ([*TRAIN, "--device", "tpu"], "--device must be"),
    ([*TRAIN, "--compile", "warp-drive"], "unknown backend"),
    (["train", "--data", "missing", *FAST], "does not exist"),
    (["train", "--data", IMG, *FAST], "is not a directory"),
    (["train", "--data", "data", "--val", "missing", *FAST], "does not exist"),
    (["eval", "--weights", W, "--data", "missing"], "does not exist"),
    (["eval", "--weights", W, "--data", "data/val", "--device", "tpu"], "--device"),
    (["eval", "--weights", W, "--data", "other"], "was trained on 2 classes"),
    (["bench", "--input-size", "8"], "too small"),
    (["bench", "--output", "no/dir/bench.json"], "does not exist"),
    (["serve", "--weights", W, "--device", "tpu"], "unknown device"),
    (["serve", "--weights", IMG], "is not a weights file"),
    (["serve", "--weights", W, "--max-pixels", "200000000"], "--max-pixels must be"),
    (["serve", "--weights", W, "--port", "70000"], "a TCP port is 1 to 65535"),
    (["shard", "--data", "missing", "--out", "sh"], "does not exist"),
    (["shard", "--data", "other", "--out", "sh"], "has no train/ folder"),
    (["shard", "--data", "data", "--out", IMG], "cannot use"),
    (["eval", "--weights", W, "--data", "pipe:cat none/val-000000.tar"], "cannot read its shard"),
    (["train", "--data", "none/train-{000000..000001}.tar", *FAST], "cannot read its shard"),
    (["study", "--claims", "nope", "--output-dir", "s"], "unknown claim 'nope'"),
    (["study", "--data", "missing", "--output-dir", "s"], "no such folder"),
    (["demo", "--output-dir", IMG], "is a file"),
    (["demo", "--output-dir", "d", "--input-size", "8", "--limit", "40"], "too small"),
]
# Subcommands that only the generated and property-based layers check so far (a new one is
# covered by them as soon as it is registered); list one here until it has TABLE cases.
EXTENSION_POINT: list[str] = []


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("args")
    tiny_dataset(root / "data")
    make_image_folder(root / "other", classes=("x", "y", "z"), per_class=1)
    shutil.copy(root / "data" / "val" / "a" / "1-0.png", root / IMG)
    model = googlenet.create_model(
        "paper", num_classes=2, aux_logits=False, input_size=32, class_names=("a", "b")
    )
    googlenet.save_weights(model, root / W)
    (root / "runA").mkdir()
    (root / "runA" / "last.pt").write_bytes(b"a checkpoint")
    (root / "runB").mkdir()
    (root / "runB" / "config.json").write_text("{}")
    return root


@pytest.mark.parametrize("argv, message", TABLE, ids=[" ".join(a[:1] + a[-2:]) for a, _ in TABLE])
def test_a_command_refuses_what_only_it_can_check(argv, message, workdir, monkeypatch, capsys):
    monkeypatch.chdir(workdir)
    before = sorted(p.relative_to(workdir) for p in workdir.rglob("*"))
    code, _, err = main(capsys, *argv)
    line = assert_one_line_error(code, err, argv[0])
    assert message in line, line
    after = sorted(p.relative_to(workdir) for p in workdir.rglob("*"))
    assert after == before, f"{argv} wrote {set(after) - set(before)}"  # a refusal writes nothing


@pytest.mark.slow
def test_real_processes_say_one_line_and_exit_2(workdir, run_cli):
    for argv, message in [
        (["train", "--data", workdir / "data", "-b", "0"], "argument -b/--batch-size"),
        (["predict", workdir / "missing.png", "--weights", workdir / W], "no such file"),
        (["cam", workdir / IMG, "--weights", workdir / W, "--out", "c.png", "--class", "a",
          "--topk", "2"], "not allowed with argument"),
    ]:  # fmt: skip
        proc = run_cli(*argv)
        assert "Traceback" not in proc.stderr
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert message in proc.stderr
