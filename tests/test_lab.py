"""The lab: runs on a real task, recorded LRs against the closed form, divergence, the database survives
an interrupted run, and the report."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from lrkit.cli import main
from lrkit.lab import tasks as tasks_mod
from lrkit.lab.report import plot_lab, summary_rows, table
from lrkit.lab.runner import Strategy, run_lab, run_strategy
from lrkit.lab.store import ResultStore
from lrkit.spec import parse

TASK = "digits-mlp-sgd"
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_runs_record_the_scheduled_lr_and_land_in_sqlite(tmp_path: Path) -> None:
    strategies = [
        Strategy("cosine", "warmup(10%) >> cosine(lr=0.05)"),
        Strategy("adam", "constant(1e-3)", "adam"),
    ]
    db = tmp_path / "lab.db"
    res = run_lab(TASK, strategies, epochs=1, store=str(db), progress=None)
    assert [r.label for r in res.runs] == ["cosine", "adam"]
    cos = res.runs[0]
    n = len(cos.lrs)
    assert n == cos.steps == 45  # 1437 digits / batch 32
    expected = parse("warmup(10%) >> cosine(lr=0.05)").resolve(total_steps=n, steps_per_epoch=n)(np.arange(n))
    np.testing.assert_allclose(cos.lrs, expected, rtol=1e-12)
    assert cos.status == "ok" and cos.final_metric is not None and cos.final_metric > 0.5
    assert res.runs[1].optimizer == "adam"
    # read back from the file, as another process would
    again = ResultStore(db).runs(res.experiment_id)
    assert [(r.label, r.status, r.final_metric, r.steps) for r in again] == [
        (r.label, r.status, r.final_metric, r.steps) for r in res.runs
    ]
    assert again[0].lrs == cos.lrs and again[0].losses == pytest.approx(cos.losses)
    rows = sqlite3.connect(db).execute("SELECT COUNT(*) FROM steps").fetchone()
    assert rows == (90,)


def test_too_large_lr_diverges_and_too_small_crawls() -> None:
    big = run_strategy(TASK, Strategy("big", "constant(5.0)"), epochs=1)
    assert big.status == "diverged" and big.final_metric == 0.0 and big.diverged_step is not None
    assert big.losses[-1] > 10 * big.losses[0] or not math.isfinite(big.losses[-1])
    small = run_strategy(TASK, Strategy("small", "constant(1e-5)"), epochs=1)
    good = run_strategy(TASK, Strategy("good", "constant(0.05)"), epochs=1)
    assert small.status == "ok" and small.final_metric is not None and good.final_metric is not None
    assert small.final_metric < 0.3 < 0.6 < good.final_metric


def test_an_interrupted_lab_keeps_what_was_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = tasks_mod.TASKS[TASK]
    calls = {"n": 0}

    def loss_fn(*args):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 45 + 10:  # the second run, 10 steps in
            raise KeyboardInterrupt
        return real_parts.loss_fn(*args)

    real_parts = real.build(0)

    def build(seed: int):  # type: ignore[no-untyped-def]
        parts = real.builder(seed)
        parts.loss_fn = loss_fn
        return parts

    monkeypatch.setitem(
        tasks_mod.TASKS,
        TASK,
        tasks_mod.Task(
            real.name, real.description, real.optimizer, real.metric_name, real.epochs, real.batch_size, build
        ),
    )
    db = tmp_path / "lab.db"
    with pytest.raises(KeyboardInterrupt):
        run_lab(
            TASK,
            [Strategy("a", "constant(0.05)"), Strategy("b", "constant(0.01)")],
            epochs=1,
            store=str(db),
            progress=None,
        )
    runs = ResultStore(db).runs()
    assert [(r.label, r.status) for r in runs] == [("a", "ok"), ("b", "interrupted")]
    assert runs[0].steps == 45 and runs[1].steps == 9 and len(runs[1].lrs) == 10


def test_report_table_and_plot(tmp_path: Path) -> None:
    res = run_lab(
        TASK,
        [Strategy("big", "constant(5.0)"), Strategy("ok", "constant(0.05)")],
        seeds=(0, 1),
        epochs=1,
        progress=None,
    )
    rows = {r.strategy: r for r in summary_rows(res)}
    assert rows["big"].diverged == 2 and rows["ok"].diverged == 0 and rows["ok"].runs == 2
    md = table(res, "accuracy").splitlines()
    assert md[0].startswith("| strategy | optimizer | peak LR | final accuracy")
    assert md[2].startswith("| ok |") and md[3].startswith("| big |") and "| 2/2 |" in md[3]
    p = plot_lab(res, tmp_path / "lab.png", metric_name="accuracy")
    assert p.read_bytes()[:4] == b"\x89PNG"


def test_strategy_parsing_and_errors() -> None:
    s = Strategy.parse("fast@adam=warmup(5%) >> cosine(lr=1e-3)")
    assert (s.label, s.optimizer) == ("fast", "adam")
    assert Strategy.parse("cosine(lr=0.1)").label == "cosine(lr=0.1)"
    with pytest.raises(ValueError, match="optimizer must be one of sgd, adagrad, rmsprop, adam, adamw"):
        Strategy("x", "constant(0.1)", "lion")
    with pytest.raises(ValueError, match="labels must be unique"):
        run_lab(TASK, [Strategy("a", "constant(0.1)"), Strategy("a", "constant(0.2)")], progress=None)
    with pytest.raises(ValueError, match="task must be one of"):
        run_lab("cifar", [Strategy("a", "constant(0.1)")], progress=None)


def test_lab_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "lab",
            "--strategy",
            "a=constant(0.05)",
            "--strategy",
            "b@rmsprop=constant(1e-3)",
            "--epochs",
            "1",
            "--out",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "| a |" in out and "| b | rmsprop |" in out
    assert (
        (tmp_path / "lab.png").exists() and (tmp_path / "lab.md").exists() and (tmp_path / "lab.db").exists()
    )
