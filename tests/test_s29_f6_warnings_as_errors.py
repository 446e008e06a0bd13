"""Under PYTHONWARNINGS=error (or -W error, or a notebook's warnings.simplefilter("error")) a warning of
lrkit's own is one error line naming it, status 2 (it says what the command's input leads to: bad
input); it was a raw traceback with status 1 (a tester's finding). Another library's warning turned into
an error is the system's, status 1."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest

from lrkit import cli
from lrkit.cli import main

SHORT = ["show", "cosine(lr=0.1, steps=100)", "--total", "1000"]  # ends 900 steps before the run


def test_pythonwarnings_error_gives_one_line_and_status_2() -> None:
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    done = subprocess.run(
        [sys.executable, "-m", "lrkit", *SHORT],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout == "" and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("lrkit show: error: 'cosine(lr=0.1, steps=100)' ends at step 100 ")
    assert "(ScheduleShorterThanRunWarning, a warning that the warnings filter turns into an error: " in (
        done.stderr
    )


def test_a_notebook_s_error_filter_returns_2(capsys: pytest.CaptureFixture[str]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(SHORT) == 2
    assert capsys.readouterr().err.startswith("lrkit show: error: 'cosine(lr=0.1, steps=100)' ends at step")
    assert main(SHORT) == 0  # as a warning: the table, and the warning's line


def test_whose_warning_it_is() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(Warning) as lrkit_s:
            cli._resolve("cosine(lr=0.1, steps=100)", 1000, None)
        with pytest.raises(Warning) as other:
            warnings.warn("a library's warning", DeprecationWarning, stacklevel=1)
    assert cli._raised_in_lrkit(lrkit_s.value)
    assert not cli._raised_in_lrkit(other.value)
    assert cli._warning_line(other.value) == (
        "a library's warning (DeprecationWarning, a warning that the warnings filter turns into an error: "
        "-W error or PYTHONWARNINGS)"
    )
