"""What a loader yields: a batch of images and labels that carries its unreadable files
(:class:`Skipped`, counted by the training and evaluation loops, never silently dropped), or,
with ``--decode gpu``, a batch of files still undecoded (:class:`EncodedBatch`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor


@dataclass
class Skipped:
    """A file that could not be decoded; stands in for its sample so the epoch goes on."""

    path: str
    reason: str


@dataclass
class Batch:
    """What the loaders yield: images, labels, and the files of the batch that were skipped."""

    images: Tensor
    labels: Tensor
    skipped: list[Skipped]

    def pin_memory(self) -> Batch:
        return Batch(self.images.pin_memory(), self.labels.pin_memory(), self.skipped)


@dataclass
class Encoded:
    """One training image as read from its file, for the training device to decode: the bytes
    (a 1-D uint8 tensor), its augmentation seed and its name (for messages)."""

    data: Tensor
    seed: int
    name: str


@dataclass
class EncodedBatch:
    """A batch of :class:`Encoded` files, their labels, and the files already found unreadable
    (missing, not an image, over the pixel limit)."""

    encoded: list[Encoded]
    labels: Tensor
    skipped: list[Skipped]

    def pin_memory(self) -> EncodedBatch:
        return self  # decode_jpeg reads its input on the CPU: nothing to copy ahead


def collate(items: list[tuple[Tensor | Encoded, int] | Skipped]) -> Batch | EncodedBatch:
    """Stack the good samples, keep the bad ones aside (the loop counts and reports them)."""
    good = [item for item in items if not isinstance(item, Skipped)]
    skipped = [item for item in items if isinstance(item, Skipped)]
    labels = torch.tensor([label for _, label in good], dtype=torch.long)
    if good and isinstance(good[0][0], Encoded):
        return EncodedBatch([cast(Encoded, encoded) for encoded, _ in good], labels, skipped)
    if not good:
        return Batch(torch.empty(0), labels, skipped)
    return Batch(torch.stack([cast(Tensor, image) for image, _ in good]), labels, skipped)
