"""Small text helpers shared by the command line, the reports and the library's messages."""

from __future__ import annotations


def plural(n: int, one: str, many: str | None = None) -> str:
    """``1 epoch``, ``2 epochs``; ``many`` for irregular plurals (``strategies``)."""
    return f"{n} {one if n == 1 else many or one + 's'}"
