"""The documentation cannot rot: every ``python`` and ``sh`` example of README.md and docs/ runs
as it is shown, the site builds with warnings as errors, and the figures quoted in the README
are BENCHMARKS.md's.

Sybil finds the fenced blocks (the MyST lexer, so that the site's ``{include}`` and directive
blocks are not mistaken for examples); each page runs in order, in a folder of its own laid out
as docs/index.md describes (``photos/``, ``cat.jpg``, ``dog.jpg``, ``model.safetensors`` and the
run it comes from, trained once per session at 32 px for one epoch). Python blocks share one
namespace per page; each shell block runs in ``bash -eu -o pipefail`` with ``googlenet`` on the
PATH. A block whose first line is ``# not run by the tests: WHY`` is skipped (the marker is
written in the block, so a reader sees it too), and must say why.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.serve import free_port
from PIL import Image
from sybil import Example, Sybil
from sybil.parsers.myst import CodeBlockParser

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MARKER = re.compile(r"\A\s*# not run by the tests:(.*)")
GENERATED = {DOCS / "api.md"}  # written by docs/conf.py at each build: no examples
PAGES = [
    ROOT / "README.md",
    *sorted(
        p
        for p in DOCS.rglob("*.md")
        if not {"_build", "_generated"} & set(p.parts) and p not in GENERATED
    ),
]


def _skipped(example: Example) -> bool:
    match = MARKER.match(example.parsed)
    if match is None:
        return False
    assert match.group(1).strip(), f"{_where(example)}: say why it is not run"
    example.namespace["__skipped__"].append(_where(example))
    return True


def _where(example: Example) -> str:
    return f"{Path(example.path).relative_to(ROOT)}, line {example.line}"


def _python(example: Example) -> None:
    if not _skipped(example):
        code = compile(example.parsed, _where(example), "exec")
        exec(code, example.namespace)  # noqa: S102 (the page's own example)


def _shell(example: Example) -> None:
    if _skipped(example):
        return
    env = example.namespace["__env__"]
    proc = subprocess.run(
        ["bash", "-eu", "-o", "pipefail", "-c", example.parsed],
        cwd=env["PWD"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,  # a block takes seconds; a server that never got ready must not hang the run
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"{_where(example)} exited {proc.returncode}:\n{example.parsed}\n"
            f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
        )


SYBIL = Sybil(
    parsers=[
        CodeBlockParser(language="python", evaluator=_python),
        CodeBlockParser(language="sh", evaluator=_shell),
    ],
    patterns=["*.md"],
)


def _picture(path: Path, colour: tuple[int, int, int], seed: int) -> None:
    """A small picture of one colour with a lighter square, so that classes can be told apart."""
    img = Image.new("RGB", (40 + seed % 3 * 4, 36 + seed % 2 * 6), colour)
    x = 4 + seed % 5 * 3
    img.paste(tuple(min(255, c + 80) for c in colour), (x, 6, x + 12, 18))
    img.save(path)


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder docs/index.md describes, with a run trained once for every page to share."""
    root = tmp_path_factory.mktemp("docs-workspace")
    colours = {"cat": (170, 90, 40), "dog": (60, 80, 150)}
    for split, n in (("train", 6), ("val", 3)):
        for name, colour in colours.items():
            (root / "photos" / split / name).mkdir(parents=True)
            for i in range(n):
                _picture(root / "photos" / split / name / f"{i}.png", colour, i)
    _picture(root / "cat.jpg", colours["cat"], 7)
    _picture(root / "dog.jpg", colours["dog"], 8)
    cmd = [sys.executable, "-m", "googlenet", "train", "--data", "photos", "--epochs", "1"]
    cmd += ["--input-size", "32", "-b", "4", "-j", "0", "--polyak", "--output-dir", "runs/photos"]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    for name in ("last.pt", "best.pt"):  # checkpoints: no page needs them, and they are large
        (root / "runs" / "photos" / name).unlink(missing_ok=True)
    shutil.copy(root / "runs" / "photos" / "best.safetensors", root / "model.safetensors")
    return root


def _page_folder(workspace: Path, tmp_path: Path) -> Path:
    """A copy of the workspace (the pictures and weights are small) that a page may write into."""
    here = tmp_path / "page"
    shutil.copytree(workspace, here)
    return here


def _bin_dir(tmp_path: Path) -> Path:
    """``googlenet`` on the PATH: this interpreter, this source tree."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "googlenet"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m googlenet "$@"\n')
    script.chmod(0o755)
    return bin_dir


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_example_of_the_page_runs(
    page: Path, workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = _page_folder(workspace, tmp_path)
    monkeypatch.chdir(here)
    path = os.pathsep.join([str(_bin_dir(tmp_path)), os.environ.get("PATH", "")])
    src = str(ROOT / "src")
    pythonpath = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)
    env = os.environ | {"PWD": str(here), "PATH": path, "PYTHONPATH": pythonpath}
    env |= {"OMP_NUM_THREADS": "1", "PORT": str(free_port()), "MPLBACKEND": "Agg"}
    document = SYBIL.parse(page)
    document.namespace.update({"__env__": env, "__skipped__": [], "__name__": "__docs__"})
    ran = 0
    try:
        for example in document:
            example.evaluate()
            ran += 1
    finally:
        pid = here / "serve.pid"  # a page that started a server and failed before stopping it
        if pid.is_file():
            subprocess.run(["kill", pid.read_text().strip()], check=False)
    skipped = document.namespace["__skipped__"]
    if ran and len(skipped) == ran:
        pytest.skip(f"every example of {page.name} needs what the tests lack: {skipped}")


def test_every_python_and_shell_block_is_an_example() -> None:
    """No example escapes the run: README.md and every page of docs/ are read, and each fenced
    ``python``/``sh`` block of their text is one Sybil example (none hidden by the lexer)."""
    assert ROOT / "README.md" in PAGES and DOCS / "guide" / "train.md" in PAGES
    fence = re.compile(r"(?m)^```(python|sh)\s*$")
    total = 0
    for page in PAGES:
        found = len(fence.findall(page.read_text()))
        assert len(list(SYBIL.parse(page))) == found, page
        total += found
    assert total >= 30  # the pages' examples, not an empty glob


def test_the_readme_quotes_benchmarks_figures_verbatim() -> None:
    """Each speed ratio (``4.30x``) and accuracy (``98.61%``) of the README's headline figures,
    and each measured ratio a page quotes, is one BENCHMARKS.md states, so that the two cannot
    disagree (the pages include BENCHMARKS.md's tables rather than copy them)."""
    benchmarks = (ROOT / "BENCHMARKS.md").read_text()
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Headline figures", 1)[1].split("\n## ", 1)[0]
    figures = re.findall(r"\d+(?:\.\d+)?(?:x|%)", section)
    assert len(figures) >= 3, section
    for page in PAGES:
        figures += re.findall(r"\b\d+\.\d+x\b", page.read_text())
    missing = [f for f in figures if f not in benchmarks]
    assert not missing, f"figures not in BENCHMARKS.md: {missing}"


def test_the_readme_lists_every_subcommand_once() -> None:
    """The README's table of subcommands is the parser's: a new one cannot be left out."""
    from googlenet.cli import COMMANDS

    readme = (ROOT / "README.md").read_text()
    listed = re.findall(r"(?m)^\| `googlenet ([a-z-]+)` \|", readme)
    assert sorted(listed) == sorted(COMMANDS)


@pytest.mark.slow
def test_the_site_builds_offline_with_warnings_as_errors(tmp_path: Path) -> None:
    """What `make docs` runs (into a temporary folder): a broken link, a missing reference or an
    undocumented public name fails it; the pages load nothing from another host."""
    out = tmp_path / "html"
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-b", "html"]
    proc = subprocess.run(
        [*cmd, "-d", str(tmp_path / "doctrees"), str(DOCS), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    api = (out / "api.html").read_text()
    import googlenet

    for name in googlenet.__all__:
        assert f'id="googlenet.{name}"' in api, name
    assert "--max-wait-ms" in (out / "cli.html").read_text()  # serve's flags, from its parser
    remote = re.compile(r"""<(?:script|link|img)[^>]+(?:src|href)=["']https?://""")
    for page in out.rglob("*.html"):
        assert not remote.search(page.read_text()), page
    for css in out.rglob("*.css"):
        assert "url(http" not in css.read_text().replace(" ", ""), css
