"""Environments (tester X5) and versions (tester X4): a lab database's format stamp grows with its schema,
a full disk and SQLite's path limit are said in one line, output without stdout or in a C locale, ``~``
in path flags, and names a file system's encoding cannot hold."""

from __future__ import annotations

import argparse
import io
import os
import shlex
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lrkit.lab import store as lab_store
from lrkit.lab.store import (
    REPORT_TEXT_COLUMNS,
    SCHEMA,
    ResultStore,
    RunRecord,
    check_db_path,
    run_key,
)

#: the longest database path SQLite's unix VFS opens (measured with SQLite 3.40: 504 bytes open, 505 not)
MAX_PATH_BYTES = 504
SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _meta(path: Path) -> dict[str, str]:
    con = sqlite3.connect(path)
    try:
        return dict(con.execute("SELECT key, value FROM lrkit_meta").fetchall())
    finally:
        con.close()


def _version_2_database(path: Path) -> None:
    """A database as lrkit wrote it at format version 2, before report_texts' later columns."""
    con = sqlite3.connect(path)
    con.executescript(SCHEMA)
    con.execute("DROP TABLE report_texts")
    con.execute(
        "CREATE TABLE report_texts (experiment_id INTEGER PRIMARY KEY REFERENCES experiments(id), "
        "title TEXT, note TEXT)"
    )
    con.execute("INSERT INTO lrkit_meta VALUES ('format', 'lrkit-lab'), ('version', '2')")
    con.commit()
    con.close()


def _stamped(path: Path, meta: dict[str, str]) -> None:
    """A database of this lrkit's schema whose lrkit_meta is ``meta`` (besides its format)."""
    ResultStore(path).close()
    con = sqlite3.connect(path)
    con.execute("DELETE FROM lrkit_meta WHERE key != 'format'")
    con.executemany("INSERT INTO lrkit_meta VALUES (?, ?)", meta.items())
    con.commit()
    con.close()


# --- 1. the format stamp grows with the schema ------------------------------------------------------


def test_a_version_2_database_is_read_then_upgraded_to_3_when_written(tmp_path: Path) -> None:
    db = tmp_path / "v2.db"
    _version_2_database(db)
    with ResultStore.open_readonly(db) as store:  # read as it is: nothing written
        assert store.report_texts(1).title is None
    assert _meta(db)["version"] == "2"
    with ResultStore(db) as store:
        exp = store.experiment("e", "digits-mlp-sgd", "val accuracy", True, {"strategies": []})
        store.set_report_text(exp, "t", "n", lang="ko")
        assert store.report_texts(exp).lang == "ko"
    con = sqlite3.connect(db)
    columns = [r[1] for r in con.execute("PRAGMA table_info(report_texts)")]
    con.close()
    assert set(REPORT_TEXT_COLUMNS) <= set(columns)
    # an lrkit writing "2" checks `version == "2"`: a database with the new columns no longer says so
    assert _meta(db) == {"format": "lrkit-lab", "version": "3", "needs_version": "3"}
    check_db_path(db)  # and this lrkit goes on using it


def test_a_new_database_says_its_version_and_the_oldest_that_can_write_it(tmp_path: Path) -> None:
    ResultStore(tmp_path / "new.db").close()
    assert _meta(tmp_path / "new.db") == {"format": "lrkit-lab", "version": "3", "needs_version": "3"}


@SETTINGS
@given(version=st.integers(4, 10**18 - 1), needs=st.one_of(st.none(), st.integers(4, 10**18 - 1)))
def test_a_database_of_a_newer_format_is_refused_naming_the_versions(
    tmp_path: Path, version: int, needs: int | None
) -> None:
    db = tmp_path / f"v{version}-{needs}.db"
    _stamped(db, {"version": str(version)} | ({} if needs is None else {"needs_version": str(needs)}))
    with pytest.raises(ValueError) as err:
        check_db_path(db)
    text = str(err.value)
    assert f"format version {version}, written by a newer lrkit" in text
    assert f"it needs format version {version if needs is None else needs} or later" in text
    assert "this lrkit reads versions 2 and 3" in text and repr(str(db)) in text
    with pytest.raises(ValueError, match="written by a newer lrkit"):
        ResultStore(db)


@SETTINGS
@given(version=st.integers(4, 10**18 - 1), needs=st.sampled_from(["2", "3"]))
def test_a_newer_format_that_this_lrkit_can_write_is_used_and_keeps_its_stamp(
    tmp_path: Path, version: int, needs: str
) -> None:
    db = tmp_path / f"ok{version}-{needs}.db"
    _stamped(db, {"version": str(version), "needs_version": needs})
    with ResultStore(db) as store:
        store.experiment("e", "digits-mlp-sgd", "val accuracy", True, {"strategies": []})
    assert _meta(db)["version"] == str(version) and _meta(db)["needs_version"] == needs


@pytest.mark.parametrize("version", ["1", "0", "x", "", "3.1"])
def test_an_older_or_unknown_format_is_refused_naming_it(tmp_path: Path, version: str) -> None:
    db = tmp_path / "old.db"
    _stamped(db, {"version": version})
    with pytest.raises(ValueError, match=f"format version {version}; this lrkit reads versions 2 and 3"):
        check_db_path(db)


# --- 2. a full disk, SQLite's path limit ------------------------------------------------------------


def _record(key: str, steps: int) -> RunRecord:
    return RunRecord(
        key, "constant(lr=0.1)", "sgd", 0, "ok", 0.9, 0.9, None, steps, 0.1,
        lrs=[0.1] * steps, losses=[2.0] * steps, epoch_metrics=[0.9], epoch_losses=[2.0],
    )  # fmt: skip


def test_a_full_disk_is_one_oserror_naming_the_database_and_the_stored_runs_stay(tmp_path: Path) -> None:
    db = tmp_path / "lab.db"
    with ResultStore(db) as store:
        first = {"spec": "a", "seed": 0}
        store.claim(run_key(first), first, owner="me")
        assert store.finish(_record(run_key(first), 10), owner="me")
        pages = store.db.execute("PRAGMA page_count").fetchone()[0]
        store.db.execute(f"PRAGMA max_page_count = {pages + 1}")  # SQLite's own SQLITE_FULL, as on a disk
        second = {"spec": "b", "seed": 0}
        store.claim(run_key(second), second, owner="me")
        with pytest.raises(OSError) as err:
            store.finish(_record(run_key(second), 20_000), owner="me")
        assert isinstance(err.value, lab_store.DatabaseFullError)
        text = str(err.value)
        assert repr(str(db)) in text and "is full" in text and "free space and rerun" in text
        assert not store.db.in_transaction  # rolled back: the connection goes on
        store.db.execute("PRAGMA max_page_count = 1000000")
        assert store.finish(_record(run_key(second), 20_000), owner="me")
    with ResultStore.open_readonly(db) as store:
        assert store.run(run_key(first)) is not None and store.run(run_key(second)) is not None


def test_the_cli_says_a_full_disk_in_one_line(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from lrkit import cli
    from lrkit.lab import store as store_mod

    real_finish = store_mod.ResultStore.finish

    def finish_on_full_disk(self: ResultStore, rec: RunRecord, *args: object, **kwargs: object) -> bool:
        pages = self.db.execute("PRAGMA page_count").fetchone()[0]
        self.db.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own SQLITE_FULL, as on a disk
        rec.lrs, rec.losses = rec.lrs * 1000, rec.losses * 1000  # more than the free room in its pages
        return real_finish(self, rec, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store_mod.ResultStore, "finish", finish_on_full_disk)
    out = tmp_path / "lab"
    code = cli.main(
        ["lab", "--task", "digits-mlp-sgd", "--epochs", "1", "--workers", "1", "--strategy",
         "c=constant(lr=0.05)", "--out", str(out)]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and "lrkit lab: error: the disk holding the lab database" in err
    assert repr(str(out / "lab.db")) in err and "free space and rerun" in err


@SETTINGS
@given(extra=st.integers(1, 300))
def test_a_db_path_longer_than_sqlite_opens_is_refused_naming_its_length(tmp_path: Path, extra: int) -> None:
    base = os.path.realpath(tmp_path)
    n = MAX_PATH_BYTES + extra
    parts, left = [], n - len(os.fsencode(base))
    while left > 0:
        k = min(200, left - 1)
        parts.append("d" * max(k, 1))
        left -= len(parts[-1]) + 1
    db = Path(base, *parts)
    assert len(os.fsencode(str(db))) in (n, n + 1)
    with pytest.raises(ValueError) as err:
        ResultStore(db)
    text = str(err.value)
    assert (
        f"longer than {MAX_PATH_BYTES} bytes" in text and f"this one is {len(os.fsencode(str(db)))}" in text
    )
    assert "give a shorter --db" in text


def test_a_db_path_as_long_as_sqlite_opens_works(tmp_path: Path) -> None:
    base = os.path.realpath(tmp_path)
    left = MAX_PATH_BYTES - len(base) - 1
    db = Path(base, "a" * 200, "b" * 200, "c" * (left - 402))
    db.parent.mkdir(parents=True)
    assert len(os.fsencode(str(db))) == MAX_PATH_BYTES
    with ResultStore(db) as store:
        store.experiment("e", "digits-mlp-sgd", "val accuracy", True, {"strategies": []})


# --- 3. a stdout whose error handler raises: strict and surrogateescape alike --------------------------


def _lrkit(
    args: list[str], env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "lrkit", *args], capture_output=True, env={**os.environ, **env}, cwd=cwd,
        timeout=300, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    "env",
    [
        {"PYTHONIOENCODING": "ascii:surrogateescape"},
        {"LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": ""},
    ],
    ids=["surrogateescape", "C-locale"],
)
def test_a_surrogateescape_stdout_escapes_what_it_cannot_show(env: dict[str, str]) -> None:
    done = _lrkit(["recipes"], env)
    assert done.returncode == 0, done.stderr.decode()
    out = done.stdout.decode("ascii")
    assert "\\x" in out or "\\u" in out
    assert done.stderr == b""


def _ascii_surrogateescape() -> tuple[io.BytesIO, io.TextIOWrapper]:
    raw = io.BytesIO()
    return raw, io.TextIOWrapper(raw, encoding="ascii", errors="surrogateescape")


@SETTINGS
@given(
    st.lists(
        st.one_of(st.text(st.characters(max_codepoint=127), max_size=3), st.text(
            st.characters(min_codepoint=0xDC80, max_codepoint=0xDCFF), min_size=1, max_size=3
        ))
    )
)  # fmt: skip
def test_surrogate_escapes_still_write_their_bytes(monkeypatch: pytest.MonkeyPatch, parts: list[str]) -> None:
    from lrkit.cli import _tolerant_output

    text = "".join(parts)
    raw, stream = _ascii_surrogateescape()
    monkeypatch.setattr(sys, "stdout", stream)
    with _tolerant_output():
        print(text, end="")
    stream.flush()
    assert raw.getvalue() == text.encode("ascii", "surrogateescape")  # a file name's bytes, as they were
    assert stream.errors == "surrogateescape"


@SETTINGS
@given(st.text(st.characters(exclude_categories=["Cs"]), min_size=1))
def test_any_other_character_is_escaped(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    from lrkit.cli import _tolerant_output

    raw, stream = _ascii_surrogateescape()
    monkeypatch.setattr(sys, "stdout", stream)
    with _tolerant_output():
        print(text, end="")
    stream.flush()
    assert raw.getvalue() == text.encode("ascii", "backslashreplace")
    assert stream.errors == "surrogateescape"


# --- 4. no stdout at all ------------------------------------------------------------------------------


def test_without_stdout_output_is_dropped_as_print_drops_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from lrkit._text import say_line
    from lrkit.cli import main
    from lrkit.lab.progress import SweepProgress

    monkeypatch.setattr(sys, "stdout", None)
    say_line("nowhere")
    progress = SweepProgress(metric_name="acc")
    progress("start", {"total": 1, "done": 0})
    progress("run", {"record": _record("k", 3)})
    progress("end", {})
    assert main(["recipes"]) == 0


def test_a_command_started_with_stdout_closed_succeeds(tmp_path: Path) -> None:
    done = subprocess.run(
        f"exec {shlex.quote(sys.executable)} -m lrkit plot 'cosine(lr=1)' --total 10 --out p.png >&-",
        shell=True, capture_output=True, cwd=tmp_path, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and done.stderr == b"", done.stderr.decode()
    assert (tmp_path / "p.png").is_file()


def test_find_json_to_a_closed_stdout_drops_it(tmp_path: Path) -> None:
    """``lrkit find --json -`` keeps stdout for the JSON; with none, the JSON is dropped, as print drops
    what it writes then (it went to a file named '-')."""
    cmd = "-m lrkit find --task digits-mlp-sgd --num-steps 20 --repeats 1 --budget 1 --out none --json - >&-"
    done = subprocess.run(
        f"exec {shlex.quote(sys.executable)} {cmd}", shell=True, capture_output=True, cwd=tmp_path,
        timeout=300, check=False, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert done.returncode in (0, 3) and b"Traceback" not in done.stderr, done.stderr.decode()
    assert not (tmp_path / "-").exists()  # it was written to a file named '-'


# --- 5. ~ in path flags -------------------------------------------------------------------------------


def _actions(
    parser: argparse.ArgumentParser, command: str = "lrkit"
) -> Iterator[tuple[str, argparse.Action]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _actions(sub, name)
        else:
            yield command, action


#: every argument that names a file or a folder, by command
PATHS = {
    ("plot", "out"), ("gallery", "out"), ("lab", "experiment"), ("lab", "out"), ("lab", "db"),
    ("report", "source"), ("report", "out"), ("demo", "out"), ("find", "out"), ("find", "json"),
    ("auto", "json"), ("auto", "plot"), ("tune", "storage"), ("tune", "out"),
}  # fmt: skip


@SETTINGS
@given(rest=st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=20))
def test_every_path_flag_expands_the_home_folder(monkeypatch: pytest.MonkeyPatch, rest: str) -> None:
    from lrkit.cli import build_parser

    monkeypatch.setenv("HOME", "/home/someone")
    found = {(c, a.dest): a for c, a in _actions(build_parser()) if (c, a.dest) in PATHS}
    assert set(found) == PATHS
    for (command, dest), action in found.items():
        assert action.type is not None, (command, dest)
        assert action.type("~/" + rest) == "/home/someone/" + rest, (command, dest)
        assert action.type("x/~" + rest) == "x/~" + rest  # only a leading ~ is the home folder
    storage = found["tune", "storage"].type
    assert storage is not None and storage("sqlite:///~/s.db") == "sqlite:////home/someone/s.db"
    assert storage("postgresql://u@h/~db") == "postgresql://u@h/~db"
    assert found["find", "json"].type("-") == "-"  # type: ignore[misc]


def test_plot_out_with_a_tilde_after_the_equals_sign_writes_in_the_home_folder(tmp_path: Path) -> None:
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir(), cwd.mkdir()
    done = _lrkit(["plot", "cosine(lr=1)", "--total", "10", "--out=~/p.png"], {"HOME": str(home)}, cwd=cwd)
    assert done.returncode == 0, done.stderr.decode()
    assert (home / "p.png").is_file() and not (cwd / "~").exists()
    assert f"wrote {home / 'p.png'}" in done.stdout.decode()


# --- 6. a name the file system's encoding cannot hold -------------------------------------------------


def test_an_output_name_an_ascii_file_system_cannot_hold_is_named_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / "e.yaml").write_text(
        "task: digits-mlp-sgd\nepochs: 1\noutput: 결과 🎉\nstrategies:\n  - c=constant(0.05)\n",
        encoding="utf-8",
    )
    done = _lrkit(
        ["lab", "e.yaml"], {"LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": "utf-8"}, tmp_path
    )
    err = done.stderr.decode()
    assert done.returncode == 2
    assert "'결과 🎉' cannot be written in this file system's encoding (ascii)" in err
    assert "use an ASCII name, or a UTF-8 locale (PYTHONUTF8=1)" in err and err.count("\n") == 1
    assert not list(tmp_path.glob("*/lab.db"))


def test_an_argument_a_c_locale_cannot_read_is_named_with_the_fix(tmp_path: Path) -> None:
    args = [
        "lab",
        "--task",
        "digits-mlp-sgd",
        "--epochs",
        "1",
        "--workers",
        "1",
        "--strategy",
        "코사인=constant(0.05)",
    ]
    done = _lrkit([*args, "--out", "o"], {"LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": ""}, tmp_path)
    err = done.stderr.decode("ascii", "replace")
    assert done.returncode == 1 and err.count("\n") == 1, err
    assert "surrogates not allowed: an argument or a file name holds bytes this locale's encoding" in err
    assert "use a UTF-8 locale (PYTHONUTF8=1)" in err and "PYTHONIOENCODING" not in err
