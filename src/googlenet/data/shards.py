"""WebDataset tar shards as training and evaluation data: many nodes reading one network file
system or object store, no folder of a million small files.

The layout ``googlenet shard`` writes::

    OUT/index.json               classes, the splits, what was done to the images
    OUT/train/index.json         this split's shards and how many samples each holds
    OUT/train/train-000000.tar   samples: 000000123.jpg (the image) + 000000123.cls (its class)
    OUT/val/...

``--data`` names a shard set as ``OUT`` (train and val), a split (``OUT/val``), a brace pattern
(``OUT/train/train-{000000..000099}.tar``) or any URL webdataset opens (``pipe:CMD``, ``http(s)://``
..., with ``{a..b}`` ranges). The counts come from the split's ``index.json`` beside the shards
(read through the same URL or command for remote ones): an epoch's length must be known before
anything is read, so that every rank takes the same number of steps.

Who reads what. The shard list is shuffled per epoch by (seed, epoch), the same on every process,
then split between the ranks, and each rank's part between its loader workers: whole shards when
there are at least as many shards as readers, else every n-th sample. Each reader shuffles its
samples through a buffer of :data:`SHUFFLE_BUFFER` samples and yields exactly its quota: an epoch
is ``len(set) // world`` samples per rank, rounded down to whole batches, the same on every rank
(DDP never waits for a rank that ran out), a reader going round its shards again (reshuffled)
if its share is short and stopping where its quota ends if it is long, as webdataset's
``with_epoch`` does. A sample keeps its index in the split (its key), so its augmentation is
seeded by (seed, epoch, index), as in an image folder.

Resume. At an epoch boundary: exactly as with folders. Part-way through an epoch, with the same
number of processes and ``-j``: the streams are rebuilt and the batches already done are skipped
undecoded, so the run goes on with the very batches of a run never interrupted. With another
world size or ``-j`` the rest of that epoch is drawn anew: the right number of batches, but some
of its images may come twice and others not at all.

Bad data. An image that cannot be decoded is a :class:`~googlenet.data.Skipped`, counted like a
folder's; a shard that cannot be opened or breaks part-way (a corrupt member, a truncated file, a
command that fails) is one ``Skipped`` naming it, the rest of it lost for that pass; a class
number outside the index's classes stops the run (the shards and the index are not one set); a
reader none of whose shards yields a sample stops with one line instead of spinning.

We read tars through webdataset (``gopen`` for URLs, ``tarfile_samples`` for members); the
splitting, quota and resume are ours, because they must be exact for DDP and for a resume.
"""

from __future__ import annotations

import io
import itertools
import json
import random
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import DataError, require
from . import (
    IMAGE_EXTENSIONS,
    Skipped,
    augment_seed,
    collate,
    decode_image,
    ignore_stop_signals,
    worker_context,
)

INDEX = "index.json"
FORMAT = "googlenet-shards"
VERSION = 1
SHUFFLE_BUFFER = 1000  # samples per reader; about 100 MB of ImageNet JPEGs
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")
_TAR = re.compile(r"[^/\s'\"]+\.tar")


def require_webdataset():
    require("webdataset", extra="shards")
    import webdataset

    return webdataset


def shard_name(split: str, number: int) -> str:
    return f"{split}-{number:06d}.tar"


def is_shard_spec(spec: str | Path) -> bool:
    """Whether ``--data`` names shards (a URL, a brace pattern, a .tar, a folder with an index)
    rather than an image folder."""
    text = str(spec)
    if _SCHEME.match(text) or "{" in text or text.endswith(".tar"):
        return True
    return Path(text).is_dir() and (Path(text) / INDEX).is_file()


# ---------------------------------------------------------------------------------------------
# Shard sets and their index
# ---------------------------------------------------------------------------------------------


@dataclass
class ShardSet:
    """One split: its shards (paths or URLs), the samples each holds, the classes."""

    root: str
    urls: list[str]
    counts: list[int]
    classes: list[str]
    preprocessing: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return sum(self.counts)


def read_index(source: str, what: str) -> dict[str, Any]:
    """The parsed ``index.json`` at ``source`` (a path, or a URL read with webdataset's gopen)."""
    try:
        if _SCHEME.match(source) and not source.startswith("file:"):
            stream = require_webdataset().gopen(source, "rb")
            try:
                raw = stream.read()
            finally:
                stream.close()
        else:
            raw = Path(source.removeprefix("file:")).read_bytes()
        index = json.loads(raw)
    except (OSError, ValueError) as err:
        reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise DataError(
            f"{what}: cannot read its shard index {source} ({reason}); shards need the "
            f"{INDEX} that googlenet shard writes beside them"
        ) from err
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise DataError(f"{source}: not a googlenet shard index; write shards with googlenet shard")
    classes = index.get("classes")
    if not classes or not all(isinstance(c, str) for c in classes):
        raise DataError(f"{source}: a shard index without its list of classes")
    return index


def open_split(spec: str | Path) -> ShardSet:
    """The shards of one split: a folder with an index, a brace pattern, or URLs."""
    text = str(spec)
    folder = Path(text)
    if not _SCHEME.match(text) and folder.is_dir():
        where = str(folder / INDEX)
        index = read_index(where, text)
        if "splits" in index:
            splits = ", ".join(index["splits"])
            raise DataError(
                f"{text} is a shard set ({splits}): name a split, e.g. {folder / 'val'}"
            )
        listed = _listed(index, where)
        urls = [str(folder / name) for name in listed]
    else:
        urls = list(require_webdataset().shardlists.expand_urls(text))
        names = [_basename(url, text) for url in urls]
        where = _index_url(urls[0], names[0])
        index = read_index(where, text)
        listed = _listed(index, where)
        missing = [name for name in names if name not in listed]
        if missing:
            raise DataError(
                f"{text}: shard {missing[0]} is not in its index {where}; name the shards that "
                "googlenet shard wrote there"
            )
        listed = {name: listed[name] for name in names}
    for url in urls:
        _check_local(url, text)
    kept = [(u, n) for u, n in zip(urls, listed.values(), strict=True) if n > 0]
    if not kept:
        raise DataError(f"{text}: no shard with samples in it ({where})")
    return ShardSet(
        root=text,
        urls=[u for u, _ in kept],
        counts=[n for _, n in kept],
        classes=list(index["classes"]),
        preprocessing=dict(index.get("preprocessing") or {}),
    )


def resolve_splits(data: str | Path, val: str | Path | None = None):
    """The train and val shards of ``--data SPEC [--val SPEC]`` (val None if there is none)."""
    text = str(data)
    folder = Path(text)
    train = None
    if not _SCHEME.match(text) and folder.is_dir():
        top = read_index(str(folder / INDEX), text)
        splits = top.get("splits")
        if splits is not None:
            if "train" not in splits:
                raise DataError(f"{text}: the shard set has no train split ({', '.join(splits)})")
            train = open_split(folder / "train")
            if val is None and "val" in splits:
                val = folder / "val"
    train = train or open_split(data)
    if val is None:
        return train, None
    if not is_shard_spec(val):
        raise DataError(f"--val {val}: training on shards validates on shards too; shard it")
    val_set = open_split(val)
    if val_set.classes != train.classes:
        raise DataError(
            f"--val {val}: its {len(val_set.classes)} classes are not the training shards' "
            f"{len(train.classes)}; write both splits with one googlenet shard run"
        )
    return train, val_set


def resolve(data: str | Path, val: str | Path | None = None):
    """``--data [--val]`` of train, shards or folders: (train, val or None, classes); train and
    val are :class:`ShardSet` for shards, folder paths for folders."""
    if is_shard_spec(data):
        train, val_set = resolve_splits(data, val)
        return train, val_set, train.classes
    from . import find_classes
    from . import resolve_splits as folder_splits

    train_dir, val_dir = folder_splits(data, val)
    return train_dir, val_dir, find_classes(train_dir)


def _listed(index: dict[str, Any], where: str) -> dict[str, int]:
    try:
        return {str(s["name"]): int(s["count"]) for s in index["shards"]}
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(f"{where}: a shard index without a valid list of shards") from err


def _basename(url: str, spec: str) -> str:
    found = _TAR.findall(url)
    if not found:
        raise DataError(f"{spec}: shard URLs must name NAME.tar files (so that the index is found)")
    return found[-1]


def _index_url(url: str, name: str) -> str:
    """Where the index of shard ``url`` is: ``index.json`` in place of the shard's name."""
    head, _, tail = url.rpartition(name)
    return head + INDEX + tail


def _check_local(url: str, spec: str) -> None:
    if _SCHEME.match(url) and not url.startswith("file:"):
        return
    path = Path(url.removeprefix("file:"))
    if not path.is_file():
        raise DataError(f"{spec}: shard {path} is missing; copy it back or write the set again")
    if path.stat().st_size == 0:
        raise DataError(f"{spec}: shard {path} is empty (0 bytes); write the set again")


# ---------------------------------------------------------------------------------------------
# Who reads what
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reader:
    """One reader's share: shard numbers, then every ``n``-th sample from ``i`` for each
    (i, n) in ``filters`` (applied in turn)."""

    shards: tuple[int, ...]
    filters: tuple[tuple[int, int], ...] = ()

    def count(self, counts: list[int]) -> int:
        total = sum(counts[s] for s in self.shards)
        for i, n in self.filters:
            total = len(range(i, total, n))
        return total


def split(reader: Reader, part: int, parts: int) -> Reader:
    """Part ``part`` of ``parts`` of a reader's share: whole shards if there are enough."""
    if parts == 1:
        return reader
    if len(reader.shards) >= parts and not reader.filters:
        return Reader(reader.shards[part::parts])
    return Reader(reader.shards, (*reader.filters, (part, parts)))


def _filtered(stream: Iterator, filters: tuple[tuple[int, int], ...]) -> Iterator:
    for i, n in filters:
        stream = itertools.islice(stream, i, None, n)
    return stream


# ---------------------------------------------------------------------------------------------
# The dataset
# ---------------------------------------------------------------------------------------------


class ShardDataset(torch.utils.data.IterableDataset):
    """The samples of a :class:`ShardSet` for this rank and loader worker (see the module
    docstring). ``train``: shuffled, repeated to a fixed quota, augmented with
    ``transform(img, generator)``; else every sample once, in order, ``transform(img)``."""

    def __init__(
        self,
        shards: ShardSet,
        transform,
        *,
        train: bool,
        batch_size: int,
        rank: int = 0,
        world: int = 1,
        seed: int = 0,
        buffer: int = SHUFFLE_BUFFER,
    ) -> None:
        self.shards, self.transform, self.train = shards, transform, train
        self.batch_size, self.rank, self.world, self.seed = batch_size, rank, world, seed
        self.buffer, self.workers = buffer, 1
        self.epoch = self.start = 0
        self.root, self.classes = shards.root, shards.classes

    def __len__(self) -> int:
        return len(self.shards)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Go to ``epoch``, skipping this rank's first ``start`` samples of it (a resume)."""
        self.epoch, self.start = epoch, start

    def batches(self) -> int:
        """Batches this rank yields per epoch, over all its workers."""
        if self.train:
            return len(self.shards) // self.world // self.batch_size
        return sum(-(-self._reader(w).count(self.shards.counts) // self.batch_size)
                   for w in range(self.workers))  # fmt: skip

    def _reader(self, worker: int) -> Reader:
        everything = Reader(tuple(range(len(self.shards.urls))))
        if self.train:  # the same shard order on every rank: the split is a partition
            order = list(everything.shards)
            random.Random(f"{self.seed}/{self.epoch}").shuffle(order)
            everything = Reader(tuple(order))
        return split(split(everything, self.rank, self.world), worker, self.workers)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, int] | Skipped]:
        info = torch.utils.data.get_worker_info()
        worker = info.id if info is not None else 0
        if info is not None:
            self.workers = info.num_workers
        if not self.train:
            reader = self._reader(worker)
            stream = _filtered(self.raw_samples(reader.shards), reader.filters)
        else:
            quotas = self._quotas()
            made, turn = _first_batches(quotas, self.start // self.batch_size)
            # A new DataLoader asks worker 0 first: on a resume, worker 0 plays the worker whose
            # turn it was, and the rest follow in the same cycle, so the batches come in the
            # order of the run that was interrupted.
            worker = (worker + turn) % self.workers
            reader = self._reader(worker)
            mine, done = quotas[worker], made[worker]
            stream = self._cycles(reader, worker)
            stream = itertools.islice(stream, done * self.batch_size, mine * self.batch_size)
        for sample in stream:
            yield self._decode(sample)

    def _quotas(self) -> list[int]:
        """Batches each worker of this rank yields: the rank's, shared in proportion to the
        samples each worker's share holds (largest remainders first), so none repeats samples
        while another drops some."""
        batches = self.batches()
        counts = [self._reader(w).count(self.shards.counts) for w in range(self.workers)]
        exact = [batches * c / max(sum(counts), 1) for c in counts]
        quotas = [int(e) for e in exact]
        short = batches - sum(quotas)
        for w in sorted(range(self.workers), key=lambda w: quotas[w] - exact[w])[:short]:
            quotas[w] += 1
        return quotas

    def _cycles(self, reader: Reader, worker: int) -> Iterator:
        """The reader's share, shuffled, again and again: the shard order reshuffled and the
        samples through a fresh shuffle buffer each time round (a buffer fed across rounds would
        repeat samples before every one has come once)."""
        for cycle in itertools.count():
            order = list(reader.shards)
            rng = random.Random(f"{self.seed}/{self.epoch}/{self.rank}/{worker}/{cycle}")
            if cycle:
                rng.shuffle(order)
            good = False
            for sample in _shuffled(
                _filtered(self.raw_samples(order), reader.filters), rng, self.buffer
            ):
                good = good or not isinstance(sample, Skipped)
                yield sample
            if not good:
                names = ", ".join(Path(self.shards.urls[s]).name for s in order[:3])
                raise DataError(
                    f"{self.shards.root}: no readable sample in shard(s) {names or 'none'} "
                    "(see the skipped shards above); check or rewrite them"
                )

    def raw_samples(self, order) -> Iterator[dict[str, Any] | Skipped]:
        """The raw samples of shards ``order`` (numbers), a Skipped for a shard that fails."""
        wds = require_webdataset()
        for s in order:
            url, errors = self.shards.urls[s], list[Exception]()

            def handler(err: Exception, errors=errors) -> bool:
                errors.append(err)
                return False  # a tar stream cannot go on after an error: the shard ends here

            n = 0
            for sample in wds.tariterators.tarfile_samples([{"url": url}], handler=handler):
                n += 1
                yield sample
            expected = self.shards.counts[s]
            if errors:
                why = f"unreadable ({_reason(errors[0])})"
            elif n < expected:  # tarfile takes a damaged header part-way for the end
                why = f"ends after {n} of its {expected} samples (damaged or truncated)"
            else:
                continue
            yield Skipped(url, f"{url}: shard {why}; the rest of it skipped")

    def _decode(self, sample: dict[str, Any] | Skipped) -> tuple[torch.Tensor, int] | Skipped:
        if isinstance(sample, Skipped):
            return sample
        url, key = sample.get("__url__", "?"), sample.get("__key__", "?")
        name = f"{url}:{key}"
        try:
            label = int(sample["cls"])
        except (KeyError, ValueError):
            return Skipped(name, f"{name}: no class number (.cls); skipped")
        if not 0 <= label < len(self.classes):
            raise DataError(
                f"{url}: sample {key} has class {label}, but its index lists "
                f"{len(self.classes)} classes: the shards and {INDEX} are not one set; "
                "write them again with googlenet shard"
            )
        ext = next((k for k in sample if f".{k}" in IMAGE_EXTENSIONS), None)
        if ext is None:
            return Skipped(name, f"{name}: no image member; skipped")
        index = int(key) if str(key).isdigit() else zlib.crc32(str(key).encode())
        seed = augment_seed(self.seed, self.epoch, index)
        if self.train and hasattr(self.transform, "encode"):  # decoded on the device
            return self.transform.encode(sample[ext], seed, name, label)
        try:
            img = decode_image(io.BytesIO(sample[ext]), name)
        except DataError as err:
            return Skipped(name, str(err))
        if not self.train:
            return self.transform(img), label
        return self.transform(img, torch.Generator().manual_seed(seed)), label


def _shuffled(stream: Iterator, rng: random.Random, size: int) -> Iterator:
    """A shuffle buffer of ``size`` samples, as webdataset's ``shuffle``, drawing from ``rng``."""
    held: list = []
    for sample in stream:
        if len(held) < size:
            held.append(sample)
            continue
        k = rng.randrange(size)
        yield held[k]
        held[k] = sample
    rng.shuffle(held)
    yield from held


def _first_batches(quotas: list[int], done: int) -> tuple[list[int], int]:
    """How many of the first ``done`` batches of a rank each worker made, and whose turn is
    next. A DataLoader takes batches from its workers in turn, skipping those that have ended:
    round k holds the k-th batch of every worker that has one, in worker order."""
    made = [0] * len(quotas)
    for k in range(max(quotas, default=0)):
        for w, q in enumerate(quotas):
            if k < q:
                if done == 0:
                    return made, w
                made[w] += 1
                done -= 1
    return made, 0


def _reason(err: BaseException) -> str:
    text = str(err.args[0]) if getattr(err, "args", None) else str(err)
    text = text.splitlines()[0] if text else type(err).__name__
    return re.sub(r" @ <.*", "", text)[:200]


class ShardLoader:
    """What training and evaluation iterate: a DataLoader over a :class:`ShardDataset`, with
    what they ask of a loader (``len``, ``batch_size``, ``dataset``, ``sampler.set_epoch``).

    Its workers are not persistent: each epoch starts them with the dataset's epoch and resume
    position (an iterable dataset in a persistent worker would never hear of them).
    """

    def __init__(
        self,
        dataset: ShardDataset,
        batch_size: int,
        workers: int,
        pin_memory: bool = False,
        spawn: bool = False,
    ) -> None:
        self.dataset = self.sampler = dataset
        self.batch_size = batch_size
        dataset.workers = max(workers, 1)
        self._loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=batch_size,
            num_workers=workers,
            collate_fn=collate,
            pin_memory=pin_memory,
            worker_init_fn=ignore_stop_signals if workers > 0 else None,
            multiprocessing_context=worker_context(workers, spawn),
            # Its own generator: a DataLoader without one draws its workers' base seed from
            # the global RNG at every epoch, which would shift dropout masks after a resume.
            generator=torch.Generator().manual_seed(dataset.seed),
        )

    def __len__(self) -> int:
        return self.dataset.batches()

    def __iter__(self):
        batches = iter(self._loader)
        try:
            yield from batches
        except DataError as err:  # from a worker: its message is the traceback's last line
            last = str(err).strip().splitlines()[-1]
            failed = DataError(re.sub(r"^[\w.]*DataError: ", "", last))
            failed.every_rank = False
            raise failed from None
        finally:
            # Stop the workers now, not when the garbage collector gets to an iterator that an
            # exception's traceback holds: workers ignore SIGTERM (ignore_stop_signals), so
            # multiprocessing's exit handler would wait for them forever.
            shutdown = getattr(batches, "_shutdown_workers", None)
            if shutdown is not None:
                shutdown()


def loaders(
    train: ShardSet,
    val: ShardSet | None,
    train_tf,
    eval_tf,
    *,
    batch_size: int,
    workers: int,
    rank: int = 0,
    world: int = 1,
    seed: int = 0,
    pin_memory: bool = False,
):
    """``train``'s dataset and loaders on shards: (train set, val set, train loader, val loader),
    like ``googlenet.train.build_loaders``; their workers are spawned (:func:`worker_context`)."""
    kw = dict(batch_size=batch_size, rank=rank, world=world, seed=seed)
    train_set = ShardDataset(train, train_tf, train=True, **kw)
    train_loader = ShardLoader(train_set, batch_size, workers, pin_memory, spawn=True)
    if len(train_loader) == 0:
        raise DataError(
            f"{train.root} has {len(train)} images, fewer than one batch of {batch_size} x "
            f"{world} process(es); use a smaller -b"
        )
    if val is None:
        return train_set, None, train_loader, None
    val_set = ShardDataset(val, eval_tf, train=False, **kw)
    val_loader = ShardLoader(val_set, batch_size, workers, pin_memory, spawn=True)
    return train_set, val_set, train_loader, val_loader


def eval_loader(spec, transform, batch_size: int, workers: int, pin_memory: bool = False):
    """``googlenet eval`` on shards: the dataset and its loader (every sample once)."""
    folder = Path(str(spec))
    if not _SCHEME.match(str(spec)) and (folder / "val" / INDEX).is_file():
        spec = folder / "val"
    dataset = ShardDataset(open_split(spec), transform, train=False, batch_size=batch_size)
    return dataset, ShardLoader(dataset, batch_size, workers, pin_memory)
