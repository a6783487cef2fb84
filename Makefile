# The two commands of the README: `make demo` (the main job on the built-in demo data) and
# `make test` (the test suite). Each creates the virtual environment and installs what it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-quick lint bench clean

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
	$(PY) -m pytest -n 2 --dist loadgroup

test-quick: $(STAMP) $(BROWSER)
	$(PY) -m pytest -n 2 --dist loadgroup -m "not slow"

lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks
	$(VENV)/bin/lint-imports
	$(PY) -m ruff format --check src tests benchmarks

bench: $(STAMP)
	$(VENV)/bin/googlenet bench --mode both --preset torchvision

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .ruff_cache
