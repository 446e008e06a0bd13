"""A lab database at rest is one file: the last writer to close takes it out of WAL mode, so a reader
(``lrkit report``) leaves no ``-shm``/``-wal`` files beside it and a copy of the file alone is whole. In a
folder that cannot be written (a read-only mount, an archive, another user's folder) a database still in
WAL mode is read as immutable instead of being called damaged, and one that would be written there is
refused before any work, naming the flag."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from lrkit.lab.store import ResultStore, check_db_path, readonly_uri


def _mode(p: Path) -> str:
    con = sqlite3.connect(p)
    try:
        return str(con.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        con.close()


def _lab_db(p: Path) -> Path:
    with ResultStore(p) as store:
        store.experiment("e", "task", "accuracy", True, {"epochs": 1})
    return p


def _beside(p: Path) -> list[str]:
    return sorted(x.name for x in p.parent.iterdir() if x.name != p.name)


def test_a_closed_lab_database_is_one_file_and_reading_it_leaves_nothing(tmp_path: Path) -> None:
    db = _lab_db(tmp_path / "lab.db")
    assert _beside(db) == [] and _mode(db) == "delete"
    store = ResultStore.open_readonly(db)
    assert [e.name for e in store.experiments()] == ["e"]
    store.close()
    assert _beside(db) == []  # the read-only reader of a WAL database left lab.db-shm and lab.db-wal
    with ResultStore(db) as again:  # a writer puts it back in WAL mode while it writes
        assert again.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_while_another_writer_has_it_open_the_mode_stays_until_the_last_closes(tmp_path: Path) -> None:
    db = _lab_db(tmp_path / "lab.db")
    first, second = ResultStore(db), ResultStore(db)
    first.close()  # refused by SQLite at once (busy): no error, no wait
    assert second.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    second.experiment("f", "task", "accuracy", True, {"epochs": 2})
    second.close()
    assert _mode(db) == "delete" and _beside(db) == []
    with ResultStore.open_readonly(db) as store:
        assert sorted(e.name for e in store.experiments()) == ["e", "f"]


@pytest.fixture
def seal(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """``seal(folder)``: from then on lrkit's checks see ``folder`` as one that cannot be written (as on a
    read-only mount; root can write any folder whatever its mode, so the mode alone would not do)."""
    real = os.access

    def seal_(folder: Path) -> None:
        def access(path: object, mode: int, *args: object, **kwargs: object) -> bool:
            if Path(str(path)).resolve() == folder.resolve() and mode & os.W_OK:
                return False
            return real(path, mode, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(os, "access", access)

    return seal_


def test_a_wal_database_in_a_folder_that_cannot_be_written_is_read_as_immutable(
    tmp_path: Path, seal: Callable[[Path], None]
) -> None:
    (tmp_path / "ro").mkdir()
    db = _lab_db(tmp_path / "ro" / "lab.db")
    con = sqlite3.connect(db)  # as an older lrkit left it, or a lab killed while writing
    con.execute("PRAGMA journal_mode = WAL")
    con.close()
    seal(db.parent)
    assert _beside(db) == [] and _mode(db) == "wal"
    assert readonly_uri(db).endswith("?mode=ro&immutable=1")
    assert readonly_uri(_lab_db(tmp_path / "lab.db")).endswith("?mode=ro")
    assert check_db_path(db) == db  # read: fine (it was 'damaged or cut short' on a read-only mount)
    with ResultStore.open_readonly(db) as store:
        assert [e.name for e in store.experiments()] == ["e"]
    (db.parent / "lab.db-wal").write_bytes(b"x" * 100)  # changes waiting in the log
    with pytest.raises(ValueError, match=r"write-ahead log \(lab\.db-wal\) holds changes.*copy the folder"):
        readonly_uri(db)


@pytest.mark.parametrize("name", ["lab.db", "new/lab.db"])
def test_a_database_to_write_in_a_folder_that_cannot_be_written_is_refused_by_flag(
    tmp_path: Path, seal: Callable[[Path], None], name: str
) -> None:
    if name == "lab.db":
        _lab_db(tmp_path / name)
    seal(tmp_path)
    target = tmp_path / name
    assert check_db_path(target, "--db") == target  # reading needs no write
    with pytest.raises(
        ValueError, match=r"^--db: cannot write .* cannot be written \(SQLite writes its journal"
    ):
        check_db_path(target, "--db", write=True)
    with pytest.raises(ValueError, match="cannot be written"):
        ResultStore(target)


def test_lab_refuses_such_a_db_before_it_starts(
    tmp_path: Path, seal: Callable[[Path], None], capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch")
    from lrkit.cli import main

    (tmp_path / "ro").mkdir()
    db = _lab_db(tmp_path / "ro" / "lab.db")
    seal(db.parent)
    code = main(
        [
            "lab",
            "--task",
            "digits-mlp-sgd",
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "o"),
            "--db",
            str(db),
            "--strategy",
            "c=cosine(lr=0.05)",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 2 and out == ""  # the lab's header came first, then the error
    assert err.startswith("lrkit lab: error: --db: cannot write")
