"""Optimizer settings for a device or a graph (tester NF, 3): ``differentiable=True`` can never train in
lrkit's loop and is refused at set-up naming the strategy; ``capturable=True`` is refused at set-up for
a task whose parameters are on the CPU (the lab steps its check on the task's device), naming the
strategy, before any run is stored; ``fused=True``, which torch steps on the CPU, still runs."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")

from lrkit.lab.runner import Strategy, check_runs, run_lab
from lrkit.lab.store import ResultStore

TASK = "digits-mlp-sgd"


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "adamw"])
def test_differentiable_is_refused_at_set_up_naming_the_strategy(optimizer: str) -> None:
    with pytest.raises(ValueError, match=r"strategy 'd'.*differentiable must be false for training"):
        Strategy.parse(f"d@{optimizer}(differentiable=true)=constant(1e-3)", "--strategy")


def test_differentiable_on_the_task_s_own_optimizer_is_refused_by_the_run_check() -> None:
    s = Strategy("own", "constant(1e-3)", None, {"differentiable": True})
    with pytest.raises(ValueError, match=r"strategy 'own'.*differentiable must be false"):
        check_runs([s], TASK, 1, "sgd", {"momentum": 0.9})


def test_capturable_on_a_cpu_task_is_refused_before_any_run(tmp_path: Path, one_torch_thread: None) -> None:
    db = tmp_path / "lab.db"
    s = [
        Strategy("ok", "constant(1e-3)", "adam"),
        Strategy("cap", "constant(1e-3)", "adam", {"capturable": True}),
    ]
    with pytest.raises(ValueError) as err:
        run_lab(TASK, s, epochs=1, store=str(db))
    msg = str(err.value)
    assert "strategy 'cap'" in msg and "'adam(capturable=true)'" in msg and "device (cpu)" in msg
    assert "capturable" in msg
    if db.exists():
        with ResultStore(db) as store:
            assert not [r for e in store.experiments() for r in store.runs(e.id)]


def test_capturable_without_a_known_device_is_still_only_built() -> None:
    s = Strategy("cap", "constant(1e-3)", "adam", {"capturable": True})
    check_runs([s], TASK, 1, "sgd")  # the lab CLI's early check: the device comes with run_lab's


def test_fused_runs_on_the_cpu(tmp_path: Path, one_torch_thread: None) -> None:
    res = run_lab(
        TASK,
        [Strategy("f", "constant(1e-3)", "adam", {"fused": True})],
        epochs=1,
        store=str(tmp_path / "f.db"),
    )
    assert [r.label for r in res.runs] == ["f"]
