"""Images in, normalized tensors out: decoding, image folders, the paper's training augmentation,
and the evaluation crops (1, 10 and the paper's 144).

Decoding (:func:`open_image`) turns every common image mode into 8-bit RGB (grayscale, palette,
RGBA, CMYK, 16-bit), applies the EXIF orientation, and refuses decompression bombs; a file that
cannot be decoded raises :class:`DataError` naming it.

Evaluation crops follow the paper (SPEC section 2), scaled to the model's input size ``S``
(224 in the paper; every length below is multiplied by ``S / 224``):

* 1 crop   -- resize the shorter side to 256, take the center ``S x S``.
* 10 crops -- resize the shorter side to 256; the 4 corner and the center ``S x S`` crops, and
              their mirrors (torchvision's ``TenCrop`` on the rectangular image).
* 144 crops -- resize the shorter side to 256, 288, 320 and 352; from each, the left, center and
               right squares (top/center/bottom for portrait images); from each square the 4
               corner and the center ``S x S`` crops plus the whole square resized to ``S``; and
               the mirror of each: 4 x 3 x 6 x 2.

Crops are cut from a ``uint8`` tensor and normalized at the end, in :func:`normalize`, so a
batch of crops costs one resize per scale.

Training (:class:`TrainTransform`) follows the paper's section 6: random crops of 8%-100% of the
area with aspect ratio 3/4-4/3, resized with a random filter among bilinear, area, nearest and
bicubic, horizontal flips, and photometric distortions. Its randomness comes from a generator
seeded per (seed, epoch, image) by :class:`TrainSampler`, which is what makes runs reproducible
across loader workers, processes and resumes.

Folders (:class:`ImageFolder`) are torchvision's layout; bad data never crashes an epoch: an
unreadable file becomes a :class:`Skipped` that :func:`collate` sets aside for the loop to count.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import signal
import stat
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps
from torch import Tensor
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from ..errors import DataError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (
    ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm",
)  # fmt: skip
CROP_CHOICES = (1, 10, 144)
PAPER_SCALES = (256, 288, 320, 352)
# Images above this many pixels are refused as likely decompression bombs (PIL's own default
# only warns at 89M pixels and refuses at twice that).
MAX_IMAGE_PIXELS = 100_000_000

ImageFile.LOAD_TRUNCATED_IMAGES = False


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """Whether the file name has one of the image extensions we read (case-insensitive)."""
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def open_image(path: str | os.PathLike[str]) -> Image.Image:
    """Decode an image file to 8-bit RGB, EXIF orientation applied.

    Raises :class:`DataError` for a missing, unreadable, truncated or oversized file.
    """
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError as err:
        raise DataError(f"{path}: no such file (or a link to a missing file)") from err
    except OSError as err:  # a symlink loop, no permission
        raise DataError(f"{path}: not a readable image ({err.strerror or err})") from err
    if not stat.S_ISREG(mode):  # a FIFO would block the reader forever, a device never end
        raise DataError(f"{path}: not a regular file, so not an image")
    return decode_image(path, str(path))


def decode_image(source: str | os.PathLike[str] | IO[bytes], name: str) -> Image.Image:
    """Decode an image (a file name or a binary file object, such as the bytes of a tar shard's
    member in a ``BytesIO``) like :func:`open_image`; ``name`` is what errors call it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as img:
                if img.width * img.height > MAX_IMAGE_PIXELS:
                    raise DataError(
                        f"{name}: {img.width}x{img.height} pixels is over the limit of "
                        f"{MAX_IMAGE_PIXELS:,} (a decompression bomb?); skip or shrink it"
                    )
                img.load()
                img = ImageOps.exif_transpose(img)
                return to_rgb(img)
    except DataError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise DataError(f"{name}: refused as a decompression bomb ({err})") from err
    except FileNotFoundError as err:
        raise DataError(f"{name}: no such file") from err
    except (OSError, ValueError, SyntaxError, Image.UnidentifiedImageError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(f"{name}: not a readable image ({reason})") from err


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode to 8-bit RGB. 16- and 32-bit images are rescaled, not clipped."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        if img.mode == "F" and arr.max() <= 1.0:
            top = 1.0
        arr8 = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, mode="L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # Composite on white: transparent pixels have arbitrary colors underneath.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def pil_to_uint8(img: Image.Image) -> Tensor:
    """An RGB PIL image as a 3 x H x W ``uint8`` tensor."""
    return TF.pil_to_tensor(img)


def normalize(
    images: Tensor, mean: Sequence[float], std: Sequence[float], dtype: torch.dtype = torch.float32
) -> Tensor:
    """``uint8`` images (... x 3 x H x W) to float, minus mean, over std (both in [0, 1] units)."""
    x = images.to(dtype) / 255.0
    m = torch.tensor(mean, dtype=dtype, device=x.device).view(3, 1, 1)
    s = torch.tensor(std, dtype=dtype, device=x.device).view(3, 1, 1)
    return (x - m) / s


def resize_size(input_size: int, shorter: int = 256) -> int:
    """The paper's resize length ``shorter`` (for 224 crops) scaled to ``input_size`` crops."""
    return int(round(shorter * input_size / 224))


# ---------------------------------------------------------------------------------------------
# Crop geometry
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Crop:
    """One evaluation crop: resize the shorter side to ``scale``, cut ``box`` (left, top, right,
    bottom, in the resized image), resize the cut to the input size if ``resize`` (the paper's
    "whole square"), mirror if ``flip``."""

    scale: int
    box: tuple[int, int, int, int]
    resize: bool
    flip: bool


def _scaled(width: int, height: int, shorter: int) -> tuple[int, int]:
    """Size after resizing the shorter side to ``shorter`` (torchvision's rounding)."""
    if width <= height:
        return shorter, int(shorter * height / width)
    return int(shorter * width / height), shorter


def _five_boxes(left: int, top: int, side_w: int, side_h: int, size: int) -> list[tuple[int, ...]]:
    """Top-left, top-right, bottom-left, bottom-right, center ``size`` boxes inside a region."""
    right, bottom = left + side_w, top + side_h
    cl = left + int(round((side_w - size) / 2.0))
    ct = top + int(round((side_h - size) / 2.0))
    return [
        (left, top, left + size, top + size),
        (right - size, top, right, top + size),
        (left, bottom - size, left + size, bottom),
        (right - size, bottom - size, right, bottom),
        (cl, ct, cl + size, ct + size),
    ]


def crop_plan(width: int, height: int, input_size: int, crops: int) -> list[Crop]:
    """The crops to cut from a ``width x height`` image, in order (see the module docstring)."""
    if crops not in CROP_CHOICES:
        raise DataError(f"--crops must be one of 1, 10, 144, got {crops}")
    size = input_size
    if crops == 1:
        scale = resize_size(size)
        w, h = _scaled(width, height, scale)
        return [Crop(scale, _five_boxes(0, 0, w, h, size)[4], resize=False, flip=False)]
    if crops == 10:
        scale = resize_size(size)
        w, h = _scaled(width, height, scale)
        boxes = _five_boxes(0, 0, w, h, size)
        return [Crop(scale, b, False, flip) for flip in (False, True) for b in boxes]
    plan = []
    for shorter in PAPER_SCALES:
        scale = resize_size(size, shorter)
        w, h = _scaled(width, height, scale)
        side = min(w, h)
        # Left, center and right squares of a landscape image; top, center, bottom of a portrait.
        offsets = [0, (max(w, h) - side) // 2, max(w, h) - side]
        for off in offsets:
            left, top = (off, 0) if w >= h else (0, off)
            square = (left, top, left + side, top + side)
            for box, resize in [(b, False) for b in _five_boxes(left, top, side, side, size)] + [
                (square, True)
            ]:
                plan.extend(Crop(scale, box, resize, flip) for flip in (False, True))
    return plan


def multi_crop(
    image: Tensor,
    input_size: int,
    crops: int = 1,
    interpolation: InterpolationMode = InterpolationMode.BILINEAR,
) -> Tensor:
    """Cut the evaluation crops from a 3 x H x W ``uint8`` image: ``crops x 3 x S x S`` uint8."""
    _, height, width = image.shape
    resized: dict[int, Tensor] = {}
    out = []
    for crop in crop_plan(width, height, input_size, crops):
        if crop.scale not in resized:
            resized[crop.scale] = TF.resize(
                image, [crop.scale], interpolation=interpolation, antialias=True
            )
        left, top, right, bottom = crop.box
        patch = resized[crop.scale][:, top:bottom, left:right]
        if crop.resize:
            patch = TF.resize(
                patch, [input_size, input_size], interpolation=interpolation, antialias=True
            )
        if crop.flip:
            patch = patch.flip(-1)
        out.append(patch)
    return torch.stack(out)


class EvalTransform:
    """PIL image -> ``crops x 3 x S x S`` normalized float tensor, the way the weights expect."""

    def __init__(
        self,
        input_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        crops: int = 1,
    ) -> None:
        if crops not in CROP_CHOICES:
            raise DataError(f"--crops must be one of 1, 10, 144, got {crops}")
        self.input_size, self.mean, self.std, self.crops = input_size, mean, std, crops

    def __call__(self, img: Image.Image) -> Tensor:
        patches = multi_crop(pil_to_uint8(img), self.input_size, self.crops)
        return normalize(patches, self.mean, self.std)

    @classmethod
    def for_model(cls, config, crops: int = 1) -> EvalTransform:
        """The transform for a model's ``GoogLeNetConfig`` (its input size, mean and std)."""
        return cls(config.input_size, config.mean, config.std, crops)


# ---------------------------------------------------------------------------------------------
# Training augmentation (the paper's, section 6)
# ---------------------------------------------------------------------------------------------

# "random interpolation methods (bilinear, area, nearest neighbor and cubic, with equal
# probability)": PIL's BOX filter is the area interpolation.
PAPER_INTERPOLATIONS = (
    Image.Resampling.BILINEAR,
    Image.Resampling.BOX,
    Image.Resampling.NEAREST,
    Image.Resampling.BICUBIC,
)
# AlexNet's PCA lighting noise: the eigenvalues and eigenvectors of the ImageNet RGB covariance
# (pixel values in [0, 1]), as fb.resnet.torch and timm ship them.
IMAGENET_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)


def _uniform(g: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * torch.rand((), generator=g).item()


def random_resized_box(
    width: int,
    height: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    g: torch.Generator,
) -> tuple[float, float, float, float]:
    """A random box of ``scale`` of the area with aspect ratio in ``ratio`` (log-uniform).

    torchvision's ``RandomResizedCrop`` rule (10 tries, then the largest centered box with the
    ratio clamped), but in float coordinates: PIL resamples sub-pixel boxes, so a crop of 8% of a
    tiny image is still a proper crop rather than a few whole pixels.
    """
    area = width * height
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target = area * _uniform(g, *scale)
        aspect = math.exp(_uniform(g, log_lo, log_hi))
        w, h = math.sqrt(target * aspect), math.sqrt(target / aspect)
        if w <= width and h <= height:
            left, top = _uniform(g, 0, width - w), _uniform(g, 0, height - h)
            return left, top, left + w, top + h
    aspect = width / height
    w, h = (width, width / ratio[0]) if aspect < ratio[0] else (width, height)
    if aspect > ratio[1]:
        w, h = height * ratio[1], height
    w, h = min(w, width), min(h, height)
    left, top = (width - w) / 2, (height - h) / 2
    return left, top, left + w, top + h


def photometric_distortion(x: Tensor, jitter: float, lighting: float, g: torch.Generator) -> Tensor:
    """Brightness, contrast and saturation jitter in random order (Howard 2013, torchvision's
    ``ColorJitter``), then AlexNet's PCA lighting noise; ``x`` is 3 x H x W float in [0, 1]."""
    if jitter > 0:
        gray = (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]).unsqueeze(0)
        for op in torch.randperm(3, generator=g).tolist():
            factor = _uniform(g, max(0.0, 1 - jitter), 1 + jitter)
            if op == 0:  # brightness
                x = x * factor
            elif op == 1:  # contrast: towards the mean gray level
                x = (x - gray.mean()) * factor + gray.mean()
            else:  # saturation: towards the pixel's gray level
                x = (x - gray) * factor + gray
            gray = (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]).unsqueeze(0)
    if lighting > 0:
        alpha = torch.randn(3, generator=g) * lighting
        rgb = torch.tensor(IMAGENET_EIGVEC) @ (alpha * torch.tensor(IMAGENET_EIGVAL))
        x = x + rgb.view(3, 1, 1)
    return x.clamp_(0.0, 1.0)


@dataclass
class TrainTransform:
    """The paper's training augmentation: PIL image + a seeded generator -> 3 x S x S tensor.

    Random-resized crop of ``scale`` (8%-100%) of the area with aspect ratio in ``ratio``
    (3/4-4/3), resized to ``input_size`` with an interpolation drawn from bilinear, area, nearest
    and bicubic; horizontal flip with probability ``hflip``; photometric distortion (``jitter``
    for brightness, contrast and saturation, ``lighting`` the std of the PCA noise); normalized
    with ``mean``/``std``. All randomness comes from the generator the caller passes, so the same
    (seed, epoch, image) gives the same crop whatever the number of workers or processes.
    """

    input_size: int
    mean: Sequence[float]
    std: Sequence[float]
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: float = 0.5
    jitter: float = 0.4
    lighting: float = 0.1
    interpolations: tuple[Image.Resampling, ...] = PAPER_INTERPOLATIONS

    def __call__(self, img: Image.Image, g: torch.Generator) -> Tensor:
        box = random_resized_box(img.width, img.height, self.scale, self.ratio, g)
        pick = torch.randint(len(self.interpolations), (), generator=g).item()
        size = (self.input_size, self.input_size)
        img = img.resize(size, resample=self.interpolations[pick], box=box)
        x = pil_to_uint8(img).float().div_(255.0)
        if torch.rand((), generator=g).item() < self.hflip:
            x = x.flip(-1)
        x = photometric_distortion(x, self.jitter, self.lighting, g)
        m = torch.tensor(self.mean).view(3, 1, 1)
        s = torch.tensor(self.std).view(3, 1, 1)
        return (x - m) / s


# ---------------------------------------------------------------------------------------------
# Image folders
# ---------------------------------------------------------------------------------------------


@dataclass
class Skipped:
    """A file that could not be decoded; stands in for its sample so the epoch goes on."""

    path: str
    reason: str


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
    images, others = [], []
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
    ``transform(img, generator seeded by seed)``.
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
        try:
            img = open_image(path)
        except DataError as err:
            return Skipped(path, str(err))
        if seed is None:
            return self.transform(img), label
        return self.transform(img, torch.Generator().manual_seed(seed)), label


@dataclass
class Batch:
    """What the loaders yield: images, labels, and the files of the batch that were skipped."""

    images: Tensor
    labels: Tensor
    skipped: list[Skipped]

    def pin_memory(self) -> Batch:
        return Batch(self.images.pin_memory(), self.labels.pin_memory(), self.skipped)


def collate(items: list[tuple[Tensor, int] | Skipped]) -> Batch:
    """Stack the good samples, keep the bad ones aside (the loop counts and reports them)."""
    good = [item for item in items if not isinstance(item, Skipped)]
    skipped = [item for item in items if isinstance(item, Skipped)]
    if not good:
        return Batch(torch.empty(0), torch.empty(0, dtype=torch.long), skipped)
    images = torch.stack([image for image, _ in good])
    labels = torch.tensor([label for _, label in good], dtype=torch.long)
    return Batch(images, labels, skipped)


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
) -> torch.utils.data.DataLoader:
    """A DataLoader with our collate; persistent workers; its own generator, so that creating it
    never draws from the global RNG (which would shift dropout masks after a resume)."""
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        drop_last=drop_last,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(seed),
        worker_init_fn=ignore_stop_signals if workers > 0 else None,
    )


def ignore_stop_signals(worker_id: int = 0) -> None:
    """In a loader worker: leave SIGINT and SIGTERM to the main process.

    Ctrl-C reaches every process of the terminal's group, and some schedulers signal every
    process of a job; a worker that died of it would make the main process fail on its next
    batch instead of stopping cleanly with a checkpoint. The workers end when the main process
    shuts its loader down (or, if it is killed, when they see it gone).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
