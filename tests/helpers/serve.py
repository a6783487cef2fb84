"""Servers the serve tests start for themselves: in this process (a uvicorn thread, fast) or
as ``googlenet serve`` in a subprocess (signals, the browser), on 127.0.0.1 and a free port."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytest.importorskip("fastapi", reason="needs the serve extra: pip install 'googlenet[serve]'")

import uvicorn  # noqa: E402

from googlenet.serve.app import Limits, create_app  # noqa: E402
from googlenet.serve.service import ModelService  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    """Poll ``url/readyz`` until it answers 200 (or the process dies, or time runs out)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}:\n{proc.stderr.read()}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready after {timeout} s")


@contextlib.contextmanager
def serve_in_thread(service: ModelService, limits: Limits | None = None) -> Iterator[str]:
    """The app under uvicorn in a thread of this process; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(
        create_app(service, limits), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url)
        yield url
    finally:
        server.should_exit = True
        thread.join(30)


@contextlib.contextmanager
def serve_process(weights: Path, *args: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """``googlenet serve --weights W ARGS`` in a subprocess; yields (base URL, process)."""
    port = free_port()
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "googlenet", "serve", "--weights", str(weights)]
    cmd += ["--port", str(port), "--no-access-log", *args]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc=proc)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
