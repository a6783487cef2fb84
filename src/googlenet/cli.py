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


# -- predict -------------------------------------------------------------------------------------


def _weights_arg(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--weights", type=existing_file, required=True, metavar="W", help=f"weights: {what}"
    )


def _device_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device", default="auto", help="cpu, cuda, cuda:N, mps, or auto (default: best there)"
    )


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="top-k classes of images, folders or globs",
        description="Classify images with the preprocessing the weights expect (their input "
        "size, mean and std). Folders are searched recursively; batches are decoded in worker "
        "processes and results are written as they come. Unreadable files are reported on "
        "stderr and skipped; the exit code is 2 if any input failed.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders, glob patterns")
    _weights_arg(p, "our .safetensors, a torchvision googlenet .pth, or an exported .onnx")
    p.add_argument("--topk", type=positive_int, default=5, help="classes per image (5)")
    p.add_argument(
        "--crops",
        type=int,
        choices=[1, 10, 144],
        default=1,
        help="1 center crop, 10 (corners, center, mirrored) or the paper's 144; "
        "probabilities are averaged (default 1)",
    )
    p.add_argument("--format", choices=["table", "csv", "json", "jsonl"], default="table")
    p.add_argument("--out", type=Path, metavar="FILE", help="write results here, not stdout")
    p.add_argument("-b", "--batch-size", type=positive_int, default=32, help="images per batch")
    p.add_argument(
        "-j", "--workers", type=nonnegative_int, help="decoding processes (default: up to 4)"
    )
    _device_arg(p)
    p.add_argument("--backend", default="eager", help="inference backend for PyTorch weights")


def _run_predict(args: argparse.Namespace) -> int:
    from .predict import Predictor, predict_files

    predictor = Predictor.from_file(
        args.weights,
        device=args.device,
        crops=args.crops,
        backend=args.backend,
        batch_size=args.batch_size,
    )
    report = _reporter(args.command)
    ok, failed = predict_files(
        predictor,
        args.paths,
        out=args.out,
        format=args.format,
        topk=args.topk,
        workers=args.workers,
        report=report,
    )
    return _failures(args.command, ok, failed)


def _reporter(command: str) -> Callable[[str], None]:
    return lambda line: print(f"{PROG} {command}: {line}", file=sys.stderr, flush=True)


def _failures(command: str, ok: int, failed: int) -> int:
    """Exit code 2, with a count on stderr, if any input failed."""
    if not failed:
        return 0
    print(
        f"{PROG} {command}: error: {failed} of {ok + failed} input(s) failed (reported above)",
        file=sys.stderr,
    )
    return 2


# -- cam ------------------------------------------------------------------------------------------


def _add_cam(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cam",
        help="class activation maps: where in the image the evidence for a class lies",
        description="Class activation maps (Zhou et al. 2016): the classifier's weights for a "
        "class applied to every position of inception 5b's output, drawn over the whole image "
        "as a heatmap. One PNG per image; several classes become panels side by side.",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files, folders, globs")
    _weights_arg(p, "our .safetensors or a torchvision googlenet .pth")
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--class",
        dest="classes",
        action="append",
        metavar="NAME",
        help="class name or index (repeat for several)",
    )
    which.add_argument(
        "--topk", type=positive_int, default=1, help="maps of the K most probable classes (1)"
    )
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="PATH",
        help="a .png for one image, else a folder (created) for one <name>_cam.png per image",
    )
    p.add_argument("--cmap", default="jet", help="matplotlib colormap (jet)")
    p.add_argument(
        "--alpha", type=positive_float, default=0.5, help="heatmap opacity over the image (0.5)"
    )
    _device_arg(p)


def _run_cam(args: argparse.Namespace) -> int:
    from .predict import Predictor, cam_files

    predictor = Predictor.from_file(args.weights, device=args.device)
    written, failed = cam_files(
        predictor,
        args.images,
        args.out,
        classes=args.classes,
        topk=args.topk,
        cmap=args.cmap,
        alpha=args.alpha,
        report=_reporter(args.command),
    )
    return _failures(args.command, len(written), failed)


# -- export ---------------------------------------------------------------------------------------


def _add_export(sub: argparse._SubParsersAction) -> None:
    from .export import DEFAULT_OPSET, FORMATS

    p = sub.add_parser(
        "export",
        help="ONNX, TorchScript or ExportedProgram for deployment, checked against PyTorch",
        description="Export the model for inference (auxiliary heads removed, eval mode, the "
        "configuration stored in the file) and check the written file against PyTorch on "
        "sample images: max |difference| of the logits at most 1e-4, and onnx.checker for ONNX.",
    )
    _weights_arg(p, "our .safetensors or a torchvision googlenet .pth")
    p.add_argument("--format", choices=list(FORMATS), default="onnx", help="(default onnx)")
    p.add_argument("--out", type=Path, required=True, metavar="FILE", help="file to write")
    p.add_argument(
        "--dynamic-batch",
        action="store_true",
        help="any batch size (default: batches of 1; TorchScript is always dynamic)",
    )
    p.add_argument(
        "--opset",
        type=positive_int,
        help=f"ONNX opset (default {DEFAULT_OPSET}; below 18 uses PyTorch's legacy exporter)",
    )
    p.add_argument(
        "--check-images",
        nargs="+",
        metavar="IMAGE",
        help="images to compare the export with PyTorch on (default: synthetic pictures)",
    )


def _run_export(args: argparse.Namespace) -> int:
    from .export import export
    from .weights import load

    result = export(
        load(args.weights, aux_logits=False),
        args.out,
        args.format,
        dynamic_batch=args.dynamic_batch,
        opset=args.opset,
        check_images=args.check_images,
    )
    opset = f", opset {result.opset}" if result.opset else ""
    batch = "any batch size" if result.dynamic_batch else "batch size 1"
    print(
        f"wrote {result.path} ({result.format}{opset}, {batch}, {result.size_mb:.1f} MB); "
        f"max |exported - PyTorch| = {result.max_abs_diff:.2g} on {result.checked_images} images"
    )
    return 0


# -- wiring ---------------------------------------------------------------------------------------

COMMANDS: dict[str, tuple[Callable, Callable]] = {
    "summary": (_add_summary, _run_summary),
    "convert-weights": (_add_convert_weights, _run_convert_weights),
    "predict": (_add_predict, _run_predict),
    "cam": (_add_cam, _run_cam),
    "export": (_add_export, _run_export),
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
