"""Helpers of the reliability suite: tiny runs, processes to kill, files to check, bad files.

Runs are as small as the paper network allows: 32 px inputs (its minimum is 31), 2 classes of 3
training images, batches of 2 (3 steps an epoch), no loader workers. Everything that can run in
this process does (``cli.main``); what must be killed or signalled runs as a subprocess.
"""

from __future__ import annotations

import hashlib
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import torch

import googlenet
from googlenet import cli
from helpers.folders import make_dataset

FAST = ["--input-size", "32", "-b", "2", "-j", "0", "--print-freq", "1"]
CLASSES = ("a", "b")
TIMING = {"images_per_s", "epoch_time_s"}  # metrics that differ between equal runs


def tiny_dataset(root: Path, train: int = 3, val: int = 1) -> Path:
    """``root/train/{a,b}`` with ``train`` images each (3 steps of 2 an epoch) and ``root/val``."""
    return make_dataset(root, classes=CLASSES, train=train, val=val)


def main(capsys, *args) -> tuple[int, str, str]:
    """``googlenet ARGS`` in this process: (exit code, stdout, stderr)."""
    try:
        code = cli.main([str(a) for a in args])
    except SystemExit as exit:  # argparse
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err: str, command: str | None = None, exit_code: int = 2) -> str:
    """A user mistake: the exit code, no traceback, and one line on stderr; returns the line."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == exit_code, (code, err)
    assert len(lines) == 1, err
    prefix = f"googlenet {command}: error: " if command else "googlenet"
    assert lines[0].startswith(prefix), lines[0]
    return lines[0]


def checkpoint_files(run: Path) -> list[Path]:
    return sorted(p for p in run.glob("*") if p.suffix in (".pt", ".safetensors"))


def assert_checkpoints_readable(run: Path) -> int:
    """Every checkpoint and weights file in ``run`` loads safely and completely; returns how many
    there were."""
    files = checkpoint_files(run)
    for path in files:
        if path.suffix == ".pt":
            ckpt = torch.load(path, weights_only=True)
            assert {"model", "optimizer", "epoch", "step", "rng"} <= set(ckpt), path
        model = googlenet.load(path)
        assert all(torch.isfinite(p).all() for p in model.parameters()), path
    return len(files)


def temporaries(run: Path) -> list[Path]:
    """Temporary files of atomic writes (``.last.pt.XXXXXXXX.tmp``)."""
    return sorted(run.glob(".*.tmp"))


def same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def without_timing(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------


def env(fault: str | None = None) -> dict[str, str]:
    """The environment of a subprocess: one torch thread, ``GOOGLENET_FAULT`` if given."""
    e = os.environ | {"OMP_NUM_THREADS": "1"}
    e.pop("GOOGLENET_FAULT", None)
    if fault:
        e["GOOGLENET_FAULT"] = fault
    return e


def start(cwd: Path, *args, fault: str | None = None, **popen) -> subprocess.Popen:
    """``python -m googlenet ARGS`` in a new session (signals to its group reach only it)."""
    return subprocess.Popen(
        [sys.executable, "-m", "googlenet", *map(str, args)],
        cwd=cwd,
        env=env(fault),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        **popen,
    )


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def wait_until_stopped(proc: subprocess.Popen, timeout: float = 300) -> bool:
    """Wait until ``proc`` is stopped (SIGSTOP, by a ``stop@...`` fault); False if it ended
    first. Reads /proc, so that the process is not reaped behind Popen's back."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            stat = Path(f"/proc/{proc.pid}/stat").read_text()
        except OSError:
            return False
        if stat.rsplit(")", 1)[1].split()[0] in ("T", "t"):
            return True
        time.sleep(0.05)
    raise TimeoutError(f"process {proc.pid} neither stopped nor ended in {timeout} s")


def kill(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to ``proc`` (by its id, never by name) and continue it if stopped."""
    os.kill(proc.pid, sig)
    if sig != signal.SIGKILL:
        os.kill(proc.pid, signal.SIGCONT)


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def png(width: int, height: int, bit_depth: int, color_type: int, raw: bytes) -> bytes:
    """A PNG file from raw scanlines (each led by its filter byte), written by hand so that it
    can say anything: 16-bit RGB that PIL cannot write, or dimensions its data do not have."""

    def chunk(tag: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(tag + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def digest(path: Path) -> str:
    """SHA-256 of a file: "byte for byte the same file" in one comparison."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def torchrun(cwd: Path, *args, restarts: int = 0, fault: str | None = None, timeout: float = 300):
    """``torchrun --nproc-per-node 2 -m googlenet ARGS`` on gloo; a CompletedProcess. The timeout
    is what turns a hang (ranks waiting for each other forever) into a failure."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "--max-restarts",
        str(restarts),
        "-m",
        "googlenet",
        *map(str, args),
    ]
    return subprocess.run(
        command, cwd=cwd, env=env(fault), capture_output=True, text=True, timeout=timeout
    )
