"""Same command, same weights, whatever else the machine runs (issue 24): the thread count and
what else decides the order of the float sums are fixed before the first step, recorded in the
run's configuration and reused by ``--resume``; ``--deterministic`` adds torch's deterministic
algorithms. The machine's load is simulated by faking the idle-CPU probe of a 2-CPU machine."""

from __future__ import annotations

import json

import pytest
import torch
from helpers.folders import make_dataset
from safetensors.torch import load_file

from googlenet.errors import ConfigError
from googlenet.runtime import device
from googlenet.train import TrainConfig, train

IDLE, BUSY = 2.0, 0.9  # idle CPUs the probe reports: none busy, one of two busy


@pytest.fixture
def machine(monkeypatch):
    """A 2-CPU machine whose load the test sets (``machine(idle)``); torch's global settings that
    a run changes (threads, deterministic algorithms) come back after the test."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(device, "usable_cpus", lambda: 2)

    def load(idle: float) -> None:
        monkeypatch.setattr(device, "idle_cpus", lambda *a, **k: idle)

    yield load
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


def _train(tmp_path, out: str, epochs: int = 1, given: set[str] | None = None, **flags):
    cfg = TrainConfig(
        data=str(tmp_path / "data"),
        output_dir=str(tmp_path / out),
        epochs=epochs,
        input_size=32,
        batch_size=4,
        workers=0,
        print_freq=100,
        **({"amp": "none"} | flags),  # fp32: its sums follow the thread count (bf16's did not here)
    )
    train(cfg, given=given)
    return load_file(tmp_path / out / "final.safetensors")


def _args(run) -> dict:
    return json.loads((run / "config.json").read_text())["args"]


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_the_same_command_gives_the_same_weights_under_another_load(tmp_path, machine):
    make_dataset(tmp_path / "data", train=2, val=1)
    machine(IDLE)
    idle = _train(tmp_path, "idle")
    machine(BUSY)
    busy = _train(tmp_path, "busy")
    assert _equal(idle, busy)
    assert _args(tmp_path / "idle")["threads"] == _args(tmp_path / "busy")["threads"] == 2
    # the probe's count (--threads auto, the earlier default) differs with the load, and so do
    # the weights: the comparison above can fail
    auto = _train(tmp_path, "auto", threads="auto")
    assert _args(tmp_path / "auto")["threads"] == 1
    assert not _equal(auto, busy)


@pytest.mark.slow
def test_a_resume_after_the_load_changed_ends_as_the_unbroken_run(tmp_path, machine):
    make_dataset(tmp_path / "data", train=2, val=1)
    machine(BUSY)
    step = {"schedule": "step", "lr_step_size": 1.0, "lr_gamma": 0.5}  # the same at any length
    unbroken = _train(tmp_path, "a", epochs=2, threads="auto", **step)  # 1 thread while busy
    _train(tmp_path, "b", epochs=1, threads="auto", **step)
    machine(IDLE)  # --threads auto would now pick 2: the run's recorded 1 is reused
    given = {"resume", "output_dir", "epochs"}
    resumed = _train(tmp_path, "b", epochs=2, resume="auto", given=given, **step)
    assert _args(tmp_path / "b")["threads"] == 1
    assert _equal(unbroken, resumed)
    config = _args(tmp_path / "b")
    assert (config["device"], config["amp"]) == ("cpu", "none")
    _train(tmp_path, "c", amp="auto", threads=1)  # recorded as what it resolved to on this machine
    assert _args(tmp_path / "c")["amp"] == ("none" if device.amp_dtype("cpu") is None else "bf16")


@pytest.mark.slow
def test_deterministic_runs_agree_and_say_so(tmp_path, machine):
    make_dataset(tmp_path / "data", train=2, val=1)
    machine(IDLE)
    one = _train(tmp_path, "one", deterministic=True, threads=1)
    assert torch.are_deterministic_algorithms_enabled()
    machine(BUSY)
    two = _train(tmp_path, "two", deterministic=True, threads=1)
    assert _equal(one, two)
    assert _args(tmp_path / "two")["deterministic"] is True


def test_threads_and_deterministic_are_checked():
    with pytest.raises(ConfigError, match="--threads must be a positive number or auto"):
        TrainConfig(data="d", threads=0)
    with pytest.raises(ConfigError, match="--deterministic fixes the thread count"):
        TrainConfig(data="d", threads="auto", deterministic=True)


def test_the_default_thread_count_does_not_follow_the_load(machine, caplog):
    """Every usable CPU, busy or not (the probe only warns); OMP_NUM_THREADS when set; the
    probe's count only for --threads auto."""
    machine(BUSY)
    assert device.training_threads(None, device.logging.getLogger("t")) == 2
    assert "1 of 2 CPUs are busy" in caplog.text and "--threads 1" in caplog.text
    assert device.training_threads("auto") == 1
    assert device.training_threads(3) == 3
    machine(IDLE)
    assert device.training_threads("auto") == 2


def test_deterministic_sets_cuda_flags(monkeypatch):
    """On CUDA: cuBLAS's fixed workspace, cuDNN's deterministic kernels, no benchmarking (set
    here without a GPU: the flags are plain settings)."""
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    try:
        torch.backends.cudnn.benchmark = True
        device.set_deterministic(torch.device("cuda"), True)
        import os

        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    finally:
        device.set_deterministic(torch.device("cpu"), before[0])
        torch.backends.cudnn.benchmark = before[1]


def test_the_flags_are_one_line_errors(tmp_path, monkeypatch, capsys):
    from googlenet import cli

    monkeypatch.chdir(tmp_path)
    for args, says in [
        (["--threads", "0"], "--threads"),
        (["--threads", "many"], "--threads"),
        (["--threads", "auto", "--deterministic"], "--deterministic fixes the thread count"),
    ]:
        try:
            code = cli.main(["train", "--data", "nowhere", *args])
        except SystemExit as exit:  # argparse's own errors
            code = exit.code
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err, err
        assert says in err.strip().splitlines()[-1], err


def test_a_resume_keeps_the_runs_device_and_warns_of_a_new_float_order(machine, caplog):
    """What a resume does with the recorded settings: a device that --device auto would change
    stops it (one line asking for --device); a thread count given anew is applied, with a
    warning that the run's weights will no longer be the unbroken run's."""
    from googlenet.runtime.distributed import Dist
    from googlenet.train.run import fix_float_order

    machine(IDLE)
    cfg = TrainConfig(data="d", amp="none")
    saved = {"device": "cuda", "threads": 2, "amp": "none"}
    with pytest.raises(ConfigError, match="give --device cuda to go on as it ran, or --device cpu"):
        fix_float_order(cfg, Dist(), saved, {"resume"})
    moved = fix_float_order(cfg, Dist(), saved, {"resume", "device"})
    assert (moved.device, moved.threads, moved.amp) == ("cpu", 2, "none")
    assert "--device cpu differs from the run's cuda" in caplog.text
    caplog.clear()
    fewer = fix_float_order(
        TrainConfig(data="d", amp="none", threads=1), Dist(), saved | {"device": "cpu"}, {"threads"}
    )
    assert fewer.threads == 1
    assert "--threads 1 differs from the run's 2" in caplog.text
