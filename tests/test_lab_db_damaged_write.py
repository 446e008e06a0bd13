"""A lab about to write into a damaged copy of a real lab database (a dropped table or column) refuses it
up front, in one line naming the database and the table (and the column), exit 2, and writes nothing: the
file's bytes are unchanged. A dropped table was re-created empty without a word, a dropped column failed
mid-lab with SQLite's error. A database from before ``report_texts`` (or its later columns) still gains
them."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from lrkit.cli import main
from lrkit.lab.store import ResultStore, _schema_columns

pytest.importorskip("torch")


def _damaged(lab_db: Path, tmp_path: Path, sql: str) -> Path:
    copy = tmp_path / "lab.db"
    shutil.copy(lab_db, copy)
    con = sqlite3.connect(copy)
    try:
        con.execute(sql)
        con.commit()
    finally:
        con.close()
    return copy


# every table a lab writes (lrkit_meta: without it, or its column, the file is not lrkit's, refused so by
# check_db_path), and every column SQLite can drop (not a key's)
TABLES = [t for t in _schema_columns() if t not in ("report_texts", "lrkit_meta")]
KEYS = {"key", "id", "run_key", "experiment_id", "position", "step", "epoch"}
COLUMNS = [(t, c) for t in TABLES for c in _schema_columns()[t] if c not in KEYS]


@pytest.mark.parametrize("table", TABLES)
def test_a_dropped_table_is_refused_before_anything_is_written(
    lab_db: Path, tmp_path: Path, table: str
) -> None:
    copy = _damaged(lab_db, tmp_path, f"DROP TABLE {table}")
    before = copy.read_bytes()
    with pytest.raises(
        ValueError, match=rf"is damaged or was not written by lrkit: table {table}: is missing$"
    ):
        ResultStore(copy)
    assert copy.read_bytes() == before


@pytest.mark.parametrize(("table", "column"), COLUMNS)
def test_a_dropped_column_is_refused_naming_it(lab_db: Path, tmp_path: Path, table: str, column: str) -> None:
    copy = _damaged(lab_db, tmp_path, f"ALTER TABLE {table} DROP COLUMN {column}")
    before = copy.read_bytes()
    with pytest.raises(ValueError) as info:
        ResultStore(copy)
    assert str(info.value).endswith(
        f"is damaged or was not written by lrkit: table {table}: has no column {column}"
    )
    assert copy.read_bytes() == before


def test_the_lab_command_says_so_in_one_line_and_writes_nothing(
    lab_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = _damaged(lab_db, tmp_path, "ALTER TABLE runs DROP COLUMN best_metric")
    before = copy.read_bytes()
    out = tmp_path / "out"
    argv = ["lab", "--strategy", "constant(0.05)", "--seeds", "1", "--epochs", "1", "--db", str(copy)]
    code = main([*argv, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert "is damaged or was not written by lrkit: table runs: has no column best_metric" in err, err
    assert copy.read_bytes() == before and not out.exists()


def test_a_database_from_before_report_texts_still_gains_it(lab_db: Path, tmp_path: Path) -> None:
    copy = _damaged(lab_db, tmp_path, "DROP TABLE report_texts")
    with ResultStore(copy) as store:
        assert store.report_texts(1) is not None
