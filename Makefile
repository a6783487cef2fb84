# The two commands of the README: `make demo` (the main job on the built-in demo data) and
# `make test` (the test suite). Each creates the virtual environment and installs what it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-quick lint typecheck docs package bench mutants clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The serve page's browser test drives Debian's chromium (Playwright cannot download its own
# here): installed for the tests only, when missing and we are root; else that test says why.
BROWSER := $(VENV)/.browser-stamp
$(BROWSER): $(STAMP)
	command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } || \
		echo "chromium not installed: the browser test will skip (or fail under CI)"
	touch $(BROWSER)

demo: $(STAMP)
	$(VENV)/bin/googlenet demo

test: $(STAMP) $(BROWSER)
	$(PY) -m ruff check src tests benchmarks
	$(VENV)/bin/lint-imports
	$(PY) -m mypy
	$(MAKE) docs
	$(PY) -m pytest -n 2 --dist loadgroup

# The type checker over src/ (configured in pyproject.toml, [tool.mypy]).
typecheck: $(STAMP)
	$(PY) -m mypy

# The documentation site (docs/, Sphinx): warnings are errors (-W), every reference must resolve
# (-n), so a broken link, a missing reference or an undocumented public name fails it. The
# examples of its pages run in the test suite (tests/test_docs.py).
docs: $(STAMP)
	$(PY) -m sphinx -W --keep-going -n -q -b html docs docs/_build/html
	@echo "docs: docs/_build/html/index.html"

# The sdist and the wheel, into dist/, and their metadata checked as PyPI would
# (tests/test_package.py also installs the wheel into a fresh environment).
package: $(STAMP)
	rm -rf dist
	$(PY) -m build --outdir dist .
	$(PY) -m twine check --strict dist/*

test-quick: $(STAMP) $(BROWSER)
	$(PY) -m pytest -n 2 --dist loadgroup -m "not slow"

lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks
	$(VENV)/bin/lint-imports
	$(PY) -m ruff format --check src tests benchmarks

bench: $(STAMP)
	$(VENV)/bin/googlenet bench --mode both --preset torchvision

# Mutation testing, not part of `make test` (an hour and more on 2 cores): mutmut mutates the
# functions listed in benchmarks/mutants.txt and runs, for each mutant, the fast tests of
# [tool.mutmut] in pyproject.toml that call the mutated function. Score and survivors:
# BENCHMARKS.md, "Mutation score". Cached in mutants/ (delete it after changing a test).
mutants: $(STAMP)
	grep -v '^#' benchmarks/mutants.txt | OMP_NUM_THREADS=1 xargs $(VENV)/bin/mutmut run --max-children 2
	$(VENV)/bin/mutmut export-cicd-stats && cat mutants/mutmut-cicd-stats.json
	$(VENV)/bin/mutmut results

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache .mypy_cache mutants docs/_build docs/api.md
