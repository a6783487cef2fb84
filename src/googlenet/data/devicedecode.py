"""Training images decoded and augmented on the training device, a batch at a time
(``googlenet train --decode gpu``).

A loader worker that decodes a JPEG and augments it does ~350 images/s on one core, and a GPU
trains GoogLeNet at thousands of images/s (``googlenet bench --mode data`` says how many workers
that takes). With ``--decode gpu`` the workers only read the files (or tar members) and check
their headers; the training process decodes the whole batch with one call of
``torchvision.io.decode_jpeg(..., device="cuda")`` (nvJPEG) and applies the paper's augmentation
there: each image cropped and resized (:meth:`TrainTransform.resize_tensor`), then the batch
flipped, colour-jittered and normalized in a few batched operations
(:meth:`TrainTransform.finish`). The random draws are the CPU path's, from the same per-image
seed, so the crops, filters, flips and colour changes are the same ones; the pixels differ by
the decoder's and the resampler's rounding and by the crop box, which is whole pixels here and
sub-pixel on the CPU.

Images that nvJPEG cannot decode (PNG and other formats, CMYK JPEGs, damaged files) are decoded on
the CPU with the CPU path's decoder and copied over; one that no decoder reads is a
:class:`Skipped`, counted like everywhere else. The same code runs with ``device="cpu"`` (the
tests, and ``--decode device`` on a CPU machine), where ``decode_jpeg`` decodes one image after
another.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import DataError
from .augment import TrainTransform
from .batch import Batch, Encoded, EncodedBatch, Skipped
from .images import check_header, decode_image, pil_to_uint8

JPEG_MAGIC = b"\xff\xd8\xff"


@dataclass
class Deferred:
    """In place of a dataset's transform: the dataset yields :class:`Encoded` samples, and
    :class:`DeviceDecoder` applies ``transform`` on the device after decoding."""

    transform: TrainTransform

    def encode(
        self, blob: bytes, seed: int, name: str, label: int
    ) -> tuple[Encoded, int] | Skipped:
        """The sample of one file, after a look at its header (in the loader worker): what is not
        an image, or is over the pixel limit, is skipped here, before any decoding."""
        try:
            check_header(io.BytesIO(blob), name)
        except DataError as err:
            return Skipped(name, str(err))
        return Encoded(torch.frombuffer(bytearray(blob), dtype=torch.uint8), seed, name), label


class DeviceDecoder:
    """A training loader whose :class:`EncodedBatch` batches come out as :class:`Batch` batches
    decoded and augmented on ``device``; the rest of the loader (``sampler``, ``batch_size``,
    ``len()``) is the wrapped one's."""

    def __init__(self, loader, transform: TrainTransform, device: torch.device | str) -> None:
        self.loader, self.transform, self.device = loader, transform, torch.device(device)

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name: str):
        return getattr(self.loader, name)

    def __iter__(self) -> Iterator[Batch]:
        for batch in self.loader:
            yield self.decode(batch) if isinstance(batch, EncodedBatch) else batch

    def decode(self, batch: EncodedBatch) -> Batch:
        """Decode (batched) and augment one batch on the device."""
        pixels = decode_batch(batch.encoded, self.device)
        # The flip, jitter and normalization: for the whole batch at once on a GPU (a few dozen
        # kernel launches instead of that many per image), each image right after its resize on
        # a CPU (while it is in the cache: 5x slower batched). The same numbers either way
        # (tests/test_devicedecode.py).
        batched = self.device.type == "cuda"
        images, draws, labels, skipped = [], [], [], list(batch.skipped)
        for encoded, x, label in zip(batch.encoded, pixels, batch.labels.tolist(), strict=True):
            if isinstance(x, Skipped):
                skipped.append(x)
                continue
            g = torch.Generator().manual_seed(encoded.seed)
            crop, draw = self.transform.resize_tensor(x, g), self.transform.draw(g)
            images.append(crop if batched else self.transform.finish(crop[None], [draw])[0])
            draws.append(draw)
            labels.append(label)
        if not images:
            return Batch(torch.empty(0), torch.empty(0, dtype=torch.long), skipped)
        stacked = torch.stack(images)
        if batched:
            stacked = self.transform.finish(stacked, draws)
        return Batch(stacked, torch.tensor(labels, dtype=torch.long), skipped)


def decode_batch(encoded: list[Encoded], device: torch.device) -> list[Tensor | Skipped]:
    """3 x H x W uint8 RGB tensors on ``device``, EXIF orientation applied: the JPEGs with one
    ``decode_jpeg`` call, what it cannot decode one by one with the CPU path's decoder."""
    out: list[Tensor | Skipped | None] = [None] * len(encoded)
    jpegs = [i for i, e in enumerate(encoded) if bytes(e.data[:3].tolist()) == JPEG_MAGIC]
    if jpegs:
        picked = [encoded[i] for i in jpegs]
        try:
            decoded: list[Tensor | None] = list(decode_jpegs([e.data for e in picked], device))
        except RuntimeError:  # one bad image fails the call: the batch goes one by one
            decoded = [_decode_one_jpeg(e.data, device) for e in picked]
        for i, x in zip(jpegs, decoded, strict=True):
            out[i] = x
    for i, e in enumerate(encoded):
        if out[i] is None:  # not a JPEG, or one nvJPEG could not decode
            out[i] = _decode_on_cpu(e, device)
    return out  # type: ignore[return-value]


def decode_jpegs(data: list[Tensor], device: torch.device | str) -> list[Tensor]:
    """``torchvision.io.decode_jpeg`` of 1-D uint8 CPU tensors to RGB on ``device``, EXIF
    orientation applied; raises RuntimeError if one of them cannot be decoded."""
    from torchvision.io import ImageReadMode, decode_jpeg

    with warnings.catch_warnings():  # torchvision 0.29 deprecates its decoders for TorchCodec
        warnings.simplefilter("ignore", DeprecationWarning)
        return decode_jpeg(data, ImageReadMode.RGB, device, apply_exif_orientation=True)


def _decode_one_jpeg(data: Tensor, device: torch.device) -> Tensor | None:
    try:
        return decode_jpegs([data], device)[0]
    except RuntimeError:
        return None


def _decode_on_cpu(encoded: Encoded, device: torch.device) -> Tensor | Skipped:
    try:
        img = decode_image(io.BytesIO(encoded.data.numpy().tobytes()), encoded.name)
    except DataError as err:
        return Skipped(encoded.name, str(err))
    return pil_to_uint8(img).to(device, non_blocking=True)
