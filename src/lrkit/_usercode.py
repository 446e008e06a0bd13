"""Calling the user's own code (``--model mod:factory``, ``--task mod:func``, ...) from the command line.

Inside ``with user_code("--model 'm:f'"):`` an exception raised by the user's code (or by a library it
calls) becomes a :class:`UserCodeError`: the CLI prints one ``lrkit ...: error:`` line naming the flag,
then the user's traceback with lrkit's own frames left out. An exception raised by lrkit itself (its
validation of what the user passed) goes through unchanged. Imports only the standard library.
"""

from __future__ import annotations

import sysconfig
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["UserCodeError", "user_code", "user_error"]

_LRKIT = str(Path(__file__).resolve().parent)
_STDLIB = sysconfig.get_paths()["stdlib"]


def _ours(filename: str) -> bool:
    """Whether a frame belongs to lrkit or to Python's import machinery (not worth showing the user)."""
    if filename.startswith("<frozen importlib"):
        return True
    try:
        return str(Path(filename).resolve()).startswith(_LRKIT)
    except (OSError, ValueError):
        return False


def _stdlib(filename: str) -> bool:
    return filename.startswith(_STDLIB) and "-packages" not in filename


class UserCodeError(Exception):
    """The user's code raised; ``__cause__`` is the original exception.

    Pickled (from a worker process) it keeps its message and :meth:`user_traceback`, as text: the cause
    itself does not travel.
    """

    def __init__(self, message: str, traceback_text: str | None = None) -> None:
        super().__init__(message)
        self._traceback_text = traceback_text

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.user_traceback()))

    def user_traceback(self) -> str:
        """The cause's traceback without lrkit's (and importlib's) frames; '' without a cause. One
        unpickled from a worker process gives the text the worker made (``concurrent.futures`` sets its
        own ``__cause__``, the worker's whole traceback through lrkit, which is not the user's)."""
        cause = self.__cause__
        if self._traceback_text is not None or cause is None:
            return self._traceback_text or ""
        frames = list(traceback.extract_tb(cause.__traceback__))
        # from the first frame of the user's code on (the way there is lrkit, importlib, functools, and
        # a library's call machinery such as torch's Module.__call__: the first frame outside the installed
        # packages; a user's code that is itself installed: the first frame outside lrkit and Python's);
        # none (a SyntaxError in the user's module: its text shows the file and line) shows no frame
        theirs = [not (_ours(f.filename) or _stdlib(f.filename)) for f in frames]
        first = next((i for i, f in enumerate(frames) if theirs[i] and "-packages" not in f.filename), None)
        if first is None:
            first = next((i for i, t in enumerate(theirs) if t), len(frames))
        frames = [f for f in frames[first:] if not _ours(f.filename)]
        lines = ["Traceback of your code (most recent call last):\n"] if frames else []
        lines += traceback.StackSummary.from_list(frames).format()
        lines += traceback.format_exception_only(type(cause), cause)
        return "".join(lines)


def _raised_by_lrkit(exc: BaseException) -> bool:
    """Raised in an lrkit frame, with none of the user's own frames on the way there: lrkit refusing what
    the user's code passed it (``lrkit.parse`` called in a task's factory) is the user's code failing."""
    tb = exc.__traceback__
    files = []
    while tb is not None:
        files.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    if not files or not _ours(files[-1]) or files[-1].startswith("<frozen"):
        return False
    # from the frame the ``with user_code`` block is in (after this module's own, which the exception is
    # thrown into) on, that one left out: it is lrkit's on the command line, a test's in the tests
    while files and files[0] == __file__:
        files.pop(0)
    return not any(_users(f) for f in files[1:])


def _users(filename: str) -> bool:
    """A frame of the user's own code: not lrkit's, Python's or an installed package's."""
    return not (_ours(filename) or _stdlib(filename) or "-packages" in filename)


def user_error(what: str, exc: BaseException) -> UserCodeError:
    """``UserCodeError("{what} raised Type: first line of the message")``; raise it ``from exc``."""
    detail = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {detail[0]}" if detail else type(exc).__name__
    return UserCodeError(f"{what} raised {text} (traceback of your code below)")


@contextmanager
def user_code(what: str) -> Iterator[None]:
    """Turn an exception raised in the user's code into ``UserCodeError("{what} raised Type: message")``.

    ``sys.exit(...)`` in the user's code is one, too (``"{what} called sys.exit(0)"``): it would otherwise
    end lrkit silently, with its status. lrkit's own exceptions (raised in an lrkit frame), ``MemoryError``
    and ``KeyboardInterrupt`` pass through unchanged.
    """
    try:
        yield
    except (UserCodeError, MemoryError):
        raise
    except SystemExit as exc:
        if _raised_by_lrkit(exc):
            raise
        raise UserCodeError(
            f"{what} called sys.exit({exc.code!r}), which would end lrkit; return or raise instead "
            "(traceback of your code below)"
        ) from exc
    except Exception as exc:
        if _raised_by_lrkit(exc):
            raise
        raise user_error(what, exc) from exc
