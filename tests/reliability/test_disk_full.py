"""Issue 6, point 6: the disk fills up, or the output directory is read-only, during a checkpoint.

Three ways to make the write fail: a real limit on file size (``RLIMIT_FSIZE``, so that the real
writers, ``torch.save`` and safetensors, fail the way they do on a full disk: no root, no tmpfs
needed), the ``GOOGLENET_FAULT`` hook raising ENOSPC/EROFS inside the atomic write, and a real
``chmod 555`` directory where the tests do not run as root (root writes anyway). Each time: one
clear line, exit code 2, the previous checkpoint untouched and loadable, no temporary file left;
and once there is room again, ``--resume auto`` finishes the run.
"""

from __future__ import annotations

import resource
import signal
import subprocess
import sys

import pytest
import torch
from helpers.reliability import (
    FAST,
    assert_checkpoints_readable,
    assert_one_line_error,
    digest,
    env,
    is_root,
    main,
    temporaries,
    tiny_dataset,
)

ARGS = ["train", "--data", "data", "--output-dir", "run", *FAST]


def one_epoch(capsys, tmp_path) -> str:
    """A run of one epoch; returns the digest of its last.pt."""
    tiny_dataset(tmp_path / "data")
    code, _, err = main(capsys, *ARGS, "--epochs", "1")
    assert code == 0, err
    return digest(tmp_path / "run" / "last.pt")


def assert_intact(run, before: str) -> None:
    assert digest(run / "last.pt") == before  # the previous checkpoint, byte for byte
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] == 1
    assert_checkpoints_readable(run)
    assert not temporaries(run)


def limit_file_size():
    """In the child: files may not grow past 1 MB (a checkpoint is ~80 MB); writes fail with
    EFBIG instead of the process dying of SIGXFSZ."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, resource.RLIM_INFINITY))


@pytest.mark.slow
def test_a_disk_that_fills_up_under_the_real_writers(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    before = one_epoch(capsys, tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "googlenet", *ARGS, "--epochs", "2", "--resume", "auto"],
        cwd=tmp_path,
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=limit_file_size,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("googlenet train: error: cannot write run/"), line
    assert "File too large" in line and "run/last.pt (the end of epoch 1, step 3) is intact" in line
    assert "--resume auto" in line
    assert_intact(tmp_path / "run", before)
    code, _, err = main(capsys, *ARGS, "--epochs", "2", "--resume", "auto")  # room again
    assert code == 0, err
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=True)["epoch"] == 2


@pytest.mark.parametrize(
    "fault, message",
    [
        ("ENOSPC@write=last.pt", "No space left on device"),
        ("EROFS@write=last.pt", "Read-only file system"),
        ("EACCES@write=metrics.csv", "Permission denied"),
        ("ENOSPC@write=metrics.jsonl", "No space left on device"),
    ],
)
def test_a_failed_checkpoint_write_keeps_the_previous_one(
    fault, message, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    before = one_epoch(capsys, tmp_path)
    monkeypatch.setenv("GOOGLENET_FAULT", fault)
    code, _, err = main(capsys, *ARGS, "--epochs", "2", "--resume", "auto")
    line = assert_one_line_error(code, err, "train")
    assert message in line and "run/last.pt (the end of epoch 1, step 3) is intact" in line
    assert_intact(tmp_path / "run", before)


def test_a_full_disk_part_way_through_an_epoch_and_at_the_very_end(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    tiny_dataset(tmp_path / "data")
    monkeypatch.setenv("GOOGLENET_FAULT", "ENOSPC@write=last.pt")
    code, _, err = main(capsys, *ARGS, "--epochs", "1", "--save-every", "1")
    line = assert_one_line_error(code, err, "train")  # the first save, after step 1
    assert "No space left" in line and "no earlier checkpoint was written" in line
    assert not (tmp_path / "run" / "last.pt").exists() and not temporaries(tmp_path / "run")

    monkeypatch.setenv("GOOGLENET_FAULT", "ENOSPC@write=final.safetensors")
    code, _, err = main(capsys, *ARGS, "--epochs", "1", "--resume", "auto")
    assert "No space left" in assert_one_line_error(code, err, "train")
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=True)["epoch"] == 1
    monkeypatch.delenv("GOOGLENET_FAULT")
    code, _, err = main(capsys, *ARGS, "--epochs", "1", "--resume", "auto")  # nothing lost
    assert code == 0 and (tmp_path / "run" / "final.safetensors").is_file(), err


def test_a_read_only_output_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    before = one_epoch(capsys, tmp_path)
    run = tmp_path / "run"
    if is_root():  # root writes into a 555 directory: inject what the kernel would say
        monkeypatch.setenv("GOOGLENET_FAULT", "EACCES@write=config.json")
    run.chmod(0o555)
    try:
        code, _, err = main(capsys, *ARGS, "--epochs", "2", "--resume", "auto")
    finally:
        run.chmod(0o755)
    line = assert_one_line_error(code, err, "train")
    assert "cannot write run/config.json: Permission denied" in line
    assert_intact(run, before)
