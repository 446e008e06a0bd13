"""``lrkit report`` on a damaged copy of a real lab database (one change each: a JSON config that is not an
object or not JSON or nested too deep, a dropped table or column, a value of the wrong kind) says so in one
line naming the database, the table, the column and the run or experiment, exit 2: no traceback, no
report written."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from lrkit.cli import main

pytest.importorskip("torch")
pytest.importorskip("matplotlib")

# (the change, what the error line says after "is damaged or was not written by lrkit: ")
DAMAGE = {
    "config_array": (
        "UPDATE experiments SET config = '[1,2]'",
        "table experiments, column config (experiment 1): expected a JSON object, got an array",
    ),
    "config_not_json": (
        "UPDATE experiments SET config = '{not json'",
        "table experiments, column config (experiment 1): not JSON (",
    ),
    "config_deep": (
        "UPDATE experiments SET config = '{\"a\": ' || replace(hex(zeroblob(100000)), '00', '[') || '}'",
        "table experiments, column config (experiment 1): its JSON is nested too deep to read",
    ),
    "run_config_null": (
        "UPDATE runs SET config = 'null'",
        "table runs, column config (run '{key}'): expected a JSON object, got null",
    ),
    "epochs_dropped": ("DROP TABLE epochs", "table epochs: cannot be read (SQLite: no such table: epochs)"),
    "members_dropped": (
        "DROP TABLE members",
        "table members: cannot be read (SQLite: no such table: members)",
    ),
    "column_dropped": (
        "ALTER TABLE runs DROP COLUMN best_metric",
        "table runs: cannot be read (SQLite: no such column: best_metric)",
    ),
    "metric_text": (
        "UPDATE runs SET final_metric = 'abc'",
        "table runs, column final_metric (run '{key}'): expected a finite number, got str 'abc'",
    ),
    "seed_text": (
        "UPDATE runs SET seed = 'abc'",
        "table runs, column seed (run '{key}'): expected an integer, got str 'abc'",
    ),
    "lr_text": (
        "UPDATE steps SET lr = 'big'",
        "table steps, column lr (run '{key}'): expected a finite number, got str 'big'",
    ),
    "epoch_metric_inf": (
        "UPDATE epochs SET metric = 1e999",
        "table epochs, column metric (run '{key}'): expected a finite number, got float inf",
    ),
    "higher_is_better_7": (
        "UPDATE experiments SET higher_is_better = 7",
        "table experiments, column higher_is_better (experiment 1): expected 0 or 1, got int 7",
    ),
}


def test_the_undamaged_copy_reports(lab_db: Path, tmp_path: Path) -> None:
    copy = tmp_path / "lab.db"
    shutil.copy(lab_db, copy)
    assert main(["report", str(copy), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "report.html").is_file()


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_a_damaged_database_is_one_line_naming_where(
    lab_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    sql, said = DAMAGE[kind]
    copy = tmp_path / "lab.db"
    shutil.copy(lab_db, copy)
    con = sqlite3.connect(copy)
    try:
        (key,) = con.execute("SELECT key FROM runs").fetchone()
        con.execute(sql)
        con.commit()
    finally:
        con.close()
    out = tmp_path / "out"
    code = main(["report", str(copy), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    damaged = f"{str(copy)!r} is damaged or was not written by lrkit"
    want = f"lrkit report: error: {damaged}: {said.format(key=key)}"
    assert err.startswith(want), (want, err)
    assert not out.exists()
