"""What every subcommand shares: the parser, the argument types and one helper per shared flag.

One grammar for the whole command line (README, "Command-line conventions"):

* the same thing has the same flag in every subcommand, added here by one helper:
  ``--device``, ``--amp``, ``-b/--batch-size``, ``-j/--workers``, ``--backend``, ``--crops``,
  ``--format``, ``--preset``, ``--weights``, ``--input-size``;
* ``-o/--output`` names what a command writes (a file; ``cam``: a .png or a folder), and
  ``--output-dir`` a run's directory (``train``, ``demo``); nothing is overwritten unless
  ``--force``;
* every default is shown in ``--help``; old spellings keep working as hidden aliases.

Exit codes: 0 done; 1 a bug or a failed export check (a traceback, or one line); 2 a user
mistake (one line, nothing written) or inputs that could not be read (named, counted, the rest
done); 128 + N stopped by signal N (130 Ctrl-C, 143 SIGTERM).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..fileio import refuse_overwrite  # noqa: F401  (one rule for every writer)

PROG = "googlenet"
DEVICES = "auto, cpu, cuda, cuda:N or mps"
AMP_CHOICES = ("auto", "bf16", "fp16", "none")
CROPS = (1, 10, 144)


def rank() -> int:
    """This process's rank under torchrun (0 otherwise)."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage dump) and exit with 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        # Under torchrun every rank parses the same arguments: rank 0 alone says what is wrong.
        text = f"{self.prog}: error: {message} (see {self.prog} --help)\n"
        self.exit(2, text if rank() == 0 else None)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: X)`` after every option that has a default worth showing (argparse's
    own formatter also prints ``None`` and ``False``, which say nothing)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        default = action.default
        if default is None or isinstance(default, bool) or default == argparse.SUPPRESS:
            return action.help
        if isinstance(default, (list, tuple)):  # nargs=N: "(default: 0.08 1.0)"
            shown = " ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in default)
            return f"{action.help} (default: {shown})"
        return super()._get_help_string(action)


# -- argument types: reject bad values at parse time with a message that names the flag ----------


def number(kind: type, low: float, *, above: bool = False, name: str) -> Callable[[str], Any]:
    """An argument type for a whole (``kind=int``) or finite (``float``) number that is at
    least ``low`` (more than ``low`` with ``above``). Hand-written because argparse has no
    range checks and the message must name the bound."""
    whole = kind is int
    bound = f"more than {low}" if above else f"at least {low}" if whole else f"{low} or more"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            what = "a whole number" if whole else "a number"
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        finite = whole or math.isfinite(value)
        if not (finite and (value > low if above else value >= low)):
            what = "" if whole else "a finite number "
            raise argparse.ArgumentTypeError(f"must be {what}{bound}, got {text}")
        return value

    parse.__name__ = parse.__qualname__ = name
    return parse


positive_int = number(int, 1, name="positive_int")
nonnegative_int = number(int, 0, name="nonnegative_int")
positive_float = number(float, 0, above=True, name="positive_float")
nonnegative_float = number(float, 0, name="nonnegative_float")


def input_size(text: str) -> int:
    """A square input side: a whole number from 1 to MAX_INPUT_SIZE (larger sizes would try to
    allocate more memory than any machine has; the network's own minimum is checked later)."""
    from ..model import MAX_INPUT_SIZE

    value = positive_int(text)
    if value > MAX_INPUT_SIZE:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_INPUT_SIZE}, got {value}")
    return value


def existing_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"file {text} does not exist")
    return path


def device_name(text: str) -> str:
    """The spelling of a device; whether this machine has it is checked when it is used."""
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"unknown device {text!r}: --device must be {DEVICES}")
    return text


# -- one helper per shared flag ------------------------------------------------------------------


def add_alias(
    parser: argparse.ArgumentParser, *names: str, dest: str, now: str, **kwargs: Any
) -> None:
    """Old spellings that keep working: hidden from the option list, named once at the end of
    --help (``now``: what to write instead)."""
    parser.add_argument(*names, dest=dest, help=argparse.SUPPRESS, default=None, **kwargs)
    note = f"{'/'.join(names)} (now {now})"
    old = parser.epilog.removeprefix("Still accepted: ").removesuffix(".") if parser.epilog else ""
    parser.epilog = f"Still accepted: {old + ', ' if old else ''}{note}."


def add_preset(parser: argparse.ArgumentParser) -> None:
    from ..model import PRESETS

    parser.add_argument(
        "--preset",
        default="paper",
        choices=list(PRESETS),
        help="network preset: paper (Szegedy et al. 2014) or torchvision (its variant, "
        "which its pretrained weights need)",
    )


def add_weights(parser: argparse.ArgumentParser, what: str, *, several: bool = False) -> None:
    parser.add_argument(
        "--weights",
        type=existing_file,
        required=True,
        nargs="+" if several else None,
        metavar="W",
        help=f"weights: {what}",
    )


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        type=device_name,
        default="auto",
        help=f"{DEVICES}; auto: a CUDA GPU if there is one, else MPS, else the CPU",
    )


def add_amp(parser: argparse.ArgumentParser, default: str, *, training: bool = False) -> None:
    """``--amp auto|bf16|fp16|none``; a bare ``--amp`` means bf16 (the old predict flag)."""
    auto = (
        "bf16 where the hardware does it fast (AVX512-BF16/AMX CPUs, bf16 GPUs), else none"
        if training
        else "none: inference stays in fp32, within 1e-4 of the reference"
    )
    parser.add_argument(
        "--amp",
        nargs="?",
        const="bf16",
        choices=AMP_CHOICES,
        default=default,
        help=f"mixed precision: bf16, fp16, none (fp32) or auto ({auto}); a bare --amp is bf16",
    )


def add_batch_size(parser: argparse.ArgumentParser, default: int | None, what: str) -> None:
    parser.add_argument(
        "-b", "--batch-size", type=positive_int, default=default, metavar="N", help=what
    )


def add_workers(parser: argparse.ArgumentParser, default: int | None, note: str = "") -> None:
    parser.add_argument(
        "-j",
        "--workers",
        type=nonnegative_int,
        default=default,
        metavar="N",
        help=f"image decoding processes, 0 decodes in this one{note}",
    )


def add_backend(parser: argparse.ArgumentParser) -> None:
    from ..runtime.backends import BACKENDS

    parser.add_argument(
        "--backend",
        choices=list(BACKENDS),
        default="auto",
        help="how PyTorch weights run: auto (the fast inference path: BatchNorm folded, ONNX "
        "Runtime on a CPU, PyTorch channels_last on a GPU), eager (the plain module), or one "
        "backend by name",
    )


def add_crops(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--crops",
        type=int,
        choices=CROPS,
        default=1,
        help="1 center crop, 10 (corners, center and their mirrors) or the paper's 144; "
        "probabilities are averaged over them",
    )


def add_resize(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--resize",
        choices=["shorter", "squash"],
        default="shorter",
        help="before cropping: the shorter side to 256 (x S / 224), or squash both sides to "
        "it as BVLC Caffe's test data was (its 68.7%% top-1 is with squash)",
    )


def add_format(parser: argparse.ArgumentParser, choices: Iterable[str], default: str) -> None:
    parser.add_argument(
        "--format", choices=list(choices), default=default, help="how results are written"
    )


def add_input_size(parser: argparse.ArgumentParser, default: int | None, note: str = "") -> None:
    parser.add_argument(
        "--input-size",
        type=input_size,
        default=default,
        metavar="PX",
        help=f"square input side in pixels{note}",
    )


def add_output(
    parser: argparse.ArgumentParser, what: str, *, old: Iterable[str] = (), metavar: str = "FILE"
) -> None:
    """``-o/--output`` (what the command writes) and ``--force``; ``old``: hidden aliases."""
    parser.add_argument("-o", "--output", type=Path, metavar=metavar, help=what)
    for name in old:
        add_alias(parser, name, dest="output", now="-o/--output", type=Path, metavar=metavar)
    add_force(parser)


def add_force(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true", help="overwrite what is already there")


# -- running: refusals, progress lines, exit codes -----------------------------------------------


def reporter(command: str) -> Callable[[str], None]:
    return lambda line: print(f"{PROG} {command}: {line}", file=sys.stderr, flush=True)


def failures(command: str, ok: int, failed: int) -> int:
    """Exit code 2, with a count on stderr, if any input failed; else 0."""
    if not failed:
        return 0
    print(
        f"{PROG} {command}: error: {failed} of {ok + failed} input(s) failed (reported above)",
        file=sys.stderr,
    )
    return 2


def inference_amp(amp: str) -> str | None:
    """``--amp`` for inference: None (fp32), "bf16" or "fp16". ``auto`` is fp32 there, since the
    fast path's contract is 1e-4 of the reference; training decides ``auto`` from the hardware
    (:func:`googlenet.runtime.device.resolve_amp`: bf16 where the device does it fast)."""
    return None if amp in ("auto", "none") else amp
