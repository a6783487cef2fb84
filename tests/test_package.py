"""The package as a user gets it: ``python -m build`` makes an sdist and a wheel, their metadata
passes ``twine check --strict``, and the wheel (not the source tree, not an editable install)
installed with the serve extra into a fresh virtual environment runs ``googlenet --version``,
``summary``, ``predict`` and ``serve`` (its page's static files).

The fresh environment is made by uv: it resolves the wheel's dependencies itself (against the
versions of this environment, as constraints, so that torch is not re-resolved to another
build) and hard-links what it has cached, so only the first run pays for unpacking torch
(measured on the 2-core machine: ~40 s cold, a few seconds warm). Marked slow either way.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from importlib import metadata
from pathlib import Path

import httpx
import pytest
from helpers.serve import free_port, wait_ready
from PIL import Image

import googlenet

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "src" / "googlenet" / "serve" / "static"

pytestmark = pytest.mark.xdist_group("package")


def _run(cmd: list[str], cwd: Path, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, **kw)
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


def _clean_env() -> dict[str, str]:
    """This environment minus what would make the fresh one import the source tree."""
    drop = {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}
    return {k: v for k, v in os.environ.items() if k not in drop} | {"OMP_NUM_THREADS": "1"}


def test_the_version_is_the_package_metadata(capsys: pytest.CaptureFixture[str]) -> None:
    """One source for the version: pyproject.toml, through the installed metadata."""
    from googlenet.cli import main

    assert googlenet.__version__ == metadata.version("googlenet")
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"googlenet {googlenet.__version__}"


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist and the wheel, built from the source tree as a release would be."""
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], cwd=out)
    return out


@pytest.fixture(scope="module")
def venv(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel and its serve extra installed by uv."""
    where = tmp_path_factory.mktemp("venv")
    env = _clean_env()
    # torch and torchvision as installed here: another build would be gigabytes more to fetch
    constraints = where / "constraints.txt"
    pins = [f"{name}=={metadata.version(name)}" for name in ("torch", "torchvision")]
    constraints.write_text("\n".join(pins) + "\n")
    uv = [sys.executable, "-m", "uv"]
    _run([*uv, "venv", "--quiet", "--python", sys.executable, str(where / "env")], where, env=env)
    (wheel,) = dist.glob("*.whl")
    _run(
        [*uv, "pip", "install", "--quiet", "--python", str(where / "env" / "bin" / "python"),
         "--constraints", str(constraints), f"{wheel}[serve]"],
        where,
        env=env,
    )  # fmt: skip
    return where / "env"


@pytest.mark.slow
def test_sdist_and_wheel_pass_twine_check_and_carry_what_they_should(dist: Path) -> None:
    (wheel,) = dist.glob("googlenet-*.whl")
    (sdist,) = dist.glob("googlenet-*.tar.gz")
    _run([sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist)], dist)
    names = zipfile.ZipFile(wheel).namelist()
    assert "googlenet/py.typed" in names
    assert {f"googlenet/serve/static/{f.name}" for f in STATIC.iterdir()} <= set(names)
    assert not any(name.startswith(("tests/", "docs/")) for name in names)
    version = metadata.version("googlenet")
    assert wheel.name.startswith(f"googlenet-{version}-")


@pytest.mark.slow
def test_the_installed_wheel_runs_version_summary_and_predict(venv: Path, tmp_path: Path) -> None:
    exe = venv / "bin" / "googlenet"
    env = _clean_env()
    where = _run(
        [str(venv / "bin" / "python"), "-c", "import googlenet; print(googlenet.__file__)"],
        tmp_path,
        env=env,
    ).stdout.strip()
    assert Path(where).is_relative_to(venv), where  # the wheel, not the source tree
    version = _run([str(exe), "--version"], tmp_path, env=env).stdout.strip()
    assert version == f"googlenet {metadata.version('googlenet')}"
    summary = _run([str(exe), "summary", "--preset", "paper"], tmp_path, env=env).stdout
    assert "6,998,552" in summary  # the paper preset's parameters without the aux heads

    weights = tmp_path / "tiny.safetensors"
    names = ["cat", "dog", "fox"]
    model = googlenet.create_model(
        "paper", num_classes=3, input_size=32, aux_logits=False, class_names=names
    )
    googlenet.save_weights(model, weights)
    Image.new("RGB", (48, 40), (200, 120, 40)).save(tmp_path / "orange.png")
    out = _run(
        [str(exe), "predict", "--weights", str(weights), "orange.png", "--format", "json"],
        tmp_path,
        env=env,
    ).stdout
    (row,) = json.loads(out)
    assert row["path"].endswith("orange.png")
    assert {c["class"] for c in row["topk"]} == set(names)


@pytest.mark.slow
def test_the_installed_wheel_serves_its_page(venv: Path, tmp_path: Path) -> None:
    weights = tmp_path / "tiny.safetensors"
    googlenet.save_weights(
        googlenet.create_model("paper", num_classes=2, input_size=32, aux_logits=False), weights
    )
    port = free_port()
    cmd = [str(venv / "bin" / "googlenet"), "serve", "--weights", str(weights), "--port", str(port)]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=_clean_env(), **pipes)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, timeout=120, proc=proc)
        page = httpx.get(f"{url}/", timeout=10)
        assert page.status_code == 200 and "/static/app.js" in page.text
        for file in sorted(STATIC.iterdir()):
            got = httpx.get(f"{url}/static/{file.name}", timeout=10)
            assert got.status_code == 200, file.name
            assert got.content == file.read_bytes(), file.name
    finally:
        proc.send_signal(signal.SIGTERM)
        start = time.monotonic()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        assert time.monotonic() - start < 30
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
