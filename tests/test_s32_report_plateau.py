"""The lab's report tells a strategy with reduce-on-plateau from the same spec without one: the summary
table's spec cell (HTML), lab.md's strategy cell and the figures' legends add ``+ plateau(...)`` with the
settings that differ from the lab's defaults, and ``runs.csv`` has a last column ``plateau`` (every
setting as JSON, empty for none) from which the row alone rebuilds the run's identity. The LR figure says
that a Prodigy run's curve is its step size ``d * lr``, only where such a run is in the lab.

The plateau lab is a real one (digits-mlp-sgd, 3 epochs, two strategies on one spec); the references
are independent of the report: Plateau's own attributes, the run's key as the runner computes it from a
Strategy rebuilt from the CSV row, and hand-written expected texts."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from lrkit.control.plateau import Plateau
from lrkit.lab import report
from lrkit.lab.report import Asked, StoredResult, plateau_text
from lrkit.lab.runner import PLATEAU_KEYS, LabResult, Strategy, run_config, run_lab
from lrkit.lab.store import RunRecord, run_key
from lrkit.tasks import get_task

pytest.importorskip("matplotlib")

TASK = "digits-mlp-sgd"  # accuracy: the plateau's mode defaults to "max"
EPOCHS = 3
PLATEAU = {"factor": 0.5, "patience": 0, "threshold": 0.2}
SHOWN = "plateau(factor=0.5, patience=0, threshold=0.2)"  # patience 0 and threshold 0.2 are not defaults
#: runs.csv's header before the plateau column (lrkit of 2026-12-07), and epochs.csv's (unchanged)
OLD_RUNS_HEADER = (
    "label,spec,optimizer,seed,status,final_metric,best_metric,diverged_step,steps,seconds,key,task,epochs,"
    "diverge_factor,optimizer_params,lrkit_version,torch_version,python_version,numpy_version,torch_threads"
)
EPOCHS_HEADER = "label,seed,key,epoch,metric,train_loss,seconds"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> tuple[LabResult, Path]:
    tmp = tmp_path_factory.mktemp("plateau_report")
    strategies = [
        Strategy("cut", "constant(lr=0.05)", plateau=PLATEAU),
        Strategy("flat", "constant(lr=0.05)"),
    ]
    result = run_lab(TASK, strategies, epochs=EPOCHS, store=str(tmp / "lab.db"))
    out = tmp / "out"
    report.write_all(result, out)
    return result, out


def _rows(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "runs.csv", newline="", encoding="utf-8") as f:
        return {row["label"]: row for row in csv.DictReader(f)}


def test_runs_csv_plateau_column_holds_the_settings_that_differ_and_rebuilds_the_run(
    lab: tuple[LabResult, Path],
) -> None:
    result, out = lab
    text = (out / "runs.csv").read_text(encoding="utf-8")
    header = text.splitlines()[0]
    assert header == OLD_RUNS_HEADER + ",plateau"  # the columns before keep their places
    assert (out / "epochs.csv").read_text(encoding="utf-8").splitlines()[0] == EPOCHS_HEADER
    rows = _rows(out)
    assert rows["flat"]["plateau"] == ""
    # the reference: the settings of its Plateau that differ from Plateau's defaults in the task's mode
    given, defaults = Plateau(mode="max", **PLATEAU), Plateau(mode="max")
    differ = {k: getattr(given, k) for k in PLATEAU_KEYS if getattr(given, k) != getattr(defaults, k)}
    assert differ and json.loads(rows["cut"]["plateau"]) == differ
    # the row alone reruns its run: a Strategy built from its cells is the stored run (same key)
    task = get_task(TASK)
    probe = task.build(0)
    for label, row in rows.items():
        plateau = json.loads(row["plateau"]) if row["plateau"] else None
        s = Strategy(
            label, row["spec"], row["optimizer"], json.loads(row["optimizer_params"]), plateau=plateau
        )
        cfg = run_config(
            row["task"], s, int(row["seed"]), int(row["epochs"]), probe.optimizer,
            float(row["diverge_factor"]), probe.optimizer_params, bool(probe.higher_is_better),
        )  # fmt: skip
        assert run_key(cfg) == row["key"], label
    # and the plateau did cut: the table would otherwise tell apart two identical runs
    by = {r.label: r for r in result.runs}
    assert min(by["cut"].lrs) < 0.05 == min(by["flat"].lrs)


def _spec_cells(page: str) -> dict[str, str]:
    cells = re.findall(r'<td class="label"><svg.*?</svg> (.*?)<br><code>(.*?)</code></td>', page)
    return dict(cells)


def test_summary_table_and_lab_md_show_the_plateau(lab: tuple[LabResult, Path]) -> None:
    _, out = lab
    page = (out / "report.html").read_text(encoding="utf-8")
    assert _spec_cells(page) == {"cut": f"constant(lr=0.05) + {SHOWN}", "flat": "constant(lr=0.05)"}
    assert "reduce-on-plateau" in page  # the note says what + plateau(...) is
    md = (out / "lab.md").read_text(encoding="utf-8")
    firsts = [line.split(" | ")[0].removeprefix("| ") for line in md.splitlines() if line.startswith("| ")]
    assert set(firsts[1:]) == {f"cut + {SHOWN}", "flat"}


def test_legends_show_the_plateau(lab: tuple[LabResult, Path]) -> None:
    result, _ = lab
    for panel in report.PANELS:
        fig = report.panel_figure(result, panel)
        texts = {t.get_text() for t in fig.legends[0].get_texts()}
        assert texts == {f"cut + {SHOWN}", "flat"}, panel


def test_a_strategy_with_no_finished_run_shows_the_plateau_it_was_given(
    lab: tuple[LabResult, Path],
) -> None:
    result, _ = lab
    flat = [r for r in result.runs if r.label == "flat"]
    asked = (
        Asked("flat", "constant(lr=0.05)", "sgd", 1),
        Asked("waiting", "constant(lr=0.05)", "sgd", 1, plateau={"patience": 2, "mode": "max"}),
    )
    stored = StoredResult(**{**vars(replace(result, runs=flat))}, asked=asked, seeds=(0,))
    md = report.markdown_table(stored)
    assert "| waiting + plateau(patience=2) |" in md  # mode max: the accuracy's default, not shown


@pytest.mark.parametrize(
    ("settings", "higher_is_better", "expected"),
    [
        ({}, True, "plateau()"),
        ({k: getattr(Plateau(mode="max"), k) for k in PLATEAU_KEYS}, True, "plateau()"),
        ({"mode": "min"}, True, "plateau(mode='min')"),  # against an accuracy's direction
        ({"mode": "min"}, False, "plateau()"),  # a loss's own
        ({"threshold_mode": "abs", "start": 0, "min_lr": 1e-5}, True,
         "plateau(threshold_mode='abs', min_lr=1e-05, start=0)"),
        ({"factor": 0.1, "patience": 10, "cooldown": 1}, True, "plateau(cooldown=1)"),
        (None, True, ""),
    ],
)  # fmt: skip
def test_plateau_text_shows_the_settings_that_differ(
    settings: dict[str, object] | None, higher_is_better: bool, expected: str
) -> None:
    assert plateau_text(settings, higher_is_better) == expected


def _run(label: str, optimizer: str, lrs: list[float]) -> RunRecord:
    return RunRecord(
        key=run_key({"label": label}),
        spec="constant(lr=1.0)",
        optimizer=optimizer,
        seed=0,
        status="ok",
        final_metric=0.9,
        best_metric=0.9,
        diverged_step=None,
        steps=len(lrs),
        seconds=1.0,
        lrs=lrs,
        losses=[2.0 - 0.1 * i for i in range(len(lrs))],
        epoch_metrics=[0.5, 0.9],
        epoch_losses=[1.8, 1.5],
        epoch_seconds=[0.5, 1.0],
        label=label,
    )


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_lr_figure_says_prodigys_curve_is_d_times_lr_only_with_a_prodigy_run(lang: str) -> None:
    plain = LabResult("t", 1, [_run("sgd", "sgd", [0.1] * 4)], ":memory:", metric_name="val accuracy")
    with_p = replace(plain, runs=[*plain.runs, _run("p", "prodigy", [1e-6, 1e-4, 3e-3, 4e-3])])
    note = {"en": "step size d·lr the optimizer takes", "ko": "실제로 내딛는 보폭 d·lr"}[lang]
    assert note in report.render_html(with_p, lang=lang)
    assert note not in report.render_html(plain, lang=lang)
    axis = {"en": "learning rate (Prodigy: step size d·lr)", "ko": "학습률 (Prodigy: 보폭 d·lr)"}[lang]
    plain_axis = {"en": "learning rate", "ko": "학습률"}[lang]
    assert report.panel_figure(with_p, "lr", lang=lang).axes[0].get_ylabel() == axis
    assert report.panel_figure(plain, "lr", lang=lang).axes[0].get_ylabel() == plain_axis


def test_a_runs_csv_written_before_the_plateau_column_is_replaced(
    lab: tuple[LabResult, Path], tmp_path: Path
) -> None:
    result, _ = lab
    (tmp_path / "runs.csv").write_text(f"{OLD_RUNS_HEADER}\nx\n", encoding="utf-8")
    report.write_all(result, tmp_path)
    assert (
        (tmp_path / "runs.csv").read_text(encoding="utf-8").splitlines()[0].endswith(",torch_threads,plateau")
    )
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "runs.csv").write_text(f"{OLD_RUNS_HEADER},notes\nx\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"lrkit did not write it"):
        report.write_all(result, mine)
