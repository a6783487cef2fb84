"""The evaluation pass: top-1/top-5 counts and loss of a model over a loader, every rank's
counts summed. Used by validation during training and by ``googlenet eval``."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import data
from .device import AMP_DTYPES


def crop_average(logits: Tensor, crops: int) -> Tensor:
    """(N * crops) x classes logits -> N x classes softmax probabilities averaged over each
    image's crops: the paper's multi-crop rule (section 7), for ``predict`` and ``eval`` alike."""
    return F.softmax(logits.float(), dim=-1).view(-1, crops, logits.shape[-1]).mean(1)


@dataclass
class EvalCounts:
    """Sums that add up over batches and over ranks.

    ``confusion`` has a row per class of the data and a column per class of the model (which may
    know more classes than the data holds); ``label_map[k]`` is the model's index of data class k.
    """

    confusion: Tensor
    top5_hits: Tensor
    nll: float
    label_map: Tensor
    skipped: list[str] = field(default_factory=list)
    # An ensemble's members each on their own: models x (ranked first, in the top 5) counts.
    members: Tensor | None = None

    @property
    def n(self) -> int:
        return int(self.confusion.sum())

    @property
    def correct(self) -> Tensor:
        """Per data class, how many images were ranked first correctly."""
        return self.confusion.gather(1, self.label_map.view(-1, 1)).view(-1)

    @property
    def top1(self) -> float:
        return 100.0 * float(self.correct.sum()) / max(self.n, 1)

    @property
    def top5(self) -> float:
        return 100.0 * float(self.top5_hits.sum()) / max(self.n, 1)

    @property
    def loss(self) -> float:
        """Mean negative log-likelihood of the averaged probabilities (cross-entropy at 1 crop)."""
        return self.nll / self.n if self.n else float("nan")

    def all_reduce(self, device: torch.device) -> EvalCounts:
        """The counts summed over the ranks of a torchrun job (itself in a single process)."""
        if not torch.distributed.is_initialized():
            return self
        flat = torch.cat(
            [
                self.confusion.view(-1).double(),
                self.top5_hits.double(),
                torch.tensor([self.nll, len(self.skipped)], dtype=torch.float64),
            ]
        )
        flat = flat.to(device)
        torch.distributed.all_reduce(flat)
        flat = flat.cpu()
        k, c = self.confusion.shape
        confusion = flat[: k * c].round().long().view(k, c)
        top5 = flat[k * c : k * c + k].round().long()
        return EvalCounts(
            confusion, top5, float(flat[-2]), self.label_map, self.skipped, self.members
        )


class Batches(Protocol):
    """What :func:`evaluate` reads: a DataLoader, or a wrapper that shows progress, over a
    dataset with ``classes`` (an image folder or a shard set)."""

    dataset: Any

    def __iter__(self) -> Iterator[Any]: ...


@torch.no_grad()
def evaluate(
    models: Sequence[Callable[[Tensor], Tensor]],
    loader: Batches,
    device: torch.device,
    *,
    label_map: Tensor | None = None,
    amp: str | None = None,
    channels_last: bool = False,
    on_skipped: Callable[[data.Skipped], None] | None = None,
) -> EvalCounts:
    """Run ``models`` over ``loader`` (batches of images x crops x 3 x S x S) and count.

    Probabilities are averaged over the crops and the models; top-1/top-5, the confusion matrix and
    the log-likelihood are counted on that average. Each image that could not be read is passed
    to ``on_skipped`` as it comes (which may raise to stop) and counted.
    """
    for model in models:
        if isinstance(model, nn.Module):
            model.eval()
    k = len(loader.dataset.classes)
    label_map = label_map if label_map is not None else torch.arange(k)
    confusion = top5_hits = members = None
    nll, skipped = 0.0, []
    dtype = AMP_DTYPES.get(amp or "", torch.bfloat16)
    for batch in loader:
        for item in batch.skipped:
            if on_skipped is not None:
                on_skipped(item)
            skipped.append(item.path)
        if batch.labels.numel() == 0:
            continue
        x, crops = _as_crops(batch.images, device, channels_last)
        y = batch.labels
        target = label_map[y]
        probs = torch.zeros(())
        with torch.autocast(device.type, dtype=dtype, enabled=amp is not None):
            for i, model in enumerate(models):
                own = crop_average(model(x).float(), crops)
                probs = probs + own
                if len(models) > 1:
                    members = members if members is not None else torch.zeros(len(models), 2)
                    members[i] += _hits(own.cpu(), target)
        probs = (probs / len(models)).cpu()
        num_classes = probs.shape[1]
        if confusion is None or top5_hits is None:
            confusion = torch.zeros(k, num_classes, dtype=torch.long)
            top5_hits = torch.zeros(k, dtype=torch.long)
        nll -= float(probs.gather(1, target.view(-1, 1)).clamp_min(1e-12).log().sum())
        pred = probs.argmax(1)
        confusion += torch.bincount(y * num_classes + pred, minlength=k * num_classes).view(
            k, num_classes
        )
        top5 = probs.topk(min(5, num_classes), dim=1).indices.eq(target.view(-1, 1)).any(1)
        top5_hits += torch.bincount(y, weights=top5.double(), minlength=k).long()
    if confusion is None or top5_hits is None:  # nothing readable (or an empty shard, torchrun)
        confusion = torch.zeros(k, getattr(models[0], "num_classes", k), dtype=torch.long)
        top5_hits = torch.zeros(k, dtype=torch.long)
    return EvalCounts(confusion, top5_hits, nll, label_map, skipped, members)


def _as_crops(images: Tensor, device: torch.device, channels_last: bool) -> tuple[Tensor, int]:
    """A batch of N images (or N x crops) as one (N * crops) x 3 x S x S input, and ``crops``."""
    images = images if images.dim() == 5 else images.unsqueeze(1)
    crops = images.shape[1]
    x = images.flatten(0, 1).to(device, non_blocking=True)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, crops


def _hits(probs: Tensor, target: Tensor) -> Tensor:
    """How many of ``target`` are ranked first, and how many in the top 5, by ``probs``."""
    ranked = probs.topk(min(5, probs.shape[1]), dim=1).indices
    return torch.tensor(
        [float((ranked[:, 0] == target).sum()), float(ranked.eq(target.view(-1, 1)).any(1).sum())]
    )


# ---------------------------------------------------------------------------------------------
# googlenet eval
