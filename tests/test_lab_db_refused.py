"""A ``--db`` SQLite cannot create (a file system that refuses new files: ``/proc``) or a name the file
system refuses (longer than 255 bytes, a NUL byte) is one ``lrkit lab: error: --db: ...`` line naming the
path (and what SQLite said), exit 2, with no traceback, as ``--out`` words a bad name."""

from __future__ import annotations

from pathlib import Path

import pytest

from lrkit.cli import main
from lrkit.lab.store import ResultStore, check_db_path

LONG = "x" * 300


def _lab(capsys: pytest.CaptureFixture[str], tmp_path: Path, db: str) -> str:
    pytest.importorskip("torch")
    argv = ["lab", "--task", "digits-mlp-sgd", "--epochs", "1", "--strategy", "c=constant(0.05)"]
    code = main([*argv, "--out", str(tmp_path / "o"), "--db", db])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("lrkit lab: error: --db: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_db_on_a_file_system_that_refuses_files(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    err = _lab(capsys, tmp_path, "/proc/lab.db")
    assert "'/proc/lab.db'" in err
    with pytest.raises(ValueError, match=r"^--db: cannot write .*'/proc/lab\.db'"):
        ResultStore("/proc/lab.db")
    assert not (tmp_path / "o").exists()


def test_a_db_name_too_long_names_the_flag(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    err = _lab(capsys, tmp_path, str(tmp_path / f"{LONG}.db"))
    assert "is not a valid path (the name 'xxxx" in err and "longer than 255 bytes" in err, err
    for bad, why in ((tmp_path / f"{LONG}.db", "longer than 255 bytes"), (tmp_path / "a\0b.db", "NUL byte")):
        with pytest.raises(ValueError, match=rf"^--db: .* is not a valid path \(.*{why}"):
            check_db_path(bad, "--db", write=True)
