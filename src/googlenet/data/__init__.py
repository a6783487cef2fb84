"""Images in, normalized tensors out: decoding (:mod:`.images`), the evaluation crops (1, 10 and
the paper's 144: :mod:`.crops`), the paper's training augmentation (:mod:`.augment`) and image
folders and loaders (:mod:`.folders`).

Decoding (:func:`open_image`) turns every common image mode into 8-bit RGB (grayscale, palette,
RGBA, CMYK, 16-bit), applies the EXIF orientation, and refuses decompression bombs; a file that
cannot be decoded raises :class:`DataError` naming it.

Evaluation crops follow the paper (section 7), scaled to the model's input size ``S``
(224 in the paper; every length below is multiplied by ``S / 224``):

* 1 crop   -- resize the shorter side to 256, take the center ``S x S``. With
              ``resize="squash"`` (BVLC Caffe's test protocol) both sides go to 256 instead.
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

With ``--decode gpu`` (:mod:`.devicedecode`), loader workers only read the training files;
:class:`DeviceDecoder` decodes each batch with ``decode_jpeg`` on the training device and applies
the same augmentation there (:meth:`TrainTransform.tensor`).
"""

from __future__ import annotations

from .augment import (
    IMAGENET_EIGVAL,
    IMAGENET_EIGVEC,
    PAPER_INTERPOLATIONS,
    TrainTransform,
    photometric_distortion,
    random_resized_box,
)
from .batch import Batch, Encoded, EncodedBatch, Skipped, collate
from .crops import (
    CROP_CHOICES,
    PAPER_SCALES,
    RESIZE_CHOICES,
    Crop,
    EvalTransform,
    crop_plan,
    multi_crop,
    resize_size,
)
from .devicedecode import Deferred, DeviceDecoder, decode_batch, decode_jpegs
from .folders import (
    ImageFolder,
    ShardSampler,
    TrainSampler,
    augment_seed,
    close_loader,
    find_classes,
    ignore_stop_signals,
    make_loader,
    resolve_splits,
    worker_context,
)
from .images import (
    IMAGE_EXTENSIONS,
    MAX_IMAGE_PIXELS,
    ImageTooLargeError,
    collect_images,
    decode_image,
    find_images,
    is_image_file,
    normalize,
    open_image,
    pil_to_uint8,
    to_rgb,
)

__all__ = [
    "CROP_CHOICES", "IMAGENET_EIGVAL", "IMAGENET_EIGVEC", "IMAGE_EXTENSIONS", "MAX_IMAGE_PIXELS",
    "ImageTooLargeError", "decode_image",
    "PAPER_INTERPOLATIONS", "PAPER_SCALES", "RESIZE_CHOICES", "Batch", "Crop", "EvalTransform",
    "ImageFolder", "ShardSampler", "Skipped", "TrainSampler", "TrainTransform", "augment_seed",
    "collate", "collect_images", "Deferred", "DeviceDecoder", "Encoded", "EncodedBatch",
    "decode_batch", "decode_jpegs",
    "crop_plan", "close_loader", "worker_context",
    "find_classes", "find_images", "ignore_stop_signals",
    "is_image_file", "make_loader", "multi_crop", "normalize", "open_image",
    "photometric_distortion",
    "pil_to_uint8", "random_resized_box", "resize_size", "resolve_splits", "to_rgb",
]  # fmt: skip
