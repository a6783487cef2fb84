"""Use a trained GoogLeNet: :class:`Predictor` (top-k classes) and class activation maps.

``Predictor`` is the one entry point for inference. ``predictor(images)`` takes file paths, PIL
images or image tensors and preprocesses them the way the weights expect (the model's input size,
mean and std, 1, 10 or 144 crops whose softmax probabilities are averaged, as in the paper);
:meth:`Predictor.stream` does the same for a large list of files, batched, decoded in worker
processes and yielded as it goes. Both end in :meth:`Predictor.logits`, which takes an
already-normalized N x 3 x S x S batch: the function benchmarks time, and the one place a faster
backend plugs in (``BACKENDS``: ``Predictor(model, backend="...")`` picks one by name).

Class activation maps (Zhou et al. 2016, "Learning Deep Features for Discriminative
Localization") are what the paper's global average pooling buys: the logit of class ``c`` is
``b_c + mean_xy sum_k w_ck f_k(x, y)``, with ``f`` the output of inception 5b and ``w`` the
linear layer, so ``M_c(x, y) = sum_k w_ck f_k(x, y)`` says where in the image the evidence for
``c`` lies. :meth:`Predictor.cam` computes them on the whole image (the network is convolutional
up to the pooling, so any aspect ratio works) and :func:`save_cam` draws them over it.
"""

from __future__ import annotations

import csv
import difflib
import glob
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

from .data import CROP_CHOICES, EvalTransform, is_image_file, multi_crop, normalize, open_image
from .distributed import pick_device
from .errors import ConfigError, DataError, WeightsError
from .fileio import atomic_open, atomic_save
from .model import GoogLeNet, GoogLeNetConfig

if TYPE_CHECKING:
    from .export import OnnxModel

ImageInput = str | os.PathLike | Image.Image | Tensor
Runner = Callable[[Tensor], Tensor]

# ---------------------------------------------------------------------------------------------
# Backends: how a normalized batch becomes logits
# ---------------------------------------------------------------------------------------------


def eager_backend(model: GoogLeNet) -> Runner:
    """The model itself in eval mode: the reference every faster backend is checked against."""
    return model


def _fast_backend(name: str, amp: bool = False) -> Callable[[GoogLeNet], Runner]:
    """The fast inference path (:func:`~googlenet.inference.optimize_for_inference`) on one of
    its backends: the same logits within 1e-4 (BatchNorm folded; ONNX Runtime on a CPU), or
    with ``amp`` computed in bf16 (faster, not within 1e-4)."""

    def factory(model: GoogLeNet) -> Runner:
        from .inference import optimize_for_inference

        return optimize_for_inference(model, name, amp=amp)  # type: ignore[arg-type]

    factory.__name__ = name
    return factory


# name -> factory(model in eval mode, on its device) -> callable(normalized batch) -> logits.
# "auto" (the default) is the fast inference path on the best backend for the device; "eager"
# runs the GoogLeNet module itself, the reference the others are tested against.
BACKENDS: dict[str, Callable[[GoogLeNet], Runner]] = {
    "auto": _fast_backend("auto"),
    "eager": eager_backend,
    **{name: _fast_backend(name) for name in ("torch", "compile", "onnxruntime", "openvino")},
}


def class_names(config: GoogLeNetConfig) -> tuple[str, ...]:
    """The model's class names; ``class_<i>`` where the weights carry none."""
    if config.class_names is not None:
        return config.class_names
    return tuple(f"class_{i}" for i in range(config.num_classes))


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassScore:
    """One of the top-k classes: its name, its index in the classifier, its probability."""

    name: str
    index: int
    prob: float

    def to_dict(self) -> dict[str, Any]:
        return {"class": self.name, "index": self.index, "prob": round(self.prob, 6)}


@dataclass(frozen=True)
class Prediction:
    """The top-k classes of one image, best first. ``path`` is None for in-memory images.

    From :meth:`Predictor.stream`, an unreadable file comes back with ``error`` set (the
    one-line reason) and no classes, so that one bad file does not stop a folder.
    """

    path: str | None
    topk: tuple[ClassScore, ...]
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        """``{"path", "topk": [{"class", "index", "prob"}]}``, as ``--format json`` prints."""
        return {"path": self.path, "topk": [s.to_dict() for s in self.topk]}


# ---------------------------------------------------------------------------------------------
# Predictor
# ---------------------------------------------------------------------------------------------


class Predictor:
    """Top-k classes for images, with the preprocessing the weights expect.

    ::

        predictor = Predictor.from_file("googlenet.safetensors")  # or a .pth, or an .onnx
        best = predictor(["cat.jpg", "dog.png"], topk=3)[0].topk[0]  # ClassScore: name, prob

    ``model`` is a :class:`GoogLeNet` (run by ``backend``, a name in :data:`BACKENDS` or a
    factory ``model -> callable``) or an exported :class:`~googlenet.export.OnnxModel` (run by
    ONNX Runtime). ``crops`` is 1 (center crop), 10 or 144 (the paper's test-time crops, whose
    softmax probabilities are averaged); ``resize="squash"`` resizes to a square before cropping
    (BVLC Caffe's test protocol) instead of the shorter side to 256. ``amp=True`` runs the fast
    path in bf16 (OpenVINO on a CPU when installed, else PyTorch autocast; the fast path on a
    GPU): about 1.9x on a CPU with AVX512-BF16, probabilities within about 1e-2 of fp32 rather
    than 1e-4.
    """

    def __init__(
        self,
        model: GoogLeNet | OnnxModel,
        *,
        device: str | torch.device | None = None,
        crops: int = 1,
        backend: str | Callable[[GoogLeNet], Runner] = "auto",
        batch_size: int = 32,
        amp: bool = False,
        resize: str = "shorter",
    ) -> None:
        if crops not in CROP_CHOICES:
            raise ConfigError(f"crops must be one of {', '.join(map(str, CROP_CHOICES))}")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        self.device = pick_device(device)
        self.config: GoogLeNetConfig = model.config
        self.crops = crops
        self.batch_size = batch_size
        self.class_names = class_names(self.config)
        self.transform = EvalTransform.for_model(self.config, crops, resize)
        self.resize = resize
        self.model: GoogLeNet | None
        self.amp = amp
        if isinstance(model, GoogLeNet):
            self.model = model.eval().to(self.device)
            if isinstance(backend, str):
                if backend not in BACKENDS:
                    raise ConfigError(
                        f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}"
                    )
                self.backend, factory = backend, BACKENDS[backend]
            else:
                self.backend, factory = getattr(backend, "__name__", "custom"), backend
            if amp:
                if not isinstance(backend, str) or backend == "eager":
                    raise ConfigError(
                        "amp (bf16) runs on the fast inference path: use --backend auto, "
                        f"torch, compile or openvino, not {self.backend}"
                    )
                factory = _fast_backend(backend, amp=True)
            self._run: Runner = factory(self.model)
        else:  # an exported model that runs itself (OnnxModel)
            if amp:
                raise ConfigError(
                    "amp (bf16) applies to PyTorch weights; an exported .onnx runs as exported"
                )
            self.model, self.backend, self._run = None, "onnxruntime", model

    def __repr__(self) -> str:
        c = self.config
        return (
            f"Predictor(preset={c.preset!r}, classes={c.num_classes}, input_size={c.input_size}, "
            f"crops={self.crops}, backend={self.backend!r}, device='{self.device}')"
        )

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        *,
        device: str | torch.device | None = None,
        crops: int = 1,
        backend: str | Callable[[GoogLeNet], Runner] = "auto",
        batch_size: int = 32,
        amp: bool = False,
        resize: str = "shorter",
    ) -> Predictor:
        """A predictor for a weights file: our safetensors, a torchvision googlenet ``.pth``, one
        of our training checkpoints, or an ``.onnx`` file from ``googlenet export`` (run by ONNX
        Runtime; ``backend`` does not apply)."""
        from .export import OnnxModel, describe_archive, is_onnx_file
        from .weights import load

        path = Path(path)
        if not path.is_file():
            raise WeightsError(f"weights file {path} does not exist")
        kind = describe_archive(path)
        if kind is not None:
            raise WeightsError(
                f"{path} is a {kind} archive from `googlenet export`; predict reads our "
                "safetensors, a torchvision .pth state dict, or an exported .onnx"
            )
        kwargs = dict(crops=crops, batch_size=batch_size, amp=amp, resize=resize)
        if is_onnx_file(path):
            dev = pick_device(device)
            return cls(OnnxModel(path, device=dev), device=dev, **kwargs)
        return cls(load(path, aux_logits=False), device=device, backend=backend, **kwargs)

    # -- the core -----------------------------------------------------------------------------

    @torch.inference_mode()
    def logits(self, x: Tensor) -> Tensor:
        """Logits (N x num_classes, on the predictor's device) of a normalized N x 3 x S x S
        float batch. No preprocessing: this is what benchmarks time."""
        return self._run(x.to(self.device, non_blocking=True))

    def _probabilities(self, crops: Tensor) -> Tensor:
        """N x crops x 3 x S x S -> N x num_classes softmax probabilities averaged over crops."""
        n, c = crops.shape[:2]
        logits = self.logits(crops.flatten(0, 1)).float()
        return logits.softmax(-1).view(n, c, -1).mean(1).cpu()

    def _predict_crops(self, items: list[tuple[str, Tensor]], topk: int) -> list[Prediction]:
        """(path, crops x 3 x S x S) pairs -> their predictions, as one batch."""
        if not items:
            return []
        probs = self._probabilities(torch.stack([crops for _, crops in items]))
        return self._top(probs, topk, [path for path, _ in items])

    def _top(self, probs: Tensor, topk: int, paths: Sequence[str | None]) -> list[Prediction]:
        values, indices = probs.topk(min(topk, probs.shape[-1]), dim=-1)
        return [
            Prediction(
                path,
                tuple(
                    ClassScore(self.class_names[i], i, p)
                    for p, i in zip(vals.tolist(), idx.tolist(), strict=True)
                ),
            )
            for path, vals, idx in zip(paths, values, indices, strict=True)
        ]

    # -- in-memory images ---------------------------------------------------------------------

    def preprocess(self, image: ImageInput) -> Tensor:
        """One image -> crops x 3 x S x S normalized float tensor.

        Paths are decoded with :func:`~googlenet.data.open_image`; tensors are 3 x H x W RGB
        images, ``uint8`` (0-255) or float (0-1), not yet resized or normalized.
        """
        if isinstance(image, Tensor):
            if image.dim() != 3 or image.shape[0] != 3:
                raise DataError(
                    f"an image tensor must be 3 x H x W RGB, got shape {tuple(image.shape)}"
                )
            pixels = image if image.dtype == torch.uint8 else image.float() * 255.0
            crops = multi_crop(pixels.cpu(), self.config.input_size, self.crops, resize=self.resize)
            return normalize(crops, self.config.mean, self.config.std)
        if not isinstance(image, Image.Image):
            image = open_image(image)
        return self.transform(image.convert("RGB"))

    def probabilities(self, images: Sequence[ImageInput] | Tensor) -> Tensor:
        """N x num_classes class probabilities (averaged over crops) for a list of images."""
        items = list(images.unbind(0)) if isinstance(images, Tensor) else list(images)
        out = [torch.empty(0, self.config.num_classes)]
        for start in range(0, len(items), self.batch_size):
            batch = [self.preprocess(i) for i in items[start : start + self.batch_size]]
            out.append(self._probabilities(torch.stack(batch)))
        return torch.cat(out)

    def __call__(
        self, images: ImageInput | Sequence[ImageInput], topk: int = 5
    ) -> list[Prediction]:
        """Top-k classes for each image (paths, PIL images, 3 x H x W or N x 3 x H x W image
        tensors). Always a list, one :class:`Prediction` per image; an unreadable file raises
        :class:`~googlenet.errors.DataError`."""
        if isinstance(images, (str, os.PathLike, Image.Image)) or (
            isinstance(images, Tensor) and images.dim() == 3
        ):
            images = [images]
        items = list(images.unbind(0)) if isinstance(images, Tensor) else list(images)
        paths = [str(i) if isinstance(i, (str, os.PathLike)) else None for i in items]
        return self._top(self.probabilities(items), topk, paths)

    # -- files, streamed ----------------------------------------------------------------------

    def stream(
        self,
        paths: Sequence[str | os.PathLike[str]],
        topk: int = 5,
        workers: int | None = None,
    ) -> Iterator[Prediction]:
        """Predictions for many files, in order, as they are computed.

        Files are decoded and cropped in ``workers`` processes (default: up to 4 when there is
        more than one batch) with a bounded prefetch, so memory stays flat on any folder size.
        An unreadable file yields a :class:`Prediction` with ``error`` set instead of raising.
        """
        files = _ImageFiles([str(p) for p in paths], self.transform)
        if workers is None:
            workers = min(4, os.cpu_count() or 1) if len(files) > self.batch_size else 0
        loader = torch.utils.data.DataLoader(
            files,
            batch_size=self.batch_size,
            num_workers=workers,
            collate_fn=list,
            pin_memory=self.device.type == "cuda",
        )
        for batch in loader:
            readable = [(path, crops) for path, crops, _ in batch if crops is not None]
            predictions = iter(self._predict_crops(readable, topk))
            for path, crops, error in batch:  # in order, failures in their place
                yield next(predictions) if crops is not None else Prediction(path, (), error)

    # -- class activation maps ----------------------------------------------------------------

    def require_model(self) -> GoogLeNet:
        """The PyTorch model, for what an exported ONNX file cannot do (CAMs)."""
        if self.model is None:
            raise WeightsError(
                "class activation maps need the PyTorch weights (safetensors or .pth): "
                "an exported ONNX model has no separate feature map and classifier"
            )
        return self.model

    def class_index(self, name: str | int) -> int:
        """A class's index from its name (exact, then case-insensitive) or its number."""
        names = self.class_names
        if isinstance(name, int) or (isinstance(name, str) and name.isdigit()):
            if name not in names:  # a class named "3" wins over index 3
                index = int(name)
                if 0 <= index < len(names):
                    return index
                raise ConfigError(f"class index {index} is out of range: 0 to {len(names) - 1}")
        if name in names:
            return names.index(name)
        folded = [n.casefold() for n in names]
        if str(name).casefold() in folded:
            return folded.index(str(name).casefold())
        close = difflib.get_close_matches(str(name), names, n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ConfigError(f"the model has no class {name!r} ({len(names)} classes){hint}")

    def cam(
        self,
        image: str | os.PathLike[str] | Image.Image,
        classes: Sequence[str | int] | None = None,
        topk: int = 1,
    ) -> list[ClassActivationMap]:
        """Class activation maps of one image, for ``classes`` (names or indices) or else for
        its ``topk`` most probable classes, best first."""
        model = self.require_model()
        picture = image if isinstance(image, Image.Image) else open_image(image)
        x = cam_input(picture, self.config).to(self.device)
        with torch.inference_mode():
            maps, logits = class_activation_maps(model, x)
        probs = logits.float().softmax(-1).cpu()
        if classes:
            chosen = [self.class_index(c) for c in classes]
        else:
            chosen = probs.topk(min(topk, len(probs))).indices.tolist()
        return [
            ClassActivationMap(self.class_names[i], i, float(probs[i]), maps[i].float().cpu())
            for i in chosen
        ]


class _ImageFiles(torch.utils.data.Dataset):
    """Paths -> (path, crops tensor or None, error or None): decoding errors travel as data."""

    def __init__(self, paths: list[str], transform: Callable[[Image.Image], Tensor]) -> None:
        self.paths, self.transform = paths, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[str, Tensor | None, str | None]:
        path = self.paths[i]
        try:
            return path, self.transform(open_image(path)), None
        except DataError as err:
            return path, None, str(err)


# ---------------------------------------------------------------------------------------------
# Class activation maps
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassActivationMap:
    """The CAM of one class on one image.

    ``cam`` is the h x w map on the 5b feature grid, in logit units: its mean plus the class's
    fc bias is the class's logit (global average pooling is linear).
    """

    name: str
    index: int
    prob: float
    cam: Tensor

    def heatmap(self, width: int, height: int) -> np.ndarray:
        """The map resized to ``width x height`` (bilinear) and scaled to [0, 1] for display."""
        up = F.interpolate(self.cam[None, None], size=(height, width), mode="bilinear")[0, 0]
        low, high = float(up.min()), float(up.max())
        if high - low < 1e-12:
            return np.zeros((height, width), dtype=np.float32)
        return ((up - low) / (high - low)).numpy().astype(np.float32)


def cam_input(image: Image.Image, config: GoogLeNetConfig) -> Tensor:
    """The whole image, shorter side resized to the model's input size, normalized: 1 x 3 x H x W.

    Not cropped, unlike prediction: a CAM should cover every pixel of the picture, and the trunk
    is convolutional, so the aspect ratio can stay.
    """
    pixels = TF.resize(TF.pil_to_tensor(image.convert("RGB")), [config.input_size], antialias=True)
    return normalize(pixels, config.mean, config.std)[None]


def class_activation_maps(model: GoogLeNet, x: Tensor) -> tuple[Tensor, Tensor]:
    """Every class's CAM for one normalized 1 x 3 x H x W image, and its logits.

    Returns ``(num_classes x h x w maps, num_classes logits)``, both from the same forward pass:
    the maps are the fc weights applied to each position of inception 5b's output.
    """
    if x.dim() != 4 or len(x) != 1:
        raise DataError(f"class_activation_maps takes one image, 1 x 3 x H x W; got {x.shape}")
    features = model.forward_features(x)  # 1 x 1024 x h x w
    logits = model.forward_head(features)[0]  # num_classes
    maps = torch.einsum("kc,chw->khw", model.fc.weight, features[0])  # num_classes x h x w
    return maps, logits


def save_cam(
    image: Image.Image,
    maps: Sequence[ClassActivationMap],
    path: str | os.PathLike[str],
    cmap: str = "jet",
    alpha: float = 0.5,
) -> Path:
    """Draw each map over the image (one panel per class, titled with its probability) to a PNG,
    written atomically."""
    from matplotlib.figure import Figure

    colormap = _colormap(cmap)
    width, height = image.size
    panel = 4.0  # inches for the longer side of each panel
    scale = panel / max(width, height)
    fig = Figure(figsize=(len(maps) * width * scale, height * scale + 0.4))
    for i, cam in enumerate(maps):
        ax = fig.add_subplot(1, len(maps), i + 1)
        ax.imshow(image)
        ax.imshow(cam.heatmap(width, height), cmap=colormap, alpha=alpha, vmin=0, vmax=1)
        ax.set_title(f"{cam.name} ({cam.prob:.1%})", fontsize=9)
        ax.axis("off")
    fig.tight_layout(pad=0.3)
    return atomic_save(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))


def _colormap(name: str) -> Any:
    import matplotlib

    try:
        return matplotlib.colormaps[name]
    except KeyError:
        hint = "try jet, inferno, turbo, viridis"
        raise ConfigError(f"unknown matplotlib colormap {name!r} ({hint})") from None


def cam_paths(images: Sequence[Path], out: Path) -> list[Path]:
    """Where each image's CAM goes: ``out`` itself for one image and an ``out`` ending in .png,
    else ``out/<name>_cam.png`` in a folder (created if its parent exists)."""
    if out.suffix.lower() == ".png" and not out.is_dir():
        if len(images) > 1:
            raise ConfigError(f"--out {out} is one file for {len(images)} images; give a folder")
        if not out.parent.is_dir():
            raise ConfigError(f"cannot write {out}: directory {out.parent} does not exist")
        return [out]
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder (or a .png for one image)")
    if not out.exists():
        if not out.parent.is_dir():
            raise ConfigError(f"cannot create {out}: directory {out.parent} does not exist")
        out.mkdir()
    paths, taken = [], set()
    for image in images:
        name, n = f"{image.stem}_cam.png", 1
        while name in taken:  # a/x.jpg and b/x.jpg
            n += 1
            name = f"{image.stem}_cam{n}.png"
        taken.add(name)
        paths.append(out / name)
    return paths


# ---------------------------------------------------------------------------------------------
# Finding files, writing results (the command line's work)
# ---------------------------------------------------------------------------------------------


def find_images(inputs: Sequence[str | os.PathLike[str]]) -> tuple[list[Path], list[str]]:
    """Files, folders (recursively, image extensions only) and glob patterns -> image paths in a
    stable order, and a one-line problem for each input that names nothing."""
    found: dict[Path, None] = {}
    problems = []

    def add_dir(directory: Path) -> None:
        for root, dirs, files in os.walk(directory):
            dirs.sort()
            found.update((Path(root) / f, None) for f in sorted(files) if is_image_file(f))

    for text in map(str, inputs):
        path = Path(text)
        if path.is_dir():
            add_dir(path)
        elif path.is_file():
            found[path] = None  # named explicitly: tried whatever its extension
        elif glob.has_magic(text):
            matches = sorted(glob.glob(text, recursive=True))
            for match in map(Path, matches):
                if match.is_dir():
                    add_dir(match)
                elif is_image_file(match):
                    found[match] = None
            if not matches:
                problems.append(f"{text}: no file matches this pattern")
        else:
            problems.append(f"{text}: no such file or directory")
    return list(found), problems


OUTPUT_FORMATS = ("table", "csv", "json", "jsonl")


class PredictionWriter:
    """Writes predictions as they come: a readable table, CSV, a JSON array, or JSON lines."""

    def __init__(self, stream: IO[str], format: str = "table") -> None:
        if format not in OUTPUT_FORMATS:
            raise ConfigError(f"unknown format {format!r}; choose one of {OUTPUT_FORMATS}")
        self.stream, self.format, self.count = stream, format, 0
        if format == "csv":
            self._csv = csv.writer(stream, lineterminator="\n")
            self._csv.writerow(["path", "rank", "class", "index", "prob"])
        elif format == "json":
            stream.write("[")

    def write(self, pred: Prediction) -> None:
        if self.format == "table":
            lines = [str(pred.path)] + [
                f"  {rank:>3}  {s.prob:7.2%}  {s.name} ({s.index})"
                for rank, s in enumerate(pred.topk, 1)
            ]
            self.stream.write("\n".join(lines) + "\n")
        elif self.format == "csv":
            for rank, s in enumerate(pred.topk, 1):
                self._csv.writerow([pred.path, rank, s.name, s.index, f"{s.prob:.6f}"])
        elif self.format == "json":
            sep = ",\n " if self.count else "\n "
            self.stream.write(sep + json.dumps(pred.to_dict(), ensure_ascii=False))
        else:
            self.stream.write(json.dumps(pred.to_dict(), ensure_ascii=False) + "\n")
        self.count += 1
        self.stream.flush()

    def close(self) -> None:
        if self.format == "json":
            self.stream.write("\n]\n" if self.count else "]\n")
            self.stream.flush()


def _images_to_run(
    inputs: Sequence[str | Path], report: Callable[[str], None], strict: bool = False
) -> tuple[list[Path], list[str]]:
    """:func:`find_images`, each problem passed to ``report``; a DataError when there is nothing
    to run (or, with ``strict``, at the first problem)."""
    paths, problems = find_images(inputs)
    if strict and problems:
        raise DataError(f"{problems[0]} (--strict: stopping at the first unreadable input)")
    if not paths:  # nothing to do: one line says why
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise DataError(
            problems[0] + more if problems else f"no images found in {', '.join(map(str, inputs))}"
        )
    for problem in problems:
        report(problem)
    return paths, problems


def predict_files(
    predictor: Predictor,
    inputs: Sequence[str | os.PathLike[str]],
    *,
    out: str | os.PathLike[str] | None = None,
    format: str = "table",
    topk: int = 5,
    workers: int | None = None,
    report: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
    strict: bool = False,
) -> tuple[int, int]:
    """Predict every image ``inputs`` name; write results to ``out`` (atomically) or stdout.

    Each unreadable input is reported through ``report`` and skipped; ``strict`` stops at the
    first one instead (raising DataError; ``out`` is then not written). A progress bar runs on
    stderr when it is a terminal. Returns ``(predicted, failed)``.
    """
    from tqdm import tqdm

    paths, problems = _images_to_run(inputs, report, strict)
    target = atomic_open(out, "w", encoding="utf-8", newline="") if out else nullcontext(sys.stdout)
    ok = failed = 0
    start = time.perf_counter()
    with (
        target as stream,
        tqdm(
            total=len(paths), unit="img", file=sys.stderr, disable=None, dynamic_ncols=True
        ) as bar,
    ):
        writer = PredictionWriter(stream, format)
        # Keep the bar and the results apart when both go to the terminal.
        clear = bar.external_write_mode if not bar.disable and out is None else nullcontext
        for pred in predictor.stream(paths, topk=topk, workers=workers):
            with clear():
                if pred.ok:
                    writer.write(pred)
                    ok += 1
                else:
                    reason = pred.error or f"{pred.path}: unreadable"
                    if strict:
                        raise DataError(
                            f"{reason} (--strict: stopping at the first unreadable input)"
                        )
                    report(reason)
                    failed += 1
            bar.update()
        writer.close()
    elapsed = time.perf_counter() - start
    if ok:
        report(f"predicted {ok} image(s) in {elapsed:.1f} s ({ok / elapsed:.1f} images/s)")
    return ok, failed + len(problems)


def cam_files(
    predictor: Predictor,
    inputs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    classes: Sequence[str] | None = None,
    topk: int = 1,
    cmap: str = "jet",
    alpha: float = 0.5,
    report: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> tuple[list[Path], int]:
    """A CAM PNG for every image ``inputs`` name (see :func:`cam_paths` for where each goes).

    Class names and the output path are checked before any image is read. Each unreadable image
    is reported and skipped. Returns ``(written files, failed inputs)``.
    """
    predictor.require_model()
    if not 0 < alpha <= 1:
        raise ConfigError(f"--alpha must be in (0, 1], got {alpha}")
    for name in classes or []:
        predictor.class_index(name)
    _colormap(cmap)
    paths, problems = _images_to_run(inputs, report)
    written = []
    failed = len(problems)
    for image_path, png in zip(paths, cam_paths(paths, Path(out)), strict=True):
        try:
            picture = open_image(image_path)
        except DataError as err:
            report(str(err))
            failed += 1
            continue
        maps = predictor.cam(picture, classes=classes, topk=topk)
        written.append(save_cam(picture, maps, png, cmap=cmap, alpha=alpha))
        top = ", ".join(f"{m.name} {m.prob:.1%}" for m in maps)
        report(f"wrote {png} ({top})")
    return written, failed


__all__ = [
    "BACKENDS",
    "ClassActivationMap",
    "ClassScore",
    "Prediction",
    "PredictionWriter",
    "Predictor",
    "cam_files",
    "cam_input",
    "cam_paths",
    "class_activation_maps",
    "find_images",
    "predict_files",
    "save_cam",
]
