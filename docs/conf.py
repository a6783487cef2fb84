"""Sphinx configuration of the googlenet documentation (`make docs`).

Why Sphinx: it is actively released (MkDocs 1.x has had no release since August 2024 and
Material's authors moved to a new generator), autodoc and sphinx-argparse generate the API and
command-line references from the code, and `-W -n` turns a broken link, a missing reference or
an undocumented public name into a failed build. Pages are Markdown (MyST), so the same fenced
examples are run by the test suite (tests/test_docs.py, Sybil).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # the source tree, also when not installed

import googlenet  # noqa: E402

project = "googlenet"
author = "the googlenet authors"
release = version = googlenet.__version__
copyright = "the googlenet authors"  # noqa: A001 (Sphinx's name)

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinxarg.ext",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "_generated"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3  # [text](page.md#a-heading) links are checked
suppress_warnings = ["myst.xref_ambiguous"]

html_theme = "furo"
html_title = f"googlenet {release}"
# Offline: the theme's own CSS and scripts only (no fonts, no analytics, no MathJax from a CDN).
html_permalinks_icon = "#"
html_show_sourcelink = False
html_copy_source = False

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "show-inheritance": True}
add_module_names = False

# Every reference into googlenet must resolve (-n); the libraries' own types are not in this
# site and there is no network to fetch their inventories.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(?!googlenet\b).*"),  # torch.*, PIL.*, numpy, pathlib, typing, ...
    (r"py:.*", r"googlenet\.(?!(" + "|".join(googlenet.__all__) + r")\b).*"),  # internals
]


def _public_names() -> list[str]:
    return sorted(googlenet.__all__, key=str.lower)


def _api_page(app) -> None:
    """docs/api.md from ``googlenet.__all__``: one entry per public name, so that a name added
    to the package appears here without anyone editing the page; a name without a docstring
    (or a ``#:`` comment, for constants) fails the build."""
    from sphinx.util import logging

    log = logging.getLogger(__name__)
    lines = [
        "# API reference",
        "",
        "Generated from the docstrings of what `import googlenet` exports (`googlenet.__all__`);",
        "the command-line tools are in the [command-line reference](cli.md).",
        "",
        "```{eval-rst}",
        ".. module:: googlenet",
        "   :no-index:",
        "",
    ]
    for name in _public_names():
        obj = getattr(googlenet, name)
        if isinstance(obj, type):
            kind = "autoexception" if issubclass(obj, BaseException) else "autoclass"
        elif callable(obj):
            kind = "autofunction"
        else:  # a constant: its ``#:`` comment where it is defined
            doc = _doc_comment(name)
            if not doc:
                log.warning("googlenet.%s is public but has no #: doc comment", name)
            lines += [f".. data:: {name}", ""]  # in the current module: googlenet
            lines += [f"   {line}" for line in doc] + [""]
            continue
        if not (obj.__doc__ or "").strip():
            log.warning("googlenet.%s is public but has no docstring", name)
        lines += [f".. {kind}:: googlenet.{name}", ""]
    lines.append("```")
    _write_if_changed(Path(app.srcdir) / "api.md", "\n".join(lines) + "\n")


def _doc_comment(name: str) -> list[str]:
    """The ``#:`` comment above ``name`` in the module that defines it."""
    from sphinx.pycode import ModuleAnalyzer

    for modname in ("googlenet", "googlenet.model"):
        docs = ModuleAnalyzer.for_module(modname).find_attr_docs()
        if ("", name) in docs:
            return [line for line in docs["", name] if line.strip()]
    return []


def _commands_page(app) -> None:
    """docs/_generated/commands.md, included by cli.md: a heading (a link target, such as
    ``cli.md#googlenet-train``) and the parser's own reference for every subcommand of
    ``googlenet.cli.COMMANDS``, so that a new subcommand appears without editing a page."""
    from googlenet.cli import COMMANDS

    lines = ["### googlenet", "", "```{argparse}", ":module: googlenet.cli",
             ":func: build_parser", ":prog: googlenet", ":nosubcommands:", "```", ""]  # fmt: skip
    for name in COMMANDS:
        lines += [f"### googlenet {name}", "", "```{argparse}", ":module: googlenet.cli"]
        lines += [":func: build_parser", ":prog: googlenet", f":path: {name}", "```", ""]
    _write_if_changed(Path(app.srcdir) / "_generated" / "commands.md", "\n".join(lines))


def _write_if_changed(path: Path, text: str) -> None:
    path.parent.mkdir(exist_ok=True)
    if not path.is_file() or path.read_text() != text:  # unchanged: no rebuild
        path.write_text(text)


def setup(app) -> None:
    app.connect("builder-inited", _api_page)
    app.connect("builder-inited", _commands_page)
