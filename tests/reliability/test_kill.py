"""Issue 6, point 1: kill training at random moments, resume each time, lose nothing.

One uninterrupted run and one run that is interrupted again and again (SIGKILL at a step,
SIGKILL inside a checkpoint write, SIGTERM, Ctrl-C on its process group, SIGKILL at a random
time), resumed each time with ``--resume auto``. The moments come from a seeded RNG, so a failure
replays. After every interruption every checkpoint on disk must load, and in the end the two
runs must hold bitwise the same weights, Polyak average and metrics: a resumed run (on the CPU,
one thread) continues exactly, whether it stopped at an epoch's end or part-way through one.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time

import pytest
import torch
from helpers.reliability import (
    FAST,
    assert_checkpoints_readable,
    finish,
    kill,
    same_tensors,
    start,
    temporaries,
    tiny_dataset,
    wait_until_stopped,
    without_timing,
)
from safetensors.torch import load_file

EPOCHS, STEPS_PER_EPOCH = 4, 3
TOTAL_STEPS = EPOCHS * STEPS_PER_EPOCH
SEED = 20140917  # the paper's arXiv date; change it to try other moments


def resumed_step(run) -> int:
    """The step the run would resume from (0 without a checkpoint)."""
    last = run / "last.pt"
    return int(torch.load(last, weights_only=True)["step"]) if last.is_file() else 0


def assert_saved_at(run, step: int, message: str) -> None:
    """A stop signal sent at ``step`` saved a checkpoint there, or one step later: "after the
    current step", and Python runs a signal handler in the main thread at its next chance,
    which can come after the step began if another thread (TensorBoard's writer) held the GIL."""
    saved = resumed_step(run)
    assert step <= saved <= step + 1 and f"step {saved})" in message, (step, saved, message)


@pytest.mark.slow
def test_killed_again_and_again_it_ends_where_an_unbroken_run_ends(tmp_path):
    tiny_dataset(tmp_path / "data")
    # --lr 0.001: the paper preset at 0.01 under the literal paper schedule (no decay in 4
    # epochs) can diverge on 6 images; what is tested here is the resume, not the rate.
    common = ["train", "--data", "data", "--epochs", EPOCHS, "--lr", "0.001", "--polyak"]
    common += ["--save-every", 2, *FAST]
    reference = start(tmp_path, *common, "--output-dir", "ref")  # runs while we break the other
    run = tmp_path / "run"
    resume = [*common, "--output-dir", "run", "--resume", "auto"]
    rng = random.Random(SEED)
    faults, checked = [], 0

    def next_step() -> int:
        first = resumed_step(run) + 1
        return rng.randint(first, min(first + 2, TOTAL_STEPS - 1))

    # 1. SIGKILL just before a random step.
    step = next_step()
    code, _, err = finish(start(tmp_path, *resume, fault=f"kill@step={step}"))
    assert code == -signal.SIGKILL, err
    faults.append(f"SIGKILL before step {step}")
    checked += assert_checkpoints_readable(run)

    # 2. SIGKILL inside a checkpoint write: after the temporary file is complete, before it
    # replaces last.pt (the process stops itself there; we kill it while it is stopped).
    before = resumed_step(run)
    proc = start(tmp_path, *resume, fault="stop@write=last.pt")
    assert wait_until_stopped(proc), finish(proc)[2]
    assert temporaries(run), "the write was not under way"
    kill(proc)
    assert finish(proc)[0] == -signal.SIGKILL
    faults.append("SIGKILL inside the write of last.pt")
    assert resumed_step(run) == before  # the old last.pt, whole
    checked += assert_checkpoints_readable(run)

    # 3. SIGTERM from outside at a random step: a checkpoint there, a clean message, 143.
    step = next_step()
    proc = start(tmp_path, *resume, fault=f"stop@step={step}")
    assert wait_until_stopped(proc), finish(proc)[2]
    kill(proc, signal.SIGTERM)
    code, _, err = finish(proc)
    assert code == 143 and "Traceback" not in err, err
    line = err.splitlines()[-1]
    assert line.startswith("googlenet train: stopped by SIGTERM: saved run/last.pt"), line
    assert "--resume auto" in line
    assert_saved_at(run, step, line)
    assert not temporaries(run)  # the resume cleaned up after the killed write
    faults.append(f"SIGTERM at step {step}")
    checked += assert_checkpoints_readable(run)

    # 4. Ctrl-C: SIGINT to the whole process group, loader workers included (-j 1): 130.
    step = next_step()
    proc = start(tmp_path, *resume, "-j", "1", fault=f"stop@step={step}")
    assert wait_until_stopped(proc), finish(proc)[2]
    os.killpg(proc.pid, signal.SIGINT)
    os.killpg(proc.pid, signal.SIGCONT)
    code, _, err = finish(proc)
    assert code == 130 and "Traceback" not in err, err
    assert err.count("SIGINT: stopping") == 1, err  # said once: the workers leave it to us
    line = err.splitlines()[-1]
    assert line.startswith("googlenet train: stopped by SIGINT: saved run/last.pt"), line
    assert_saved_at(run, step, line)
    faults.append(f"SIGINT to the process group at step {step}")
    checked += assert_checkpoints_readable(run)

    # 5. SIGKILL at a random moment: start-up, a step, a write, wherever it falls.
    proc = start(tmp_path, *resume)
    time.sleep(rng.uniform(2.0, 12.0))
    if proc.poll() is None:
        kill(proc)
        faults.append("SIGKILL at a random time")
    finish(proc)
    checked += assert_checkpoints_readable(run)

    # The last resume completes the run.
    code, _, err = finish(start(tmp_path, *resume))
    assert code == 0, err
    assert finish(reference)[0] == 0
    assert len(faults) == 5 or faults[-1] != "SIGKILL at a random time"
    for name in ("final.safetensors", "polyak.safetensors"):
        a, b = load_file(tmp_path / "ref" / name), load_file(run / name)
        assert same_tensors(a, b), f"{name} differs after {faults}"
    rows = {}
    for name in ("ref", "run"):
        lines = (tmp_path / name / "metrics.jsonl").read_text().splitlines()
        rows[name] = without_timing([json.loads(line) for line in lines])
    assert rows["ref"] == rows["run"] and len(rows["run"]) == EPOCHS
    assert not temporaries(run)
    assert checked >= 4  # checkpoints existed and were checked along the way
    print(f"{len(faults)} interruptions: {faults}; {checked} checkpoint loads checked")
