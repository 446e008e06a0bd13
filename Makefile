# The README's commands. `make demo` runs the main job, `make test` the checks; both set up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
OUT    ?= lrkit-demo

.PHONY: setup demo test lint typecheck pytest bench clean

setup: $(VENV)/.installed

# torch==2.13.0 first: the CPU wheel lies on this machine's disk; anything looser pulls a CUDA build.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=25.1"
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[all]" --group dev
	touch $@

demo: setup
	$(BIN)/lrkit demo --out $(OUT)

lint: setup
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples

typecheck: setup
	$(BIN)/mypy

pytest: setup
	$(BIN)/python -m pytest -n 2 -q

test: lint typecheck pytest

bench: setup
	$(BIN)/python bench/preview.py
	$(BIN)/python bench/step_overhead.py
	$(BIN)/python bench/compiled_step.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .mypy_cache .ruff_cache .hypothesis
