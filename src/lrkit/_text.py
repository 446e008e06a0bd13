"""Small text helpers shared by the command line, the reports and the library's messages."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(name: str, known: Iterable[str], prefix: str = "") -> str:
    """`` (did you mean 'KNOWN'?)`` for the known name closest to ``name`` (``prefix`` before it), or ""."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {prefix + close[0]!r}?)" if close else ""


def plural(n: int, one: str, many: str | None = None) -> str:
    """``1 epoch``, ``2 epochs``; ``many`` for irregular plurals (``strategies``)."""
    return f"{n} {one if n == 1 else many or one + 's'}"
