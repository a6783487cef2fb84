"""Export a GoogLeNet for deployment: ONNX, TorchScript, and torch.export's ExportedProgram.

Every export follows the same steps, whatever the format:

1. :func:`inference_model` copies the model without its auxiliary heads (the paper discards them
   at inference) and puts it in eval mode (dropout off, BatchNorm on its running statistics).
2. The format's writer produces the file, with the model's configuration inside it (class names,
   input size, mean and std), so that ``googlenet predict`` preprocesses as training did:
   ONNX ``metadata_props["googlenet.config"]``, and the ``googlenet.config.json`` extra file of
   TorchScript and ExportedProgram archives.
3. The written file is loaded back and run on a batch of images (synthetic pictures unless the
   caller passes real ones); its logits must match PyTorch's within ``atol`` (1e-4). ONNX files
   also pass ``onnx.checker`` (full check, with shape inference).

The file is written atomically: a failed export or a failed check leaves nothing behind.

ONNX exporter. PyTorch has two: the torch.export-based one (``dynamo=True``, the default since
PyTorch 2.9) and the TorchScript-based one, deprecated. The new one only writes opset 18 and
later natively (asked for less, it warns and keeps 18), so opsets 18+ use it and opsets 9-17,
which older runtimes (TensorRT 8, old ONNX Runtime) still need, use the legacy one. Both export
the paper's LRN exactly: PyTorch's ``local_response_norm`` is itself written with pad,
average pooling and pow, which both exporters translate op by op (no ONNX ``LRN`` node, whose
padding convention differs at the channel edges).

Adding a step (the speed issue's int8 quantization): transform the result of
:func:`inference_model` before ``fmt.write`` in :func:`export`, and pass a looser ``atol``.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import json
import logging
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .errors import ConfigError, GoogLeNetError, first_line, require
from .fileio import atomic_save
from .model import GoogLeNet, GoogLeNetConfig
from .runtime.fuse import FusedGoogLeNet
from .runtime.sessions import OnnxModel
from .weights import CONFIG_KEY, FORMAT_VERSION

log = logging.getLogger(__name__)

# The configuration travels in TorchScript and ExportedProgram archives as this extra file.
CONFIG_FILE = "googlenet.config.json"
INPUT_NAME, OUTPUT_NAME = "images", "logits"
DEFAULT_OPSET = 18  # the lowest the torch.export-based exporter writes natively: widest support
MIN_OPSET = 9
ATOL = 1e-4
# Upper bound of the dynamic batch dimension; torch.export wants one, ONNX files don't keep it.
MAX_BATCH = 4096

# What every exported file takes and gives (README "Export"; `googlenet export` prints it with
# the model's own numbers, :func:`input_contract`).
INPUT_CONTRACT = (
    "Every file takes float32 images of shape N x 3 x S x S (N any batch size unless "
    "--static-batch; S the weights' input size, 224 for ImageNet weights): RGB (EXIF "
    "orientation applied), the short side resized (bilinear, antialiased) to 256 x S / 224 "
    "(256 for 224), center-cropped to S x S, scaled to [0, 1], then normalized with the mean "
    "and std stored in the file (ImageNet's: 0.485 0.456 0.406 / 0.229 0.224 0.225). It "
    "returns N x classes logits (softmax them for probabilities). The configuration (class "
    "names, input size, mean, std) is stored as JSON: ONNX metadata_props['googlenet.config']; "
    "TorchScript and ExportedProgram: the googlenet.config.json extra file in the archive."
)

Runner = Callable[[Tensor], Tensor]
# What the writers take: a GoogLeNet without aux heads, or its fused inference network; both
# are modules with a ``config``.
ExportNet = GoogLeNet | FusedGoogLeNet


class ExportError(GoogLeNetError):
    """The exporter failed, or the exported model does not compute what the PyTorch model does.

    Not a user mistake, so exit code 1, but still a one-line message: which step, and why.
    """

    exit_code = 1


# ---------------------------------------------------------------------------------------------
# The model to export and the images to check it on
# ---------------------------------------------------------------------------------------------


def inference_model(model: GoogLeNet) -> GoogLeNet:
    """A copy of ``model`` for inference: no auxiliary heads, eval mode, no gradients, on CPU.

    The auxiliary heads only matter for the training loss (the paper discards them at inference);
    dropping them keeps them out of the exported graph and its file.
    """
    net = copy.deepcopy(model).to("cpu")
    net.aux1 = net.aux2 = None
    net.config = dataclasses.replace(net.config, aux_logits=False)
    return net.eval().requires_grad_(False)


def sample_images(count: int = 4, size: int = 160, seed: int = 0) -> list[Image.Image]:
    """Deterministic synthetic pictures: smooth color gradients with a few bright shapes.

    Natural-looking enough (large smooth regions, hard edges, saturated colors) to exercise
    every layer the way photographs do; random noise would not, and no photographs ship with
    the package. Each is a different aspect ratio so resizing and cropping get exercised too.
    """
    rng = np.random.default_rng(seed)
    images = []
    for i in range(count):
        h, w = size, size + 24 * (i % 3)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        across, down = rng.uniform(0, 255, size=(2, 3, 1, 1))
        pixels = ((across * xx / w + down * yy / h) / 2).transpose(1, 2, 0)
        for _ in range(3):
            cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
            radius = rng.uniform(0.08, 0.25) * min(h, w)
            inside = (yy - cy) ** 2 + (xx - cx) ** 2 < radius**2
            pixels[inside] = rng.uniform(0, 255, size=3)
        images.append(Image.fromarray(pixels.astype(np.uint8), "RGB"))
    return images


def check_batch(
    config: GoogLeNetConfig, images: Sequence[str | os.PathLike[str] | Image.Image] | None = None
) -> Tensor:
    """The normalized N x 3 x S x S batch an export is checked on (center crops, as predict)."""
    from .data import EvalTransform, open_image  # torchvision: imported when needed, not by --help

    pictures = [open_image(i) if not isinstance(i, Image.Image) else i for i in images or []]
    transform = EvalTransform.for_model(config, crops=1)
    return torch.cat([transform(p) for p in pictures or sample_images()])


# ---------------------------------------------------------------------------------------------
# Formats
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportOptions:
    dynamic_batch: bool = False
    opset: int | None = None  # ONNX only


@dataclass(frozen=True)
class Format:
    """One export format: how to write it, and how to load what was written to check it."""

    name: str
    suffix: str
    write: Callable[[ExportNet, Tensor, str, ExportOptions], None]
    load: Callable[[str], Runner]
    always_dynamic_batch: bool = False


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' deprecation and tracer warnings and their INFO logging (the ONNX
    optimizer logs every rewrite): we check the result ourselves, and errors still raise."""
    previous = logging.root.manager.disable
    logging.disable(logging.INFO)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


def _config_json(config: GoogLeNetConfig) -> str:
    return json.dumps(config.to_dict())


# -- ONNX ----------------------------------------------------------------------------------------


def _write_onnx(net: ExportNet, example: Tensor, path: str, options: ExportOptions) -> None:
    import onnx

    opset = options.opset or DEFAULT_OPSET
    try:
        with _quiet():
            if opset >= DEFAULT_OPSET:
                dynamic = {"x": {0: torch.export.Dim("batch", min=1, max=MAX_BATCH)}}
                program = torch.onnx.export(
                    net,
                    (example,),
                    None,
                    dynamo=True,
                    opset_version=opset,
                    input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME],
                    dynamic_shapes=dynamic if options.dynamic_batch else None,
                    verbose=False,
                )
                assert program is not None  # None only for dynamo=False
                proto = program.model_proto
            else:  # the legacy TorchScript-based exporter: the only one that writes opset < 18
                buffer = io.BytesIO()
                batch = {0: "batch"}
                torch.onnx.export(
                    net,
                    (example,),
                    buffer,  # type: ignore[arg-type]  # the legacy exporter takes file objects
                    dynamo=False,
                    opset_version=opset,
                    input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME],
                    dynamic_axes={INPUT_NAME: batch, OUTPUT_NAME: batch}
                    if options.dynamic_batch
                    else None,
                )
                proto = onnx.load_from_string(buffer.getvalue())
    except Exception as err:  # the exporters raise many types; all mean the same to the user
        raise ExportError(f"ONNX export (opset {opset}) failed: {first_line(err)}") from err

    meta = {CONFIG_KEY: _config_json(net.config), "googlenet.version": FORMAT_VERSION}
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = f"GoogLeNet ({net.config.preset} preset), exported by googlenet"
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as err:
        reason = first_line(err)
        raise ExportError(f"the exported ONNX model fails onnx.checker: {reason}") from err
    onnx.save(proto, path)


def _write_torchscript(net: ExportNet, example: Tensor, path: str, options: ExportOptions) -> None:
    # Tracing, not scripting: GoogLeNet's forward is plain tensor code, and a trace has no batch
    # size baked in (checked below on a batch of another size). TorchScript is deprecated in
    # PyTorch in favour of torch.export; it is kept for the runtimes that still load it (C++
    # libtorch, older serving stacks).
    try:
        with _quiet(), torch.no_grad():
            traced = torch.jit.trace(net, (example,), check_trace=False)
            torch.jit.save(traced, path, _extra_files={CONFIG_FILE: _config_json(net.config)})
    except Exception as err:
        raise ExportError(f"TorchScript export failed: {first_line(err)}") from err


def _load_torchscript(path: str) -> Runner:
    with _quiet():
        return torch.jit.load(path, map_location="cpu")


# -- ExportedProgram -----------------------------------------------------------------------------


def _write_exported_program(
    net: ExportNet, example: Tensor, path: str, options: ExportOptions
) -> None:
    dynamic = {"x": {0: torch.export.Dim("batch", min=1, max=MAX_BATCH)}}
    try:
        with _quiet():
            program = torch.export.export(
                net, (example,), dynamic_shapes=dynamic if options.dynamic_batch else None
            )
            # Through a buffer: torch.export.save warns about a file name not ending in .pt2,
            # and the atomic write's temporary file does not.
            buffer = io.BytesIO()
            torch.export.save(program, buffer, extra_files={CONFIG_FILE: _config_json(net.config)})
    except Exception as err:
        raise ExportError(f"torch.export failed: {first_line(err)}") from err
    Path(path).write_bytes(buffer.getvalue())


def _load_exported_program(path: str) -> Runner:
    with _quiet():
        return torch.export.load(io.BytesIO(Path(path).read_bytes())).module()


def _load_onnx(path: str) -> Runner:
    return OnnxModel(path)


FORMATS: dict[str, Format] = {
    "onnx": Format("onnx", ".onnx", _write_onnx, _load_onnx),
    "torchscript": Format(
        "torchscript", ".pt", _write_torchscript, _load_torchscript, always_dynamic_batch=True
    ),
    "exported-program": Format(
        "exported-program", ".pt2", _write_exported_program, _load_exported_program
    ),
}


# ---------------------------------------------------------------------------------------------
# export()
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export` wrote and how closely it matches PyTorch."""

    path: Path
    format: str
    dynamic_batch: bool
    opset: int | None
    max_abs_diff: float
    checked_images: int

    @property
    def size_mb(self) -> float:
        return self.path.stat().st_size / 1e6


def export(
    model: GoogLeNet,
    path: str | os.PathLike[str],
    format: str = "onnx",
    *,
    dynamic_batch: bool = True,
    opset: int | None = None,
    check_images: Sequence[str | os.PathLike[str] | Image.Image] | None = None,
    atol: float = ATOL,
    fuse: bool = True,
) -> ExportResult:
    """Export ``model`` for inference to ``path`` and check the file against PyTorch.

    ``dynamic_batch`` (the default) makes the batch dimension free; False fixes it to one, which
    a few runtimes (TensorRT engines built without profiles) want;
    ``opset`` picks the ONNX operator set (default 18; 9-17 through the legacy exporter).
    ``check_images`` (paths or PIL images) are what the check runs on; by default, synthetic
    pictures. ``fuse`` (the default) exports the fast inference network
    (:func:`googlenet.runtime.backends.fuse`: BatchNorm and ``transform_input`` folded into the
    convolutions), checked against the plain model like any export.
    Raises :class:`ExportError` if the exporter fails or the exported logits differ
    from PyTorch's by more than ``atol``; nothing is written then.
    """
    fmt = _check_format(format, opset)
    plain = inference_model(model)
    images = check_batch(plain.config, check_images)
    dynamic = dynamic_batch or fmt.always_dynamic_batch
    example = _trace_example(images, dynamic_batch)
    with torch.no_grad():
        reference = plain(images)
    net: ExportNet = plain
    if fuse:
        from .runtime.fuse import fuse as fuse_network

        # 1x1s apart: ONNX Runtime, the usual consumer, runs them faster so (see inference).
        net = fuse_network(plain, native_lrn=False, merge_1x1=False)
    options = ExportOptions(dynamic_batch=dynamic_batch, opset=opset)
    diff = 0.0

    def write_and_check(tmp: str) -> None:
        nonlocal diff
        fmt.write(net, example, tmp, options)
        run = fmt.load(tmp)
        with torch.no_grad():
            if dynamic:
                got = run(images)
            else:
                got = torch.cat([run(images[i : i + 1]) for i in range(len(images))])
        diff = float((got.float() - reference).abs().max())
        if not diff <= atol:  # also catches NaN
            raise ExportError(
                f"the exported {format} model's logits differ from PyTorch's by up to {diff:.3g} "
                f"(tolerance {atol:g}) on {len(images)} images; not written"
            )

    atomic_save(path, write_and_check)
    used_opset = (opset or DEFAULT_OPSET) if format == "onnx" else None
    return ExportResult(Path(path), format, dynamic, used_opset, diff, len(images))


def _trace_example(images: torch.Tensor, dynamic_batch: bool) -> torch.Tensor:
    """What the exporter traces: one image for a fixed batch; for a dynamic one 2 images
    (torch.export specializes a batch of 1), then checked on all of them at once: another batch
    size than the traced one."""
    if not dynamic_batch:
        return images[:1]
    example = images[:2]
    return example if len(example) == 2 else example.repeat(2, 1, 1, 1)


def _check_format(format: str, opset: int | None) -> Format:
    """The writer for ``format``, once its packages and ``opset`` are known to be usable."""
    if format not in FORMATS:
        raise ConfigError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    if format == "onnx":
        require("onnx", "onnxruntime", extra="onnx")
    if opset is not None:
        if format != "onnx":
            raise ConfigError(f"--opset is for ONNX exports, not {format}")
        import onnx

        newest = onnx.defs.onnx_opset_version()
        if not MIN_OPSET <= opset <= newest:
            raise ConfigError(f"--opset must be from {MIN_OPSET} to {newest}, got {opset}")
    return FORMATS[format]


def input_contract(config: GoogLeNetConfig, dynamic_batch: bool = True) -> str:
    """:data:`INPUT_CONTRACT` with this model's numbers, in one line."""
    from .data import resize_size

    s, n = config.input_size, "N" if dynamic_batch else "1"
    mean = " ".join(f"{v:g}" for v in config.mean)
    std = " ".join(f"{v:g}" for v in config.std)
    return (
        f"input: float32 {n} x 3 x {s} x {s}, RGB, short side resized to {resize_size(s)}, "
        f"center-cropped to {s}, scaled to [0, 1], normalized with mean {mean} and std {std}; "
        f"output: {n} x {config.num_classes} logits"
    )


@dataclass(frozen=True)
class Int8Result:
    """What :func:`export_int8` wrote, and how its answers compare with the fp32 model's."""

    path: Path
    calibration_images: int
    checked_images: int
    top1_agreement: float  # share of checked images whose top-1 class is the fp32 model's
    max_abs_diff: float  # of the logits: int8 is not within the fp32 1e-4, by nature

    @property
    def size_mb(self) -> float:
        return self.path.stat().st_size / 1e6


def calibration_batch(
    config: GoogLeNetConfig, folder: str | os.PathLike[str], count: int = 256, seed: int = 0
) -> Tensor:
    """Up to ``count`` images from ``folder`` (searched recursively; a seeded sample if there are
    more), preprocessed as the model expects (1 crop): the int8 calibration set."""
    from .data import EvalTransform, is_image_file, open_image

    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"--calibration {root} is not a directory of images")
    files = sorted(p for p in root.rglob("*") if p.is_file() and is_image_file(p))
    if not files:
        raise ConfigError(f"--calibration {root} holds no image files")
    if len(files) > count:
        pick = np.random.default_rng(seed).choice(len(files), size=count, replace=False)
        files = [files[i] for i in sorted(pick)]
    transform = EvalTransform.for_model(config, 1)
    batch, skipped = [], 0
    for path in files:
        try:
            batch.append(transform(open_image(path))[0])
        except GoogLeNetError as err:
            skipped += 1
            log.warning("calibration: skipped %s", err)
    if not batch:
        raise ConfigError(f"--calibration {root}: none of its {len(files)} images is readable")
    if skipped:
        log.warning("calibration: skipped %d unreadable image(s) of %d", skipped, len(files))
    return torch.stack(batch)


def export_int8(
    model: GoogLeNet,
    path: str | os.PathLike[str],
    calibration: Tensor,
    *,
    check: Tensor | None = None,
) -> Int8Result:
    """Write an int8 ONNX file of ``model`` (:func:`googlenet.runtime.int8.quantize_int8`: the fused
    network, calibrated on ``calibration``, a normalized N x 3 x S x S batch) and compare it with
    the fp32 model on ``check`` (default: the calibration images): top-1 agreement and logit
    difference are reported, not bounded, since int8 rounds by design."""
    require("onnx", "onnxruntime", extra="onnx")
    from .runtime.int8 import load_int8, quantize_int8

    net = inference_model(model)
    quantize_int8(net, calibration, path)
    images = calibration if check is None else check
    with torch.no_grad():
        reference = net(images)
    got = load_int8(path, backend="onnxruntime")(images)
    agreement = float((got.argmax(1) == reference.argmax(1)).float().mean())
    diff = float((got - reference).abs().max())
    return Int8Result(Path(path), len(calibration), len(images), agreement, diff)
