"""What lrkit shows and runs of what others wrote (tester X2's safety review): a storage URL's password
is never printed (one with ``/``, ``@``, ``?``, ``#``, ``%`` included), a lab database whose tables are
views or carry triggers is refused before any of it is read, Ctrl-C stops a statement that runs long, a
run's label cannot drive the terminal, and an owner's pid that no process can have is no live owner."""

from __future__ import annotations

import importlib.util
import io
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from lrkit._terminal import printable
from lrkit.lab.progress import SweepProgress
from lrkit.lab.store import ResultStore, RunRecord, check_db_path, run_key
from lrkit.tune.storage import mask_url, open_error, open_storage, storage_url

#: printable ASCII without the space: the characters of a password, / @ : # ? % among them
PASSWORDS = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=6, max_size=24)
SPECIAL = st.text(st.sampled_from("/@:#?%"), min_size=1, max_size=4)


@st.composite
def passwords(draw: st.DrawFn) -> str:
    """A password that holds at least one of / @ : # ? % (where URLs were cut), somewhere in it."""
    text, special = draw(PASSWORDS), draw(SPECIAL)
    at = draw(st.integers(0, len(text)))
    return text[:at] + special + text[at:]


def _hidden(message: str, password: str, written: str) -> bool:
    return password not in message and written not in message


def _refusal(call: Callable[[], object]) -> str:
    with pytest.raises(ValueError) as info:
        call()
    return str(info.value)


# --- 1. a password in a storage URL --------------------------------------------------------------------
def test_the_reported_url_is_masked() -> None:
    assert (
        mask_url("postgresql://bob:S3cr3t/PW@db.example:5432/lab")
        == "postgresql://bob:***@db.example:5432/lab"
    )


@settings(max_examples=300, deadline=None)
@given(
    passwords(), st.booleans(), st.sampled_from(["postgresql", "postgresql+psycopg2", "mysql", "postgres"])
)
def test_mask_url_never_shows_a_password(password: str, quoted: bool, scheme: str) -> None:
    written = quote(password, safe="") if quoted else password
    shown = mask_url(f"{scheme}://bob:{written}@db.example:5432/lab?sslmode=require")
    expected = f"{scheme}://bob:***@db.example:5432/lab?sslmode=require"
    assume(password not in expected and written not in expected)
    assert shown == expected


@settings(max_examples=150, deadline=None)
@given(passwords(), st.sampled_from(["postgresql:/", "postgresql:", "postgresql//", "postgresql:///", " x "]))
def test_a_mistyped_url_never_shows_a_password(password: str, head: str) -> None:
    """The refusals of a URL that lost a slash or its colon, or has spaces around it, mask it too."""
    url = f"{head}bob:{password}@db.example/lab"
    if head == " x ":
        url = f" postgresql://bob:{password}@db.example/lab "
    neutral = url.replace(password, "PW")
    try:
        storage_url(neutral, "--storage")
    except ValueError as exc:
        assume(password not in str(exc))
    try:
        storage_url(url, "--storage")
    except ValueError as exc:
        assert password not in str(exc), str(exc)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


needs_psycopg2 = pytest.mark.skipif(
    importlib.util.find_spec("psycopg2") is None, reason="needs psycopg2 (a driver that refuses)"
)


@needs_psycopg2
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(passwords(), st.booleans())
def test_a_storage_that_cannot_be_opened_never_shows_its_password(password: str, quoted: bool) -> None:
    port = _closed_port()
    written = quote(password, safe="") if quoted else password
    neutral = _refusal(lambda: open_storage(f"postgresql://bob:PW@127.0.0.1:{port}/lab"))
    assume(password not in neutral and written not in neutral)
    message = _refusal(lambda: open_storage(f"postgresql://bob:{written}@127.0.0.1:{port}/lab"))
    assert _hidden(message, password, written), message


@needs_psycopg2
def test_a_driver_error_that_echoes_a_piece_of_the_password_is_masked() -> None:
    """SQLAlchemy ends a password at its first '@': psycopg2 then names the host "PW@127.0.0.1". lrkit
    refuses such a URL before connecting; the driver's error, for a URL given straight to open_error,
    is masked too."""
    import sqlalchemy

    url = f"postgresql+psycopg2://bob:S3cr3t@PW@127.0.0.1:{_closed_port()}/lab"
    message = _refusal(lambda: open_storage(url))
    assert "holds '@'" in message and "%40" in message and "PW" not in message and "S3cr3t" not in message
    engine = sqlalchemy.create_engine(url)
    with pytest.raises(sqlalchemy.exc.OperationalError) as info:
        engine.connect()
    assert "PW@127.0.0.1" in str(info.value)  # what the driver says
    error = open_error("--storage", url, info.value)
    assert error is not None
    assert "PW" not in str(error) and "S3cr3t" not in str(error) and "***@127.0.0.1" in str(error)


def test_a_password_written_with_percent_40_is_accepted() -> None:
    """A password with '@' written as a URL must write it: taken, and masked whole."""
    url = "postgresql+psycopg2://bob:S3cr3t%40PW@db.example:5432/lab"
    assert storage_url(url) == url
    assert mask_url(url) == "postgresql+psycopg2://bob:***@db.example:5432/lab"


# --- 2. a lab database someone sent ---------------------------------------------------------------------
TABLES = ["lrkit_meta", "experiments", "members", "runs", "steps", "epochs", "report_texts"]


def _lab_db(path: Path) -> Path:
    """A lab database with one experiment and one finished run."""
    cfg = {"task": "digits-mlp-sgd", "spec": "constant(lr=0.1)", "optimizer": "sgd", "seed": 0}
    key = run_key(cfg)
    with ResultStore(path) as store:
        exp = store.experiment(
            "demo", "digits-mlp-sgd", "val accuracy", True, {"strategies": []}, [("a", key)]
        )
        store.set_report_text(exp, "title", None)
        store.claim(key, cfg, owner="me")
        rec = RunRecord(key, "constant(lr=0.1)", "sgd", 0, "ok", 0.9, 0.9, None, 2, 0.1, lrs=[0.1, 0.1])
        rec.losses, rec.epoch_metrics, rec.epoch_losses = [2.3, 2.1], [0.9], [2.2]
        assert store.finish(rec, owner="me")
    return path


def _alter(path: Path, sql: str) -> None:
    con = sqlite3.connect(path)
    try:
        con.executescript(sql)
        con.commit()
    finally:
        con.close()


def _each_way_refuses(path: Path, words: str) -> None:
    """check_db_path (lrkit lab, lrkit report), the read-only store, and a writer handed the path unchecked
    (a lab's worker) refuse ``path``, naming ``words``."""
    for call in (
        lambda: check_db_path(path),
        lambda: check_db_path(path, write=True),
        lambda: ResultStore.open_readonly(path),
        lambda: ResultStore(path, check=False),
    ):
        message = _refusal(call)
        assert words in message and "not written by lrkit" in message and repr(str(path)) in message, message


@pytest.mark.parametrize("table", TABLES)
@pytest.mark.parametrize("case", [str.lower, str.upper])
def test_a_table_replaced_by_a_view_is_refused(
    tmp_path: Path, table: str, case: Callable[[str], str]
) -> None:
    """make_evil_db.py's database: a view's query may never end (lrkit report hung). Here it ends (a
    bounded recursion), so the old lrkit read it without a word."""
    path = _lab_db(tmp_path / "lab.db")
    name = case(table)
    _alter(
        path,
        f"ALTER TABLE {table} RENAME TO {table}_real; CREATE VIEW {name} AS WITH RECURSIVE c(x) AS "
        f"(SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000) SELECT t.* FROM {table}_real t, "
        "(SELECT max(x) FROM c);",
    )
    _each_way_refuses(path, f"view {name!r}")


@pytest.mark.parametrize("table", TABLES)
def test_a_trigger_on_a_table_of_lrkit_is_refused(tmp_path: Path, table: str) -> None:
    path = _lab_db(tmp_path / "lab.db")
    _alter(path, f"CREATE TRIGGER sneaky AFTER INSERT ON {table} BEGIN DELETE FROM experiments; END;")
    _each_way_refuses(path, f"trigger 'sneaky' on table {table}")


def test_lrkit_report_refuses_a_view(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lrkit.cli import main

    path = _lab_db(tmp_path / "lab.db")
    _alter(path, "ALTER TABLE steps RENAME TO steps_real; CREATE VIEW steps AS SELECT * FROM steps_real;")
    assert main(["report", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "view 'steps'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_views_and_triggers_of_other_tables_are_left_alone(tmp_path: Path) -> None:
    """What a user added beside lrkit's tables is not run by lrkit: the database still reads and writes."""
    path = _lab_db(tmp_path / "lab.db")
    _alter(
        path,
        "CREATE TABLE notes (t TEXT); CREATE VIEW summary AS SELECT count(*) FROM runs; "
        "CREATE TRIGGER mine AFTER INSERT ON notes BEGIN DELETE FROM notes; END;",
    )
    check_db_path(path, write=True)
    with ResultStore.open_readonly(path) as store:
        assert [r.final_metric for r in store.runs(1)] == [0.9]
    with ResultStore(path) as store:
        assert store.experiments()[0].name == "demo"


CTRL_C = """
import os, signal, sys, threading, time
from lrkit.lab.store import ResultStore
store = ResultStore.open_readonly(sys.argv[1]) if sys.argv[2] == "read" else ResultStore(sys.argv[1])
threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
start = time.monotonic()
try:
    store.db.execute(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50000000) "
        "SELECT max(x) FROM c"
    ).fetchall()
    print("finished")
except KeyboardInterrupt:
    print("interrupted after", time.monotonic() - start)
    print("still reads", store.db.execute("SELECT count(*) FROM runs").fetchone()[0])
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT by os.kill")
@pytest.mark.parametrize("mode", ["read", "write"])
def test_ctrl_c_stops_a_long_statement(tmp_path: Path, mode: str) -> None:
    """SQLite does not return to Python inside a statement: the old lrkit ran it to its end (here tens of
    seconds; a crafted one never ends), then raised the KeyboardInterrupt."""
    path = _lab_db(tmp_path / "lab.db")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", CTRL_C, str(path), mode], capture_output=True, text=True, timeout=300, env=env
    )
    assert out.returncode == 0, out.stderr
    m = re.search(r"interrupted after ([0-9.]+)", out.stdout)
    assert m is not None, out.stdout
    assert float(m.group(1)) < 5.0, out.stdout
    assert "still reads 1" in out.stdout


def test_the_connection_does_not_trust_the_schema(tmp_path: Path) -> None:
    path = _lab_db(tmp_path / "lab.db")
    with ResultStore.open_readonly(path) as store:
        assert store.db.execute("PRAGMA trusted_schema").fetchone()[0] == 0
    with ResultStore(path) as store:
        assert store.db.execute("PRAGMA trusted_schema").fetchone()[0] == 0


# --- 3. a run's label on the terminal ---------------------------------------------------------------------
CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
EVIL = "\x1b]0;pwned\x07\x1b[2J\x1b[31mRED\x9b2J\u202eevil"


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_printable_escapes_every_control_character_and_nothing_else(text: str) -> None:
    shown = printable(text)
    assert CONTROLS.search(shown) is None
    if CONTROLS.search(text) is None:
        assert shown == text
    assert printable(text, lines=True).split("\n") == [printable(line) for line in text.split("\n")]


def test_printable_writes_what_repr_writes() -> None:
    assert printable(EVIL) == r"\x1b]0;pwned\x07\x1b[2J\x1b[31mRED\x9b2J\u202eevil"


def _record(label: str) -> RunRecord:
    rec = RunRecord("k", "constant(lr=0.1)", "sgd", 0, "ok", 0.5, 0.5, None, 2, 0.25)
    rec.label = label
    return rec


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=30), st.text(max_size=10))
def test_progress_lines_show_no_control_character(label: str, metric: str) -> None:
    stream = io.StringIO()
    progress = SweepProgress(stream, bars=False, metric_name=metric)
    progress("start", {"total": 1, "done": 0})
    progress("run", {"record": _record(label)})
    progress("end", {})
    lines = stream.getvalue().split("\n")
    assert lines[-1] == "" and all(CONTROLS.search(line) is None for line in lines), lines
    assert printable(label) in lines[1]


def test_progress_bars_escape_a_label(tmp_path: Path) -> None:
    stream = io.StringIO()
    progress = SweepProgress(stream, bars=True, metric_name="acc\x1b[2J")
    progress("start", {"total": 1, "done": 0})
    progress("tick", {"done": 0, "active": {f"{EVIL} / seed 0": {"epoch": 1, "epochs": 2, "metric": 0.5}}})
    progress("run", {"record": _record(EVIL)})
    progress("end", {})
    out = stream.getvalue()
    assert "]0;pwned" not in out.replace(r"\x1b]0;pwned", "") and "\x07" not in out and "\x9b" not in out
    assert "[2J" not in out.replace(r"\x1b[2J", "") and "\u202e" not in out
    assert r"\x1b]0;pwned\x07" in out


# --- 4. an owner's pid that no process can have -----------------------------------------------------------
@pytest.mark.parametrize(
    ("pid", "now"),
    [
        ("99999999999999999999999", "claimed"),  # os.kill: OverflowError
        ("2147483648", "claimed"),  # beyond pid_t
        ("9" * 5000, "claimed"),  # int(): more digits than Python reads
        ("0", "claimed"),  # os.kill(0, 0) asks about the process group
        (
            "\u00b2",
            "busy",
        ),  # a superscript two: str.isdigit, not a pid (int() refused it); the heartbeat rules
    ],
)
def test_an_impossible_owner_pid_is_no_live_owner(tmp_path: Path, pid: str, now: str) -> None:
    """A crafted database: a run 'running' under this host with a recent heartbeat, and a pid no process
    can have is taken over, as a run whose owner died; an owner whose pid is not a number is judged by its
    heartbeat, as any owner lrkit did not write. The old lrkit crashed on each."""
    cfg = {"task": "digits-mlp-sgd", "spec": "constant(lr=0.1)", "optimizer": "sgd", "seed": 1}
    key = run_key(cfg)
    with ResultStore(tmp_path / "lab.db") as store:
        assert store.claim(key, cfg, owner=f"{socket.gethostname()}:{pid}:ab") == "claimed"
        store.db.execute("UPDATE runs SET heartbeat = ? WHERE key = ?", (time.time(), key))
        assert store.claim(key, cfg, owner="me") == now


def test_a_live_owner_still_holds_its_run(tmp_path: Path) -> None:
    cfg = {"task": "digits-mlp-sgd", "spec": "constant(lr=0.1)", "optimizer": "sgd", "seed": 2}
    key = run_key(cfg)
    with ResultStore(tmp_path / "lab.db") as store:
        assert store.claim(key, cfg, owner=f"{socket.gethostname()}:{os.getpid()}:ab") == "claimed"
        assert store.claim(key, cfg, owner="me") == "busy"


# --- the review's follow-ups: masking does not garble, every CSV text cell is text ----------------------


def test_a_short_password_does_not_garble_the_drivers_error() -> None:
    """A password of a letter or two is masked in the URL, not replaced wherever it occurs in the
    driver's words ("Exc***ption" for a password "e")."""
    import sqlalchemy.exc

    from lrkit.tune.storage import open_error

    url = "postgresql+psycopg2://bob:e@db.example:5432/lab"
    exc = sqlalchemy.exc.OperationalError("connect", {}, Exception("connection to server refused"))
    err = open_error("--storage", url, exc)
    assert err is not None
    text = str(err)
    assert "bob:***@db.example" in text and "connection to server refused" in text
    assert "***ption" not in text and "conn***ction" not in text


def test_every_text_cell_of_runs_csv_is_text_to_a_spreadsheet(tmp_path: Path) -> None:
    from lrkit.lab import report
    from lrkit.lab.runner import LabResult

    from .test_report import make_run

    run = make_run("ok", 0, 0.5)
    run.config["task"] = '=HYPERLINK("http://evil","x")'
    res = LabResult("t", 1, [run, make_run("b", 0, 0.6)], ":memory:", "x", "m", True, 5)
    runs_csv, _ = report.write_csv(res, tmp_path)
    text = runs_csv.read_text(encoding="utf-8")
    assert "'=HYPERLINK" in text
    import csv

    with runs_csv.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            assert not [v for v in row.values() if v.startswith(("=", "+", "@"))], row
