"""The report's first sentence says who won and by how much, and whether the seeds separate the two; the
diverged-runs table says why each run counted as diverged (a NaN/inf loss, or a loss past the factor)."""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path

import pytest

from lrkit.lab import report
from lrkit.lab.runner import LabResult
from lrkit.lab.store import RunRecord
from tests.test_report import PIPE_LABEL, _store_result, make_result, make_run

matplotlib = pytest.importorskip("matplotlib")
pytest.importorskip("matplotlib.pyplot")  # closing a figure: a no-op for lrkit's (not pyplot's)


def _two(finals_a: list[float], finals_b: list[float], higher_is_better: bool = True) -> LabResult:
    runs = [make_run("a", i, f, higher_is_better=higher_is_better) for i, f in enumerate(finals_a)]
    runs += [make_run("b", i, f, higher_is_better=higher_is_better) for i, f in enumerate(finals_b)]
    return LabResult("toy", 1, runs, ":memory:", "t", "acc", higher_is_better, 5)


def test_the_verdict_names_the_runner_up_the_gap_and_whether_the_seeds_separate_them() -> None:
    # cosine 0.90/0.92/0.94: 0.92 ± t(.975, 2)·0.02/√3 = ±0.04970; the pipe label 0.85/0.86: 0.855 ±
    # t(.975, 1)·0.007071/√2 = ±0.06353; the gap of the means is 0.065. Paired over seeds 0 and 1:
    # d = 0.05, 0.06: 0.055 ± 12.706·0.007071/√2 = ±0.06353: [-0.00853, 0.1185] holds 0
    result = make_result()
    text = report.verdict(result, report.summarize(result)[0])
    assert text == (
        "Best: cosine, final val accuracy 0.92 (95% CI 0.8703 to 0.9697). Runner-up: "
        f"{PIPE_LABEL}, 0.855 (95% CI 0.7915 to 0.9185), 0.065 lower. Paired by seed (2 both finished), "
        "the gap is 0.055 (95% CI -0.00853 to 0.119): the seeds do not separate the two."
    )
    # a loss: lower is better, the runner-up is higher (cosine 0.32 against the pipe label's 0.405)
    low = make_result(higher_is_better=False)
    text = report.verdict(low, report.summarize(low)[0])
    assert text.startswith("Best: cosine, final val loss 0.32 (95% CI") and "0.085 higher." in text
    n, mean, _ = report.paired_gap(low, "cosine", PIPE_LABEL) or (0, 0.0, None)
    assert n == 2 and mean > 0  # positive: the best is better (lower)


def test_paired_seeds_separate_what_overlapping_cis_do_not() -> None:
    """Each seed moves both strategies alike (its initial weights): a and b overlap widely, yet a is
    0.01 better on every seed. Their CIs overlapping said "3 seeds do not separate the two"."""
    close = _two([0.90, 0.95, 0.85], [0.89, 0.94, 0.84])
    rows = report.summarize(close)[0]
    assert rows[0].ci is not None and rows[1].ci is not None and rows[0].ci[0] < rows[1].ci[1]  # overlap
    n, mean, (lo, hi) = report.paired_gap(close, "a", "b") or (0, 0.0, (0.0, 0.0))
    assert n == 3 and mean == pytest.approx(0.01) and lo == pytest.approx(0.01) and hi == pytest.approx(0.01)
    assert report.verdict(close, rows).endswith("(95% CI 0.01 to 0.01): the seeds separate the two.")
    # a seed's noise that does not move both alike: d = 0.03, -0.02, 0.02 -> 0.01 ± 4.303·0.02646/√3
    mixed = _two([0.92, 0.93, 0.88], [0.89, 0.95, 0.86])
    n, mean, (lo, hi) = report.paired_gap(mixed, "a", "b") or (0, 0.0, (0.0, 0.0))
    assert (n, round(mean, 4), round(lo, 4), round(hi, 4)) == (3, 0.01, -0.0557, 0.0757)
    assert report.verdict(mixed, report.summarize(mixed)[0]).endswith("the seeds do not separate the two.")


def test_the_verdict_falls_back_to_the_cis_without_shared_seeds_and_says_when_there_is_none() -> None:
    # a: 0.90, 0.91, 0.92 (±0.0248) on seeds 0-2; b: 0.80, 0.81, 0.82 on seeds 3-5: no pair, far apart
    far = _two([0.90, 0.91, 0.92], [0.80, 0.81, 0.82])
    far = dataclasses.replace(
        far, runs=[r if r.label == "a" else dataclasses.replace(r, seed=r.seed + 3) for r in far.runs]
    )
    assert report.paired_gap(far, "a", "b") is None
    text = report.verdict(far, report.summarize(far)[0])
    assert text.endswith("0.1 lower. Their 95% CIs do not overlap.")
    one = _two([0.9], [0.8])
    text = report.verdict(one, report.summarize(one)[0])
    assert text == (
        "Best: a, final acc 0.9 (n=1). Runner-up: b, 0.8 (n=1), 0.1 lower. With one finished seed there "
        "is no CI: run more seeds to tell them apart."
    )
    alone = _two([0.9], [])
    assert report.verdict(alone, report.summarize(alone)[0]) == "Best: a, final acc 0.9 (n=1)."


def test_the_page_and_lab_md_lead_with_the_verdict(tmp_path: Path) -> None:
    result = make_result()
    page = report.write_report(result, tmp_path).read_text(encoding="utf-8")
    assert "Best: <b>cosine</b>, final val accuracy 0.92 (95% CI 0.8703 to 0.9697). Runner-up: <b>" in page
    assert "the seeds do not separate the two." in page
    md = report.write_markdown(result, tmp_path).read_text(encoding="utf-8")
    assert "Runner-up: " in md.split("| strategy |", 1)[0]


def test_the_diverged_table_says_why_each_run_diverged(tmp_path: Path) -> None:
    nan_run = make_run("nan", 0, None, diverge_at=7)  # its last loss is inf
    big = make_run("big", 0, None, diverge_at=3)
    big.losses[-1] = 25.0 * big.losses[0]
    big = dataclasses.replace(big, config={"diverge_factor": 10.0})
    result = LabResult("toy", 1, [nan_run, big], ":memory:", "t", "acc", True, 5)
    page = report.write_report(result, tmp_path).read_text(encoding="utf-8")
    section = page.split("<h2>Diverged runs</h2>", 1)[1].split("<h2>", 1)[0]
    assert "<th>training loss at that step</th>" in section
    assert "<td class=num>NaN/inf</td>" in section
    assert math.isfinite(big.losses[0])
    assert f"<td class=num>{25.0 * big.losses[0]:.4g} &gt; 10 × {big.losses[0]:.4g} (step 0)</td>" in section


def test_the_verdict_says_when_a_strategy_ranked_by_its_survivors_lost_seeds() -> None:
    """The mean is over the finished seeds: a strategy that diverged on one seed in three would rank
    first on the other two; it ranks after one that lost none, and the sentence says why."""
    runs = [make_run("risky", i, 0.95 + 0.01 * i, diverge_at=None if i < 2 else 9) for i in range(3)]
    runs += [make_run("safe", i, f) for i, f in enumerate([0.90, 0.91, 0.92])]
    result = LabResult("toy", 1, runs, ":memory:", "t", "acc", True, 5)
    text = report.verdict(result, report.summarize(result)[0])
    # risky: 0.95, 0.96: 0.955 ± t(.975, 1)·0.007071/√2 = ±0.06353
    assert text.startswith("Best: safe, final acc 0.91 (95% CI 0.8852 to 0.9348). Runner-up: risky, 0.955 ")
    assert "(95% CI 0.8915 to 1.019; 1 of 3 seeds diverged, not counted), 0.045 higher." in text
    # on the two seeds both finished risky was better, 0.05 each: said, not "the seeds do not separate"
    assert (
        "the gap is -0.05 (95% CI -0.05 to -0.05): on the seeds both finished, the runner-up is better."
        in text
    )
    assert text.endswith(" risky's finished seeds average higher (0.955), but 1 of 3 diverged.")


# --------------------------------------------------------------------------------------------------
# did not learn: finished, but the training loss ended no lower than the untrained model's
# --------------------------------------------------------------------------------------------------
def _curve(label: str, seed: int, losses: list[float], metrics: list[float], spe: int = 10) -> RunRecord:
    """A finished run with the given per-step losses (``spe`` steps an epoch) and per-epoch metrics."""
    epochs = len(losses) // spe
    return dataclasses.replace(
        make_run(label, seed, metrics[-1], epochs=epochs, spe=spe),
        losses=losses,
        epoch_losses=[sum(losses[e * spe : (e + 1) * spe]) / spe for e in range(epochs)],
        epoch_metrics=metrics,
        best_metric=max(metrics),
    )


def _fates(higher_is_better: bool = True) -> LabResult:
    """Measured shapes from digits-mlp-sgd (4 epochs): momentum at LR 1 stuck at chance (loss 2.31 at
    step 0, 2.35 in the last epoch, accuracy 0.10); momentum at 1e-3 crawling (2.305 to 2.27, accuracy
    0.11 to 0.25); Adam learning in the first epoch and then flat (its last metric below its first
    epoch's); and a diverged run."""
    runs = []
    for seed in range(2):
        stuck = [2.31 + 0.06 * min(1.0, i / 5) + 0.01 * ((i * 7 + seed) % 3) for i in range(40)]
        runs.append(_curve("stuck", seed, stuck, [0.106, 0.1, 0.1, 0.103]))
        crawl = [2.305 - 0.001 * i + 0.004 * ((i * 5 + seed) % 3) for i in range(40)]
        runs.append(_curve("crawl", seed, crawl, [0.114, 0.144, 0.186, 0.247]))
        early = [2.3 * 0.5**i + 0.2 for i in range(40)]
        runs.append(_curve("early", seed, early, [0.95, 0.96, 0.95, 0.94]))
        runs.append(make_run("blown", seed, None, diverge_at=3))
    if not higher_is_better:  # the rule reads the training loss, not the metric
        runs = [dataclasses.replace(r, epoch_metrics=[1 - m for m in r.epoch_metrics]) for r in runs]
    return LabResult("toy", 1, runs, ":memory:", "fates", "acc", higher_is_better, 4)


@pytest.mark.parametrize("higher_is_better", [True, False])
def test_a_run_whose_loss_did_not_fall_did_not_learn_a_crawl_and_an_early_plateau_did(
    higher_is_better: bool,
) -> None:
    result = _fates(higher_is_better)
    by = {s.label: s for s in report.summarize(result)[0]}
    assert by["stuck"].stalled == (0, 1)
    assert by["crawl"].stalled == () and by["early"].stalled == ()  # slow, or done early: both learned
    assert by["blown"].stalled == () and len(by["blown"].diverged) == 2  # diverged is its own fate
    assert [report.did_not_learn(r) for r in result.runs if r.label == "stuck"] == [True, True]
    text = report.verdict(result, report.summarize(result)[0])
    assert text.endswith(
        "Did not learn (last epoch's training loss no lower than the untrained model's): "
        "stuck (2 of 2 seeds)."
    )
    assert "crawl (" not in text.split("Did not learn", 1)[1]


def test_the_page_table_legend_and_lab_md_show_who_did_not_learn(tmp_path: Path) -> None:
    result = _fates()
    page = report.write_report(result, tmp_path).read_text(encoding="utf-8")
    section = page.split("<h2>Runs that did not learn</h2>", 1)[1].split("<h2>", 1)[0]
    stuck = [r for r in result.runs if r.label == "stuck"]
    assert section.count("<tr><td") == 2 and "crawl" not in section and "blown" not in section
    for r in stuck:  # the untrained loss and the last epoch's, side by side
        assert f"<td class=num>{r.losses[0]:.4g}</td><td class=num>{r.epoch_losses[-1]:.4g}</td>" in section
    assert "<th>did not learn</th>" in page
    row = page.split("stuck<br>", 1)[1].split("</tr>", 1)[0]
    assert "<td>2/2</td>" in row.replace(" class=num", "")
    runs_table = page.split("<h2>Runs</h2>", 1)[1]
    assert runs_table.count("<td>did not learn</td>") == 2
    with report.write_csv(result, tmp_path)[0].open(newline="", encoding="utf-8") as f:
        fates = [(row["label"], row["status"]) for row in csv.DictReader(f)]
    assert sorted(set(fates)) == [
        ("blown", "diverged"),
        ("crawl", "ok"),
        ("early", "ok"),
        ("stuck", "did not learn"),
    ]
    md = report.write_markdown(result, tmp_path).read_text(encoding="utf-8")
    md_row = next(line for line in md.splitlines() if line.startswith("| stuck |"))
    assert md_row.split(" | ")[-2] == "2/2"  # the did-not-learn column, before s/run
    fig = report.panel_figure(result, "loss")
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    matplotlib.pyplot.close(fig)
    assert "stuck (2/2 did not learn)" in legend and "crawl" in legend and "blown (2/2 diverged)" in legend


def test_a_report_from_the_database_finds_the_runs_that_did_not_learn(tmp_path: Path) -> None:
    """The rule reads what every lab database holds (each step's loss, each epoch's mean), so a database
    written before the report knew the rule shows them too."""
    result = _fates()
    db = tmp_path / "lab.db"
    _store_result(db, result)
    page = report.report_from_db(db, tmp_path / "out")[0].read_text(encoding="utf-8")
    section = page.split("<h2>Runs that did not learn</h2>", 1)[1].split("<h2>", 1)[0]
    assert section.count("<tr><td") == 2 and section.count(">stuck</td>") == 2


@pytest.mark.parametrize(
    ("name", "finals", "expected"),
    [
        # 0.975 ± t(.975, 1)·0.03536/√2 = ±0.3177: [0.6573, 1.2927] -> cut at 1
        ("val accuracy", [0.95, 1.0], (0.6573, 1.0)),
        # 0.2 ± 12.706·0.1414/√2 = ±1.2706: [-1.0706, 1.4706] -> cut at both ends
        ("val accuracy", [0.1, 0.3], (0.0, 1.0)),
        # a metric of the user's own has no known range: the interval as computed
        ("acc", [0.95, 1.0], (0.6573, 1.2927)),
        ("val loss", [0.1, 0.3], (-1.0706, 1.4706)),
    ],
)
def test_an_accuracy_ci_is_cut_at_0_and_1_and_says_so(
    name: str, finals: list[float], expected: tuple[float, float], tmp_path: Path
) -> None:
    runs = [make_run("a", i, f) for i, f in enumerate(finals)] + [make_run("b", i, 0.5) for i in range(2)]
    result = LabResult("toy", 1, runs, ":memory:", "t", name, True, 5)
    (a,) = [s for s in report.summarize(result)[0] if s.label == "a"]
    assert a.ci == pytest.approx(expected, abs=6e-4)
    cut = f"cut at {name}'s range [0, 1]"
    assert (cut in report.markdown_table(result)) == (name == "val accuracy")
