"""The ``googlenet`` command line: argparse in front, each subcommand a thin call into a module.

Every subcommand has an ``_add_<name>(subparsers)`` that declares its flags and a
``_run_<name>(args)`` that calls the library and returns an exit code. User mistakes raise
:class:`GoogLeNetError` (or fail argparse's checks) and end as one line on stderr with exit
code 2; Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .errors import GoogLeNetError

PROG = "googlenet"


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage dump) and exit with 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# -- argument types: reject bad values at parse time with a message that names the flag ----------


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def nonnegative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return value


def nonnegative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number of 0 or more, got {text}")
    return value


def existing_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"file {text} does not exist")
    return path


def _preset_arg(parser: argparse.ArgumentParser, default: str = "paper") -> None:
    from .model import PRESETS

    parser.add_argument(
        "--preset",
        default=default,
        choices=list(PRESETS),
        help=f"network preset (default {default})",
    )


# -- summary ----------------------------------------------------------------------------------


def _add_summary(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "summary",
        help="Table 1 from the live model: shapes, parameters, multiply-adds",
        description="Regenerate the paper's Table 1 from the live model (hooks on every layer), "
        "with parameters and multiply-adds per row, the paper's printed figures beside them, and "
        "the total cross-checked against torch.utils.flop_counter.",
    )
    _preset_arg(p)
    p.add_argument("--input-size", type=positive_int, default=224, help="square input side (224)")
    p.add_argument("--num-classes", type=positive_int, default=1000, help="classes (1000)")
    p.add_argument("--naive", action="store_true", help="naive vs reduced Inception module cost")
    p.add_argument(
        "--compare",
        default=None,
        metavar="MODELS",
        help="comma-separated torchvision models to compare with, e.g. vgg16,alexnet",
    )
    p.add_argument("--format", choices=["table", "json", "csv", "markdown"], default="table")


def _run_summary(args: argparse.Namespace) -> int:
    from . import analysis
    from .model import create_model

    compare = [m.strip() for m in args.compare.split(",") if m.strip()] if args.compare else []
    model = create_model(args.preset, num_classes=args.num_classes)
    report = analysis.summarize(
        model, input_size=args.input_size, naive=args.naive, compare=compare
    )
    print(analysis.render(report, args.format))
    return 0


# -- convert-weights -----------------------------------------------------------------------------


def _add_convert_weights(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert-weights",
        help="torchvision googlenet .pth (or any weights we read) -> our safetensors",
        description="Read a torchvision googlenet state dict (e.g. googlenet-1378be20.pth from "
        "~/.cache/torch/hub/checkpoints) safely (weights_only=True) and write our safetensors file "
        "with the configuration and class names in its metadata.",
    )
    p.add_argument("src", type=existing_file, help="weights to read (.pth, .safetensors)")
    p.add_argument("dst", type=Path, help="safetensors file to write")
    p.add_argument("--num-classes", type=positive_int, help="re-initialize the classifier for N")
    p.add_argument("--no-aux", action="store_true", help="drop the auxiliary heads")
    p.add_argument(
        "--no-transform-input",
        action="store_true",
        help="torchvision preset: the weights expect ImageNet-normalized input, not [-1, 1]",
    )


def _run_convert_weights(args: argparse.Namespace) -> int:
    from .weights import convert_weights

    kwargs: dict = {"num_classes": args.num_classes}
    if args.no_aux:
        kwargs["aux_logits"] = False
    if args.no_transform_input:
        kwargs["transform_input"] = False
    model = convert_weights(args.src, args.dst, **kwargs)
    n = sum(p.numel() for p in model.parameters())
    print(
        f"wrote {args.dst}: preset {model.config.preset}, {model.num_classes} classes, "
        f"{n:,} parameters, aux heads {'kept' if model.config.aux_logits else 'dropped'}"
    )
    return 0


# -- bench ----------------------------------------------------------------------------------------


def _add_bench(sub: argparse._SubParsersAction) -> None:
    from .bench import MODES
    from .inference import BACKENDS

    p = sub.add_parser(
        "bench",
        help="inference and training speed against torchvision, in one process",
        description="Time our inference path and training step against torchvision's googlenet "
        "(eager NCHW, eager channels_last, ONNX Runtime on its export) in one process, "
        "alternating the contenders after a warm-up: median images/s and ms per batch, "
        "batch-1 latency, peak memory, achieved GFLOP/s and its fraction of this machine's "
        "large-matmul FLOP/s, and the ratios of ours to each baseline.",
    )
    p.add_argument("--mode", choices=MODES, default="both", help="what to time (both)")
    _preset_arg(p, default="torchvision")
    p.add_argument("-b", "--batch-size", type=positive_int, default=32, help="batch size (32)")
    p.add_argument("--input-size", type=positive_int, default=224, help="square input side (224)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="device (cpu)")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--repeats", type=positive_int, default=5, help="timed rounds (5)")
    p.add_argument("--warmup", type=nonnegative_int, default=2, help="warm-up rounds (2)")
    p.add_argument(
        "--backend", choices=BACKENDS, default="auto", help="our inference backend (auto)"
    )
    p.add_argument("--int8", action="store_true", help="add our int8 model (CPU)")
    p.add_argument("--compile", action="store_true", help="add torch.compile contenders (slow)")
    p.add_argument(
        "--ablation", action="store_true", help="add our other backends and training variants"
    )
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory probes")
    p.add_argument("--no-latency", action="store_true", help="skip batch-1 latency")
    p.add_argument("--threads", type=positive_int, default=None, help="torch/runtime threads")
    p.add_argument("--output", type=Path, default=None, help="also write the JSON report here")


def _run_bench(args: argparse.Namespace) -> int:
    from .bench import BenchConfig, render, run_bench
    from .fileio import atomic_write_text

    cfg = BenchConfig(
        mode=args.mode,
        preset=args.preset,
        batch_size=args.batch_size,
        input_size=args.input_size,
        device=args.device,
        repeats=args.repeats,
        warmup=args.warmup,
        backend=args.backend,
        int8=args.int8,
        compile=args.compile,
        ablation=args.ablation,
        memory=not args.no_memory,
        latency=not args.no_latency,
        threads=args.threads,
    )
    log = logging.getLogger(PROG)
    report = run_bench(cfg, progress=log.info)
    if args.output is not None:
        atomic_write_text(args.output, render(report, "json") + "\n")
    print(render(report, args.format))
    return 0


# -- wiring ---------------------------------------------------------------------------------------

COMMANDS: dict[str, tuple[Callable, Callable]] = {
    "summary": (_add_summary, _run_summary),
    "convert-weights": (_add_convert_weights, _run_convert_weights),
    "bench": (_add_bench, _run_bench),
}


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(
        prog=PROG,
        description="GoogLeNet (Inception v1), faithful to Szegedy et al. 2014.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for add, _ in COMMANDS.values():
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format=f"{PROG}: %(message)s",
        stream=sys.stderr,
    )
    run = COMMANDS[args.command][1]
    try:
        return run(args)
    except GoogLeNetError as err:
        print(f"{PROG} {args.command}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `googlenet summary | head`
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
