"""torchrun: 2 CPU processes on gloo train like 1 process with the same global batch."""

from __future__ import annotations

import json

import pytest
import torch
from helpers.folders import make_dataset
from helpers.reliability import torchrun
from helpers.runs import assert_same_training, initial

CLASSES = ("a", "b", "c", "d", "e", "f")


@pytest.mark.slow
def test_two_processes_match_one_with_the_same_global_batch(tmp_path, run_cli):
    """Why the results can match, and how closely.

    Both runs see the same images in the same global batches with the same crops: the sampler
    shards one seeded permutation (rank r takes every 2nd index, so the two per-rank batches of 4
    are the single run's batch of 8), and each image's augmentation is seeded by (seed, epoch,
    image), not by a process. Dropout is set to 0 because masks are drawn per process; the paper
    preset has no BatchNorm, whose statistics would be per-rank batches.

    What remains is float summation order (DDP averages two half-batch gradients, one process
    sums a batch of 8): ~1e-7 relative per gradient. It does not stay that small: an untrained
    paper network has nearly tied values in its max pools and ReLUs near zero, so a 1e-7 change
    can route a gradient elsewhere. Measured on 2 cores: one process run with 1 and with 2
    threads differs exactly as much as 1 and 2 processes do (worst tensor 1.4% of the distance
    the weights moved, all weights together 0.3%; losses within 4e-6 relative). Hence the
    tolerance: each tensor within 10% of its own displacement, all together within 2%, losses
    within 1e-4. A bug (summed instead of averaged gradients, a wrong shard, per-process
    augmentation) moves the weights by a different 30-100%.
    """
    # Six classes, so that top-5 can miss and the two runs' val_top5 can differ (3 steps an epoch).
    make_dataset(tmp_path / "data", CLASSES, train=4, val=2)
    args = [
        "train",
        "--data",
        "data",
        "--epochs",
        "2",
        "--input-size",
        "32",
        "-j",
        "0",
        "--dropout",
        "0",
        "--aux-dropout",
        "0",
        "--polyak",
        "--print-freq",
        "1",
        # fp32: the tolerance below is float summation order; bf16 autocast (the default where
        # the CPU has it) rounds every product to 8 bits, orders of magnitude more.
        "--amp",
        "none",
        # ImageNet-normalized input: at the paper preset's Caffe scale (0-255) the untrained
        # network's first steps at this batch size are large enough to turn summation-order noise
        # into 1e-3 loss differences that vary from run to run; what is compared is DDP's
        # arithmetic, not the input scale.
        "--mean",
        "0.485",
        "0.456",
        "0.406",
        "--std",
        "0.229",
        "0.224",
        "0.225",
    ]
    run_cli(*args, "-b", "8", "--output-dir", "one", check=True)
    proc = torchrun(tmp_path, *args, "-b", "4", "--output-dir", "two", timeout=600)
    assert proc.returncode == 0, proc.stderr

    config = json.loads((tmp_path / "two" / "config.json").read_text())
    assert config["world_size"] == 2 and config["global_batch_size"] == 8
    assert proc.stderr.count("epoch 2/2") == 1  # rank 0 alone reports
    assert_same_training(tmp_path / "one", tmp_path / "two", initial(CLASSES))

    rows = {}
    for run in ("one", "two"):
        lines = (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        rows[run] = [json.loads(line) for line in lines]
    for a, b in zip(rows["one"], rows["two"], strict=True):
        assert a["step"] == b["step"] == 3 * a["epoch"]
        assert a["val_top1"] == b["val_top1"] and a["val_top5"] == b["val_top5"]
        for key in ("train_loss", "train_loss_main", "train_loss_aux1", "val_loss"):
            assert b[key] == pytest.approx(a[key], rel=1e-4), key
    ckpt = torch.load(tmp_path / "two" / "last.pt", weights_only=True)
    assert len(ckpt["rng"]) == 2 and ckpt["world_size"] == 2
