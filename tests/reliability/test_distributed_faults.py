"""Issue 6, point 2: faults under torchrun (2 CPU processes on gloo).

A rank killed mid-epoch: torchrun restarts the job (``--max-restarts 1``), which resumes from the
last checkpoint and completes. A rank whose whole batch is unreadable while the other has images
(that used to leave DDP waiting forever), a stop signal that reaches one rank only, ``--strict``
on one rank's bad image and a mistake in the arguments: the ranks agree, and what they say is
said once.
"""

from __future__ import annotations

import json
import re

import pytest
import torch
from helpers.folders import make_dataset
from helpers.reliability import assert_checkpoints_readable, tiny_dataset, torchrun

from googlenet import data

ARGS = ["--input-size", "32", "-j", "0", "--print-freq", "1"]


def lines(text: str, start: str) -> list[str]:
    """The lines that start with ``start`` once the log's ``HH:MM:SS`` stamp is taken off."""
    plain = (re.sub(r"^\d\d:\d\d:\d\d ", "", line) for line in text.splitlines())
    return [line for line in plain if line.startswith(start)]


@pytest.mark.slow
def test_a_rank_killed_mid_epoch_the_job_restarts_from_its_checkpoint(tmp_path):
    tiny_dataset(tmp_path / "data")  # 6 images: 3 steps of 1 image per rank
    proc = torchrun(
        tmp_path,
        *["train", "--data", "data", "--output-dir", "run", "--resume", "auto", *ARGS],
        *["-b", "1", "--epochs", "2", "--save-every", "2"],
        restarts=1,
        fault="kill@step=4,rank=1,attempt=0",  # rank 1 dies before step 4 of the first attempt
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "exitcode: -9" in proc.stderr  # torchrun saw the SIGKILL and restarted
    resumed = lines(proc.stderr, "googlenet: resuming from")
    assert resumed == ["googlenet: resuming from run/last.pt (batch 1 of 3 of epoch 2, step 4)"]
    assert "Traceback" not in "".join(lines(proc.stderr, "googlenet"))
    run = tmp_path / "run"
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and rows[-1]["step"] == 6
    ckpt = torch.load(run / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 2 and ckpt["world_size"] == 2 and len(ckpt["rng"]) == 2
    assert assert_checkpoints_readable(run) >= 4


def poison_first_batch_of_rank1(root) -> list[str]:
    """Overwrite the images of rank 1's first batch (epoch 0, 2 per rank) with garbage."""
    dataset = data.ImageFolder(root, None)
    sampler = data.TrainSampler(dataset, 2, 1, shuffle=True, seed=0)
    sampler.set_epoch(0)
    bad = [dataset.samples[i][0] for i, _ in list(sampler)[:2]]
    for path in bad:
        with open(path, "wb") as f:
            f.write(b"not an image")
    return bad


@pytest.mark.slow
def test_ranks_agree_on_an_empty_batch_and_on_a_signal_that_reached_one_of_them(tmp_path):
    make_dataset(tmp_path / "data", classes=("a", "b"), train=4, val=1)  # 2 steps of 2 per rank
    bad = poison_first_batch_of_rank1(tmp_path / "data" / "train")
    train = ["train", "--data", "data", "--output-dir", "run", "-b", "2", "--epochs", "2", *ARGS]
    # Step 0: rank 1 has no readable image (it joins the step with weight 0). Step 1: SIGTERM
    # reaches rank 1 only; both stop there, with one checkpoint holding both ranks' RNG.
    proc = torchrun(tmp_path, *train, fault="sigterm@step=1,rank=1", timeout=240)
    assert proc.returncode != 0
    stopped = lines(proc.stderr, "googlenet train: stopped by SIGTERM")
    assert len(stopped) == 1, proc.stderr[-3000:]  # rank 0 alone says it
    assert "exitcode: 143" in proc.stderr
    for path in bad:
        assert f"skipped {path.removeprefix(str(tmp_path) + '/')}" in proc.stderr
    ckpt = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert len(ckpt["rng"]) == 2 and f"step {ckpt['step']})" in stopped[0]
    if ckpt["step"] == 1:  # stopped at the step signalled (else, at most one step later)
        assert "saved run/last.pt (batch 1 of 2 of epoch 1, step 1)" in stopped[0]
        assert ckpt["batch"] == 1 and ckpt["epoch_sums"][1][6] == 2  # rank 1 counted its two
    else:
        assert ckpt["step"] == 2 and ckpt["epoch"] == 1 and ckpt["metrics"][0]["skipped"] == 2

    proc = torchrun(tmp_path, *train, "--resume", "auto", timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4] and rows[0]["skipped"] == 2
    assert assert_checkpoints_readable(tmp_path / "run") >= 3


@pytest.mark.slow
def test_strict_and_user_errors_under_torchrun_are_said_once(tmp_path):
    make_dataset(tmp_path / "data", classes=("a", "b"), train=4, val=1)
    bad = poison_first_batch_of_rank1(tmp_path / "data" / "train")
    proc = torchrun(
        tmp_path, "train", "--data", "data", "--output-dir", "run", "-b", "2", "--strict", *ARGS
    )
    errors = lines(proc.stderr, "googlenet train: error:")
    assert len(errors) == 1, proc.stderr[-3000:]  # rank 1 saw it, rank 0 says it, both stop
    assert "--strict" in errors[0] and any(b.removeprefix(f"{tmp_path}/") in errors[0] for b in bad)
    assert "Traceback" not in "".join(lines(proc.stderr, "googlenet"))
    assert not (tmp_path / "run" / "last.pt").exists()

    proc = torchrun(tmp_path, "train", "--data", "missing", "--epochs", "1", *ARGS)
    assert lines(proc.stderr, "googlenet train: error:") == [
        "googlenet train: error: data directory missing does not exist"
    ]
    proc = torchrun(tmp_path, "train", "--data", "data", "--epochs", "0", *ARGS)
    assert len(lines(proc.stderr, "googlenet train: error:")) == 1, proc.stderr[-3000:]
