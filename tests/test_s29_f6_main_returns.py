"""``lrkit.cli.main([...])`` from Python returns the exit status in every case: argparse's errors raised
SystemExit(2) while lrkit's own returned 2 (a tester's finding); --help and --version return 0. The
``lrkit`` command (the console script calls ``sys.exit(main())``) and ``python -m lrkit`` exit with the
same statuses as before."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import pytest

from lrkit import __version__
from lrkit.cli import main


@pytest.mark.parametrize(
    ("argv", "status", "said"),
    [
        (["show", "x", "--total", "-1"], 2, "lrkit show: error: --total: expected a whole number"),
        (["show", "x", "--total", "10", "--bogus"], 2, "lrkit show: error: unrecognized arguments: --bogus"),
        (["shwo"], 2, "lrkit: error: COMMAND: invalid choice: 'shwo'"),
        (["show", "nonsense(", "--total", "10"], 2, "lrkit show: error: "),  # lrkit's own: as before
    ],
)
def test_main_returns_a_bad_input_status(
    capsys: pytest.CaptureFixture[str], argv: list[str], status: int, said: str
) -> None:
    assert main(argv) == status
    err = capsys.readouterr().err
    assert err.startswith(said) and err.count("\n") == 1, err


def test_help_and_version_return_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"lrkit {__version__}\n"
    assert main(["show", "--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: lrkit show")


@pytest.mark.parametrize(
    ("argv", "status"),
    [(["--version"], 0), (["show", "--help"], 0), (["show", "x", "--total", "-1"], 2), (["shwo"], 2)],
)
def test_the_command_exits_with_the_same_status(argv: list[str], status: int) -> None:
    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "lrkit"]
    assert script.value == "lrkit.cli:main"
    as_script = f"import sys; from {script.module} import {script.attr} as m; sys.exit(m())"
    for command in ([sys.executable, "-m", "lrkit"], [sys.executable, "-c", as_script]):
        done = subprocess.run([*command, *argv], capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == status, (command, done.stderr)
