"""A lab's outputs say what reproduces a run (a tester's finding: the report named no versions, and a row of
runs.csv could not be rerun without the database): the report (page, lab.md, the console's table) says
which lrkit, torch, Python and numpy the runs ran with and on how many torch threads, in English and
Korean; runs.csv ends with the task, epochs, diverge_factor, the full optimizer_params, the versions and
the threads, after the columns an earlier lrkit wrote, whose runs.csv lrkit still replaces."""

from __future__ import annotations

import csv
import json
import platform
import shutil
from collections.abc import Iterator
from contextlib import redirect_stdout
from dataclasses import replace
from io import StringIO
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import lrkit  # noqa: E402
from lrkit.cli import main  # noqa: E402
from lrkit.lab import report  # noqa: E402
from lrkit.lab.runner import ENV, LabResult, Strategy, run_lab, run_strategy  # noqa: E402

#: the header of runs.csv before these columns (lrkit 0.1.0 of 2026-12-06)
OLD_HEADER = "label,spec,optimizer,seed,status,final_metric,best_metric,diverged_step,steps,seconds,key"


def _versions(threads: int = 1) -> tuple[str, str]:
    """This process's line, English and Korean."""
    plural = "" if threads == 1 else "s"
    common = f"lrkit {lrkit.__version__}, torch {torch.__version__}, "
    return (
        f"Ran with {common}Python {platform.python_version()}, numpy {np.__version__}, "
        f"{threads} torch thread{plural}.",
        f"실행 환경: {common}파이썬 {platform.python_version()}, numpy {np.__version__}, "
        f"torch 스레드 {threads}개.",
    )


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, LabResult]]:
    """A tiny real lab (1 strategy, 1 seed, 1 epoch of digits-mlp-sgd) on one torch thread, and its
    database's folder."""
    out = tmp_path_factory.mktemp("lab")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = run_lab(
            "digits-mlp-sgd",
            [Strategy("c", "cosine(lr=0.05)", "sgd", {"momentum": 0.5})],
            epochs=1,
            store=str(out / "lab.db"),
        )
    finally:
        torch.set_num_threads(n)
    yield out, result


def test_the_report_says_what_the_runs_ran_with(lab: tuple[Path, LabResult], tmp_path: Path) -> None:
    src, result = lab
    en, ko = _versions()
    assert report.environments(result) == en
    assert report.environments(result, lang="ko") == ko
    report.write_all(result, tmp_path / "en")
    assert report.plain_markdown((tmp_path / "en" / "lab.md").read_text(encoding="utf-8")).endswith(
        f"\n\n{en}\n"
    )
    assert f'<p class="meta env">{en}</p>' in (tmp_path / "en" / "report.html").read_text(encoding="utf-8")
    # lrkit report prints lab.md's table and, under it, the line; in Korean too
    for lang, line in (("en", en), ("ko", ko)):
        out = StringIO()
        with redirect_stdout(out):
            rc = main(["report", str(src / "lab.db"), "--out", str(tmp_path / lang), "--lang", lang])
        assert rc == 0
        table_end = out.getvalue().index(line)
        assert out.getvalue().rindex("|", 0, table_end) > 0  # under the table
        page = (tmp_path / lang / "report.html").read_text(encoding="utf-8")
        assert f'<p class="meta env">{line}</p>' in page


def test_runs_that_differ_are_counted_by_what_they_ran_with(lab: tuple[Path, LabResult]) -> None:
    _, result = lab
    (run,) = result.runs
    env = run.config[ENV]
    on_four = replace(run, config={**run.config, ENV: {**env, "torch_threads": 4}})
    older = replace(run, config={k: v for k, v in run.config.items() if k != ENV})
    mixed = replace(result, runs=[run, on_four, on_four, older])
    one, four = _versions(1)[0][len("Ran with ") : -1], _versions(4)[0][len("Ran with ") : -1]
    assert report.environments(mixed) == (
        f"Ran with {one} (1 run); {four} (2 runs); 1 run from an lrkit that did not record versions."
    )
    ko_one, ko_four = _versions(1)[1][len("실행 환경: ") : -1], _versions(4)[1][len("실행 환경: ") : -1]
    assert report.environments(mixed, lang="ko") == (
        f"실행 환경: {ko_one} (실행 1개); {ko_four} (실행 2개); 버전을 기록하지 않던 lrkit으로 돌린 실행 1개."
    )
    old_lab = replace(result, runs=[older, older])
    assert report.environments(old_lab) == "2 runs from an lrkit that did not record versions."
    ko_old = "실행 환경: 버전을 기록하지 않던 lrkit으로 돌린 실행 2개."
    assert report.environments(old_lab, lang="ko") == ko_old


def test_a_row_of_runs_csv_reruns_its_run_without_the_database(
    lab: tuple[Path, LabResult], tmp_path: Path
) -> None:
    src, result = lab
    shutil.copy(src / "lab.db", tmp_path / "lab.db")
    report.write_csv(result, tmp_path)
    (tmp_path / "lab.db").unlink()  # the row alone
    text = (tmp_path / "runs.csv").read_text(encoding="utf-8")
    assert text.startswith(OLD_HEADER + ",")  # the columns an earlier lrkit wrote keep their places
    (row,) = csv.DictReader(StringIO(text))
    assert row["optimizer_params"] == '{"momentum": 0.5}' and row["epochs"] == "1"
    assert (row["task"], row["torch_threads"], row["torch_version"]) == (
        "digits-mlp-sgd",
        "1",
        torch.__version__,
    )
    n = torch.get_num_threads()
    torch.set_num_threads(int(row["torch_threads"]))
    try:
        run = run_strategy(
            row["task"],
            Strategy(row["label"], row["spec"], row["optimizer"], json.loads(row["optimizer_params"])),
            seed=int(row["seed"]),
            epochs=int(row["epochs"]),
            diverge_factor=float(row["diverge_factor"]),
        )
    finally:
        torch.set_num_threads(n)
    assert repr(run.final_metric) == row["final_metric"] and run.steps == int(row["steps"])
    assert run.losses == result.runs[0].losses


def test_an_earlier_lrkits_runs_csv_is_replaced_and_a_users_refused(
    lab: tuple[Path, LabResult], tmp_path: Path
) -> None:
    _, result = lab
    old = tmp_path / "old"
    old.mkdir()
    # as an lrkit before these columns wrote it (csv's line ends)
    row = "c,cosine(lr=0.05),sgd,0,ok,0.5,0.5,,45,0.1,k"
    (old / "runs.csv").write_bytes(f"{OLD_HEADER}\r\n{row}\r\n".encode())
    report.write_all(result, old)
    header = (old / "runs.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header == ",".join(report.RUNS_COLUMNS) and header.endswith(",torch_threads,plateau")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "runs.csv").write_text(f"{OLD_HEADER},notes\nx\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"runs\.csv' exists and lrkit did not write it"):
        report.write_all(result, mine)
    assert (mine / "runs.csv").read_text(encoding="utf-8") == f"{OLD_HEADER},notes\nx\n"
