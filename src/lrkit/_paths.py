"""Checks of output paths given on the command line, made before anything is computed or written.

``check_output_file(path, flag)`` and ``check_output_dir(path, flag, names)`` raise a ``ValueError`` that
names the flag, the path and what was expected: a path that is a directory where a file is wanted (or the
other way round), a path under a file, a name the file system refuses (NUL byte, too long), a directory
without write permission, or **an existing file that lrkit did not write**. They create nothing.

lrkit overwrites only its own files. Every file it writes carries its mark (:func:`savefig_metadata`
for PNG/SVG/PDF, a ``"written_by"`` key first in JSON, a ``generator`` meta tag in HTML, a comment
first in Markdown; a CSV is lrkit's when its header row is one lrkit writes), :func:`owned_by_lrkit`
reads it whatever the file is named (``--json result`` or ``--json out.txt`` is lrkit's JSON), and
:func:`write_output` (atomic: a temporary file renamed over the target) refuses to replace a file
without it, so a run never clobbers a user's file even where no check ran before it.
Imports only the standard library.

>>> str(check_output_file("out/lr.png", "--out", suffixes=(".png", ".svg")))
'out/lr.png'
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "MARK",
    "PLOT_SUFFIXES",
    "check_output_dir",
    "check_output_file",
    "check_replaceable",
    "json_text",
    "owned_by_lrkit",
    "save_figure",
    "savefig_metadata",
    "write_json",
    "write_output",
]

#: the mark in every file lrkit writes
MARK = "lrkit"
#: how each kind of file carries :data:`MARK`: searched in its first 64 KiB, and in its last 64 KiB
#: too where it need not start the file
_MARKS = {
    ".png": re.compile(rb"tEXtSoftware\x00lrkit"),
    ".svg": re.compile(rb"<dc:creator>\s*<cc:Agent>\s*<dc:title>lrkit"),
    ".pdf": re.compile(rb"/Creator \(lrkit"),
    ".json": re.compile(rb'\A\{\s*"written_by": "lrkit'),
    ".html": re.compile(rb'<meta name="generator" content="lrkit'),
    ".md": re.compile(rb"\A<!-- written by lrkit"),
}
_PEEK = 1 << 16

#: the plot files the command line writes (matplotlib picks the format from the suffix)
PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def require_matplotlib() -> None:
    """Raise ``ModuleNotFoundError`` (``name="matplotlib"``, which the command line turns into the
    extra to install) when matplotlib is not installed: called before a command's work, not after it."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise ModuleNotFoundError("No module named 'matplotlib'", name="matplotlib")


def check_plot_file(path: str | os.PathLike[str], flag: str) -> Path:
    """:func:`check_output_file` for a plot (:data:`PLOT_SUFFIXES`), and matplotlib installed to draw it."""
    p = check_output_file(path, flag, PLOT_SUFFIXES)
    require_matplotlib()
    return p


def _stat_kind(p: Path, flag: str) -> str | None:
    """``"dir"``, ``"file"`` (anything that is not a directory) or None when nothing is at ``p``."""
    try:
        if p.is_dir():
            return "dir"
        if p.exists() or p.is_symlink():
            return "file"
    except ValueError as exc:  # embedded NUL byte
        raise ValueError(f"{flag}: {str(p)!r} is not a valid path ({exc})") from None
    except OSError as exc:  # name too long, too many symlinks, ...
        raise ValueError(f"{flag}: {str(p)!r} is not a valid path ({exc.strerror or exc})") from None
    return None


def _check_parents(p: Path, flag: str) -> None:
    """The nearest existing ancestor of ``p`` must be a writable directory (where ``p`` or its parents go)."""
    for parent in p.absolute().parents:
        kind = _stat_kind(parent, flag)
        if kind is None:
            continue
        if kind != "dir":
            raise ValueError(
                f"{flag}: {str(p)!r} lies under {str(parent)!r}, which is a file, not a directory"
            )
        if not os.access(parent, os.W_OK | os.X_OK):
            raise ValueError(f"{flag}: cannot create {str(p)!r}: no write permission in {str(parent)!r}")
        return


#: the longest path (in bytes, as the file system encodes it, symbolic links resolved) SQLite's unix VFS
#: opens a database at: it keeps a path in 512 bytes, the database's and its "-journal" name's (8 more)
MAX_SQLITE_PATH_BYTES = 504


def check_sqlite_path_length(path: str | os.PathLike[str], flag: str) -> None:
    """A ValueError naming ``flag`` for an SQLite database ``path`` longer than SQLite can open
    (:data:`MAX_SQLITE_PATH_BYTES`, symbolic links resolved; on POSIX, where SQLite's unix VFS keeps it):
    SQLite itself says only "unable to open database file". Used by the lab's ``--db`` and by the
    tuner's SQLite storage (a path or an ``sqlite:///`` URL)."""
    real = os.path.realpath(path)
    if os.name == "posix" and len(os.fsencode(real)) > MAX_SQLITE_PATH_BYTES:
        raise ValueError(
            f"{flag}: SQLite cannot open a database whose path is longer than {MAX_SQLITE_PATH_BYTES} bytes "
            f"(512 with the '-journal' it adds); this one is {len(os.fsencode(real))} ({real!r}): give a "
            f"shorter {flag}"
        )


def _check_name(p: Path, flag: str) -> None:
    """A name the file system can hold: no NUL byte, each part in 255 bytes, every character in the file
    system's encoding (an ASCII one, under a C locale without UTF-8 mode, has no Hangul or emoji)."""
    if "\0" in str(p):
        raise ValueError(f"{flag}: {str(p)!r} is not a valid path (it contains a NUL byte)")
    try:
        os.fsencode(p)
    except UnicodeEncodeError:
        raise ValueError(
            f"{flag}: {str(p)!r} cannot be written in this file system's encoding "
            f"({sys.getfilesystemencoding()}); use an ASCII name, or a UTF-8 locale (PYTHONUTF8=1)"
        ) from None
    limit = 255
    for part in p.parts:
        if len(os.fsencode(part)) > limit:
            raise ValueError(
                f"{flag}: {str(p)!r} is not a valid path (the name {part[:20]!r}... is longer than "
                f"{limit} bytes)"
            )


def check_output_file(path: str | os.PathLike[str], flag: str, suffixes: Sequence[str] = ()) -> Path:
    """``Path(path)`` if a file can be written there: not a directory, not under a file, in a writable
    directory.

    ``suffixes`` (lower case, with the dot) restricts the file type. Missing parent directories are allowed
    (the caller creates them). Raises ``ValueError`` naming ``flag`` otherwise.
    """
    p = Path(path)
    if str(path) == "":
        raise ValueError(f"{flag}: expected a file name, got ''")
    _check_name(p, flag)
    kind = _stat_kind(p, flag)
    if kind == "dir":
        raise ValueError(f"{flag}: {str(p)!r} is a directory; expected a file name")
    if suffixes and p.suffix.lower() not in suffixes:
        raise ValueError(f"{flag}: expected a {', '.join(suffixes)} file name, got {str(p)!r}")
    _check_parents(p, flag)
    if kind == "file":
        check_replaceable(p, flag)
        if not os.access(p, os.W_OK):
            raise ValueError(f"{flag}: cannot overwrite {str(p)!r} (no write permission)")
    return p


def check_output_dir(path: str | os.PathLike[str], flag: str, names: Sequence[str] = ()) -> Path:
    """``Path(path)`` if it is, or can be made, a writable directory: not a file, not under a file, and none
    of the files ``names`` (the ones the command will write there) is a file lrkit did not write.

    Raises ``ValueError`` naming ``flag`` otherwise.
    """
    p = Path(path)
    if str(path) == "":
        raise ValueError(f"{flag}: expected a directory name, got ''")
    _check_name(p, flag)
    kind = _stat_kind(p, flag)
    if kind == "file":
        raise ValueError(f"{flag}: {str(p)!r} is a file; expected a directory")
    if kind == "dir":
        if not os.access(p, os.W_OK | os.X_OK):
            raise ValueError(f"{flag}: cannot write in {str(p)!r} (no write permission)")
        for name in names:
            check_replaceable(p / name, flag)
        return p
    _check_parents(p, flag)
    return p


def savefig_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """``savefig(metadata=...)`` that marks a ``.png``, ``.svg`` or ``.pdf`` figure as lrkit's."""
    suffix = Path(path).suffix.lower()
    if suffix == ".png":
        return {"Software": MARK}
    return {"Creator": MARK} if suffix in (".svg", ".pdf") else {}


def _csv_headers() -> tuple[str, ...]:
    # lazily: lrkit.lab imports this module
    from lrkit.lab.report import EPOCHS_COLUMNS, FORMER_RUNS_COLUMNS, RUNS_COLUMNS
    from lrkit.tune.trials import TRIALS_COLUMNS

    # an earlier lrkit's header too: its runs.csv is lrkit's, replaced by the new one
    every = (RUNS_COLUMNS, EPOCHS_COLUMNS, TRIALS_COLUMNS, *FORMER_RUNS_COLUMNS)
    return tuple(",".join(cols) for cols in every)


def owned_by_lrkit(path: str | os.PathLike[str]) -> bool:
    """True when the file at ``path`` carries lrkit's mark (see the module docstring)."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            head = f.read(_PEEK)
            size = f.seek(0, os.SEEK_END)
            tail = b""
            if size > _PEEK:
                f.seek(max(_PEEK, size - _PEEK))
                tail = f.read()
    except OSError:
        return False
    if p.suffix.lower() == ".csv":
        first = head.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", "replace")
        return first in _csv_headers()
    own = _MARKS.get(p.suffix.lower())
    if own is not None and (own.search(head) or own.search(tail)):
        return True
    # under another name (--json result.txt): only a mark that opens the file, JSON's or Markdown's; one
    # that may stand anywhere (an HTML meta tag) could be quoted in a user's notes
    return any(mark.pattern.startswith(rb"\A") and mark.search(head) for mark in _MARKS.values())


def check_replaceable(path: str | os.PathLike[str], flag: str) -> None:
    """Raise ``ValueError`` naming ``flag`` when a file lrkit did not write is at ``path``."""
    p = Path(path)
    if p.is_dir() and not p.is_symlink():  # found only when writing, after the work (a lab's training)
        raise ValueError(
            f"{flag}: {str(p)!r} is a directory where lrkit writes a file: move it away or choose another "
            "name"
        )
    if (p.exists() or p.is_symlink()) and not p.is_dir() and (p.is_symlink() or not owned_by_lrkit(p)):
        raise ValueError(
            f"{flag}: {str(p)!r} exists and lrkit did not write it (it has no lrkit mark); lrkit "
            "overwrites only its own files: choose another name, or move that file away"
        )


def write_output(path: str | os.PathLike[str], data: bytes, flag: str = "path") -> Path:
    """Write ``data`` to ``path`` through a temporary file beside it, renamed over it (a failure leaves
    ``path`` as it was); refuses (``ValueError`` naming ``flag``) to replace a file lrkit did not
    write. Missing directories are made. The file gets the usual permissions (0666 less the umask)."""
    p = Path(path)
    check_replaceable(p, flag)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        with open(tmp, "xb") as f:
            f.write(data)
        os.replace(tmp, p)
    except OSError as exc:  # name the file asked for, not the temporary one
        tmp.unlink(missing_ok=True)
        raise type(exc)(exc.errno, exc.strerror, str(p)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return p


def json_text(data: dict[str, Any]) -> str:
    """``data`` as indented JSON, with ``"written_by": "lrkit"`` as its first key (lrkit's mark)."""
    return json.dumps({"written_by": MARK, **data}, indent=1)


def write_json(path: str | os.PathLike[str], data: dict[str, Any], flag: str = "--json") -> Path:
    """:func:`json_text` of ``data`` to the file ``path`` (:func:`write_output`)."""
    return write_output(path, json_text(data).encode("utf-8"), flag)


def save_figure(fig: Any, path: str | os.PathLike[str], *, dpi: int, flag: str = "path") -> Path:
    """Save a matplotlib figure to ``path`` (its format from the suffix, PNG without one) with lrkit's
    mark, through :func:`write_output`."""
    suffix = Path(path).suffix.lower()
    buf = io.BytesIO()
    fig.savefig(buf, format=suffix[1:] or "png", dpi=dpi, metadata=savefig_metadata(path) or None)
    return write_output(path, buf.getvalue(), flag)
