"""The model behind the server: decoding, preprocessing and batches, all through the same code
as ``googlenet predict`` (:func:`googlenet.data.decode_image`, the predictor's
:class:`~googlenet.data.EvalTransform`, :meth:`googlenet.Predictor.logits`), so that an image
gets the same answer from both."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor

import googlenet
from googlenet.data import CROP_CHOICES, MAX_IMAGE_PIXELS, EvalTransform, decode_image
from googlenet.errors import ConfigError, DataError

# A server's default pixel limit: below open_image's 100M (one 40-megapixel upload already
# takes 120 MB decoded), and --max-pixels raises it.
DEFAULT_MAX_PIXELS = 40_000_000
CAM_SIDE = 640  # the CAM overlay is drawn at most this many pixels on its longer side


def _check_pixels(max_pixels: int) -> int:
    if not 0 < max_pixels <= MAX_IMAGE_PIXELS:
        raise ConfigError(
            f"--max-pixels must be 1 to {MAX_IMAGE_PIXELS:,} (googlenet.data's decoding limit), "
            f"got {max_pixels:,}"
        )
    return max_pixels


@dataclass(frozen=True)
class Item:
    """One request's image, preprocessed: ``crops x 3 x S x S``."""

    crops: Tensor


class ModelService:
    """A :class:`googlenet.Predictor` with what the endpoints need around it."""

    def __init__(
        self,
        predictor: googlenet.Predictor,
        name: str,
        *,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.predictor, self.name = predictor, name
        self.config = predictor.config
        self.max_pixels = _check_pixels(max_pixels)
        self.transforms = {predictor.crops: predictor.transform}
        for crops in CROP_CHOICES:
            self.transforms.setdefault(crops, EvalTransform.for_model(self.config, crops))

    @classmethod
    def from_file(
        cls,
        weights: str | os.PathLike[str],
        *,
        backend: str = "auto",
        device: str = "auto",
        max_batch: int = 32,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> ModelService:
        _check_pixels(max_pixels)  # before the model loads
        predictor = googlenet.Predictor.from_file(
            weights, backend=backend, device=device, batch_size=max_batch
        )
        return cls(predictor, Path(weights).stem, max_pixels=max_pixels)

    @property
    def backend(self) -> str:
        """The backend that runs the batches: ``auto`` resolved (onnxruntime, openvino...)."""
        return self.predictor.resolved_backend

    # -- requests (run in worker threads, off the event loop) ---------------------------------

    def decode(self, data: bytes, name: str = "upload") -> Image.Image:
        """An upload's bytes -> RGB picture, with the same decoder as ``googlenet predict``."""
        if not data:
            raise DataError(f"{name}: empty upload; send the image file's bytes")
        return decode_image(io.BytesIO(data), name, max_pixels=self.max_pixels)

    def preprocess(self, picture: Image.Image, crops: int = 1) -> Item:
        if crops not in self.transforms:
            raise ConfigError(f"crops must be one of {', '.join(map(str, CROP_CHOICES))}")
        return Item(self.transforms[crops](picture))

    def run_batch(self, items: list[Item]) -> list[Tensor]:
        """Items -> each one's class probabilities (softmax averaged over its crops), computed
        in slices of at most ``max_batch`` crops, like :meth:`Predictor.stream`."""
        flat = torch.cat([item.crops for item in items])
        step = self.predictor.batch_size
        chunks = [flat[i : i + step] for i in range(0, len(flat), step)]
        logits = torch.cat([self.predictor.logits(chunk).float().cpu() for chunk in chunks])
        probs = logits.softmax(-1).split([len(item.crops) for item in items])
        return [p.mean(0) for p in probs]

    def topk(self, probs: Tensor, k: int) -> list[dict[str, Any]]:
        """``[{"class", "index", "prob"}]``, best first: ``googlenet predict --format json``'s."""
        values, indices = probs.topk(min(k, len(probs)))
        names = self.predictor.class_names
        return [
            googlenet.ClassScore(names[i], i, p).to_dict()
            for p, i in zip(values.tolist(), indices.tolist(), strict=True)
        ]

    def warm_up(self) -> None:
        """One batch through the backend, so the first request does not pay for set-up."""
        size = self.config.input_size
        self.run_batch([Item(torch.zeros(1, 3, size, size))])

    # -- class activation maps ----------------------------------------------------------------

    def cam_png(
        self, picture: Image.Image, cls: str | None, alpha: float = 0.5
    ) -> tuple[bytes, googlenet.ClassActivationMap]:
        """The CAM of ``cls`` (a name or index; None: the top-1 class) blended over the picture
        (at most ``CAM_SIDE`` pixels on its longer side) as PNG bytes, and the map itself."""
        import matplotlib

        self.predictor.require_model()  # a one-line WeightsError for an exported .onnx
        cam = self.predictor.cam(picture, classes=[cls] if cls is not None else None)[0]
        shown = picture.copy()
        shown.thumbnail((CAM_SIDE, CAM_SIDE))
        heat = cam.heatmap(*shown.size)
        colors = matplotlib.colormaps["jet"](heat, bytes=True)[..., :3]
        overlay = Image.blend(shown, Image.fromarray(colors, "RGB"), alpha)
        out = io.BytesIO()
        overlay.save(out, format="PNG")
        return out.getvalue(), cam

    def describe(self) -> dict[str, Any]:
        """What ``GET /v1/model`` answers: the configuration, classes, input size, backend."""
        c = self.config
        return {
            "name": self.name,
            "preset": c.preset,
            "num_classes": c.num_classes,
            "classes": list(self.predictor.class_names),
            "input_size": c.input_size,
            "mean": list(c.mean),
            "std": list(c.std),
            "backend": self.backend,
            "device": str(self.predictor.device),
            "crops": list(CROP_CHOICES),
            "cam": self.predictor.model is not None,
            "max_pixels": self.max_pixels,
            "config": c.to_dict(),
        }
