"""Checks of output paths given on the command line, made before anything is computed or written.

``check_output_file(path, flag)`` and ``check_output_dir(path, flag)`` raise a ``ValueError`` that names
the flag, the path and what was expected: a path that is a folder where a file is wanted (or the other
way round), a path under a file, a name the file system refuses (NUL byte, too long), a folder without
write permission. They create nothing. Imports only the standard library.

>>> str(check_output_file("out/lr.png", "--out", suffixes=(".png", ".svg")))
'out/lr.png'
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

__all__ = ["PLOT_SUFFIXES", "check_output_dir", "check_output_file"]

#: the plot files the command line writes (matplotlib picks the format from the suffix)
PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def _stat_kind(p: Path, flag: str) -> str | None:
    """``"dir"``, ``"file"`` (anything that is not a folder) or None when nothing is at ``p``."""
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
    """The nearest existing ancestor of ``p`` must be a writable folder (where ``p`` or its parents go)."""
    for parent in p.absolute().parents:
        kind = _stat_kind(parent, flag)
        if kind is None:
            continue
        if kind != "dir":
            raise ValueError(f"{flag}: {str(p)!r} lies under {str(parent)!r}, which is a file, not a folder")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise ValueError(f"{flag}: cannot create {str(p)!r}: no write permission in {str(parent)!r}")
        return


def _check_name(p: Path, flag: str) -> None:
    if "\0" in str(p):
        raise ValueError(f"{flag}: {str(p)!r} is not a valid path (it contains a NUL byte)")
    limit = 255
    for part in p.parts:
        if len(os.fsencode(part)) > limit:
            raise ValueError(
                f"{flag}: {str(p)!r} is not a valid path (the name {part[:20]!r}... is longer than "
                f"{limit} bytes)"
            )


def check_output_file(path: str | os.PathLike[str], flag: str, suffixes: Sequence[str] = ()) -> Path:
    """``Path(path)`` if a file can be written there: not a folder, not under a file, in a writable folder.

    ``suffixes`` (lower case, with the dot) restricts the file type. Missing parent folders are allowed
    (the caller creates them). Raises ``ValueError`` naming ``flag`` otherwise.
    """
    p = Path(path)
    if str(path) == "":
        raise ValueError(f"{flag}: expected a file name, got ''")
    _check_name(p, flag)
    kind = _stat_kind(p, flag)
    if kind == "dir":
        raise ValueError(f"{flag}: {str(p)!r} is a folder; expected a file name")
    if suffixes and p.suffix.lower() not in suffixes:
        raise ValueError(f"{flag}: expected a {', '.join(suffixes)} file name, got {str(p)!r}")
    _check_parents(p, flag)
    if kind == "file" and not os.access(p, os.W_OK):
        raise ValueError(f"{flag}: cannot overwrite {str(p)!r} (no write permission)")
    return p


def check_output_dir(path: str | os.PathLike[str], flag: str) -> Path:
    """``Path(path)`` if it is, or can be made, a writable folder: not a file, not under a file.

    Raises ``ValueError`` naming ``flag`` otherwise.
    """
    p = Path(path)
    if str(path) == "":
        raise ValueError(f"{flag}: expected a folder name, got ''")
    _check_name(p, flag)
    kind = _stat_kind(p, flag)
    if kind == "file":
        raise ValueError(f"{flag}: {str(p)!r} is a file; expected a folder")
    if kind == "dir":
        if not os.access(p, os.W_OK | os.X_OK):
            raise ValueError(f"{flag}: cannot write in {str(p)!r} (no write permission)")
        return p
    _check_parents(p, flag)
    return p
