"""The report's Best: a mean over the seeds that finished leaves out the seeds a strategy lost, so a strategy
whose hard seed diverged was crowned over a steady one that was better on every seed both finished. The
strategies are ranked by how many seeds they lost first, then by mean; the verdict says which higher mean
was passed over and why, and the target follows the chosen Best."""

from __future__ import annotations

import pytest

from lrkit.lab import report
from lrkit.lab.runner import LabResult
from tests.test_report import make_run

pytest.importorskip("matplotlib")


def _lab(higher_is_better: bool = True) -> LabResult:
    """risky 0.90/0.96 on seeds 0 and 2 and diverged on seed 1; steady 0.936/0.825/0.939 on all three
    (better than risky on both seeds they share): the survivorship of the audit's repro."""
    hb = higher_is_better
    sign = 1.0 if hb else -1.0
    runs = [
        make_run("risky", 0, sign * 0.9028, higher_is_better=hb),
        make_run("risky", 1, None, diverge_at=85, higher_is_better=hb),
        make_run("risky", 2, sign * 0.9611, higher_is_better=hb),
        make_run("steady", 0, sign * 0.9361, higher_is_better=hb),
        make_run("steady", 1, sign * 0.825, higher_is_better=hb),
        make_run("steady", 2, sign * 0.9389, higher_is_better=hb),
    ]
    name = "val accuracy" if hb else "val loss"
    return LabResult("toy", 1, runs, ":memory:", "t", name, hb, 5)


@pytest.mark.parametrize("higher_is_better", [True, False])
def test_a_strategy_that_lost_a_seed_is_not_best_over_one_that_lost_none(higher_is_better: bool) -> None:
    result = _lab(higher_is_better)
    sign = 1.0 if higher_is_better else -1.0
    rows, target = report.summarize(result)
    assert [s.label for s in rows] == ["steady", "risky"]
    steady = rows[0].mean
    assert steady is not None and abs(steady) == pytest.approx((0.9361 + 0.825 + 0.9389) / 3)
    # the target is within 1% of the chosen Best's mean, not of risky's 0.932
    assert target == pytest.approx(steady - sign * 0.01 * abs(steady))
    assert target == report.default_target(result)
    text = report.verdict(result, rows)
    assert text.startswith("Best: steady, ")
    way = "higher (0.932)" if higher_is_better else "lower (-0.932)"
    assert text.endswith(f" risky's finished seeds average {way}, but 1 of 3 diverged.")
    assert "Runner-up: risky, " in text
    ko = report.verdict(result, rows, lang="ko")
    assert ko.startswith("최고: steady, ")
    more = "더 높지만" if higher_is_better else "더 낮지만"
    assert f" risky의 끝난 시드들의 평균은 {more}" in ko and "시드 3개 중 1개가 발산함." in ko
    page = report.render_html(result)
    assert "<tr class=best>" in page and page.index("steady") < page.index("risky")


def test_a_lower_mean_among_the_lost_is_not_mentioned_and_equal_losses_rank_by_mean() -> None:
    runs = [
        make_run("a", 0, 0.95),
        make_run("a", 1, None, diverge_at=30),
        make_run("b", 0, 0.90),
        make_run("b", 1, 0.91),
        make_run("c", 0, 0.97),
        make_run("c", 1, None, diverge_at=40),
    ]
    result = LabResult("toy", 1, runs, ":memory:", "t", "acc", True, 5)
    rows = report.summarize(result)[0]
    assert [s.label for s in rows] == ["b", "c", "a"]  # b lost none; c and a one each: by mean
    text = report.verdict(result, rows)
    assert text.endswith(" c's finished seeds average higher (0.97), but 1 of 2 diverged.")  # the best such
    # nobody passed over: no such sentence
    fine = LabResult("toy", 1, [r for r in runs if r.label != "c"][:3], ":memory:", "t", "acc", True, 5)
    fine_rows = report.summarize(fine)[0]
    assert [s.label for s in fine_rows] == ["b", "a"]
    assert "average higher" in report.verdict(fine, fine_rows)  # a's 0.95 over b's 0.905
    alike = LabResult(
        "toy",
        1,
        [make_run("a", 0, 0.8), make_run("a", 1, 0.9), make_run("b", 0, 0.9), make_run("b", 1, 0.95)],
        ":memory:",
        "t",
        "acc",
        True,
        5,
    )
    assert "average" not in report.verdict(alike, report.summarize(alike)[0])
