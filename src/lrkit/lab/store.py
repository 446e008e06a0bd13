"""The lab's results database (SQLite): experiments, runs, per-step LR and loss, per-epoch metrics.

A run is identified by the content of its config (task, spec, optimizer and its hyper-parameters, seed,
epochs): its ``key`` is a hash of that config, and the database holds each key once. The stored config
also keeps the fingerprint of the task as it was built (:data:`FINGERPRINT`, outside the hash), so that a
lab can refuse to reuse runs of a task edited since. A worker *claims* a run before training it (status
``running``, with an owner and a heartbeat) and writes the result, with its curves, in one transaction
when the run ends, only if it still owns the run. So a rerun skips finished
runs, redoes runs whose owner died (SIGKILL included: SQLite's journal keeps the file consistent), and
two labs on one database never store a run twice.

>>> store = ResultStore(":memory:")
>>> exp = store.experiment("demo", "digits-mlp-sgd", "val accuracy", True, {"strategies": []})
>>> cfg = {"task": "digits-mlp-sgd", "spec": "constant(lr=0.1)", "optimizer": "sgd", "seed": 0}
>>> key = run_key(cfg)
>>> store.claim(key, cfg, owner="me")
'claimed'
>>> store.finish(RunRecord(key, "constant(lr=0.1)", "sgd", 0, "ok", 0.9, 0.9, None, 2, 0.1, lrs=[0.1, 0.1],
...                        losses=[2.3, 2.1], epoch_metrics=[0.9], epoch_losses=[2.2]), owner="me")
True
>>> store.claim(key, cfg, owner="someone else")
'done'
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import re
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._paths import MAX_SQLITE_PATH_BYTES, check_sqlite_path_length
from ..schedules.duration import _short

__all__ = [
    "FINGERPRINT",
    "FORMAT",
    "LR_RECORDED",
    "STEP_SIZE_LR",
    "DatabaseFullError",
    "Experiment",
    "ReportText",
    "ResultStore",
    "RunRecord",
    "check_db_path",
    "owner_token",
    "run_key",
]

FORMAT = "lrkit-lab"
#: the format version this lrkit writes: "3" has report_texts' later columns (:data:`REPORT_TEXT_COLUMNS`),
#: which an lrkit writing "2" fails to write into (it stores 3 values in the 6 columns); a "2" database
#: is read as it is and becomes "3" when written (:func:`_upgrade`)
VERSION = "3"
#: the format versions this lrkit reads and writes
VERSIONS = ("2", "3")
#: the lrkit_meta key of the oldest format version that can write the database (:data:`NEEDS`): a later
#: format that only adds what an older lrkit leaves alone keeps it, and that lrkit goes on using it
NEEDS_KEY = "needs_version"
NEEDS = "3"
#: a running run whose owner has not updated its heartbeat for this many seconds is taken over
STALE_SECONDS = 60.0
#: the key of a run's stored config that holds the fingerprint of the task it was trained on
#: (:func:`lrkit.tasks.base.task_fingerprint`); not part of the config its :func:`run_key` hashes, so the
#: runs of a database from before it keep their keys (and have none)
FINGERPRINT = "task_fingerprint"
#: the key of a run's stored config that says what its ``lr`` curve holds where that is not the group's
#: ``lr``: :data:`STEP_SIZE_LR` for a run of Prodigy (:data:`lrkit.tasks.base.STEP_SIZE_OPTIMIZERS`);
#: outside the hash, as :data:`FINGERPRINT`, so a run's key is its key without it
LR_RECORDED = "lr_recorded"
#: :data:`LR_RECORDED`'s value: the curve is the step size ``d * lr`` (:func:`lrkit.tasks.base.effective_lr`)
STEP_SIZE_LR = "d*lr"
#: the longest database path SQLite opens (:data:`lrkit._paths.MAX_SQLITE_PATH_BYTES`, the tuner's too)
MAX_PATH_BYTES = MAX_SQLITE_PATH_BYTES

SCHEMA = """
CREATE TABLE IF NOT EXISTS lrkit_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS experiments (
    id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, name TEXT NOT NULL, task TEXT NOT NULL,
    metric_name TEXT NOT NULL, higher_is_better INTEGER NOT NULL, config TEXT NOT NULL, created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS members (
    experiment_id INTEGER NOT NULL REFERENCES experiments(id), position INTEGER NOT NULL,
    label TEXT NOT NULL, run_key TEXT NOT NULL,
    PRIMARY KEY (experiment_id, position), UNIQUE (experiment_id, run_key)
);
CREATE TABLE IF NOT EXISTS runs (
    key TEXT PRIMARY KEY, config TEXT NOT NULL, spec TEXT NOT NULL, optimizer TEXT NOT NULL,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'ok', 'diverged')),
    owner TEXT, heartbeat REAL, progress TEXT,
    final_metric REAL, best_metric REAL, diverged_step INTEGER, steps INTEGER, seconds REAL, finished REAL
);
CREATE TABLE IF NOT EXISTS steps (
    run_key TEXT NOT NULL, step INTEGER NOT NULL, lr REAL NOT NULL, loss REAL, PRIMARY KEY (run_key, step)
);
CREATE TABLE IF NOT EXISTS epochs (
    run_key TEXT NOT NULL, epoch INTEGER NOT NULL, metric REAL, train_loss REAL, seconds REAL,
    PRIMARY KEY (run_key, epoch)
);
CREATE TABLE IF NOT EXISTS report_texts (
    experiment_id INTEGER PRIMARY KEY REFERENCES experiments(id), title TEXT, note TEXT,
    lang TEXT, title_phrases TEXT, note_phrases TEXT
);
"""
#: the columns report_texts gained after its first release (a database from before has none of them)
REPORT_TEXT_COLUMNS = ("lang", "title_phrases", "note_phrases")

#: what each column the reading methods read holds, as lrkit writes it: ``int``, ``real`` (a finite
#: number), ``flag`` (0 or 1), ``text``, ``json`` (a JSON object, as text); ``?``: or NULL. A value of
#: another kind is a damaged database (or another program's), refused naming the table and the column.
COLUMN_KINDS: dict[str, dict[str, str]] = {
    "experiments": {
        "id": "int",
        "key": "text",
        "name": "text",
        "task": "text",
        "metric_name": "text",
        "higher_is_better": "flag",
        "config": "json",
        "created": "real",
    },
    "members": {"label": "text", "run_key": "text"},
    "runs": {
        "key": "text",
        "spec": "text",
        "optimizer": "text",
        "seed": "int",
        "status": "text",
        "progress": "json?",
        "final_metric": "real?",
        "best_metric": "real?",
        "diverged_step": "int?",
        "steps": "int",
        "seconds": "real",
        "config": "json",
    },
    "steps": {"lr": "real", "loss": "real?"},
    "epochs": {"metric": "real?", "train_loss": "real?", "seconds": "real?"},
    "report_texts": {c: "text?" for c in ("title", "note", *REPORT_TEXT_COLUMNS)},
}


def run_key(config: Mapping[str, Any]) -> str:
    """The identity of a run: a SHA-256 of its config as canonical JSON (sorted keys)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def owner_token() -> str:
    """``host:pid:nonce`` of this process: who holds a claimed run."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"


#: the largest process id (``pid_t``, 32 bits): a larger one in an owner names no process
_PID_MAX = 2**31 - 1


def _owner_alive(owner: str | None, heartbeat: float | None, now: float) -> bool:
    """Whether ``owner`` (``host:pid:nonce``) still holds its run: on this machine its process runs
    (:func:`_pid_alive`; a pid no process can have, as a crafted database may hold, is none), and its
    heartbeat is recent."""
    if owner is None:
        return False
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    local = host == socket.gethostname() and re.fullmatch("[0-9]+", pid_text) is not None
    if local and (len(pid_text) > 10 or not 0 < int(pid_text) <= _PID_MAX or not _pid_alive(int(pid_text))):
        return False
    return heartbeat is not None and now - heartbeat < STALE_SECONDS


@dataclass(frozen=True)
class Experiment:
    id: int
    key: str
    name: str
    task: str
    metric_name: str
    higher_is_better: bool
    config: dict[str, Any]
    created: float


@dataclass(frozen=True)
class ReportText:
    """What the report of an experiment led with when its lab wrote it: the ``title`` and ``note`` as
    written, in ``lang``, and, for those lrkit composed, their phrases as JSON
    (:func:`lrkit.lab._messages.dump_phrases`: ``lrkit report`` says them in another language); None where
    there was none, or the database predates it (its ``lang`` is then ``"en"``)."""

    title: str | None = None
    note: str | None = None
    lang: str = "en"
    title_phrases: str | None = None
    note_phrases: str | None = None


@dataclass
class RunRecord:
    """One training run: what ran (``key``, ``spec``, ``optimizer``, ``seed``), how it ended (``status``:
    ``ok`` or ``diverged``; ``final_metric`` is None for a diverged run), and its curves (``lrs``/``losses``
    per step; ``epoch_metrics``/``epoch_losses``/``epoch_seconds`` per epoch). ``label`` is the name the
    experiment gives it."""

    key: str
    spec: str
    optimizer: str
    seed: int
    status: str
    final_metric: float | None
    best_metric: float | None
    diverged_step: int | None
    steps: int
    seconds: float
    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    epoch_metrics: list[float] = field(default_factory=list)
    epoch_losses: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    label: str = ""
    config: dict[str, Any] = field(default_factory=dict)


def _finite(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def _nan(v: float | None) -> float:
    return math.nan if v is None else float(v)


_NUMBER_TYPES = frozenset((float, int))
_NUMBER_OR_NULL = frozenset((float, int, type(None)))


def _numbers_only(rows: list[tuple[Any, ...]], i: int, kind: str) -> bool:
    """Whether column ``i`` of ``rows`` holds only finite numbers (and NULLs for a ``"real?"`` column), as
    :meth:`ResultStore._value` checks one value: a column of a run's curve is checked in C-speed passes
    (a run of 10**5 steps read value by value took seconds). False for any other kind."""
    if kind not in ("real", "real?"):
        return False
    column = [r[i] for r in rows]
    if not set(map(type, column)) <= (_NUMBER_OR_NULL if kind == "real?" else _NUMBER_TYPES):
        return False
    import numpy as np

    values = np.array([v for v in column if v is not None] if kind == "real?" else column, dtype=float)
    return bool(np.isfinite(values).all())


def _signals() -> int:
    """The progress handler of a :class:`_Connection`: 0 (go on). Python runs the handlers of the signals
    that arrived as it enters it, so Ctrl-C's KeyboardInterrupt is raised here; SQLite then stops the
    statement ("interrupted") and :func:`_stopped` raises the KeyboardInterrupt again, which ``sqlite3``
    dropped."""
    return 0


@contextmanager
def _stopped(con: Any) -> Iterator[None]:
    """A statement of a :class:`_Connection` that Ctrl-C stopped ends in KeyboardInterrupt, not in
    SQLite's "interrupted" (lrkit calls no ``interrupt()``: its progress handler alone stops one); one
    that found the disk full ends in :class:`DatabaseFullError`, naming the database."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        code = getattr(exc, "sqlite_errorcode", None)
        if code == sqlite3.SQLITE_INTERRUPT:
            raise KeyboardInterrupt from None
        if code == sqlite3.SQLITE_FULL:
            raise DatabaseFullError(
                f"the disk holding the lab database {getattr(con, 'path', '?')!r} is full (SQLite: {exc}); "
                "the runs stored in it are safe: free space and rerun (finished runs are skipped)"
            ) from None
        raise


class DatabaseFullError(OSError):
    """A write to a lab database that found its disk (or quota) full: an OSError, as a full disk is for
    any other file; the database keeps every run stored before."""


class _Cursor(sqlite3.Cursor):
    """A cursor of a :class:`_Connection`: Ctrl-C during a statement is a KeyboardInterrupt."""

    def execute(self, *args: Any) -> Any:
        with _stopped(self.connection):
            return super().execute(*args)

    def executemany(self, *args: Any) -> Any:
        with _stopped(self.connection):
            return super().executemany(*args)

    def executescript(self, *args: Any) -> Any:
        with _stopped(self.connection):
            return super().executescript(*args)

    def fetchone(self) -> Any:
        with _stopped(self.connection):
            return super().fetchone()

    def fetchmany(self, *args: Any) -> list[Any]:
        with _stopped(self.connection):
            return super().fetchmany(*args)

    def fetchall(self) -> list[Any]:
        with _stopped(self.connection):
            return super().fetchall()

    def __next__(self) -> Any:
        with _stopped(self.connection):
            return super().__next__()


class _Connection(sqlite3.Connection):
    """A connection to a lab database, which may come from someone else, opened as
    https://sqlite.org/security.html advises for such files: ``trusted_schema`` off (the schema's SQL
    may call no function with side effects), and a progress handler that stops a statement when Ctrl-C
    is pressed (SQLite does not return to Python inside one: a crafted query never ended, Ctrl-C or
    not); the statement then raises KeyboardInterrupt (:func:`_signals`). The handler runs every
    :data:`PROGRESS_STEPS` SQLite instructions."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: the database as given to :func:`sqlite3.connect`, for messages
        self.path = str(args[0] if args else kwargs.get("database", "?"))
        self.set_progress_handler(_signals, PROGRESS_STEPS)
        super().execute("PRAGMA trusted_schema = OFF")  # SQLite < 3.31 has none and ignores it

    def cursor(self, factory: Any = _Cursor) -> Any:
        return super().cursor(factory)

    def execute(self, *args: Any) -> Any:
        return self.cursor().execute(*args)

    def executemany(self, *args: Any) -> Any:
        return self.cursor().executemany(*args)

    def executescript(self, *args: Any) -> Any:
        return self.cursor().executescript(*args)


#: SQLite instructions between two calls of :class:`_Connection`'s progress handler
PROGRESS_STEPS = 10_000

#: lrkit's tables (:data:`SCHEMA`)
_TABLES = ("lrkit_meta", "experiments", "members", "runs", "steps", "epochs", "report_texts")


def _refusal(what: str, unsafe: str) -> ValueError:
    """The refusal of database ``what`` for :func:`_unsafe_schema`'s ``unsafe``."""
    return ValueError(f"{what} is damaged or was not written by lrkit: {unsafe}; refusing to touch it")


def _unsafe_schema(con: sqlite3.Connection) -> str | None:
    """What in ``con``'s schema lrkit refuses to run (its object and why), None when nothing: a view or
    a virtual table under one of lrkit's table names (a view's query may never end: a recursive one),
    a trigger on one of them (its SQL would run when lrkit writes). lrkit makes none of them. Read from
    ``sqlite_master`` alone, which is a table, before any of lrkit's tables is read."""
    rows = con.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
    for kind, name, table, sql in rows:
        ours = str(name).lower() in _TABLES
        if ours and kind == "view":
            return (
                f"view {name!r}: lrkit's table {str(name).lower()} is a view (a query of the file's author)"
            )
        if ours and kind == "table" and str(sql or "").lstrip().upper().startswith("CREATE VIRTUAL"):
            return f"virtual table {name!r}: lrkit's table {str(name).lower()} is not an ordinary table"
        if kind == "trigger" and str(table).lower() in _TABLES:
            why = "lrkit's tables carry no triggers (SQL of the file's author)"
            return f"trigger {name!r} on table {table}: {why}"
    return None


def readonly_uri(p: Path) -> str:
    """The URI that opens ``p`` read-only. A database in WAL mode (a lab killed while writing, or one an
    older lrkit wrote) needs its ``-shm`` file, which SQLite creates beside it even to read; in a folder
    that cannot be written (a read-only mount or archive, another user's folder) it is opened as
    immutable when nothing waits in its write-ahead log, instead of failing as if the file were damaged.
    A log that holds changes cannot be read there: a ValueError says to copy the folder."""
    uri = f"{p.resolve().as_uri()}?mode=ro"
    if os.access(p.parent, os.W_OK | os.X_OK) or Path(f"{p}-shm").exists():
        return uri
    wal = Path(f"{p}-wal")
    if wal.exists() and wal.stat().st_size > 0:
        raise ValueError(
            f"{str(p)!r} lies in a folder that cannot be written, and its write-ahead log ({wal.name}) holds "
            "changes SQLite can only read by writing beside it: copy the folder somewhere writable"
        )
    return uri + "&immutable=1"


def _wal_mode(p: Path) -> bool:
    """Whether reading ``p`` goes through SQLite's write-ahead log: its header says WAL mode, or a
    ``-wal`` file lies beside it (a lab killed while writing, a folder copied from one)."""
    if Path(f"{p}-wal").exists():
        return True
    try:
        with open(p, "rb") as f:
            head = f.read(20)
    except OSError:
        return False
    return head[18:20] == b"\x02\x02"


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_size, st.st_mtime_ns


def _copied(p: Path, tries: int = 5) -> sqlite3.Connection | None:
    """An in-memory copy of ``p`` with the changes waiting in its ``-wal`` file, read from a private copy
    of the two files: SQLite reads a log only through a ``-shm`` file beside it (created, or rewritten,
    even by a read-only reader, and left there), so a reader of ``p`` itself changes the user's folder.
    None when a lab writes the files during each of ``tries`` copies (a live lab: reading ``p`` read-only
    then creates nothing that lab does not remove as it ends)."""
    import shutil
    import tempfile

    wal = Path(f"{p}-wal")
    for _ in range(tries):
        before = (_stat(p), _stat(wal))
        folder = Path(tempfile.mkdtemp(prefix="lrkit-read-"))
        try:
            shutil.copyfile(p, folder / "lab.db")
            if before[1] is not None:
                shutil.copyfile(wal, folder / "lab.db-wal")
            if (_stat(p), _stat(wal)) != before:
                time.sleep(0.05)
                continue
            src = sqlite3.connect(folder / "lab.db")  # replays the log into the copy
            try:
                copy = sqlite3.connect(":memory:", factory=_Connection)
                src.backup(copy)
                return copy
            finally:
                src.close()
        except FileNotFoundError:  # a lab that ended meanwhile removed its -wal: read again
            continue
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return None


def connect_readonly(p: Path, timeout: float) -> sqlite3.Connection:
    """``p`` opened for reading without leaving a trace beside it: a database in WAL mode (a lab killed
    while writing, with its latest results in ``-wal``) is read from an in-memory copy that holds those
    results, so ``lrkit report`` creates no ``-shm``/``-wal`` files and changes none; any other (a lab
    that ended left one file) is opened read-only where it is (:func:`readonly_uri`)."""
    if _wal_mode(p):
        copy = _copied(p)
        if copy is not None:
            return copy
    return sqlite3.connect(readonly_uri(p), uri=True, timeout=timeout, factory=_Connection)


def _read_meta(p: Path, flag: str) -> tuple[dict[str, Any] | None, str | None]:
    """``(rows, None)``: an SQLite file's lrkit_meta as a dict, read-only; ``(None, None)`` when it has no
    such table, ``(None, error)`` when SQLite cannot read it (a damaged or cut file: "database disk image
    is malformed"). A lab writing the file at the same moment can make a
    read-only reader fail for an instant (WAL checkpoint): such errors are retried for a few seconds.
    A schema lrkit refuses to run (:func:`_unsafe_schema`) is a ValueError naming ``flag``, before any
    table is read."""
    for attempt in range(60):
        try:
            con = connect_readonly(p, timeout=30.0)
            try:
                unsafe = _unsafe_schema(con)
                if unsafe is not None:
                    raise _refusal(f"{flag}: {str(p)!r}", unsafe)
                keys = ("format", "version", NEEDS_KEY)
                rows = con.execute(
                    "SELECT key, value FROM lrkit_meta WHERE key IN (?, ?, ?)", keys
                ).fetchall()
                return dict(rows), None
            finally:
                con.close()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return None, None
            if attempt == 59:
                return None, str(exc)
        except sqlite3.DatabaseError as exc:
            if attempt >= 10:
                return None, str(exc)
        time.sleep(0.05)
    return None, None


def _number(text: Any) -> int:
    """A format version as a number (``"3"``: 3); -1 for anything else."""
    return int(text) if isinstance(text, str) and re.fullmatch("[0-9]{1,18}", text) else -1


def _version_refusal(meta: Mapping[str, Any]) -> str | None:
    """Why this lrkit cannot use a database whose lrkit_meta is ``meta``, or None: its format version is
    one of :data:`VERSIONS`, or a later one that says (:data:`NEEDS_KEY`) that an lrkit writing
    :data:`VERSION` can write it."""
    got, needs = meta.get("version"), meta.get(NEEDS_KEY)
    ours = " and ".join(VERSIONS)
    if got in VERSIONS or (_number(got) > int(VERSION) and 0 <= _number(needs) <= int(VERSION)):
        return None
    if _number(got) > int(VERSION):
        need = needs if _number(needs) > int(VERSION) else got
        return (
            f"is an lrkit lab database of format version {got}, written by a newer lrkit (it needs format "
            f"version {need} or later); this lrkit reads versions {ours}: upgrade lrkit or use another --db"
        )
    reads = f"this lrkit reads versions {ours}"
    return f"is an lrkit lab database of format version {got}; {reads}: use another --db"


def check_db_path(path: str | Path, flag: str = "--db", *, write: bool = False) -> Path:
    """``path`` if it can hold an lrkit lab database: absent (its folder is created later), or an
    existing lrkit database. A directory, a file under a non-directory, or any other existing file
    (another program's SQLite database included) is refused with a ValueError: it is never overwritten.
    ``write``: the database will be written, so its folder (or the nearest one that exists) must be
    writable: SQLite writes its journal beside the file."""
    from .._paths import _check_name, _stat_kind

    p = Path(path)
    _check_name(p, flag)  # a NUL byte, a name too long: named as --out names them
    check_sqlite_path_length(p, flag)
    if _stat_kind(p, flag) == "dir":
        raise ValueError(f"{flag}: {str(p)!r} is a directory; expected a database file")
    for parent in p.parents:
        if parent.exists() and not parent.is_dir():
            raise ValueError(
                f"{flag}: {str(p)!r} lies under {str(parent)!r}, which is a file, not a directory"
            )
        if write and parent.exists() and not os.access(parent, os.W_OK | os.X_OK):
            raise ValueError(
                f"{flag}: cannot write {str(p)!r}: {str(parent)!r} cannot be written (SQLite writes its "
                "journal beside the database); give a --db in a writable folder"
            )
        if parent.exists():
            break
    if p.exists():
        try:
            with open(p, "rb") as f:
                head = f.read(16)
        except OSError as exc:
            raise ValueError(f"{flag}: cannot read {str(p)!r}: {exc.strerror}") from None
        if head != b"SQLite format 3\x00":
            raise ValueError(f"{flag}: {str(p)!r} exists and is not an lrkit database; refusing to touch it")
        meta, unreadable = _read_meta(p, flag)
        if unreadable is not None:
            raise ValueError(
                f"{flag}: {str(p)!r} is an SQLite database that SQLite cannot read ({unreadable}): damaged "
                "or cut short; refusing to touch it (a copy made before the damage may still read)"
            )
        if meta is None or meta.get("format") != FORMAT:
            raise ValueError(
                f"{flag}: {str(p)!r} is an SQLite database but not an lrkit lab database; "
                "refusing to touch it"
            )
        refusal = _version_refusal(meta)
        if refusal is not None:
            raise ValueError(f"{flag}: {str(p)!r} {refusal}")
    return p


def _mark(con: sqlite3.Connection) -> None:
    """lrkit's mark in a database with the schema: its format, version and the oldest version that can
    write it (each kept when already there: a later format's stays)."""
    con.execute("INSERT OR IGNORE INTO lrkit_meta VALUES ('format', ?)", (FORMAT,))
    con.execute("INSERT OR IGNORE INTO lrkit_meta VALUES ('version', ?)", (VERSION,))
    con.execute("INSERT OR IGNORE INTO lrkit_meta VALUES (?, ?)", (NEEDS_KEY, NEEDS))


def _upgrade(con: sqlite3.Connection) -> None:
    """A database about to be written gets the whole schema of :data:`VERSION`: report_texts gains its
    later columns, and a "2" database is stamped :data:`VERSION`, so that an lrkit writing "2" refuses it
    up front (its check) instead of failing after its training, when it stores a report text. Whenever
    the schema grows, VERSION grows with it."""
    have = {row[1] for row in con.execute("PRAGMA table_info(report_texts)")}
    for column in REPORT_TEXT_COLUMNS:  # a database from before them gains them
        if column not in have:
            con.execute(f"ALTER TABLE report_texts ADD COLUMN {column} TEXT")
    con.execute("UPDATE lrkit_meta SET value = ? WHERE key = 'version' AND value = '2'", (VERSION,))


def _tmp_name(p: Path) -> str:
    """The temporary name :func:`_create` writes ``p`` under: ``.NAME.PID-NS.tmp``."""
    return f".{p.name}.{os.getpid()}-{time.monotonic_ns()}.tmp"


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (one of another user counts as alive; a zombie, killed
    but not yet reaped by its parent, does not)."""
    if pid <= 0:
        return True  # never a process of ours: os.kill(0, ...) would mean the process group
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """Whether ``pid`` is a zombie, read from ``/proc/PID/stat`` (state ``Z``; False where there is none)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    # "PID (COMM) STATE ...": COMM may hold spaces and parentheses, the state follows the last ")"
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def _remove_dead_tmp(p: Path) -> None:
    """Remove what a lab SIGKILLed inside :func:`_create` left beside ``p``: files named exactly
    ``.NAME.PID-NS.tmp`` (or its SQLite ``-journal``) whose PID is no longer alive. Any other file, and a
    live lab's temporary file, is left alone."""
    pattern = re.compile(rf"\.{re.escape(p.name)}\.([0-9]+)-[0-9]+\.tmp(?:-journal)?")
    try:
        names = [e.name for e in os.scandir(p.parent) if e.is_file(follow_symlinks=False)]
    except OSError:
        return
    for name in names:
        m = pattern.fullmatch(name)
        if m is not None and not _pid_alive(int(m.group(1))):
            (p.parent / name).unlink(missing_ok=True)


def _create(p: Path) -> None:
    """A new lab database appears at ``p`` whole (schema and lrkit's mark) or not at all: it is written
    under a temporary name beside ``p`` and hard-linked into place, which never replaces a file (a lab
    that made ``p`` first wins, and its file is used). Another lab checking ``p`` at that moment used to
    find an empty file, or an SQLite file without the mark, and refuse it as not an lrkit database. Where
    the file system has no hard links, ``p`` is created in place, as before. A lab killed between the two
    steps leaves the temporary file: the next :class:`ResultStore` on ``p`` removes it
    (:func:`_remove_dead_tmp`)."""
    tmp = p.with_name(_tmp_name(p))
    try:
        con = sqlite3.connect(tmp)
        try:
            con.executescript(SCHEMA)
            _mark(con)
            con.commit()
        finally:
            con.close()
        os.link(tmp, p)
    except FileExistsError:
        pass  # another lab made it first
    except (OSError, sqlite3.Error):
        pass  # no hard links here (or no room for the copy): sqlite3.connect creates p in place, or says
        # why it cannot (ResultStore)
    finally:
        tmp.unlink(missing_ok=True)


@functools.cache
def _schema_columns() -> dict[str, tuple[str, ...]]:
    """Each table of :data:`SCHEMA` with its columns, as SQLite reads them."""
    con = sqlite3.connect(":memory:")
    try:
        con.executescript(SCHEMA)
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: tuple(r[1] for r in con.execute(f"PRAGMA table_info({t})")) for t in tables}
    finally:
        con.close()


def _json_object(text: Any, damaged: Callable[[str], ValueError]) -> dict[str, Any]:
    """The JSON object ``text`` holds; else ``damaged(problem)`` is raised (not JSON, too deep, no object)."""
    if not isinstance(text, str):
        raise damaged(f"expected JSON text, got {type(text).__name__} {_short(text)}")
    try:
        obj = json.loads(text)
    except RecursionError:
        raise damaged("its JSON is nested too deep to read") from None
    except ValueError as exc:
        raise damaged(f"not JSON ({exc}): {_short(text)}") from None
    if not isinstance(obj, dict):
        kind = "null" if obj is None else "an array" if isinstance(obj, list) else f"a {type(obj).__name__}"
        raise damaged(f"expected a JSON object, got {kind}: {_short(text)}")
    return obj


class ResultStore:
    """An lrkit lab database (a SQLite file, or ``":memory:"``); safe for several processes at once."""

    def __init__(self, path: str | Path, *, check: bool = True) -> None:
        """``check=False`` skips :func:`check_db_path`, for a worker handed a path its lab has checked.

        A file SQLite cannot create or open for writing (a file system that refuses new files, such as
        ``/proc``, or a read-only one) is a ValueError naming the path and what SQLite said."""
        self.path = str(path)
        existed = False
        if self.path != ":memory:":
            p = check_db_path(path, write=True) if check else Path(path)
            p.parent.mkdir(parents=True, exist_ok=True)
            _remove_dead_tmp(p)
            existed = p.exists()
            if not existed:
                _create(p)
        self.writer = True
        try:
            self.db: sqlite3.Connection = sqlite3.connect(
                self.path, timeout=60.0, isolation_level=None, factory=_Connection
            )
            self.db.execute("PRAGMA busy_timeout = 60000")
            if existed:  # before anything is written, even the journal mode
                self._check_schema()
            if self.path != ":memory:":
                # WAL with synchronous=NORMAL: a commit survives the process being killed (SIGKILL), not a
                # power cut, and costs no fsync
                self.db.execute("PRAGMA journal_mode = WAL")
                self.db.execute("PRAGMA synchronous = NORMAL")
            self.db.executescript(SCHEMA)  # CREATE TABLE IF NOT EXISTS: idempotent
            with self._write():
                _upgrade(self.db)
                _mark(self.db)
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc):  # another lab held it for a minute: not the path's fault
                raise
            raise ValueError(
                f"--db: cannot write a database at {self.path!r} (SQLite: {exc}); give a --db in a "
                "writable folder on an ordinary file system"
            ) from None

    @classmethod
    def open_readonly(cls, path: str | Path) -> ResultStore:
        """An existing lrkit database opened read-only (its reading methods only): nothing is written,
        not even the schema."""
        p = check_db_path(path)
        if not p.is_file():
            raise ValueError(f"--db: {str(p)!r} does not exist")
        store = cls.__new__(cls)
        store.path = str(p)
        store.db = connect_readonly(p, timeout=60.0)
        store.writer = False
        unsafe = _unsafe_schema(store.db)  # checked by check_db_path too, in a file that may change since
        if unsafe is not None:
            store.db.close()
            raise _refusal(f"--db: {str(p)!r}", unsafe)
        return store

    # --- plumbing -----------------------------------------------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken with BEGIN IMMEDIATE so concurrent writers queue up."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:  # SQLite has ended it itself after some errors (a full disk)
                with contextlib.suppress(sqlite3.Error):  # the error that stopped it is the one to say
                    self.db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close; the last writer to close leaves the file out of WAL mode, one file with nothing beside
        it (a reader then creates no ``-shm``/``-wal`` files, and the file can be copied or read from a
        read-only folder as it is). While another connection has it open the mode stays (SQLite refuses
        at once: no wait)."""
        if self.writer and self.path != ":memory:":
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("PRAGMA busy_timeout = 0")
                self.db.execute("PRAGMA journal_mode = DELETE")
        self.db.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_schema(self) -> None:
        """An existing lrkit database about to be written has every table and column of :data:`SCHEMA`
        (``report_texts`` and its later columns excepted: a database from before them gains them), else a
        ValueError naming the table and the column, before anything is written: a dropped table was
        re-created empty without a word, a dropped column failed mid-lab with SQLite's error. A schema lrkit
        refuses to run (:func:`_unsafe_schema`) is refused first."""
        unsafe = _unsafe_schema(self.db)
        if unsafe is not None:
            raise _refusal(f"--db: {self.path!r}", unsafe)
        if self.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'lrkit_meta'").fetchone() is None:
            return  # not lrkit's mark: check_db_path has refused it, or the schema is yet to be written
        for table, columns in _schema_columns().items():
            if table == "report_texts":
                continue
            have = {row[1] for row in self.db.execute(f"PRAGMA table_info({table})")}
            if not have:
                raise self._damaged(f"table {table}", "is missing")
            missing = [c for c in columns if c not in have]
            if missing:
                raise self._damaged(f"table {table}", f"has no column {', '.join(missing)}")

    def _damaged(self, where: str, problem: str) -> ValueError:
        return ValueError(f"{self.path!r} is damaged or was not written by lrkit: {where}: {problem}")

    def _select(
        self, table: str, columns: list[str], rest: str = "", params: Any = (), row: str = ""
    ) -> list[tuple[Any, ...]]:
        """``SELECT columns FROM table rest``, each value checked against :data:`COLUMN_KINDS` (a JSON
        column read as its object). A table or column that is not there, or a value of another kind, is a
        ValueError naming the database, the table, the column and the row (``row``; else the row's first
        column): the database is damaged or not lrkit's."""
        try:
            rows = self.db.execute(f"SELECT {', '.join(columns)} FROM {table} {rest}", params).fetchall()
        except sqlite3.DatabaseError as exc:  # no such table / column, a malformed file
            if "locked" in str(exc):
                raise
            raise self._damaged(f"table {table}", f"cannot be read (SQLite: {exc})") from None
        kinds = COLUMN_KINDS[table]
        if len(rows) > 256 and all(_numbers_only(rows, i, kinds[c]) for i, c in enumerate(columns)):
            return rows  # a run's curves, checked column by column; else value by value, naming the row
        out = []
        for r in rows:
            who = row or f"{table.removesuffix('s')} {r[0]!r}"  # experiment 1, run '...'
            out.append(
                tuple(
                    self._value(v, kinds[c], f"table {table}, column {c} ({who})")
                    for c, v in zip(columns, r, strict=True)
                )
            )
        return out

    def _value(self, v: Any, kind: str, where: str) -> Any:
        """``v`` if it is of ``kind`` (see :data:`COLUMN_KINDS`); a JSON column's text as its object."""
        if v is None and kind.endswith("?"):
            return None
        kind = kind.rstrip("?")
        if kind == "json":
            return _json_object(v, lambda problem: self._damaged(where, problem))
        ok = {
            "int": isinstance(v, int),
            "flag": v in (0, 1) and isinstance(v, int),
            "text": isinstance(v, str),
            "real": isinstance(v, (int, float)) and math.isfinite(v),
        }[kind]
        if not ok:
            want = {"int": "an integer", "flag": "0 or 1", "text": "text", "real": "a finite number"}[kind]
            raise self._damaged(where, f"expected {want}, got {type(v).__name__} {_short(v)}")
        return v

    # --- experiments --------------------------------------------------------------------------------
    def experiment(
        self,
        name: str,
        task: str,
        metric_name: str,
        higher_is_better: bool,
        config: Mapping[str, Any],
        members: list[tuple[str, str]] = (),  # type: ignore[assignment]
    ) -> int:
        """The id of the experiment with this content (created if new); ``members`` are its
        ``(label, run_key)`` pairs in order."""
        text = json.dumps(dict(config), sort_keys=True, allow_nan=False)
        key = run_key({"name": name, "task": task, "config": dict(config)})
        with self._write() as db:
            db.execute(
                "INSERT OR IGNORE INTO experiments (key, name, task, metric_name, higher_is_better, config, "
                "created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, name, task, metric_name, int(higher_is_better), text, time.time()),
            )
            exp = int(db.execute("SELECT id FROM experiments WHERE key = ?", (key,)).fetchone()[0])
            db.execute("DELETE FROM members WHERE experiment_id = ?", (exp,))
            db.executemany(
                "INSERT INTO members (experiment_id, position, label, run_key) VALUES (?, ?, ?, ?)",
                [(exp, i, label, k) for i, (label, k) in enumerate(members)],
            )
        return exp

    def experiments(self) -> list[Experiment]:
        """Every experiment, oldest first."""
        columns = ["id", "key", "name", "task", "metric_name", "higher_is_better", "config", "created"]
        rows = self._select("experiments", columns, "ORDER BY id")
        return [Experiment(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6], float(r[7])) for r in rows]

    def set_report_text(
        self,
        experiment_id: int,
        title: str | None,
        note: str | None,
        *,
        lang: str = "en",
        title_phrases: str | None = None,
        note_phrases: str | None = None,
    ) -> None:
        """The title and note the report of an experiment leads with (``lrkit tune``'s: how the search
        stopped, which seeds are held out) and its language, kept so that ``lrkit report`` re-makes the
        same report; the phrases (:class:`ReportText`) of a title or note lrkit composed let it say them
        in another language."""
        with self._write() as db:  # its columns are there: a writer's database is upgraded (_upgrade)
            db.execute(
                "INSERT OR REPLACE INTO report_texts (experiment_id, title, note, lang, title_phrases, "
                "note_phrases) VALUES (?, ?, ?, ?, ?, ?)",
                (experiment_id, title, note, lang, title_phrases, note_phrases),
            )

    def report_texts(self, experiment_id: int) -> ReportText:
        """What :meth:`set_report_text` kept; an empty :class:`ReportText` (English) when nothing was, and
        what a database from before the language or the phrases lacks is None (its language English)."""
        have = {row[1] for row in self.db.execute("PRAGMA table_info(report_texts)")}
        if not have:  # no such table: written by an lrkit before it
            return ReportText()
        columns = ["title", "note", *(c for c in REPORT_TEXT_COLUMNS if c in have)]
        rows = self._select(
            "report_texts",
            columns,
            "WHERE experiment_id = ?",
            (experiment_id,),
            f"experiment {experiment_id}",
        )
        if not rows:
            return ReportText()
        kept = dict(zip(columns, rows[0], strict=True))
        kept["lang"] = kept.get("lang") or "en"
        return ReportText(**kept)

    def report_text(self, experiment_id: int) -> tuple[str | None, str | None]:
        """``(title, note)`` kept by :meth:`set_report_text`; ``(None, None)`` when none was (or the
        database predates them)."""
        kept = self.report_texts(experiment_id)
        return kept.title, kept.note

    def members(self, experiment_id: int) -> list[tuple[str, str]]:
        """``(label, run_key)`` of an experiment, in order."""
        rows = self._select(
            "members",
            ["label", "run_key"],
            "WHERE experiment_id = ? ORDER BY position",
            (experiment_id,),
            f"experiment {experiment_id}",
        )
        return [(r[0], r[1]) for r in rows]

    # --- the run life cycle ---------------------------------------------------------------------------
    def claim(self, key: str, config: Mapping[str, Any], owner: str) -> str:
        """Try to take run ``key`` for ``owner``: ``'claimed'`` (new, or its previous owner died),
        ``'done'`` (finished before: skip it) or ``'busy'`` (a live owner is running it)."""
        now = time.time()
        with self._write() as db:
            row = db.execute("SELECT status, owner, heartbeat FROM runs WHERE key = ?", (key,)).fetchone()
            if row is not None and row[0] != "running":
                return "done"
            if row is not None and row[1] != owner and _owner_alive(row[1], row[2], now):
                return "busy"
            db.execute("DELETE FROM steps WHERE run_key = ?", (key,))
            db.execute("DELETE FROM epochs WHERE run_key = ?", (key,))
            db.execute(
                "INSERT OR REPLACE INTO runs (key, config, spec, optimizer, seed, status, owner, heartbeat) "
                "VALUES (?, ?, ?, ?, ?, 'running', ?, ?)",
                (
                    key,
                    json.dumps(dict(config), sort_keys=True),
                    str(config.get("spec", "")),
                    str(config.get("optimizer", "")),
                    int(config.get("seed", 0)),
                    owner,
                    now,
                ),
            )
        return "claimed"

    def beat(self, owner: str, progress: Mapping[str, Any] | None = None, key: str | None = None) -> None:
        """Heartbeat for every run ``owner`` holds (and the progress of run ``key``)."""
        with self._write() as db:
            db.execute(
                "UPDATE runs SET heartbeat = ? WHERE owner = ? AND status = 'running'", (time.time(), owner)
            )
            if key is not None and progress is not None:
                db.execute(
                    "UPDATE runs SET progress = ? WHERE key = ? AND owner = ?",
                    (json.dumps(dict(progress)), key, owner),
                )

    def finish(self, rec: RunRecord, owner: str, keep: Mapping[str, Any] | None = None) -> bool:
        """Write the finished run ``rec`` with its curves in one transaction, if ``owner`` still holds it;
        False (nothing written) when another owner took it over. Its progress is cleared, or replaced by
        ``keep`` (what the report reads from a finished run's progress), in the same transaction."""
        if rec.status not in ("ok", "diverged"):
            raise ValueError(f"status must be 'ok' or 'diverged', got {rec.status!r}")
        with self._write() as db:
            row = db.execute("SELECT status, owner FROM runs WHERE key = ?", (rec.key,)).fetchone()
            if row is None or row[0] != "running" or row[1] != owner:
                return False
            db.execute(
                "UPDATE runs SET status = ?, final_metric = ?, best_metric = ?, diverged_step = ?, "
                "steps = ?, seconds = ?, finished = ?, progress = ? WHERE key = ?",
                (
                    rec.status,
                    _finite(rec.final_metric),
                    _finite(rec.best_metric),
                    rec.diverged_step,
                    rec.steps,
                    rec.seconds,
                    time.time(),
                    None if keep is None else json.dumps(dict(keep)),
                    rec.key,
                ),
            )
            db.executemany(
                "INSERT INTO steps (run_key, step, lr, loss) VALUES (?, ?, ?, ?)",
                [
                    (rec.key, i, float(lr), _finite(rec.losses[i]) if i < len(rec.losses) else None)
                    for i, lr in enumerate(rec.lrs)
                ],
            )
            n = len(rec.epoch_losses)
            db.executemany(
                "INSERT INTO epochs (run_key, epoch, metric, train_loss, seconds) VALUES (?, ?, ?, ?, ?)",
                [
                    (
                        rec.key,
                        i + 1,
                        _finite(rec.epoch_metrics[i]) if i < len(rec.epoch_metrics) else None,
                        _finite(rec.epoch_losses[i]),
                        rec.epoch_seconds[i] if i < len(rec.epoch_seconds) else None,
                    )
                    for i in range(n)
                ],
            )
        return True

    def release(self, key: str, owner: str) -> None:
        """Give up a claimed run that did not finish (it will be redone)."""
        with self._write() as db:
            db.execute("DELETE FROM runs WHERE key = ? AND owner = ? AND status = 'running'", (key, owner))

    def forget(self, keys: list[str]) -> None:
        """Delete runs ``keys`` and their curves (``lrkit lab --fresh``)."""
        with self._write() as db:
            for key in keys:
                for table, col in (("steps", "run_key"), ("epochs", "run_key"), ("runs", "key")):
                    db.execute(f"DELETE FROM {table} WHERE {col} = ?", (key,))

    # --- reading ------------------------------------------------------------------------------------
    def status(self, keys: list[str]) -> dict[str, tuple[str, dict[str, Any] | None]]:
        """``{key: (status, progress)}`` for the runs among ``keys`` that exist."""
        out: dict[str, tuple[str, dict[str, Any] | None]] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            rest = f"WHERE key IN ({','.join('?' * len(chunk))})"
            for key, status, progress in self._select("runs", ["key", "status", "progress"], rest, chunk):
                out[key] = (status, progress)
        return out

    def fingerprints(self, keys: list[str]) -> dict[str, dict[str, Any] | None]:
        """``{key: fingerprint}`` of the finished runs among ``keys``: the task's fingerprint kept in each
        run's config under :data:`FINGERPRINT`, None for a run stored without one (by an lrkit before
        it)."""
        out: dict[str, dict[str, Any] | None] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            rest = f"WHERE status != 'running' AND key IN ({','.join('?' * len(chunk))})"
            for key, config in self._select("runs", ["key", "config"], rest, chunk):
                value = config.get(FINGERPRINT)
                out[key] = value if isinstance(value, dict) else None
        return out

    def configs(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        """``{key: config}`` of the finished runs among ``keys``, each as stored (:data:`FINGERPRINT` and
        :data:`LR_RECORDED` included where the run has them)."""
        out: dict[str, dict[str, Any]] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            rest = f"WHERE status != 'running' AND key IN ({','.join('?' * len(chunk))})"
            for key, config in self._select("runs", ["key", "config"], rest, chunk):
                out[key] = dict(config) if isinstance(config, dict) else {}
        return out

    def run(self, key: str, label: str = "") -> RunRecord | None:
        """The finished run ``key`` with its curves (None when absent or still running)."""
        who = f"run {key!r}"
        columns = ["key", "spec", "optimizer", "seed", "status", "final_metric", "best_metric"]
        columns += ["diverged_step", "steps", "seconds", "config"]
        rows = self._select("runs", columns, "WHERE key = ? AND status != 'running'", (key,), who)
        if not rows:
            return None
        row = rows[0]
        steps = self._select("steps", ["lr", "loss"], "WHERE run_key = ? ORDER BY step", (key,), who)
        epochs = self._select(
            "epochs", ["metric", "train_loss", "seconds"], "WHERE run_key = ? ORDER BY epoch", (key,), who
        )
        return RunRecord(
            key=row[0],
            spec=row[1],
            optimizer=row[2],
            seed=row[3],
            status=row[4],
            final_metric=row[5],
            best_metric=row[6],
            diverged_step=row[7],
            steps=row[8],
            seconds=row[9],
            lrs=[s[0] for s in steps],
            losses=[_nan(s[1]) for s in steps],
            epoch_metrics=[_nan(e[0]) for e in epochs],
            epoch_losses=[_nan(e[1]) for e in epochs],
            epoch_seconds=[_nan(e[2]) for e in epochs],
            label=label,
            config=row[10],
        )

    def runs(self, experiment_id: int) -> list[RunRecord]:
        """The finished runs of an experiment, with their labels and curves, in the experiment's order."""
        out = []
        for label, key in self.members(experiment_id):
            rec = self.run(key, label)
            if rec is not None:
                out.append(rec)
        return out
