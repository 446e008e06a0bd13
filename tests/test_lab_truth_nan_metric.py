"""A run that finished but whose metric at the end is NaN (a correlation of a constant prediction): it was
stored as the task's worst, 0.0, and averaged in when higher is better, and dropped without a word when
lower is better. Both directions now leave it out of the mean and say why."""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path

import pytest
import torch

from lrkit.lab import report
from lrkit.lab.runner import LabResult, Strategy, run_strategy
from lrkit.tasks import Task, TaskParts
from tests.test_report import make_run

pytest.importorskip("matplotlib")


def _nan_last(run: report.RunRecord, stored: float | None) -> report.RunRecord:
    """``run`` as a lab stored a finished run whose last epoch's metric was NaN, its final ``stored``."""
    return dataclasses.replace(run, final_metric=stored, epoch_metrics=[*run.epoch_metrics[:-1], math.nan])


@pytest.mark.parametrize(("higher_is_better", "stored"), [(True, 0.0), (True, None), (False, None)])
def test_a_finished_run_with_a_nan_metric_is_left_out_and_said(
    higher_is_better: bool, stored: float | None, tmp_path: Path
) -> None:
    """``stored`` 0.0: what an older lab wrote (the task's worst); None: what a lab writes now."""
    hb = higher_is_better
    runs = [
        make_run("a", 0, 0.57, higher_is_better=hb),
        _nan_last(make_run("a", 1, 0.5, higher_is_better=hb), stored),
        make_run("a", 2, 0.58, higher_is_better=hb),
        make_run("b", 0, 0.50, higher_is_better=hb),
        make_run("b", 1, 0.51, higher_is_better=hb),
        make_run("b", 2, 0.52, higher_is_better=hb),
    ]
    result = LabResult("toy", 1, runs, ":memory:", "t", "val corr", hb, 5)
    rows = report.summarize(result)[0]
    a = next(s for s in rows if s.label == "a")
    assert a.n == 2 and a.mean == pytest.approx(0.575) and a.unmeasured == (1,) and a.diverged == ()
    assert [s.label for s in rows] == ["b", "a"]  # a lost a seed: ranked after b, which lost none
    assert report.fate(runs[1]) == "metric not finite" and report.final(runs[1]) is None
    cells = report._cells(a)
    assert cells["n"] == "2/3 (1 metric not finite)" and cells["mean"] == "0.575"
    text = report.verdict(result, rows)
    assert "1 of 3 seeds ended with a metric that is not finite, not counted" in text
    if hb:
        assert text.endswith(
            "a's finished seeds average higher (0.575), but 1 of 3 ended with a metric that is not finite."
        )
    assert "지표가 유한하지 않아 빠짐" in report.verdict(result, rows, lang="ko")
    report.write_csv(result, tmp_path)
    with open(tmp_path / "runs.csv", newline="") as f:
        row = next(r for r in csv.DictReader(f) if r["label"] == "a" and r["seed"] == "1")
    assert row["status"] == "metric not finite" and row["final_metric"] == ""  # not a made-up 0.0


def _constant(seed: int) -> TaskParts:
    """A regression whose metric, a correlation, is NaN: the model's output is constant (weights zero)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(32, 3, generator=gen)
    y = x.sum(1, keepdim=True)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    model = torch.nn.Linear(3, 1)
    torch.nn.init.zeros_(model.weight)

    def corr(m: torch.nn.Module) -> float:
        out = m(x).flatten() - m(x).mean()
        t = y.flatten() - y.mean()
        return float((out * t).sum() / (out.norm() * t.norm()))

    return TaskParts(
        model,
        loader,
        loader,
        torch.nn.functional.mse_loss,
        metric=corr,
        higher_is_better=True,
        metric_name="val corr",
        epochs=1,
        optimizer="sgd",
    )


def test_a_lab_run_stores_no_final_metric_for_a_nan_metric() -> None:
    rec = run_strategy(Task("constant", _constant), Strategy("zero", "constant(0.0)"), epochs=1)
    assert rec.status == "ok" and math.isnan(rec.epoch_metrics[-1])
    assert rec.final_metric is None  # was 0.0, the task's worst, averaged into the mean
    assert report.unmeasured(rec)
