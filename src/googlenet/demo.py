"""``googlenet demo``: the main job end to end on real data, on a laptop's CPU.

The data are the 1,797 handwritten digits that scikit-learn ships (8 x 8 grayscale scans, 10
classes), written out as an ordinary image folder (``data/train/<digit>/*.png`` and
``data/val/<digit>/*.png``, a stratified 80/20 split fixed by seed 0), so that every step is the
one a user runs on their own folder: ``googlenet train``, then ``googlenet eval`` with 1 and 10
crops, then a few predictions.

The network is the ``paper`` preset (LRN, no BatchNorm), trained from scratch. Its input size is
32 px: the smallest size the paper's network takes is 31, the digits have only 8 x 8 pixels of
information, and the cost of a step grows with the square of the side, so 32 px is 4 times
cheaper than 64 px for the same accuracy on this data.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import ConfigError, Interrupted
from .fileio import output_lock

log = logging.getLogger(__name__)

DEMO_SIZE = 32
DEMO_EPOCHS = 36
DEMO_SEED = 0
DEMO_BATCH = 32
DEMO_LR = 0.005
VAL_FRACTION = 0.2


def write_digits(
    root: Path,
    seed: int = DEMO_SEED,
    limit: int | None = None,
    per_class: tuple[int, int] | None = None,
) -> tuple[int, int]:
    """Write scikit-learn's digits as ``root/{train,val}/<digit>/<index>.png``: (train, val) count.

    Each class is split 80/20 by a fixed permutation, so the split is the same on every machine.
    ``per_class=(t, v)`` keeps the first ``t`` training and ``v`` validation images of each class
    (by index: ``googlenet study``'s smaller sets, subsets of the demo's). The 17 gray levels
    (0 = paper, 16 = ink) become dark ink on white 8-bit PNGs. A marker file written last makes
    a complete folder reusable; an interrupted or different one is rewritten.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ConfigError(
            "the demo needs scikit-learn for its digits: pip install 'googlenet[demo]'"
        ) from None
    marker = root / ".complete"
    digits = load_digits()
    images, targets = digits.images, digits.target
    if limit is not None:
        images, targets = images[:limit], targets[:limit]
    rng = np.random.default_rng(seed)
    split_of: dict[int, str] = {}
    for digit in range(10):
        members = rng.permutation(np.flatnonzero(targets == digit))
        n_val = int(round(len(members) * VAL_FRACTION))
        split_of |= {int(i): "val" if rank < n_val else "train" for rank, i in enumerate(members)}
    if per_class is not None:
        room = {(split, digit): n for split, n in zip(("train", "val"), per_class, strict=True)
                for digit in range(10)}  # fmt: skip
        for index in sorted(split_of):
            key = (split_of[index], int(targets[index]))
            if room[key] > 0:
                room[key] -= 1
            else:
                del split_of[index]
    n_train = sum(split == "train" for split in split_of.values())
    stamp = f"seed {seed}, limit {limit}" + (f", per class {per_class}" if per_class else "") + "\n"
    if marker.is_file() and marker.read_text() == stamp:
        return n_train, len(split_of) - n_train
    marker.unlink(missing_ok=True)  # an interrupted or different earlier write: start over
    for split in ("train", "val"):
        shutil.rmtree(root / split, ignore_errors=True)
    for index, (image, digit) in enumerate(zip(images, targets, strict=True)):
        if index not in split_of:
            continue
        split = split_of[index]
        folder = root / split / str(digit)
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (255 - np.round(image * 255 / 16)).astype(np.uint8)
        Image.fromarray(pixels, mode="L").save(folder / f"{index:04d}.png")
    marker.write_text(stamp)
    return n_train, len(split_of) - n_train


def demo_config(
    data_dir: Path, run_dir: Path, epochs: int = DEMO_EPOCHS, input_size: int = DEMO_SIZE
):
    """The demo's training: the paper preset from scratch with the paper's recipe (Caffe's input
    scale and bias rates, the augmentation, the auxiliary heads, a Polyak average) and the
    departures the README's demo section explains (epochs, schedule, crop scale, batch)."""
    from .train import TrainConfig

    return TrainConfig(
        data=str(data_dir),
        output_dir=str(run_dir),
        preset="paper",
        input_size=input_size,
        epochs=epochs,
        batch_size=DEMO_BATCH,
        workers=0,
        lr=DEMO_LR,
        schedule="poly",
        scale=(0.5, 1.0),
        polyak=True,
        polyak_decay=0.995,
        seed=DEMO_SEED,
        resume="auto",
    )


def run_demo(
    output_dir: Path,
    *,
    epochs: int = DEMO_EPOCHS,
    input_size: int = DEMO_SIZE,
    workers: int = 0,
    limit: int | None = None,
) -> dict:
    """Write the digits, train the paper preset, evaluate with 1 and 10 crops, predict, list."""
    from .evaluate import evaluate_weights, render
    from .model import create_model
    from .train import train

    start = time.perf_counter()
    if output_dir.exists() and not output_dir.is_dir():
        raise ConfigError(f"--output-dir {output_dir} is a file; give a folder")
    smallest = create_model("paper", num_classes=10, aux_logits=False).min_input_size
    if input_size < smallest:  # said before the digits are written, not after
        raise ConfigError(
            f"--input-size {input_size} is too small: the paper network takes {smallest}+"
        )
    with output_lock(output_dir, "demo"):  # one demo per folder: a second one stops at once
        data_dir = output_dir / "data"
        try:
            n_train, n_val = write_digits(data_dir, limit=limit)
        except OSError as err:  # a read-only or full disk
            raise ConfigError(
                f"cannot write the digits to {data_dir}: {err.strerror or err}"
            ) from err
        print(f"digits: {n_train} train + {n_val} val images (8x8 grayscale) in {data_dir}")
        cfg = demo_config(data_dir, output_dir / "run", epochs=epochs, input_size=input_size)
        cfg.workers = workers
        try:
            result = train(cfg)
        except Interrupted as err:  # the demo resumes by itself: say so, not --resume auto
            text = str(err).replace("continue with --resume auto", "run the demo again to go on")
            raise Interrupted(text, err.exit_code - 128) from None
        run = Path(result["output_dir"])
        reports = {}
        for crops in (1, 10):
            report = evaluate_weights(
                [run / "polyak.safetensors"], data_dir / "val", crops=crops, workers=workers
            )
            print(render(report) + "\n")
            reports[crops] = report
        _show_predictions(run / "polyak.safetensors", data_dir / "val")
        print(f"\n{run}:")
        for path in sorted(run.iterdir()):
            size = path.stat().st_size if path.is_file() else 0
            print(
                f"  {path.name:<40} {size / 1e6:8.2f} MB" if path.is_file() else f"  {path.name}/"
            )
        wall = time.perf_counter() - start
        print(
            f"\ndemo: val top-1 {reports[1]['top1']:.2f}% (1 crop), {reports[10]['top1']:.2f}% "
            f"(10 crops), {wall:.0f} s wall time"
        )
        return {"reports": reports, "seconds": wall, "output_dir": run}


def _show_predictions(weights: Path, val_dir: Path, count: int = 6) -> None:
    """A few validation images, evenly spread over the classes, with the model's top guess."""
    import torch

    from .data import EvalTransform, open_image
    from .weights import load

    model = load(weights).eval()
    transform = EvalTransform.for_model(model.config)
    names = model.config.class_names or ()
    files = sorted(val_dir.glob("*/*.png"))
    print("a few predictions (1 crop):")
    with torch.no_grad():
        for path in files[:: max(1, len(files) // count)][:count]:
            probs = model(transform(open_image(path))).softmax(1)[0]
            p, k = probs.max(0)
            guess = names[k] if names else str(int(k))
            print(
                f"  {path.relative_to(val_dir)}  true {path.parent.name}  "
                f"predicted {guess} ({100 * p:.1f}%)"
            )
