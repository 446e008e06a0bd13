"""Small text helpers shared by the command line, the reports and the library's messages."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import TextIO

from ._terminal import stdout


def did_you_mean(name: str, known: Iterable[str], prefix: str = "") -> str:
    """`` (did you mean 'KNOWN'?)`` for the known name closest to ``name`` (``prefix`` before it), or ""."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {prefix + close[0]!r}?)" if close else ""


def plural(n: int, one: str, many: str | None = None) -> str:
    """``1 epoch``, ``2 epochs``; ``many`` for irregular plurals (``strategies``)."""
    return f"{n} {one if n == 1 else many or one + 's'}"


def say_line(text: str, file: TextIO | None = None) -> None:
    """Write ``text`` and its newline in one ``write``, then flush: ``print`` writes the two apart, and with
    ``PYTHONUNBUFFERED=1`` (common in CI and containers) each is a system call of its own, so a line
    another process writes to the same pipe (a tune worker's) could land between a line and its end.
    ``file`` None: stdout, and nothing where there is none (:func:`lrkit._terminal.stdout`), as ``print``."""
    out = stdout() if file is None else file
    out.write(text + "\n")
    out.flush()


def events_text(past: Sequence[tuple[float, str]], spec: str) -> str:
    """Schedule events past a run's end (:func:`lrkit.schedules.base.beyond_run`: ``(step, what)``), for
    a warning: up to 5 of them, where they fall, and what to do; how a percent counts is said when the
    schedule ``spec`` has one."""
    more = f"; and {len(past) - 5} more" if len(past) > 5 else ""
    one = len(past) == 1
    listed = "; ".join(f"{what} at step {t:,.0f}" for t, what in past[:5])
    percent = (
        ": a percent, '50%', is of the whole run, counted from where its piece starts" if "%" in spec else ""
    )
    return (
        f"{listed}{more}. The run ends first, so {'that never happens' if one else 'none of these happen'} "
        f"(place {'it' if one else 'them'} inside the run{percent})"
    )
