"""The verdict's gap, as the guide's labs meet it: a tie reads 0, not the rounding of the finals' sums
(5.55e-17), and the paired gap's CI stays inside what a difference of accuracies can be, [-1, 1], and
says it was cut; the same numbers in lab.md, the page and the Korean report."""

from __future__ import annotations

from pathlib import Path

import pytest

from lrkit.lab import report
from lrkit.lab.runner import LabResult
from tests.test_report import make_run

pytest.importorskip("matplotlib")
pytestmark = pytest.mark.filterwarnings("ignore::lrkit.lab.report.MissingFontWarning")


def _two(labels: tuple[str, str], finals: tuple[list[float], list[float]], metric: str) -> LabResult:
    higher = metric != "val loss"
    runs = [
        make_run(label, s, f, higher_is_better=higher)
        for label, fs in zip(labels, finals)
        for s, f in enumerate(fs)
    ]
    return LabResult("digits-mlp-sgd", 1, runs, ":memory:", "my-first-lab", metric, higher, 2)


#: the final val accuracies of the guide's experiment.yaml (digits-mlp-sgd, seeds 0 and 1, 2 epochs):
#: the same mean, 0.8875, and seed by seed 0.00556 apart either way; the old sentence said "0 lower"
#: and "the gap is 5.55e-17"
TIE = _two(
    ("warmup + cosine", "one-cycle"),
    ([0.8916666666666667, 0.8833333333333333], [0.8861111111111111, 0.8888888888888888]),
    "val accuracy",
)
#: a 1-epoch lab: seed by seed 0.161 and 0 apart, 0.0806 ± t(.975, 1)·0.1139/√2 = ±1.023, which said
#: "(95% CI -0.943 to 1.1)": past 1, which no gap between two accuracies can be
WIDE = ([0.65, 0.6277777777777778], [0.4888888888888889, 0.6277777777777778])


def test_a_tie_reads_the_same_mean_and_a_gap_of_0_in_english_and_korean(tmp_path: Path) -> None:
    rows = report.summarize(TIE)[0]
    assert report.paired_gap(TIE, "warmup + cosine", "one-cycle") == (
        2,
        0.0,
        pytest.approx((-0.0706, 0.0706), abs=1e-4),
    )
    assert report.verdict(TIE, rows) == (
        "Best: warmup + cosine, final val accuracy 0.8875 (95% CI 0.8346 to 0.9404). Runner-up: one-cycle, "
        "0.8875 (95% CI 0.8699 to 0.9051), the same mean. Paired by seed (2 both finished), the gap is 0 "
        "(95% CI -0.0706 to 0.0706): the seeds do not separate the two."
    )
    assert report.verdict(TIE, rows, lang="ko") == (
        "최고: warmup + cosine, 최종 검증 정확도 0.8875 (95% 신뢰구간 0.8346~0.9404). 2위: one-cycle, 0.8875 "
        "(95% 신뢰구간 0.8699~0.9051), 평균이 같음. 시드별로 짝지으면(둘 다 끝난 시드 2개) 차이는 0"
        "(95% 신뢰구간 -0.0706~0.0706)이므로, 시드들이 둘을 구별하지 못합니다."
    )
    page = report.write_report(TIE, tmp_path).read_text(encoding="utf-8")
    assert "Runner-up: <b>one-cycle</b>, 0.8875 (95% CI 0.8699 to 0.9051), the same mean." in page
    assert "the gap is 0 (95% CI" in page
    md = report.write_markdown(TIE, tmp_path, lang="ko").read_text(encoding="utf-8")
    assert "평균이 같음" in md and "차이는 0(95% 신뢰구간" in md


def test_a_gap_of_rounding_alone_does_not_separate_the_two() -> None:
    """0.1 + 0.2 against 0.3 on every seed: a gap of 5.55e-17 with no spread, whose CI excluded 0."""
    result = _two(("a", "b"), ([0.1 + 0.2, 0.1 + 0.2], [0.3, 0.3]), "val accuracy")
    assert report.paired_gap(result, "a", "b") == (2, 0.0, (0.0, 0.0))
    assert report.verdict(result, report.summarize(result)[0]).endswith(
        "the same mean. Paired by seed (2 both finished), the gap is 0 (95% CI 0 to 0): the seeds do not "
        "separate the two."
    )


def test_an_accuracy_gap_ci_is_cut_at_minus_1_and_1_and_says_so(tmp_path: Path) -> None:
    result = _two(("one-cycle", "warmup + cosine"), WIDE, "val accuracy")
    n, mean, ci = report.paired_gap(result, "one-cycle", "warmup + cosine") or (0, 0.0, (0.0, 0.0))
    assert (n, round(mean, 4), round(ci[0], 3), ci[1]) == (2, 0.0806, -0.943, 1.0)
    rows = report.summarize(result)[0]
    assert report.verdict(result, rows).endswith(
        "0.0806 lower. Paired by seed (2 both finished), the gap is 0.0806 (95% CI -0.943 to 1, cut at the "
        "gap's range [-1, 1]): the seeds do not separate the two."
    )
    assert report.verdict(result, rows, lang="ko").endswith(
        "0.0806만큼 낮음. 시드별로 짝지으면(둘 다 끝난 시드 2개) 차이는 0.0806(95% 신뢰구간 -0.943~1, 차이의 "
        "범위 [-1, 1]에서 자름)이므로, 시드들이 둘을 구별하지 못합니다."
    )
    md = report.write_markdown(result, tmp_path).read_text(encoding="utf-8")
    assert "(95% CI -0.943 to 1, cut at the gap's range \\[-1, 1\\])" in md
    page = report.write_report(result, tmp_path).read_text(encoding="utf-8")
    assert "(95% CI -0.943 to 1, cut at the gap&#x27;s range [-1, 1])" in page
    # a loss, or a metric of the user's own: no known range, the interval as computed
    for metric, finals in (("val loss", (WIDE[1], WIDE[0])), ("acc", WIDE)):
        result = _two(("x", "y"), finals, metric)
        n, mean, ci = report.paired_gap(result, "x", "y") or (0, 0.0, (0.0, 0.0))
        assert (n, round(mean, 4), round(ci[0], 3), round(ci[1], 3)) == (2, 0.0806, -0.943, 1.104)
        text = report.verdict(result, report.summarize(result)[0])
        assert "the gap is 0.0806 (95% CI -0.943 to 1.1): the seeds" in text and "cut" not in text
