"""A stdout whose encoding lacks a character lrkit prints (a cp1252 or cp949 console, a redirected
Windows stream, PYTHONIOENCODING=ascii) shows it as an escape: the command succeeds. lrkit report, lab,
tune, demo and recipes failed with status 2 ("bad input") after writing their files (a tester's
finding); an encoding error that still escapes is the system's (status 1), never bad input."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lrkit.cli import main


def test_recipes_on_an_ascii_stdout_escapes_what_it_cannot_show() -> None:
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    done = subprocess.run(
        [sys.executable, "-m", "lrkit", "recipes"], capture_output=True, env=env, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    out = done.stdout.decode("ascii")  # nothing but ASCII reached the stream
    assert "\\x" in out or "\\u" in out  # what ASCII lacks, escaped
    assert done.stderr == b""


@pytest.mark.parametrize("encoding", ["ascii", "cp1252", "cp949"])
def test_report_on_a_narrow_stdout_succeeds_and_puts_the_stream_back(
    lab_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encoding: str
) -> None:
    shutil.copy(lab_db, tmp_path / "lab.db")
    raw = io.BytesIO()
    stdout = io.TextIOWrapper(raw, encoding=encoding, errors="strict")
    monkeypatch.setattr(sys, "stdout", stdout)
    assert main(["report", str(tmp_path / "lab.db"), "--out", str(tmp_path / "r")]) == 0
    stdout.flush()
    out = raw.getvalue().decode(encoding)
    assert "wrote " in out and "report: " in out.splitlines()[-1]
    assert "\\u" in out  # a dash or a >= the encoding lacks, escaped
    assert (tmp_path / "r" / "report.html").exists()
    assert stdout.errors == "strict"  # main(...) from a notebook leaves the stream as it found it


def test_an_encoding_error_that_escapes_is_not_bad_input(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class AsciiOnly(io.StringIO):  # a stream lrkit cannot set to escape (no reconfigure)
        def write(self, s: str) -> int:
            s.encode("ascii")
            return super().write(s)

    monkeypatch.setattr(sys, "stdout", AsciiOnly())
    assert main(["recipes"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("lrkit recipes: error: 'ascii' codec can't encode"), err
    assert "PYTHONIOENCODING=utf-8" in err and err.count("\n") == 1
