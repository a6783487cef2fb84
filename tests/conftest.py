"""Shared fixtures. Tests run two at a time (pytest -n 2) on two cores: one torch thread each."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def run_cli(tmp_path: Path):
    """Run ``python -m googlenet ARGS`` in a subprocess; returns the CompletedProcess."""

    def run(*args: str, check: bool = False, timeout: float = 600, env: dict | None = None):
        full_env = os.environ | {"OMP_NUM_THREADS": "1"} | (env or {})
        proc = subprocess.run(
            [sys.executable, "-m", "googlenet", *map(str, args)],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=tmp_path,
            env=full_env,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"googlenet {args} failed ({proc.returncode}):\n{proc.stderr}")
        return proc

    return run
