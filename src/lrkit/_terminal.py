"""Text for a terminal: what a database or a file gave (a run's label) shown with its control characters
escaped as Python's ``repr`` writes them (``\\x1b``), so that it cannot drive the terminal (ANSI/OSC
sequences that retitle the window, clear the screen, move the cursor, or a bell); and the stream it
goes to (:func:`stdout`)."""

from __future__ import annotations

import io
import re
import sys
from typing import TextIO

__all__ = ["printable", "stdout"]

#: C0 (line breaks and tabs included), DEL, C1, and Unicode's bidirectional formatting controls (they
#: reorder what the terminal shows after them)
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_CONTROL_KEEP_LINES = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(m: re.Match[str]) -> str:
    return repr(m.group())[1:-1]


def printable(text: str, *, lines: bool = False) -> str:
    """``text`` with each control character escaped as ``repr`` does (``\\x1b``, ``\\n``, ``\\x9b``,
    ``\\u202e``); ``lines``: keep ``\\n`` (a text of several lines), escaping every other one."""
    return (_CONTROL_KEEP_LINES if lines else _CONTROL).sub(_escape, str(text))


class _Discard(io.TextIOBase):
    """A text stream that drops what is written to it and is no terminal."""

    def write(self, s: str) -> int:
        return len(s)

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False


_DISCARD = _Discard()


def stdout() -> TextIO:
    """``sys.stdout``; where there is none (started with stdout closed, ``>&-``, or by ``pythonw``: it is
    None), a stream that drops what is written, as ``print`` does then."""
    return sys.stdout if sys.stdout is not None else _DISCARD  # type: ignore[return-value]
