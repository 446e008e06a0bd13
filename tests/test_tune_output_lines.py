"""``lrkit tune --workers N`` prints from N processes into one pipe. With ``PYTHONUNBUFFERED=1`` (set by
many CI systems and containers) ``print`` makes two system calls, the text and then its newline, so a
worker's line could land between a line and its end: CI printed ``...final_div_factor=18.06)worker 1:
time budget ...``. Every line lrkit tune writes is now one write, newline included."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from lrkit._text import say_line


class _Syscalls(io.RawIOBase):
    """A raw stream that keeps each write apart, as the file descriptor of an unbuffered stdout does."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:  # type: ignore[override]
        self.writes.append(bytes(b))
        return len(b)


def _unbuffered_stdout() -> tuple[_Syscalls, io.TextIOWrapper]:
    """What ``python -u`` / ``PYTHONUNBUFFERED=1`` makes ``sys.stdout``: a write-through text layer on a
    raw (unbuffered) stream."""
    raw = _Syscalls()
    return raw, io.TextIOWrapper(raw, encoding="utf-8", write_through=True)  # type: ignore[arg-type]


def test_print_takes_two_writes_there_and_say_line_one() -> None:
    raw, out = _unbuffered_stdout()
    print("a line", file=out, flush=True)
    assert raw.writes == [b"a line", b"\n"]  # why the tune's lines were cut: the premise of this file
    raw.writes.clear()
    say_line("a line", out)
    say_line("two\nlines", out)
    assert raw.writes == [b"a line\n", b"two\nlines\n"]


def test_a_worker_process_writes_each_line_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("optuna")
    from lrkit.tune.core import _Prefixed

    raw, out = _unbuffered_stdout()
    monkeypatch.setattr(sys, "stdout", out)
    _Prefixed("worker 1: ")("[3/10] trial 2 complete")
    assert raw.writes == [b"worker 1: [3/10] trial 2 complete\n"]


@pytest.mark.usefixtures("tiny_task")
def test_every_write_of_lrkit_tune_ends_a_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("optuna")
    from lrkit.cli import main

    raw, out = _unbuffered_stdout()
    monkeypatch.setattr(sys, "stdout", out)
    argv = ["tune", "--task", "tiny_tune_task:tiny", "--epochs", "2", "--trials", "3", "--no-finder"]
    argv += ["--lr-range", "0.01", "0.3", "--no-report", "--storage", str(tmp_path / "t.db")]
    assert main(argv) == 0
    lines = b"".join(raw.writes).decode().splitlines()
    assert any(line.startswith("[3/3] trial 2 complete") for line in lines), lines
    assert any(line.startswith("best spec (val accuracy ") for line in lines), lines
    assert raw.writes and all(w.endswith(b"\n") for w in raw.writes), raw.writes
