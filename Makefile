# The README's commands. `make demo` runs the main job, `make test` the checks; both set up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
OUT    ?= lrkit-demo

.PHONY: setup setup-dev demo test lint typecheck pytest docs-build docs bench clean

# setup: what lrkit itself needs (the demo); setup-dev adds the checks' tools (pytest, mypy, mkdocs, ...)
setup: $(VENV)/.installed
setup-dev: $(VENV)/.dev

# torch==2.13.0 first: the CPU wheel lies on this machine's disk; anything looser pulls a CUDA build.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=25.1"
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[all]"
	touch $@

$(VENV)/.dev: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e ".[all]" --group dev
	touch $@

demo: setup
	$(BIN)/lrkit demo --out $(OUT)

lint: setup-dev
	$(BIN)/ruff check src tests bench examples docs/*.py
	$(BIN)/ruff format --check src tests bench examples docs/*.py

typecheck: setup-dev
	$(BIN)/mypy

pytest: setup-dev
	$(BIN)/python -m pytest -n 2 -q

# the guide must build without a warning (a broken link or a missing page fails)
docs-build: setup-dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict -q -d site

test: lint typecheck docs-build pytest

# rebuild every figure from lrkit itself, then serve the guide on http://127.0.0.1:8000
docs: setup-dev
	$(BIN)/python docs/make_figures.py
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

bench: setup-dev
	$(BIN)/python bench/preview.py
	$(BIN)/python bench/step_overhead.py
	$(BIN)/python bench/compiled_step.py
	$(BIN)/python bench/lab.py

clean:
	rm -rf $(VENV) $(OUT) site .pytest_cache .mypy_cache .ruff_cache .hypothesis
