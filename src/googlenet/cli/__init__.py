"""The ``googlenet`` command line: argparse in front, each subcommand a thin call into a module.

Every subcommand has an ``_add_<name>(subparsers)`` that declares its flags and a
``_run_<name>(args)`` that calls the library and returns an exit code. User mistakes raise
:class:`GoogLeNetError` (or fail argparse's checks) and end as one line on stderr with exit
code 2; Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import GoogLeNetError, Interrupted
from . import shard as _shard

PROG = "googlenet"


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage dump) and exit with 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        # Under torchrun every rank parses the same arguments: rank 0 alone says what is wrong.
        text = f"{self.prog}: error: {message} (see {self.prog} --help)\n"
        self.exit(2, text if _rank() == 0 else None)


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


def _preset_arg(parser: argparse.ArgumentParser, default: str = "paper") -> None:
    from ..model import PRESETS

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
    p.add_argument("--input-size", type=input_size, default=224, help="square input side (224)")
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
    from .. import analysis
    from ..model import create_model

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
        help="torchvision .pth, Caffe .caffemodel (or any weights we read) -> our safetensors",
        description="Read a torchvision googlenet state dict (e.g. googlenet-1378be20.pth from "
        "~/.cache/torch/hub/checkpoints) safely (weights_only=True), or a Caffe GoogLeNet "
        ".caffemodel (BVLC's bvlc_googlenet.caffemodel, into the paper preset, RGB input), and "
        "write our safetensors file with the configuration and class names in its metadata.",
    )
    p.add_argument(
        "src", type=existing_file, help="weights to read (.pth, .caffemodel, .safetensors)"
    )
    p.add_argument("dst", type=Path, help="safetensors file to write")
    p.add_argument("--num-classes", type=positive_int, help="re-initialize the classifier for N")
    p.add_argument("--no-aux", action="store_true", help="drop the auxiliary heads")
    p.add_argument(
        "--no-transform-input",
        action="store_true",
        help="torchvision preset: the weights expect ImageNet-normalized input, not [-1, 1]",
    )
    p.add_argument(
        "--classes",
        type=existing_file,
        metavar="FILE",
        help="class names, one a line, in the classifier's order (e.g. Places365's categories; "
        "default: ImageNet's for 1,000 classes, else numbered)",
    )


def _run_convert_weights(args: argparse.Namespace) -> int:
    from ..weights import convert_weights, read_class_names

    kwargs: dict = {"num_classes": args.num_classes}
    if args.no_aux:
        kwargs["aux_logits"] = False
    if args.no_transform_input:
        kwargs["transform_input"] = False
    if args.classes:
        kwargs["class_names"] = read_class_names(args.classes)
    model = convert_weights(args.src, args.dst, **kwargs)
    n = sum(p.numel() for p in model.parameters())
    print(
        f"wrote {args.dst}: preset {model.config.preset}, {model.num_classes} classes, "
        f"{n:,} parameters, aux heads {'kept' if model.config.aux_logits else 'dropped'}"
    )
    return 0


# -- bench ----------------------------------------------------------------------------------------


def _add_bench(sub: argparse._SubParsersAction) -> None:
    from ..bench import MODES
    from ..runtime.backends import BACKENDS

    p = sub.add_parser(
        "bench",
        help="inference and training speed against torchvision, in one process",
        description="Time our inference path and training step against torchvision's googlenet "
        "(eager NCHW, eager channels_last, ONNX Runtime on its export) in one process, "
        "alternating the contenders after a warm-up: median images/s and ms per batch, "
        "batch-1 latency, peak memory, achieved GFLOP/s and its fraction of this machine's "
        "large-matmul FLOP/s, and the ratios of ours to each baseline.",
    )
    p.add_argument(
        "--mode",
        choices=(*MODES, "data"),
        default="both",
        help="what to time (both); data: the input pipeline (decode, augmentation, loaders)",
    )
    p.add_argument("--data", metavar="DIR", help="--mode data: images to time (default: synthetic)")
    p.add_argument("--images", type=positive_int, default=64, help="--mode data: how many (64)")
    p.add_argument("-j", "--workers", type=positive_int, help="--mode data: loader workers")
    p.add_argument(
        "--gpu-images-per-s",
        type=positive_float,
        metavar="N",
        help="--mode data: a GPU's measured training images/s (default: an H100 estimate)",
    )
    _preset_arg(p, default="torchvision")
    p.add_argument("-b", "--batch-size", type=positive_int, default=32, help="batch size (32)")
    p.add_argument("--input-size", type=input_size, default=224, help="square input side (224)")
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
    p.add_argument(
        "--settle",
        type=nonnegative_float,
        default=0.1,
        help="idle seconds before each timed call, so that one contender's spinning threads "
        "do not slow the next (0.1)",
    )
    p.add_argument("--output", type=Path, default=None, help="also write the JSON report here")


def _run_bench(args: argparse.Namespace) -> int:
    from ..bench import BenchConfig, render, run_bench
    from ..fileio import atomic_write_text

    if args.mode == "data":  # the input pipeline: its own module
        from ..bench.data import render_data, run_data_bench

        log = logging.getLogger(PROG)
        report = run_data_bench(
            args.data, images=args.images, input_size=args.input_size, workers=args.workers,
            device=args.device, gpu_images_per_s=args.gpu_images_per_s, progress=log.info,
        )  # fmt: skip
        print(render_data(report))
        return 0

    if args.output is not None and not args.output.parent.is_dir():  # not after minutes of timing
        raise GoogLeNetError(
            f"cannot write {args.output}: directory {args.output.parent} does not exist"
        )
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
        settle=args.settle,
    )
    log = logging.getLogger(PROG)
    report = run_bench(cfg, progress=log.info)
    if args.output is not None:
        atomic_write_text(args.output, render(report, "json") + "\n")
    print(render(report, args.format))
    return 0


# -- predict -------------------------------------------------------------------------------------


def _weights_arg(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--weights", type=existing_file, required=True, metavar="W", help=f"weights: {what}"
    )


def _backend_arg(parser: argparse.ArgumentParser) -> None:
    from ..runtime.backends import BACKENDS

    parser.add_argument(
        "--backend",
        choices=list(BACKENDS),
        default="auto",
        help="how PyTorch weights run: auto (the fast inference path: BatchNorm folded, ONNX "
        "Runtime on a CPU, PyTorch channels_last on a GPU), eager (the plain module), or one "
        "backend by name",
    )


def _device_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device", default="auto", help="cpu, cuda, cuda:N, mps, or auto (default: best there)"
    )


def _resize_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--resize",
        choices=["shorter", "squash"],
        default="shorter",
        help="before cropping: shorter side to 256 (default), or squash both sides to 256 as "
        "BVLC Caffe's test data was (its 68.7%% top-1 is with squash)",
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
    _weights_arg(p, "our .safetensors, a torchvision .pth, a Caffe .caffemodel, or an .onnx")
    p.add_argument("--topk", type=positive_int, default=5, help="classes per image (5)")
    p.add_argument(
        "--crops",
        type=int,
        choices=[1, 10, 144],
        default=1,
        help="1 center crop, 10 (corners, center, mirrored) or the paper's 144; "
        "probabilities are averaged (default 1)",
    )
    _resize_arg(p)
    p.add_argument("--format", choices=["table", "csv", "json", "jsonl"], default="table")
    p.add_argument("--out", type=Path, metavar="FILE", help="write results here, not stdout")
    p.add_argument("-b", "--batch-size", type=positive_int, default=32, help="images per batch")
    p.add_argument(
        "-j", "--workers", type=nonnegative_int, help="decoding processes (default: up to 4)"
    )
    _device_arg(p)
    _backend_arg(p)
    p.add_argument(
        "--amp",
        choices=["bf16"],
        help="compute in bfloat16 on the fast path: about 2x on a CPU with AVX512-BF16 "
        "(OpenVINO) and the fast path on a GPU; probabilities within ~1e-2 of fp32",
    )
    p.add_argument("--strict", action="store_true", help="stop at the first unreadable input")


def _run_predict(args: argparse.Namespace) -> int:
    from ..predict import predict_files
    from ..runtime.predictor import Predictor

    predictor = Predictor.from_file(
        args.weights,
        device=args.device,
        crops=args.crops,
        backend=args.backend,
        batch_size=args.batch_size,
        amp=args.amp == "bf16",
        resize=args.resize,
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
        strict=args.strict,
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
    _weights_arg(p, "our .safetensors, a torchvision googlenet .pth or a Caffe .caffemodel")
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
    from ..cam import cam_files
    from ..runtime.predictor import Predictor

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
    from ..export import DEFAULT_OPSET, FORMATS

    p = sub.add_parser(
        "export",
        help="ONNX, TorchScript or ExportedProgram for deployment, checked against PyTorch",
        description="Export the model for inference (auxiliary heads removed, eval mode, the "
        "configuration stored in the file) and check the written file against PyTorch on "
        "sample images: max |difference| of the logits at most 1e-4, and onnx.checker for ONNX.",
    )
    _weights_arg(p, "our .safetensors, a torchvision googlenet .pth or a Caffe .caffemodel")
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
    p.add_argument(
        "--no-fuse",
        action="store_true",
        help="export the plain network (default: BatchNorm and transform_input folded, "
        "same logits)",
    )
    p.add_argument(
        "--int8",
        action="store_true",
        help="ONNX with int8 weights and activations (static quantization, needs --calibration)",
    )
    p.add_argument(
        "--calibration",
        metavar="DIR",
        help="--int8: a folder of representative images (e.g. the training data)",
    )
    p.add_argument(
        "--calibration-count",
        type=positive_int,
        default=256,
        metavar="N",
        help="--int8: how many calibration images to use (default 256)",
    )


def _run_export(args: argparse.Namespace) -> int:
    from ..export import calibration_batch, export, export_int8
    from ..weights import load

    if args.int8 and (args.format != "onnx" or args.opset or args.no_fuse):
        raise GoogLeNetError("--int8 writes a fused ONNX file: drop --format/--opset/--no-fuse")
    if args.int8 != bool(args.calibration):
        raise GoogLeNetError("--int8 and --calibration DIR go together")
    model = load(args.weights, aux_logits=False)
    if args.int8:
        images = calibration_batch(model.config, args.calibration, args.calibration_count)
        q = export_int8(model, args.out, images)
        print(
            f"wrote {q.path} (int8 ONNX, {q.size_mb:.1f} MB), calibrated on "
            f"{q.calibration_images} images; top-1 agrees with fp32 on "
            f"{q.top1_agreement:.1%} of them, max |int8 - fp32| logit = {q.max_abs_diff:.3g}"
        )
        return 0
    result = export(
        model,
        args.out,
        args.format,
        dynamic_batch=args.dynamic_batch,
        opset=args.opset,
        check_images=args.check_images,
        fuse=not args.no_fuse,
    )
    opset = f", opset {result.opset}" if result.opset else ""
    batch = "any batch size" if result.dynamic_batch else "batch size 1"
    print(
        f"wrote {result.path} ({result.format}{opset}, {batch}, {result.size_mb:.1f} MB); "
        f"max |exported - PyTorch| = {result.max_abs_diff:.2g} on {result.checked_images} images"
    )
    return 0


# -- train ----------------------------------------------------------------------------------------


def _add_train(sub: argparse._SubParsersAction) -> None:
    from ..train import TrainConfig as D

    p = sub.add_parser(
        "train",
        help="train (or fine-tune) on an image folder with the paper's recipe",
        description="Train GoogLeNet on DIR/train/<class>/<image> (validating on DIR/val) with the "
        "paper's recipe: SGD momentum 0.9, loss = main + 0.3 x (aux1 + aux2), lr x0.96 every 8 "
        "epochs (scaled to the run), the paper's augmentation. Many GPUs: torchrun "
        "--nproc-per-node N -m googlenet train ... (-b is per process).",
    )
    p.add_argument(
        "--data",
        metavar="DIR",
        help="DIR/train/<class>/... and DIR/val (required, except with --resume: the run's own)",
    )
    p.add_argument("--val", metavar="DIR", help="validation folder (default DIR/val)")
    p.add_argument("--output-dir", metavar="DIR", help="default runs/<data name>-<preset>")
    _preset_arg(p)
    p.add_argument("--weights", type=existing_file, help="fine-tune from these weights")
    p.add_argument("--input-size", type=input_size, help="square input side (224)")
    p.add_argument("--epochs", type=positive_int, default=D.epochs)
    p.add_argument(
        "-b",
        "--batch-size",
        type=positive_int,
        default=D.batch_size,
        help=f"images per process and step ({D.batch_size})",
    )
    p.add_argument(
        "-j",
        "--workers",
        type=nonnegative_int,
        default=D.workers,
        help=f"data loading processes ({D.workers})",
    )
    p.add_argument("--lr", type=positive_float, default=D.lr, help=f"learning rate ({D.lr})")
    p.add_argument("--momentum", type=nonnegative_float, default=D.momentum)
    p.add_argument(
        "--wd",
        "--weight-decay",
        dest="weight_decay",
        type=nonnegative_float,
        default=D.weight_decay,
        help=f"weight decay ({D.weight_decay})",
    )
    p.add_argument(
        "--schedule",
        choices=["paper", "poly", "cosine", "step"],
        default=D.schedule,
        help="paper: lr x0.96 every 8 x epochs/250 epochs (default); poly: Caffe's "
        "lr x (1 - t/T)^power (the BVLC weights' quick_solver)",
    )
    p.add_argument(
        "--poly-power", type=positive_float, default=D.poly_power, help="--schedule poly's power"
    )
    p.add_argument(
        "--bias-lr-mult",
        type=nonnegative_float,
        help="biases learn at this times the rate, without weight decay (Caffe's lr_mult: 2; "
        "default 2 for paper/paper-bn, 1 for torchvision)",
    )
    p.add_argument(
        "--lr-step-size",
        type=positive_float,
        metavar="EPOCHS",
        help="epochs between decays (paper: 8 x epochs / 250; step: 30)",
    )
    p.add_argument("--lr-gamma", type=positive_float, help="decay factor (paper 0.96, step 0.1)")
    p.add_argument("--warmup-epochs", type=nonnegative_float, default=D.warmup_epochs)
    p.add_argument("--polyak", action="store_true", help="keep a Polyak (EMA) average of weights")
    p.add_argument("--polyak-decay", type=positive_float, default=D.polyak_decay)
    p.add_argument("--label-smoothing", type=nonnegative_float, default=D.label_smoothing)
    p.add_argument(
        "--aux-weight",
        type=nonnegative_float,
        default=D.aux_weight,
        help="weight of each auxiliary loss (0.3); 0 drops the auxiliary heads",
    )
    p.add_argument("--dropout", type=nonnegative_float, help="main head dropout (paper 0.4)")
    p.add_argument("--aux-dropout", type=nonnegative_float, help="aux head dropout (paper 0.7)")
    p.add_argument(
        "--freeze-trunk", action="store_true", help="with --weights: train the classifier only"
    )
    p.add_argument(
        "--scale",
        type=positive_float,
        nargs=2,
        default=D.scale,
        metavar=("MIN", "MAX"),
        help="random crop area fraction (0.08 1.0)",
    )
    p.add_argument(
        "--ratio",
        type=positive_float,
        nargs=2,
        default=D.ratio,
        metavar=("MIN", "MAX"),
        help="random crop aspect ratio (0.75 1.33)",
    )
    p.add_argument("--hflip", type=nonnegative_float, default=D.hflip, help="flip probability")
    p.add_argument(
        "--jitter",
        type=nonnegative_float,
        default=D.jitter,
        help="brightness/contrast/saturation jitter (0.4)",
    )
    p.add_argument(
        "--lighting",
        type=nonnegative_float,
        default=D.lighting,
        help="std of the PCA lighting noise (0.1)",
    )
    p.add_argument("--mean", type=float, nargs=3, metavar=("R", "G", "B"), help="(ImageNet's)")
    p.add_argument("--std", type=positive_float, nargs=3, metavar=("R", "G", "B"))
    p.add_argument(
        "--amp",
        choices=["auto", "bf16", "fp16", "none"],
        default=D.amp,
        help="autocast dtype of the training step; auto (default): bf16 where the hardware does "
        "it fast (AVX512-BF16/AMX CPUs, bf16 GPUs), else none (fp32)",
    )
    p.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=D.channels_last,
        help="NHWC memory format (default: on)",
    )
    p.add_argument(
        "--merge-1x1",
        action=argparse.BooleanOptionalAction,
        default=D.merge_1x1,
        help="run each Inception module's three input 1x1 convolutions as one (default: on)",
    )
    p.add_argument(
        "--compile",
        nargs="?",
        const="inductor",
        metavar="BACKEND",
        help="torch.compile the model (backend: inductor)",
    )
    p.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    p.add_argument("--seed", type=int, default=D.seed)
    p.add_argument(
        "--resume",
        metavar="PATH|auto",
        help="continue from a checkpoint; auto: OUTPUT_DIR/last.pt if there",
    )
    p.add_argument(
        "--save-every",
        type=nonnegative_int,
        default=D.save_every,
        metavar="STEPS",
        help="also checkpoint (last.pt) every STEPS steps, not only at epoch ends (0: only there)",
    )
    p.add_argument("--strict", action="store_true", help="stop at the first unreadable image")
    p.add_argument("--print-freq", type=positive_int, default=D.print_freq, metavar="STEPS")


def _given_flags(argv: list[str], command: str) -> set[str]:
    """The destinations of ``command``'s flags typed in ``argv`` (not defaulted): a resumed run
    takes the others from its checkpoint."""
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for action in subparsers.choices[command]._actions:
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv))) - {"command", "verbose"}


def _run_train(args: argparse.Namespace) -> int:
    from ..train import TrainConfig, train

    fields = {k: v for k, v in vars(args).items() if k not in ("command", "verbose", "argv")}
    for key in ("scale", "ratio", "mean", "std"):
        if fields[key] is not None:
            fields[key] = tuple(fields[key])
    for key in ("data", "val", "output_dir", "weights"):
        if fields[key] is not None:
            fields[key] = str(fields[key])
    result = train(TrainConfig(**fields), given=_given_flags(args.argv, "train"))
    if result:
        best = f", best val top-1 {result['best_top1']:.2f}%" if result["best_top1"] >= 0 else ""
        out = result["output_dir"]
        print(f"done: {result['epochs']} epoch(s){best}; weights and metrics in {out}")
    return 0


# -- eval -----------------------------------------------------------------------------------------


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="top-1/top-5 of weights (or an ensemble) on an image folder, 1/10/144 crops",
        description="Evaluate weights on DIR/<class>/<image> (or DIR/val/...). Softmax "
        "probabilities are averaged over the crops and over the models, as in the paper. "
        "Writes a JSON report and a confusion-matrix PNG beside the first weights.",
    )
    p.add_argument(
        "--weights",
        nargs="+",
        required=True,
        type=existing_file,
        metavar="W",
        help="our .safetensors/.pt, torchvision's .pth or a Caffe .caffemodel; several = an "
        "ensemble",
    )
    p.add_argument(
        "--data", required=True, metavar="DIR", help="class folders, or a root with val/"
    )
    p.add_argument(
        "--crops",
        type=int,
        choices=[1, 10, 144],
        default=1,
        help="1: center; 10: corners+center and mirrors; 144: the paper's",
    )
    _resize_arg(p)
    p.add_argument(
        "-b", "--batch-size", type=positive_int, default=64, help="crops per forward pass (64)"
    )
    p.add_argument("-j", "--workers", type=nonnegative_int, default=2)
    p.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    p.add_argument("--amp", choices=["bf16", "fp16"], help="mixed precision (runs eagerly)")
    _backend_arg(p)
    p.add_argument("--per-class", action="store_true", help="show per-class accuracy")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--output", type=Path, metavar="JSON", help="report path (default: beside W)")
    p.add_argument("--strict", action="store_true", help="stop at the first unreadable image")


def _run_eval(args: argparse.Namespace) -> int:
    from ..evaluate import evaluate_weights, render

    report = evaluate_weights(
        args.weights,
        args.data,
        crops=args.crops,
        batch_size=args.batch_size,
        workers=args.workers,
        device=args.device,
        amp=args.amp,
        backend=args.backend,
        output=args.output,
        strict=args.strict,
        resize=args.resize,
    )
    print(render(report, args.format, per_class=args.per_class))
    return 0


# -- demo -----------------------------------------------------------------------------------------


def _add_demo(sub: argparse._SubParsersAction) -> None:
    from ..demo import DEMO_EPOCHS, DEMO_SIZE

    p = sub.add_parser(
        "demo",
        help="the main job on real data: train the paper's network on handwritten digits",
        description="Write scikit-learn's 1,797 handwritten digits as an image folder, train the "
        "paper preset on it, evaluate with 1 and 10 crops, print a few predictions and list the "
        "output. Runs again in the same --output-dir continue (or just re-evaluate) the run.",
    )
    p.add_argument("--output-dir", type=Path, default=Path("runs/demo"), metavar="DIR")
    p.add_argument("--epochs", type=positive_int, default=DEMO_EPOCHS)
    p.add_argument("--input-size", type=input_size, default=DEMO_SIZE)
    p.add_argument(
        "-j",
        "--workers",
        type=nonnegative_int,
        default=0,
        help="data loading processes (0: in the training process; 8x8 PNGs decode in microseconds)",
    )
    p.add_argument("--limit", type=positive_int, help="use only the first N images (a quick look)")


def _run_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    run_demo(
        args.output_dir,
        epochs=args.epochs,
        input_size=args.input_size,
        workers=args.workers,
        limit=args.limit,
    )
    return 0


# -- wiring ---------------------------------------------------------------------------------------

from . import serve as _serve  # noqa: E402  (its file imports the helpers above)

COMMANDS: dict[str, tuple[Callable, Callable]] = {
    "summary": (_add_summary, _run_summary),
    "convert-weights": (_add_convert_weights, _run_convert_weights),
    "predict": (_add_predict, _run_predict),
    "cam": (_add_cam, _run_cam),
    "export": (_add_export, _run_export),
    "train": (_add_train, _run_train),
    "eval": (_add_eval, _run_eval),
    "demo": (_add_demo, _run_demo),
    "bench": (_add_bench, _run_bench),
    "serve": (_serve.add, _serve.run),
    "shard": (_shard.add, _shard.run),
}


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

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


def _rank() -> int:
    """This process's rank under torchrun (0 otherwise)."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # which flags were typed
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format=f"{PROG}: %(message)s",
        stream=sys.stderr,
    )
    run = COMMANDS[args.command][1]
    try:
        return run(args)
    except GoogLeNetError as err:
        if err.every_rank and _rank() != 0:  # rank 0 says it for the whole torchrun job
            return err.exit_code
        what = "" if isinstance(err, Interrupted) else "error: "
        print(f"{PROG} {args.command}: {what}{err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `googlenet summary | head`
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
