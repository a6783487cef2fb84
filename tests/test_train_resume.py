"""``--resume`` keeps the run's settings (issue 17): flags not typed come from the checkpoint, a
change of meaning is refused, a longer run continues its learning rate."""

from __future__ import annotations

import json

import pytest
import torch
from helpers.folders import FAST, make_dataset, train_args
from safetensors.torch import load_file

# a run whose settings differ from every default, so that resuming with defaults would show
SETTINGS = ["--polyak", "--schedule", "cosine", "--lr", "0.004", "--seed", "3"]


def rows(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_resume_with_only_the_output_dir_continues_exactly(tmp_path, run_cli):
    make_dataset(tmp_path / "data")
    run_cli(*train_args("data", "a", 2, *SETTINGS), check=True)
    # stopped by SIGTERM before the first step of epoch 2 (3 steps per epoch), with a checkpoint
    env = {"GOOGLENET_FAULT": "sigterm@step=3"}
    stopped = run_cli(*train_args("data", "b", 2, *SETTINGS), env=env)
    assert stopped.returncode != 0 and "continue with --resume auto" in stopped.stderr
    run_cli("train", "--resume", "auto", "--output-dir", "b", check=True)
    for name in ("final.safetensors", "polyak.safetensors"):
        a, b = load_file(tmp_path / "a" / name), load_file(tmp_path / "b" / name)
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert [r["lr"] for r in rows(tmp_path / "a")] == [r["lr"] for r in rows(tmp_path / "b")]


@pytest.mark.slow
def test_resume_refuses_what_would_change_the_run_and_extends_epochs(tmp_path, run_cli):
    make_dataset(tmp_path / "data")
    run_cli(*train_args("data", "run", 2, *SETTINGS), check=True)
    refused = run_cli("train", "--resume", "auto", "--output-dir", "run", "-b", "2")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    line = refused.stderr.strip().splitlines()[-1]
    assert "--batch-size 2 differs from the run's --batch-size 4" in line

    extended = run_cli(
        "train", "--resume", "auto", "--output-dir", "run", "--epochs", "4", *FAST[4:6], check=True
    )
    assert "the run had 2 epoch(s), now 4" in extended.stderr
    lrs = [r["lr"] for r in rows(tmp_path / "run")]
    assert len(lrs) == 4 and all(a > b > 0 for a, b in zip(lrs, lrs[1:], strict=False)), lrs
    # the rate goes on from where the 2-epoch cosine left it, not back up to --lr
    assert lrs[2] < lrs[1] and lrs[2] < 0.004 * 0.1
    config = json.loads((tmp_path / "run" / "config.json").read_text())["args"]
    assert config["lr"] == 0.004 and config["seed"] == 3 and config["schedule"] == "cosine"


def test_a_checkpoint_without_a_schedule_version_meant_the_scaled_rule_by_paper():
    """Before "paper" became the literal rule, it named the scaled one; a checkpoint says which
    by its "scheduler" entry's version (absent before). Today's checkpoints keep "paper"."""
    from googlenet.train.config import SCHEDULE_VERSION, saved_args

    old = {"args": {"schedule": "paper", "lr": 0.01}, "scheduler": {"schedule": "paper"}}
    # ... and stepped with PyTorch's momentum (Caffe's, now the paper preset's, came with v2)
    assert saved_args(old) == {"schedule": "paper-scaled", "lr": 0.01, "momentum_style": "pytorch"}
    new = {"args": {"schedule": "paper"}, "scheduler": {"version": SCHEDULE_VERSION}}
    assert saved_args(new)["schedule"] == "paper"
    assert saved_args({"args": {"schedule": "cosine"}})["schedule"] == "cosine"


@pytest.mark.slow
def test_an_old_paper_run_resumes_on_the_scaled_rule(tmp_path, run_cli):
    """A run stopped part-way, its checkpoint rewritten as an older version wrote it (schedule
    "paper", no version, no momentum style), resumes exactly as the same run under
    "paper-scaled" with PyTorch's momentum never stopped."""
    make_dataset(tmp_path / "data")
    scaled = ["--schedule", "paper-scaled", "--momentum-style", "pytorch", "--seed", "3"]
    run_cli(*train_args("data", "a", 2, *scaled), check=True)
    env = {"GOOGLENET_FAULT": "sigterm@step=3"}
    assert run_cli(*train_args("data", "b", 2, *scaled), env=env).returncode != 0
    ckpt = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    ckpt["args"]["schedule"] = "paper"
    for new_field in ("momentum_style", "average", "polyak_start"):
        del ckpt["args"][new_field]
    del ckpt["scheduler"]["version"]
    ckpt["scheduler"]["schedule"] = "paper"
    torch.save(ckpt, tmp_path / "b" / "last.pt")
    run_cli("train", "--resume", "auto", "--output-dir", "b", check=True)
    a, b = (
        load_file(tmp_path / "a" / "final.safetensors"),
        load_file(tmp_path / "b" / "final.safetensors"),
    )
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["lr"] for r in rows(tmp_path / "a")] == [r["lr"] for r in rows(tmp_path / "b")]
    config = json.loads((tmp_path / "b" / "config.json").read_text())["args"]
    assert config["schedule"] == "paper-scaled"
