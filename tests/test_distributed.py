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


@pytest.mark.slow
def test_a_rank_with_nothing_to_read_moves_no_statistic_and_adds_no_gradient(tmp_path):
    """Two gloo processes, one step in which rank 0 has no readable image (the loop's
    placeholder step) and rank 1 a batch of 4. Rank 0's BatchNorm statistics and counters (the
    buffers DDP broadcasts) stay exactly as they were, where the black placeholder images used to
    move them (running_var 0.99 -> 0.89 in one step); both ranks take the same step, and it is
    rank 1's gradient alone, averaged over the two: a single process training on rank 1's batch
    with loss weight 1/2 reaches the same weights."""
    from helpers.gloo import run_ranks
    from helpers.placeholder import batch, build, rank_step

    from googlenet.train.loop import train_step

    run_ranks(rank_step, tmp_path)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    buffers = [k for k in r0["before"] if "running_" in k or "num_batches" in k]
    assert buffers
    for key in buffers:
        assert torch.equal(r0["after"][key], r0["before"][key]), key

    reference = build(distributed_env=False)
    train_step(reference, *batch(), weight=0.5)
    expected = reference.raw.state_dict()
    params = [k for k in expected if k not in buffers]
    moved = 0
    for key in params:
        assert torch.equal(r0["after"][key], r1["after"][key]), key
        torch.testing.assert_close(r0["after"][key], expected[key], rtol=1e-5, atol=1e-6)
        moved += not torch.equal(r0["after"][key], r0["before"][key])
    assert moved == len(params)  # the step happened: every parameter learned from rank 1
