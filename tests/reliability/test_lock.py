"""Issue 14: one writer per run directory.

Two runs into one ``--output-dir`` (two ``train`` started together, two ``--resume auto`` that a
scheduler requeued, two ``demo``): exactly one writes, the other stops at once with one line that
names the directory and the holder, exit 2. The lock is a flock, so a holder killed with SIGKILL
never blocks the next run.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
from helpers.reliability import (
    FAST,
    assert_one_line_error,
    env,
    finish,
    kill,
    main,
    same_tensors,
    start,
    tiny_dataset,
)
from safetensors.torch import load_file

from googlenet.errors import GoogLeNetError
from googlenet.fileio import LOCK_NAME, output_lock

TRAIN = ["train", "--data", "data", "--epochs", "2", *FAST]


def test_a_second_writer_is_refused_and_told_who_holds_the_directory(tmp_path):
    run = tmp_path / "new" / "run"
    with output_lock(run, "train"):
        assert (run / LOCK_NAME).is_file()
        with pytest.raises(GoogLeNetError) as refused, output_lock(run, "train"):
            pass
    line = str(refused.value)
    assert "\n" not in line and str(run) in line, line
    assert f"pid {os.getpid()} on {socket.gethostname()}" in line and "--output-dir" in line, line
    assert not (tmp_path / "new").exists()  # nothing written: the folders it made are gone
    with output_lock(run, "train"):  # released: the next one takes it
        (run / "file").write_text("kept")
    assert sorted(p.name for p in run.iterdir()) == ["file"]  # the lock file is removed


def test_a_held_directory_stops_train_and_demo_at_once(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    tiny_dataset(tmp_path / "data")
    for argv, folder in [
        ([*TRAIN, "--output-dir", "run"], "run"),
        (["demo", "--output-dir", "demo", "--limit", "40"], "demo"),
    ]:
        with output_lock(tmp_path / folder, "test"):
            code, _, err = main(capsys, *argv)
            before = sorted(p.name for p in (tmp_path / folder).iterdir())
        line = assert_one_line_error(code, err, argv[0])
        assert f"{folder} is in use by googlenet test, pid {os.getpid()}" in line, line
        assert before == [LOCK_NAME]  # the refused command wrote nothing


def test_a_holder_killed_with_sigkill_does_not_block_the_next_one(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path / "run")],
        stdout=subprocess.PIPE,
        text=True,
        env=env(),
    )
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(GoogLeNetError, match=f"pid {holder.pid} on"):
        with output_lock(tmp_path / "run", "train"):
            pass
    kill(holder)
    assert holder.wait(timeout=30) == -signal.SIGKILL
    assert (tmp_path / "run" / LOCK_NAME).is_file()  # left behind, but no longer locked
    with output_lock(tmp_path / "run", "train"):
        pass


HOLD = """
import sys, time
from googlenet.fileio import output_lock
with output_lock(sys.argv[1], "train"):
    print("locked", flush=True)
    time.sleep(600)
"""


# ---------------------------------------------------------------------------------------------
# Real runs
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def alone(tmp_path_factory):
    """A dataset and a run made alone, the reference: its final weights."""
    root = tmp_path_factory.mktemp("lock")
    tiny_dataset(root / "data")
    code, _, err = finish(start(root, *TRAIN, "--output-dir", "alone"))
    assert code == 0, err
    return root, load_file(root / "alone" / "final.safetensors")


def _race(root, argv) -> tuple[subprocess.Popen, str]:
    """Start two ``googlenet ARGV`` together, each stopping itself before its second step; the
    one that got the lock stops there (so it surely overlaps the other), the other must end at
    once. Returns the winner (stopped) and the loser's stderr."""
    procs = [start(root, *argv, fault="stop@step=1") for _ in range(2)]
    deadline = time.monotonic() + 300
    while not any(p.poll() is not None for p in procs):
        assert time.monotonic() < deadline, "neither run was refused"
        time.sleep(0.05)
    loser = next(p for p in procs if p.poll() is not None)
    winner = next(p for p in procs if p is not loser)
    code, _, err = finish(loser)
    line = assert_one_line_error(code, err, "train")
    assert f"run is in use by googlenet train, pid {winner.pid} on" in line, line
    assert "choose another --output-dir" in line
    return winner, err


def _wins(root, winner, reference) -> None:
    kill(winner, signal.SIGCONT)
    code, _, err = finish(winner)
    assert code == 0, err
    assert same_tensors(load_file(root / "run" / "final.safetensors"), reference)
    assert not (root / "run" / LOCK_NAME).exists()


@pytest.mark.slow
def test_two_trains_started_together_one_trains_the_other_exits_2(alone):
    root, reference = alone
    winner, _ = _race(root, [*TRAIN, "--output-dir", "run"])
    _wins(root, winner, reference)
    _cleanup(root)


@pytest.mark.slow
def test_two_requeued_resumes_one_goes_on_the_other_exits_2(alone):
    root, reference = alone
    code, _, err = finish(start(root, *TRAIN, "--output-dir", "run", fault="kill@step=4"))
    assert code == -signal.SIGKILL, err  # killed in epoch 2, after the epoch 1 checkpoint
    assert (root / "run" / LOCK_NAME).is_file()  # what the dead holder left: not a lock
    winner, _ = _race(root, [*TRAIN, "--output-dir", "run", "--resume", "auto"])
    _wins(root, winner, reference)
    _cleanup(root)


@pytest.mark.slow
def test_after_a_sigkilled_holder_resume_auto_takes_over_and_ends_like_an_unbroken_run(alone):
    root, reference = alone
    argv = [*TRAIN, "--output-dir", "run", "--resume", "auto", "--save-every", "2"]
    code, _, err = finish(start(root, *argv, fault="kill@step=3"))
    assert code == -signal.SIGKILL, err
    code, _, err = finish(start(root, *argv))
    assert code == 0, err
    assert same_tensors(load_file(root / "run" / "final.safetensors"), reference)
    assert not (root / "run" / LOCK_NAME).exists()
    _cleanup(root)


def _cleanup(root) -> None:
    shutil.rmtree(root / "run", ignore_errors=True)
