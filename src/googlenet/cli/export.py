"""``googlenet export``: ONNX, TorchScript or ExportedProgram, checked against PyTorch."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import GoogLeNetError
from .args import add_alias, add_format, add_output, add_weights, positive_int, refuse_overwrite


def add(sub: argparse._SubParsersAction) -> None:
    from ..export import DEFAULT_OPSET, FORMATS, INPUT_CONTRACT

    p = sub.add_parser(
        "export",
        help="ONNX, TorchScript or ExportedProgram for deployment, checked against PyTorch",
        description="Export the model for inference (auxiliary heads removed, eval mode, the "
        "configuration stored in the file) and check the written file against PyTorch on "
        "sample images: the logits differ by at most 1e-4, and onnx.checker for ONNX. "
        + INPUT_CONTRACT,
    )
    add_weights(p, "our .safetensors, a torchvision googlenet .pth or a Caffe .caffemodel")
    add_format(p, FORMATS, "onnx")
    add_output(
        p,
        "file to write (default: the weights' name with .onnx, .pt or .pt2, beside them)",
        old=["--out"],
    )
    p.add_argument(
        "--static-batch",
        action="store_true",
        help="fix the batch size to 1 (default: any batch size; TorchScript is always dynamic)",
    )
    add_alias(p, "--dynamic-batch", dest="dynamic_batch", now="the default", action="store_true")
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
        help="--int8: how many calibration images to use",
    )


def run(args: argparse.Namespace) -> int:
    from ..export import FORMATS, input_contract
    from ..weights import load

    if args.int8 and (args.format != "onnx" or args.opset or args.no_fuse):
        raise GoogLeNetError("--int8 writes a fused ONNX file: drop --format/--opset/--no-fuse")
    if args.int8 != bool(args.calibration):
        raise GoogLeNetError("--int8 and --calibration DIR go together")
    if args.static_batch and args.dynamic_batch:
        raise GoogLeNetError("--static-batch and --dynamic-batch contradict each other")
    out = args.output or Path(args.weights).with_suffix(FORMATS[args.format].suffix)
    if out.resolve() == Path(args.weights).resolve():
        raise GoogLeNetError(f"{out} is the weights file itself: name another with -o FILE")
    refuse_overwrite([out], args.force)
    model = load(args.weights, aux_logits=False)
    if args.int8:
        return _int8(model, out, args)
    from ..export import export

    result = export(
        model,
        out,
        args.format,
        dynamic_batch=not args.static_batch,
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
    print(input_contract(model.config, result.dynamic_batch))
    return 0


def _int8(model, out: Path, args: argparse.Namespace) -> int:
    from ..export import calibration_batch, export_int8, input_contract

    images = calibration_batch(model.config, args.calibration, args.calibration_count)
    q = export_int8(model, out, images)
    print(
        f"wrote {q.path} (int8 ONNX, {q.size_mb:.1f} MB), calibrated on "
        f"{q.calibration_images} images; top-1 agrees with fp32 on "
        f"{q.top1_agreement:.1%} of them, max |int8 - fp32| logit = {q.max_abs_diff:.3g}"
    )
    print(input_contract(model.config))
    return 0
