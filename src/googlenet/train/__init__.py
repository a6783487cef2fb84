"""Training on an image folder with the paper's recipe, on one CPU or many GPUs (torchrun).

The loop is flat (nanoGPT's and torchvision's reference script are the models), one concern a
module:

* ``config.py``     -- :class:`TrainConfig`, every flag, checked once.
* ``recipe.py``     -- the paper's recipe: loss, learning-rate schedules, the model to train,
                       Caffe's per-parameter rates and decays, the Polyak average.
* ``loop.py``       -- one epoch: :func:`train_one_epoch`, :func:`validate`, the training step
                       as the run calls it (the step itself is
                       :class:`googlenet.runtime.training.TrainStep`, the one
                       ``googlenet bench --mode train`` times).
* ``checkpoint.py`` -- save, read and restore checkpoints, RNG states.
* ``signals.py``    -- stop signals, failures of other processes.
* ``run.py``        -- :func:`train`: the run directory, set-up, the epochs, the files.

Determinism: the model is built from ``seed``; each image's augmentation is seeded by
(seed, epoch, image) (:class:`~googlenet.data.TrainSampler`); dropout draws from the torch RNG
seeded with ``seed + rank``, whose state every checkpoint keeps per rank; what decides the order
of the float sums (device, autocast dtype, thread count, ``--deterministic``) is resolved before
the first step, recorded and reused by ``--resume`` (``run.fix_float_order``). So the same command
gives the same weights whatever the machine's load, a resumed run continues the unbroken one
exactly (bitwise on CPU; on CUDA with ``--deterministic``), and N processes
with batch B/N match one with batch B (up to float summation order).
"""

from __future__ import annotations

from .checkpoint import read_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import SCHEDULES, TrainConfig
from .loop import Loop, TrainingDiverged, make_loop, train_one_epoch, train_step, validate
from .recipe import build_model, build_optimizer, googlenet_loss, lr_at, polyak_average
from .run import build_loaders, train
from .signals import StopSignals

__all__ = [
    "SCHEDULES",
    "Loop",
    "StopSignals",
    "TrainConfig",
    "TrainingDiverged",
    "build_loaders",
    "build_model",
    "build_optimizer",
    "googlenet_loss",
    "lr_at",
    "make_loop",
    "polyak_average",
    "read_checkpoint",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
    "train",
    "train_one_epoch",
    "train_step",
    "validate",
]
