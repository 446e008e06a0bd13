"""The report cuts a CI at [0, 1] for lrkit's own accuracy only: the cut was keyed on the metric's name, so a
metric of your own named "val accuracy" in percent got a CI [25.02, 1], its lower end above its upper."""

from __future__ import annotations

import pytest

from lrkit.lab import report
from lrkit.lab.runner import LabResult
from tests.test_report import make_run

pytest.importorskip("matplotlib")


def _lab(finals_a: list[float], finals_b: list[float]) -> LabResult:
    runs = [make_run("a", i, f) for i, f in enumerate(finals_a)]
    runs += [make_run("b", i, f) for i, f in enumerate(finals_b)]
    return LabResult("toy", 1, runs, ":memory:", "t", "val accuracy", True, 5)


def test_a_percentage_named_val_accuracy_is_not_cut_at_0_and_1() -> None:
    result = _lab([25.0, 45.0, 60.0], [-20.0, -10.0, -15.0])  # an R² in percent, under the name
    assert report.metric_range(result) is None
    rows = report.summarize(result)[0]
    for s in rows:
        assert s.ci is not None and s.mean is not None and s.ci[0] < s.mean < s.ci[1]
        half = report.t_quantile(0.975, 2) * (s.std or 0.0) / 3**0.5
        assert s.ci == pytest.approx((s.mean - half, s.mean + half))  # was [max(., 0), min(., 1)]: [25.02, 1]
    page = report.render_html(result)
    assert "cut at" not in page  # neither the CI note nor the paired gap's [-1, 1]
    n, mean, (_, hi) = report.paired_gap(result, "a", "b") or (0, 0.0, (0.0, 0.0))
    assert n == 3 and mean == pytest.approx(175 / 3) and hi > 1


def test_lrkits_accuracy_is_still_cut() -> None:
    result = _lab([0.80, 0.84, 0.99], [0.5, 0.6, 0.7])
    assert report.metric_range(result) == (0.0, 1.0)
    a = next(s for s in report.summarize(result)[0] if s.label == "a")
    assert a.ci is not None and a.ci[1] == 1.0 and a.ci[0] < a.mean <= 1.0  # type: ignore[operator]
    assert "cut at val accuracy&#x27;s range [0, 1]" in report.render_html(result)
