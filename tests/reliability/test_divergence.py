"""Issue 6, point 7: a run that diverges stops, says what to change, and keeps its last good
checkpoint; following the advice finishes the run."""

from __future__ import annotations

import pytest
import torch
from helpers.reliability import (
    FAST,
    assert_checkpoints_readable,
    assert_one_line_error,
    digest,
    main,
    tiny_dataset,
)

ARGS = ["train", "--data", "data", "--output-dir", "run", *FAST]


@pytest.mark.slow
def test_an_exploding_learning_rate_stops_and_the_advice_works(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    tiny_dataset(tmp_path / "data")
    code, _, err = main(capsys, *ARGS, "--epochs", "1")
    assert code == 0, err
    before = digest(tmp_path / "run" / "last.pt")

    # The rate explodes (x1e14) on resuming, with a checkpoint due after every step.
    args = [*ARGS, "--epochs", "3", "--resume", "auto", "--save-every", "1"]
    code, _, err = main(capsys, *args, "--lr", "1e12")
    line = assert_one_line_error(code, err, "train")
    assert "NaN or infinite in epoch 2" in line and "diverged" in line
    assert "run/last.pt (the end of epoch 1, step 3) is the last good checkpoint" in line
    assert "--lr 1e+11" in line and "--warmup-epochs" in line and "--resume auto" in line
    assert digest(tmp_path / "run" / "last.pt") == before  # nothing NaN was saved over it
    assert_checkpoints_readable(tmp_path / "run")

    code, _, err = main(capsys, *args, "--lr", "0.001")  # what the message says to do
    assert code == 0, err
    final = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert final["epoch"] == 3 and all(torch.isfinite(v).all() for v in final["model"].values())


def test_a_fresh_run_that_diverges_says_there_is_no_checkpoint(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    tiny_dataset(tmp_path / "data")
    code, _, err = main(capsys, *ARGS, "--epochs", "1", "--lr", "1e12")
    line = assert_one_line_error(code, err, "train")
    assert "no checkpoint had been written yet" in line and "--lr" in line
    assert not (tmp_path / "run" / "last.pt").exists()


def test_weights_that_turn_infinite_while_the_loss_is_finite_are_never_saved(
    tmp_path, monkeypatch, capsys
):
    """The loss a step reports is computed before its update: the last step of an epoch can
    leave infinite weights behind a finite loss. The check before saving looks at the weights."""
    monkeypatch.chdir(tmp_path)
    tiny_dataset(tmp_path / "data")
    code, _, err = main(capsys, *ARGS, "--epochs", "1")
    assert code == 0, err
    before = digest(tmp_path / "run" / "last.pt")

    step = torch.optim.SGD.step
    calls = []

    def poisoning_step(self, *args, **kwargs):
        result = step(self, *args, **kwargs)
        calls.append(1)
        if len(calls) == 3:  # the last step of epoch 2
            with torch.no_grad():
                self.param_groups[0]["params"][0].fill_(float("inf"))
        return result

    monkeypatch.setattr(torch.optim.SGD, "step", poisoning_step)
    code, _, err = main(capsys, *ARGS, "--epochs", "2", "--resume", "auto")
    line = assert_one_line_error(code, err, "train")
    assert "diverged" in line and "epoch 2" in line
    assert digest(tmp_path / "run" / "last.pt") == before
    assert_checkpoints_readable(tmp_path / "run")
