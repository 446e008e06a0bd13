"""Where a tuning study lives: an SQLite file (the default, ``lrkit-tune.db``) or a server database
(``postgresql://user:password@host:5432/db``) that any number of workers on any number of machines share.

Optuna's :class:`~optuna.storages.RDBStorage` is opened with a heartbeat: each running trial records one
every ``heartbeat`` seconds, and a trial whose heartbeat is older than ``grace`` seconds (its worker was
killed, or its machine lost) is marked FAIL by the next worker that looks, and queued again (Optuna's
``RetryHeartbeatStaleTrialCallback``), so no trial of the budget is lost.

An existing SQLite file is used only if it is an Optuna database: anything else (an lrkit lab database,
another program's file) is refused, never overwritten.
"""

from __future__ import annotations

import re
import sqlite3
import time
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .._checks import check_int
from .._paths import _stat_kind, check_sqlite_path_length

__all__ = [
    "CONNECT_TIMEOUT",
    "DEFAULT_STORAGE",
    "check_sqlite_path",
    "engine_options",
    "mask_url",
    "open_error",
    "open_storage",
    "storage_url",
]

DEFAULT_STORAGE = "lrkit-tune.db"
SERVER_SCHEMES = ("postgresql", "postgres", "mysql")


def check_sqlite_path(path: str | Path, flag: str = "storage") -> Path:
    """``path`` if it can hold a tuning study: absent (created later, with its directory) or an existing
    Optuna SQLite database. Anything else (an empty file included) is refused with a ValueError, untouched."""
    p = Path(path)
    kind = _stat_kind(p, flag)  # a name the file system refuses (too long, NUL) is named, not an OSError
    check_sqlite_path_length(p, flag)  # the lab's --db check: SQLite says only "unable to open"
    if kind == "dir":
        raise ValueError(f"{flag}: {str(p)!r} is a directory; expected an SQLite file or a database URL")
    for parent in p.parents:
        if _stat_kind(parent, flag) is not None:
            if not parent.is_dir():
                raise ValueError(
                    f"{flag}: {str(p)!r} lies under {str(parent)!r}, which is a file, not a directory"
                )
            _check_writable(parent, p, flag)  # SQLite writes its journal beside the file, too
            break
    if kind is None:
        return p
    if p.stat().st_size == 0:
        raise ValueError(
            f"{flag}: {str(p)!r} exists and is empty, not an Optuna study database; refusing to touch it"
        )
    try:
        with open(p, "rb") as f:
            head = f.read(16)
    except OSError as exc:
        raise ValueError(f"{flag}: cannot read {str(p)!r}: {exc.strerror}") from None
    if head != b"SQLite format 3\x00":
        raise ValueError(f"{flag}: {str(p)!r} exists and is not an SQLite database; refusing to touch it")
    try:
        con = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise ValueError(f"{flag}: cannot read {str(p)!r} as SQLite ({exc}); refusing to touch it") from None
    if "lrkit_meta" in tables:
        raise ValueError(
            f"{flag}: {str(p)!r} is an lrkit lab database, not a tuning study; use another file, "
            f"e.g. {DEFAULT_STORAGE}"
        )
    if not {"studies", "trials", "version_info"} <= tables:
        raise ValueError(
            f"{flag}: {str(p)!r} is an SQLite database but not an Optuna study database; refusing to touch it"
        )
    return p


def _check_writable(folder: Path, path: Path, flag: str) -> None:
    """A ValueError naming ``flag`` unless a file can be made in ``folder`` (the nearest existing directory
    of ``path``): a read-only directory let the study fail at its first write, as "unable to open database
    file". The test file is removed at once."""
    import tempfile

    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".lrkit-write-check-"):
            pass
    except OSError as exc:
        raise ValueError(
            f"{flag}: cannot make files in {str(folder)!r} ({exc.strerror or exc}), so {str(path)!r} cannot "
            "hold a study; give a path in a directory you can write"
        ) from None


def storage_url(storage: str | Path | None, flag: str = "storage") -> str:
    """The SQLAlchemy URL of ``storage``: None is ``lrkit-tune.db``; a path is an SQLite file (checked
    with :func:`check_sqlite_path`); ``sqlite:///FILE``, ``postgresql://...`` and ``mysql://...`` URLs
    are taken as they are (an SQLite file named by URL is checked too), except that a PostgreSQL URL
    without a driver gets the installed one (``postgresql+psycopg2://``). Errors name ``flag`` (the
    argument, or the command-line flag that gave it)."""
    if storage is None:
        storage = DEFAULT_STORAGE
    if isinstance(storage, str):
        check_storage_text(storage, flag)
    if isinstance(storage, Path) or (isinstance(storage, str) and "://" not in storage):
        if isinstance(storage, str) and not storage.strip():
            raise ValueError(f"{flag} must be a file path or a database URL, got ''")
        p = check_sqlite_path(storage, flag)
        return f"sqlite:///{p.resolve()}"
    if not isinstance(storage, str):
        raise TypeError(f"{flag} must be a path or a URL string, got {type(storage).__name__}")
    scheme = storage.split("://", 1)[0].split("+", 1)[0].lower()
    if scheme == "sqlite":
        target = storage.split("://", 1)[1]
        if not target.startswith("/"):
            raise ValueError(f"{flag}: an SQLite URL is sqlite:///FILE (three slashes), got {storage!r}")
        target = target[1:]
        if target not in ("", ":memory:"):
            check_sqlite_path(target, flag)
        return storage
    if scheme not in SERVER_SCHEMES:
        raise ValueError(
            f"{flag}: expected a file path, sqlite:///FILE, postgresql://USER:PASSWORD@HOST/DB or "
            f"mysql://..., got {mask_url(storage)!r}"
        )
    _check_password(storage, flag)
    head, rest = storage.split("://", 1)
    if scheme in ("postgresql", "postgres") and "+" not in head:
        # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3; use whichever driver is installed
        return f"postgresql+{_postgres_driver()}://{rest}"
    return storage


def check_storage_text(storage: str, flag: str) -> None:
    """Refuse spaces around a storage, and a path that starts with a database URL's scheme
    (``postgresql:/HOST...`` or ``postgresql//...``: a slash or the colon lost): taken as a path, a
    mistyped URL would tune into a local SQLite file named after it (password included) while the user
    believes the study is on the server."""
    if storage.strip() and storage.strip() != storage:
        lead = storage[: len(storage) - len(storage.lstrip())]
        trail = storage[len(storage.rstrip()) :]
        raise ValueError(
            f"{flag}: remove the spaces around it, got {lead + mask_url(storage.strip()) + trail!r}"
        )
    if "://" in storage:
        return
    m = re.match(r"([A-Za-z][A-Za-z0-9.-]*)(\+[A-Za-z0-9_.-]+)?(:/?(?!/)|//)", storage)
    if m is None or m.group(1).lower() not in ("sqlite", *SERVER_SCHEMES):
        return
    scheme = m.group(1) + (m.group(2) or "")
    rest = storage[m.end() :]
    fixed = f"{scheme}:///{rest}" if m.group(1).lower() == "sqlite" else f"{scheme}://{rest}"
    raise ValueError(
        f"{flag}: {_masked_text(storage)!r} is not a URL ({scheme}:// needs a colon and two slashes) nor a "
        f"file path; did you mean {_masked_text(fixed)!r}?"
    )


def _password_span(text: str) -> tuple[int, int] | None:
    """Where the password of the URL ``text`` lies, also where the URL is malformed (``USER:PASSWORD@``):
    its userinfo runs from the scheme's slashes to the LAST ``@`` (a password may hold ``/``, ``?``,
    ``#`` and ``@``, where Python's ``urlsplit`` and SQLAlchemy cut it), and the password from the first
    ``:`` of that on. None when it has no ``:...@``."""
    at = text.rfind("@")
    m = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)(://|//|:/?)", text)
    # a scheme: any before "://" or "//"; a database's before a lone ":" or ":/" (a mistyped URL), which
    # else is a user's (bob:pw@host)
    known = m is not None and m.group(1).split("+", 1)[0].lower() in ("sqlite", *SERVER_SCHEMES)
    start = m.end() if m is not None and ("//" in m.group(2) or known) else 0
    colon = text.find(":", start, max(at, start))
    return None if colon < 0 else (colon + 1, at)


def _masked_text(text: str) -> str:
    """``text`` with a URL's password (:func:`_password_span`) replaced by ``***``."""
    span = _password_span(text)
    return text if span is None else f"{text[: span[0]]}***{text[span[1] :]}"


def _password(url: str) -> str | None:
    """The password of ``url`` as it is written (:func:`_password_span`); None when it has none."""
    span = _password_span(url)
    return None if span is None else url[span[0] : span[1]]


#: the shortest password (or piece of one) masked where it occurs in a driver's error text
_MIN_MASKED = 4


def _password_forms(url: str) -> list[str]:
    """The password of ``url`` as it is written and as it reads unquoted, and the pieces of the written
    one between ``@``s, longest first: SQLAlchemy ends a password at its first ``@`` and takes the rest as
    the host, which a driver's error echoes (psycopg2: could not translate host name ``"PW@127.0.0.1"``
    of a password ``S3cr3t@PW``)."""
    from urllib.parse import unquote

    password = _password(url)
    if not password:
        return []
    # a whole password shorter than _MIN_MASKED is too likely to be part of other words: replacing it
    # everywhere garbled the driver's error ("Exc***ption" for a password "e") and gained nothing (the
    # URL's own password is masked by _masked_text whatever its length). The pieces between raw '@'s
    # (a URL storage_url refuses before connecting) are masked whatever their length: a driver echoes them
    whole = {form for form in (password, unquote(password)) if len(form) >= _MIN_MASKED}
    pieces = set(password.split("@")) if "@" in password else set()
    return sorted((form for form in whole | pieces if form), key=len, reverse=True)


def _mask_password(text: str, url: str) -> str:
    """``text`` (a driver's error about ``url``) with ``url``'s password, and each piece of it between
    ``@``s, as ``***`` wherever it occurs."""
    for form in _password_forms(url):
        text = text.replace(form, "***")
    return _masked_text(text) if "://" in text else text


def _check_password(url: str, flag: str) -> None:
    """Refuse a server URL whose password SQLAlchemy reads otherwise than it is written (up to the last
    ``@``): one that holds an ``@`` not written ``%40``. SQLAlchemy ends the password at its first ``@``
    and connects to a host named after the rest of it, which the driver's error then prints."""
    from urllib.parse import unquote

    from sqlalchemy.engine import make_url

    written = _password(url)
    try:
        read = make_url(url).password
    except Exception:  # a URL SQLAlchemy cannot read is named when it is opened (open_error)
        return
    if written is not None and (read is None or str(read) != unquote(written)):
        raise ValueError(
            f"{flag}: the password in {mask_url(url)!r} holds '@' (or the URL holds one after its host): "
            "write each '@' as %40; expected postgresql://USER:PASSWORD@HOST/DB"
        )


def _postgres_driver() -> str:
    import importlib.util

    for module in ("psycopg2", "psycopg"):
        if importlib.util.find_spec(module) is not None:
            return module
    raise ImportError(
        "a PostgreSQL storage needs psycopg2, which is not installed: pip install 'lrkit[postgres]'",
        name="psycopg2",
    )


#: seconds to wait for a database server to answer a new connection (a host that drops packets, or a
#: port where something else listens, would otherwise hang ``lrkit tune`` for minutes, or for ever)
CONNECT_TIMEOUT = 10


def engine_options(url: str) -> dict[str, Any]:
    """SQLAlchemy ``create_engine`` options for ``url``: an SQLite file waits up to 60 s for a lock held
    by another worker; a server connection is pinged before use and given up after
    :data:`CONNECT_TIMEOUT` seconds unless the URL sets its own ``connect_timeout``."""
    from urllib.parse import parse_qs

    scheme = url.split("://", 1)[0].split("+", 1)[0].lower()
    if scheme == "sqlite":
        return {"connect_args": {"timeout": 60}}
    options: dict[str, Any] = {"pool_pre_ping": True}
    if scheme in ("postgresql", "postgres") and "connect_timeout" not in parse_qs(urlsplit(url).query):
        options["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT}
    return options


def open_error(flag: str, url: str, exc: BaseException) -> ValueError | None:
    """One line for an error of opening ``url`` (named as ``flag``, the password masked): a database's
    refusal (SQLAlchemy's error, first line), a driver that is not installed, a URL that does not parse
    (a port that is not a number); None for any other exception."""
    import sqlalchemy.exc

    shown = f"{flag}: cannot open {mask_url(url)!r}"
    if isinstance(exc, sqlalchemy.exc.SQLAlchemyError):
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return ValueError(f"{shown}: {_mask_password(first, url)}")
    if isinstance(exc, ImportError):
        cause: BaseException | None = exc  # Optuna re-raises the driver's ImportError with words of its own
        while cause is not None and not (isinstance(cause, ImportError) and cause.name):
            cause = cause.__cause__ or cause.__context__
        return ValueError(f"{shown}: its driver is not installed ({_mask_password(str(cause or exc), url)})")
    if isinstance(exc, ValueError):
        return ValueError(f"{shown}: the URL does not parse ({_mask_password(str(exc), url)})")
    return None


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for printing): everything between the user's ``:``
    and the last ``@`` (see :func:`_password_span`). Python's ``urlsplit`` ends the userinfo at the first
    ``/`` and SQLAlchemy's parser at the first ``@``, so a password holding either was shown (in part)."""
    return _masked_text(url)


def _lost_creation_race(exc: BaseException) -> bool:
    """Whether ``exc`` is what creating Optuna's tables raises when another process creates them at the
    same moment: "table studies already exists", "UNIQUE constraint failed: alembic_version.version_num"
    (SQLite), "relation ... already exists" or a duplicate key of the catalogue (PostgreSQL)."""
    import sqlalchemy.exc

    if isinstance(exc, sqlalchemy.exc.IntegrityError):
        return True
    return isinstance(exc, sqlalchemy.exc.DBAPIError) and "already exists" in str(exc)


def open_storage(
    storage: str | Path | None = None,
    *,
    heartbeat: int = 10,
    grace: int | None = 60,
    max_retry: int | None = 3,
) -> Any:
    """An Optuna ``RDBStorage`` on ``storage`` (see :func:`storage_url`) with a heartbeat every
    ``heartbeat`` seconds; a running trial silent for ``grace`` seconds (default: Optuna's, twice the
    heartbeat, when None) is failed and retried up to ``max_retry`` times (None: without limit)."""
    import optuna

    heartbeat = check_int(heartbeat, "heartbeat", 1, why=" (seconds)")  # numpy's ints as Python's
    if grace is not None:
        grace = check_int(grace, "grace", 1, why=" (seconds)")
    if grace is not None and grace <= heartbeat:
        raise ValueError(f"grace must be longer than heartbeat ({heartbeat} s), got {grace!r}")
    if max_retry is not None:
        max_retry = check_int(max_retry, "max_retry", 0, or_none=True)
    url = storage_url(storage)
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower()
    if scheme == "sqlite":
        path = url.split("://", 1)[1][1:]
        if path not in ("", ":memory:"):
            folder = Path(path).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ValueError(
                    f"storage: cannot create the directory {str(folder)!r} of {str(path)!r}: "
                    f"{exc.strerror or exc}"
                ) from None
    engine_kwargs = engine_options(url)
    retry_cls = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for attempt in range(5):
            try:
                if retry_cls is not None:
                    return optuna.storages.RDBStorage(
                        url,
                        engine_kwargs=engine_kwargs,
                        heartbeat_interval=heartbeat,
                        grace_period=grace,
                        heartbeat_stale_trial_callback=retry_cls(max_retry=max_retry),
                    )
                return optuna.storages.RDBStorage(  # Optuna < 4.9
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=heartbeat,
                    grace_period=grace,
                    failed_trial_callback=optuna.storages.RetryFailedTrialCallback(max_retry=max_retry),
                )
            except Exception as exc:
                if attempt < 4 and _lost_creation_race(exc):
                    # workers that open a new database at the same moment each create Optuna's tables and
                    # record its schema version: the one that lost opens the database the other made
                    time.sleep(0.1 * (attempt + 1))
                    continue
                error = open_error("storage", url, exc)
                if error is None:
                    raise
                raise error from None
    raise AssertionError("unreachable: the last attempt returns or raises")
