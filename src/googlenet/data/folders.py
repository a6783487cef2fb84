"""Image folders in torchvision's layout, the train/val splits, and the samplers and loaders
that make runs reproducible."""

from __future__ import annotations

import itertools
import logging
import os
import signal
from pathlib import Path

import torch
from torch import Tensor

from ..errors import DataError
from .batch import Skipped, collate
from .images import IMAGE_EXTENSIONS, is_image_file, open_image

# ---------------------------------------------------------------------------------------------
# Image folders
# ---------------------------------------------------------------------------------------------


log = logging.getLogger(__name__)


def resolve_splits(
    data: str | os.PathLike[str], val: str | os.PathLike[str] | None = None
) -> tuple[Path, Path | None]:
    """The train and val folders of ``--data DIR [--val DIR]``.

    ``DIR/train`` and ``DIR/val`` (``--val`` overrides the latter); with ``--val``, ``DIR`` may
    itself be the train folder. No val folder at all gives ``None`` (training without validation).
    """
    root = Path(data)
    if not root.is_dir():
        what = "is not a directory" if root.exists() else "does not exist"
        raise DataError(f"data directory {root} {what}")
    if (root / "train").is_dir():
        train = root / "train"
        val_dir = Path(val) if val is not None else root / "val"
        if val is None and not val_dir.is_dir():
            return train, None
    elif val is not None:
        train, val_dir = root, Path(val)
    else:
        raise DataError(
            f"data directory {root} has no train/ folder: expected {root}/train/<class>/<image> "
            f"and {root}/val/<class>/<image> (or pass --val DIR)"
        )
    if not val_dir.is_dir():
        raise DataError(f"validation directory {val_dir} does not exist")
    return train, val_dir


def find_classes(root: str | os.PathLike[str]) -> list[str]:
    """The class folders of ``root`` (``root/<class>/<image>``), sorted like torchvision's."""
    root = Path(root)
    if not root.is_dir():
        what = "is not a directory" if root.exists() else "does not exist"
        raise DataError(f"data directory {root} {what}")
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise DataError(
            f"data directory {root} has no class folders: expected {root}/<class>/<image>"
        )
    return classes


def _list_files(folder: Path) -> tuple[list[str], list[str]]:
    """Image files and other files under ``folder`` (recursively, symlinks followed), sorted.

    A link to a folder above (a symlink loop such as ``a/up -> ..``, which os.walk would follow
    until the path grew too long, listing every image dozens of times) is not followed, and a
    folder reached twice through links is walked once; both are reported.
    """
    images: list[str] = []
    others: list[str] = []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        here = os.path.realpath(dirpath)
        if here in seen:
            log.warning("%s: a folder reached again through a symbolic link: skipped", dirpath)
            dirnames.clear()
            continue
        seen.add(here)
        kept = []
        for name in sorted(dirnames):
            target = os.path.realpath(os.path.join(dirpath, name))
            if here == target or here.startswith(target.rstrip(os.sep) + os.sep):
                log.warning("%s: a symbolic link loop: not followed", os.path.join(dirpath, name))
            else:
                kept.append(name)
        dirnames[:] = kept
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            (images if is_image_file(name) and not name.startswith(".") else others).append(path)
    return images, others


class ImageFolder(torch.utils.data.Dataset):
    """``root/<class>/<image>`` with the classes in sorted order (torchvision's layout).

    Differences from ``torchvision.datasets.ImageFolder``, all about bad data: a class folder
    without images is an error (its class would silently never be learned); files without an image
    extension are counted and reported once; a file that fails to decode yields a
    :class:`Skipped` instead of crashing the epoch, for :func:`collate` to drop and count.

    ``classes`` fixes the class list (a val set gets the train set's): a folder naming a class
    outside it is an error. ``dataset[i]`` transforms with ``transform(img)``;
    ``dataset[(i, seed)]`` (what :class:`TrainSampler` yields) with
    ``transform(img, generator seeded by seed)``, or, if the transform has ``encode`` (a
    :class:`~googlenet.data.devicedecode.Deferred`), as ``transform.encode(file bytes, seed,
    path, label)``: the file undecoded, for the training device to decode.
    """

    def __init__(self, root: str | os.PathLike[str], transform, classes: list[str] | None = None):
        self.root = Path(root)
        found = find_classes(self.root)
        if classes is not None:
            extra = [c for c in found if c not in classes]
            if extra:
                raise DataError(
                    f"{self.root} has class folder(s) {', '.join(extra[:5])} that the training "
                    f"set lacks ({len(classes)} classes); remove them or add them to the train set"
                )
        self.classes = list(classes) if classes is not None else found
        self.transform = transform
        self.samples: list[tuple[str, int]] = []
        self.ignored: list[str] = []
        for name in found:
            folder = self.root / name
            images, others = _list_files(folder)
            if not images:
                raise DataError(
                    f"class folder {folder} has no images ({', '.join(IMAGE_EXTENSIONS[:5])}, "
                    "...); add some or remove the folder"
                )
            label = self.classes.index(name)
            self.samples += [(path, label) for path in images]
            self.ignored += others
        if self.ignored:
            log.warning(
                "%s: ignored %d file(s) without an image extension (e.g. %s)",
                self.root,
                len(self.ignored),
                self.ignored[0],
            )

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def targets(self) -> list[int]:
        return [label for _, label in self.samples]

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[Tensor, int] | Skipped:
        index, seed = key if isinstance(key, tuple) else (key, None)
        path, label = self.samples[index]
        if seed is not None and hasattr(self.transform, "encode"):  # decoded on the device
            try:
                blob = Path(path).read_bytes()
            except OSError as err:
                return Skipped(path, f"{path}: cannot be read ({err.strerror or err})")
            return self.transform.encode(blob, seed, path, label)
        try:
            img = open_image(path)
        except DataError as err:
            return Skipped(path, str(err))
        if seed is None:
            return self.transform(img), label
        return self.transform(img, torch.Generator().manual_seed(seed)), label


def augment_seed(seed: int, epoch: int, index: int) -> int:
    """The augmentation seed of one image in one epoch: a pure function of the three."""
    return ((seed * 1_000_003 + epoch) * 10_000_019 + index) % 2**63


class TrainSampler(torch.utils.data.DistributedSampler):
    """``DistributedSampler`` (shuffle by seed + epoch, one shard per rank) whose items carry their
    augmentation seed, ``(index, augment_seed(seed, epoch, index))``.

    This makes an image's crop depend only on (seed, epoch, image): not on the number of loader
    workers, not on the number of processes, and not on whether the run was resumed. It is what
    lets a 2-process run reproduce a 1-process run and a resumed run reproduce an unbroken one.
    """

    start: int = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Go to ``epoch``, skipping this rank's first ``start`` samples of it (the batches that
        a run interrupted part-way through the epoch had done before its checkpoint)."""
        super().set_epoch(epoch)
        self.start = start

    def __iter__(self):
        indices = itertools.islice(super().__iter__(), self.start, None)
        for index in indices:
            yield index, augment_seed(self.seed, self.epoch, index)


class ShardSampler(torch.utils.data.Sampler[int]):
    """Every ``world``-th index from ``rank``, in order, without the padding ``DistributedSampler``
    adds: each evaluation image is counted exactly once when the ranks' counts are summed."""

    def __init__(self, length: int, rank: int = 0, world: int = 1) -> None:
        self.length, self.rank, self.world = length, rank, world

    def __iter__(self):
        return iter(range(self.rank, self.length, self.world))

    def __len__(self) -> int:
        return len(range(self.rank, self.length, self.world))


def make_loader(
    dataset: torch.utils.data.Dataset,
    sampler: torch.utils.data.Sampler,
    batch_size: int,
    workers: int,
    *,
    drop_last: bool = False,
    pin_memory: bool = False,
    seed: int = 0,
    persistent: bool = False,
    spawn: bool = False,
) -> torch.utils.data.DataLoader:
    """A DataLoader with our collate and its own generator, so that creating it never draws from
    the global RNG (which would shift dropout masks after a resume).

    ``persistent`` keeps the workers between passes (training: one pass an epoch). A one-pass
    loader must not: its workers ignore SIGTERM (:func:`ignore_stop_signals`), so workers still
    alive at interpreter exit, which a persistent loader's are until the garbage collector
    reaches it, block multiprocessing's exit handler for ever (a finished ``eval`` that never
    exited). Without it they end with the pass. ``spawn``: see :func:`worker_context`."""
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        drop_last=drop_last,
        persistent_workers=persistent and workers > 0,
        generator=torch.Generator().manual_seed(seed),
        worker_init_fn=ignore_stop_signals if workers > 0 else None,
        multiprocessing_context=worker_context(workers, spawn),
    )


def worker_context(workers: int, spawn: bool) -> str | None:
    """How loader workers start: forked (fast; the default), or, with ``spawn``, as fresh
    interpreters, for a process that has other threads when its workers start.

    A training process has threads (TensorBoard's writer, the process group's): a worker forked
    while one of them held a lock inherits the lock held for ever, and one was seen stuck inside
    ``os.fork`` under torchrun. Spawned workers import the package and get the dataset pickled
    (a second or two per worker, once a run for persistent workers). Not a fork server: its
    workers are not the main process's children, so a SIGKILLed run left them running for ever
    (torch's workers watch their parent's pid)."""
    return "spawn" if spawn and workers > 0 else None


def close_loader(loader) -> None:
    """End a loader's persistent worker processes now (a no-op without them).

    They ignore SIGTERM (:func:`ignore_stop_signals`), so workers still alive when the
    interpreter exits, because something still holds their loader, block multiprocessing's exit
    handler (which terminates, then joins them) for ever: a finished run that never exits."""
    iterator = getattr(loader, "_iterator", None)  # a DeviceDecoder forwards it
    shutdown = getattr(iterator, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()


def ignore_stop_signals(worker_id: int = 0) -> None:
    """In a loader worker: leave SIGINT and SIGTERM to the main process.

    Ctrl-C reaches every process of the terminal's group, and some schedulers signal every
    process of a job; a worker that died of it would make the main process fail on its next
    batch instead of stopping cleanly with a checkpoint. The workers end when the main process
    shuts its loader down (or, if it is killed, when they see it gone).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
