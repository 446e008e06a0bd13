"""Fixtures shared by the test modules."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def lab_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real lab database: one strategy (constant 0.05) for one seed and one epoch on digits-mlp-sgd,
    trained on one thread; a module's tests copy it before changing it."""
    torch = pytest.importorskip("torch")
    from lrkit.lab.runner import Strategy, run_lab

    db = tmp_path_factory.mktemp("lab") / "lab.db"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_lab("digits-mlp-sgd", [Strategy("c", "constant(0.05)")], seeds=[0], epochs=1, store=str(db))
    finally:
        torch.set_num_threads(threads)
    return db


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Tiny models: one intra-op thread is fastest and avoids oversubscription under pytest -n 2;
    the previous thread count is restored afterwards."""
    torch = pytest.importorskip("torch")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def tiny_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder holding ``tiny_tune_task.py`` (tests/test_tune.py's ``TASK_MODULE``): the task
    ``tiny_tune_task:tiny`` importable in this process and, through ``PYTHONPATH``, in the worker
    processes a tune starts (they import the task by its module path)."""
    from .test_tune import TASK_MODULE  # here, not above: test_tune needs the tune extras

    d = tmp_path / "task"
    d.mkdir()
    (d / "tiny_tune_task.py").write_text(TASK_MODULE)
    monkeypatch.syspath_prepend(str(d))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(d), os.environ.get("PYTHONPATH", "")]))
    yield d
    sys.modules.pop("tiny_tune_task", None)
