"""The report of a lab that did not finish (killed, or still running), re-made from its database: the title
and the page count the strategies and seeds the lab asked for, every strategy has a row in the summary (one
with no finished run says so, its metric cells empty), and ``finished`` reads k/n with n the seeds asked
for. Once the lab has finished, its report is the one of the same runs in memory."""

from __future__ import annotations

import dataclasses
import html
import warnings
from pathlib import Path

import pytest

from lrkit.lab import report
from lrkit.lab.runner import LabResult
from lrkit.lab.store import ResultStore, RunRecord
from tests.test_report import make_run
from tests.test_report_lang import _english_in, _parse, _without_user_text

matplotlib = pytest.importorskip("matplotlib")
pytest.importorskip("matplotlib.pyplot")  # closing a figure: a no-op for lrkit's (not pyplot's)
pytestmark = pytest.mark.filterwarnings("ignore::lrkit.lab.report.MissingFontWarning")

#: the lab: (label, optimizer as the experiment names it, None: the task's), and which seeds finished
#: ("ok", "diverged") and which did not (None)
LAB = {
    "c": (None, {0: "ok", 1: "ok"}),
    "l": (None, {0: "ok", 1: None}),
    "blow": (None, {0: "diverged", 1: None}),
    "adam": ("adam", {0: None, 1: None}),
}
SEEDS = [0, 1]


def _run(label: str, seed: int, status: str) -> RunRecord:
    optimizer = LAB[label][0] or "momentum"  # the task's optimizer, as a finished run shows it
    if status == "diverged":
        run = make_run(label, seed, None, diverge_at=5 + seed, lr=1.0)
    else:
        run = make_run(label, seed, 0.9 + 0.01 * seed + 0.001 * len(label))
    return dataclasses.replace(run, optimizer=optimizer, spec="cosine(lr=0.1)")


def _all_runs() -> list[RunRecord]:
    """Every run of the lab, finished: a missing seed finishes ok."""
    return [_run(label, seed, LAB[label][1][seed] or "ok") for label in LAB for seed in SEEDS]


def _lab_db(db: Path) -> tuple[int, list[RunRecord]]:
    """A database as ``lrkit lab`` leaves it when killed: the experiment (its config as run_lab writes it,
    every run a member) and only the runs that finished. The experiment's id, and every run."""
    runs = _all_runs()
    config = {
        "strategies": [
            {"label": label, "spec": "cosine(lr=0.1)", "optimizer": opt, "optimizer_params": {}}
            for label, (opt, _) in LAB.items()
        ],
        "seeds": SEEDS,
        "epochs": 5,
    }
    with ResultStore(db) as store:
        exp = store.experiment(
            "lab", "toy-task", "val accuracy", True, config, [(r.label, r.key) for r in runs]
        )
        for r in runs:
            if LAB[r.label][1][r.seed] is not None:
                store.claim(r.key, {"spec": r.spec, "optimizer": r.optimizer, "seed": r.seed}, "me")
                store.finish(_run(r.label, r.seed, LAB[r.label][1][r.seed] or "ok"), "me")
    return exp, runs


def _summary_rows(page: str) -> dict[str, list[str]]:
    """The summary table's rows by strategy (the label cell holds the label, then the spec)."""
    table = _parse(page).tables[0]
    return {row[0].removesuffix("cosine(lr=0.1)").strip(): row for row in table[1:]}


def _md_rows(md: str) -> dict[str, list[str]]:
    lines = [line for line in md.splitlines() if line.startswith("| ")][1:]
    return {cells[0]: cells for cells in ([c.strip() for c in line.split("|")[1:-1]] for line in lines)}


def test_an_interrupted_labs_report_counts_the_labs_strategies_and_seeds(tmp_path: Path) -> None:
    _lab_db(tmp_path / "lab.db")
    paths = report.report_from_db(tmp_path, tmp_path / "out")
    page, md = paths[0].read_text(encoding="utf-8"), paths[3].read_text(encoding="utf-8")
    title = "lrkit lab 'lab': 4 strategies on toy-task, 2 seeds, 5 epochs"
    assert f"<h1>{html.escape(title)}</h1>" in page and md.splitlines()[1] == f"# {title}"
    assert "4 strategies · seeds 0, 1 · 5 epochs · 8 runs" in page
    assert "**4 of 8 runs are not finished" in md
    assert "<summary>the 4 finished runs of 8</summary>" in page  # the runs table holds 4 rows
    assert len(_parse(page).tables[-1]) == 1 + 4


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_every_strategy_has_a_row_and_finished_counts_the_seeds_asked_for(tmp_path: Path, lang: str) -> None:
    _lab_db(tmp_path / "lab.db")
    paths = report.report_from_db(tmp_path, tmp_path / "out", lang=lang)
    none = {"en": "no finished run", "ko": "끝난 실행 없음"}[lang]
    rows = _summary_rows(paths[0].read_text(encoding="utf-8"))
    md = _md_rows(paths[3].read_text(encoding="utf-8"))
    assert list(rows) == list(md) == ["c", "l", "blow", "adam"]  # best first, those without a mean last
    for table in (rows, md):
        assert [table[label][1:3] for label in table] == [
            ["momentum", "2/2"],
            ["momentum", "1/2"],
            ["momentum", "0/2"],
            ["adam", "0/2"],  # the optimizer the lab named: no run shows it
        ]
        assert table["blow"][3] == table["adam"][3] == none
        assert table["blow"][9].startswith("1/2")  # diverged: 1 of its 2 seeds
        # no made-up number: every cell after the strategy's name, optimizer and count is empty
        assert table["adam"][4:] == ["—"] * 8, table["adam"]
        assert table["blow"][10:] == ["—", "0"], table["blow"]  # did not learn; s/run of its one run


def test_a_korean_report_of_an_interrupted_lab_counts_the_labs_strategies_in_korean(tmp_path: Path) -> None:
    _lab_db(tmp_path / "lab.db")
    result, _ = report.load_result(tmp_path)
    paths = report.report_from_db(tmp_path, tmp_path / "out", lang="ko")
    page = paths[0].read_text(encoding="utf-8")
    title = "lrkit lab 'lab': toy-task에서 전략 4개, 시드 2개, 5 에폭"
    assert f"<h1>{html.escape(title)}</h1>" in page
    assert "<summary>실행 8개 중 끝난 4개</summary>" in page
    assert "실행 8개 중 4개가 끝나지 않았습니다" in page
    texts = {  # and no English sentence of the catalogue
        "page": " ".join(_parse(page).text),
        "lab.md": report.plain_markdown(paths[3].read_text(encoding="utf-8")),
    }
    for where, text in texts.items():
        assert not _english_in(_without_user_text(text, result)), where


def test_the_figure_draws_the_finished_runs_and_counts_the_seeds_asked_for(tmp_path: Path) -> None:
    _lab_db(tmp_path / "lab.db")
    result, missing = report.load_result(tmp_path)
    assert missing == 4 and len(result.runs) == 4
    fig = report.lab_figure(result)
    try:
        legend = [t.get_text() for t in fig.legends[0].get_texts()]
        assert legend == ["c", "l", "blow (1/2 diverged)"]  # adam has no curve to draw
        assert fig.texts[0].get_text() == "lrkit lab 'lab': 4 strategies on toy-task, 2 seeds, 5 epochs"
    finally:
        matplotlib.pyplot.close(fig)


def test_once_the_lab_has_finished_its_report_is_the_one_of_its_runs(tmp_path: Path) -> None:
    """A complete lab's report from the database is byte for byte the report of its runs in memory (the
    report of a lab that finished is unchanged), in both languages."""
    db = tmp_path / "lab.db"
    exp, runs = _lab_db(db)
    partial = report.report_from_db(db, tmp_path / "partial")[0].read_text(encoding="utf-8")
    assert "no finished run" in partial
    with ResultStore(db) as store:  # the lab run again: it finishes the missing runs
        for r in runs:
            if (
                store.claim(r.key, {"spec": r.spec, "optimizer": r.optimizer, "seed": r.seed}, "me")
                == "claimed"
            ):
                assert store.finish(r, "me")
    memory = LabResult("toy-task", exp, runs, str(db), "lab", "val accuracy", True, 5)
    for lang in ("en", "ko"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stored = report.report_from_db(db, tmp_path / "db" / lang, lang=lang)
            made = report.write_all(memory, tmp_path / "mem" / lang, lang=lang)
        for a, b in zip(stored, made, strict=True):
            assert a.read_bytes() == b.read_bytes(), (lang, a.name)
        finished = {label: row[2] for label, row in _md_rows(stored[3].read_text(encoding="utf-8")).items()}
        assert finished == {"blow": "1/2", "adam": "2/2", "c": "2/2", "l": "2/2"}  # blow: seed 0 diverged
