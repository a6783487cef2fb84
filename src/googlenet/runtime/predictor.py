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

import difflib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from ..data import CROP_CHOICES, EvalTransform, multi_crop, normalize, open_image
from ..errors import ConfigError, DataError, WeightsError
from ..model import GoogLeNet, GoogLeNetConfig
from .backends import optimize_for_inference
from .cam import ClassActivationMap, cam_input, class_activation_maps
from .device import pick_device
from .evaluation import crop_average
from .sessions import OnnxModel, is_onnx_file

ImageInput = str | os.PathLike | Image.Image | Tensor
Runner = Callable[[Tensor], Tensor]


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
    factory ``model -> callable``) or an exported
    :class:`~googlenet.runtime.sessions.OnnxModel` (run by
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
                self.backend = backend
                self._run: Runner = optimize_for_inference(self.model, backend, amp=amp)  # type: ignore[arg-type]
            else:  # a factory: model -> callable(normalized batch) -> logits
                self.backend, self._run = (
                    getattr(backend, "__name__", "custom"),
                    backend(self.model),
                )
        else:  # an exported model that runs itself (OnnxModel)
            if amp:
                raise ConfigError(
                    "amp (bf16) applies to PyTorch weights; an exported .onnx runs as exported"
                )
            self.model, self.backend, self._run = None, "onnxruntime", model

    @property
    def resolved_backend(self) -> str:
        """The backend that actually runs (``auto`` made concrete, e.g. ``onnxruntime``)."""
        return getattr(self._run, "backend", self.backend)

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
        backend: str | Callable[[GoogLeNet], Runner] = "auto",
        **options: Any,
    ) -> Predictor:
        """A predictor for a weights file: our safetensors, a torchvision googlenet ``.pth``, one
        of our training checkpoints, a Caffe ``.caffemodel``, or an ``.onnx`` file from
        ``googlenet export`` (run by ONNX Runtime; ``backend`` does not apply). ``options``:
        the constructor's ``crops``, ``batch_size``, ``amp`` and ``resize``."""
        from ..weights import describe_archive, load

        path = Path(path)
        if not path.is_file():
            raise WeightsError(f"weights file {path} does not exist")
        kind = describe_archive(path)
        if kind is not None:
            raise WeightsError(
                f"{path} is a {kind} archive from `googlenet export`; predict reads our "
                "safetensors, a torchvision .pth state dict, or an exported .onnx"
            )
        if is_onnx_file(path):
            dev = pick_device(device)
            return cls(OnnxModel(path, device=dev), device=dev, **options)
        return cls(load(path, aux_logits=False), device=device, backend=backend, **options)

    # -- the core -----------------------------------------------------------------------------

    @torch.inference_mode()
    def logits(self, x: Tensor) -> Tensor:
        """Logits (N x num_classes, on the predictor's device) of a normalized N x 3 x S x S
        float batch. No preprocessing: this is what benchmarks time."""
        return self._run(x.to(self.device, non_blocking=True))

    def _probabilities(self, crops: Tensor) -> Tensor:
        """N x crops x 3 x S x S -> N x num_classes softmax probabilities averaged over crops."""
        n, c = crops.shape[:2]
        return crop_average(self.logits(crops.flatten(0, 1)), c).cpu()

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
        if close:
            hint = f"; did you mean {', '.join(map(repr, close))}?"
        else:  # say what there is: all of a few classes, the first of many
            shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
            hint = f": {shown}"
        raise ConfigError(f"the model has no class {name!r} ({len(names)} classes{hint})")

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
