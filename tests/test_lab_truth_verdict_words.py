"""Smaller truths of the lab report: the best-metric column is over the seeds the mean is over (a diverged
run's peak before it blew up is not the strategy's), two overlapping CIs do not show that two strategies
do not differ, and a tie for runner-up is said."""

from __future__ import annotations

import dataclasses

import pytest

from lrkit.lab import report
from lrkit.lab.runner import LabResult
from tests.test_report import make_run

pytest.importorskip("matplotlib")


def test_the_best_metric_column_leaves_out_diverged_runs() -> None:
    blown = dataclasses.replace(make_run("a", 2, None, diverge_at=60), epoch_metrics=[0.5, 0.99, 0.97])
    blown = dataclasses.replace(blown, best_metric=0.99)
    runs = [make_run("a", 0, 0.90), make_run("a", 1, 0.91), blown]
    result = LabResult("toy", 1, runs, ":memory:", "t", "val accuracy", True, 5)
    row = report.summarize(result)[0][0]
    assert row.best == 0.91  # was 0.99: the seed that diverged, two epochs before it did
    header = report._header("best", result, report.messages("en"))
    assert header == "best val accuracy (any epoch, finished seeds)"
    assert "(any epoch, any seed)" not in report.markdown_table(result)
    assert "끝난 시드" in report._header("best", result, report.messages("ko"))


def test_overlapping_cis_without_pairs_do_not_say_the_seeds_do_not_separate_the_two() -> None:
    a = [make_run("a", i, f) for i, f in enumerate([0.90, 0.93, 0.87])]
    b = [make_run("b", i + 3, f) for i, f in enumerate([0.85, 0.89, 0.88])]  # other seeds: no pair
    result = LabResult("toy", 1, a + b, ":memory:", "t", "acc", True, 5)
    text = report.verdict(result, report.summarize(result)[0])
    assert "do not separate" not in text
    assert text.endswith(
        " Their 95% CIs overlap, which does not show that they differ or that they do not: with fewer than "
        "two seeds both finished to pair them, 3 seeds cannot tell them apart."
    )
    ko = report.verdict(result, report.summarize(result)[0], lang="ko")
    assert "시드 3개로는 둘을 가릴 수 없습니다." in ko


def test_a_tie_for_runner_up_is_said() -> None:
    runs = [make_run("a", i, f) for i, f in enumerate([0.95, 0.96])]
    runs += [make_run("b", i, f) for i, f in enumerate([0.90, 0.91])]
    runs += [make_run("c", i, f) for i, f in enumerate([0.91, 0.90])]
    result = LabResult("toy", 1, runs, ":memory:", "t", "acc", True, 5)
    rows = report.summarize(result)[0]
    text = report.verdict(result, rows)
    assert " Runner-up: b, " in text
    assert " c ends with the same mean as b." in text
    assert " c의 평균도 b의 평균과 같습니다." in report.verdict(result, rows, lang="ko")
    apart = LabResult(
        "toy", 1, [*runs[:4], make_run("c", 0, 0.5), make_run("c", 1, 0.6)], ":memory:", "t", "acc", True, 5
    )
    assert "same mean as" not in report.verdict(apart, report.summarize(apart)[0])
