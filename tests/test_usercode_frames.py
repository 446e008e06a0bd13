"""Whose error is it? An exception is lrkit's own (status 2, "bad input") only when no frame of the user's
code lies on its way: lrkit refusing what a task's factory passed it (``lrkit.parse`` with a bad spec) is
the task's code failing (status 1, its frame shown), and a factory refused at the call itself (a function
written in C, ``--task os:system``; a wrong signature) names the task."""

from __future__ import annotations

import os
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lrkit._usercode import UserCodeError, user_code
from lrkit.cli import main

pytest.importorskip("torch")

TASKS = """
import lrkit

def bad_spec(seed):
    lrkit.parse("cosine(lr=-1)")

def two_args(seed, other):
    return None
"""


@pytest.fixture
def mod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"lrkit_frames_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(TASKS))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(sys.path))
    yield name
    sys.modules.pop(name, None)


def _error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if ": error: " in line]
    assert len(lines) == 1, err
    return code, lines[0], err


@pytest.mark.parametrize("cmd", ["lab", "find"])
def test_lrkit_refusing_what_the_task_passed_it_is_the_tasks_error(
    cmd: str, mod: str, capsys: pytest.CaptureFixture[str]
) -> None:
    task = f"{mod}:bad_spec"
    argv = ["lab", "--task", task, "--strategy", "constant(0.1)", "--out", "o"] if cmd == "lab" else [
        "find", "--task", task, "--out", "f.png"]  # fmt: skip
    code, line, err = _error(argv, capsys)
    assert code == 1, err
    assert f"--task '{task}' raised SpecError: cosine: lr must be >= 0" in line, line
    assert f"{mod}.py" in err and 'lrkit.parse("cosine(lr=-1)")' in err, err  # the user's frame
    assert not Path("o").exists()


@pytest.mark.parametrize(("factory", "says"), [
    ("os:system", "TypeError: expected str, bytes or os.PathLike object, not int"),
    ("two_args", "TypeError: two_args() missing 1 required positional argument: 'other'"),
])  # fmt: skip
def test_a_factory_refused_at_the_call_names_the_task(
    factory: str, says: str, mod: str, capsys: pytest.CaptureFixture[str]
) -> None:
    task = factory if ":" in factory else f"{mod}:{factory}"
    code, line, err = _error(["find", "--task", task, "--out", "f.png"], capsys)
    assert code == 1, err
    assert f"task '{task}' raised {says}" in line, line


def test_lrkits_own_refusal_with_no_user_frame_stays_lrkits(
    mod: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["lab", "--task", "digits-mlp", "--strategy", "cosine(lr=-1)", "--out", "o"]
    code, line, err = _error(argv, capsys)
    assert code == 2, err
    assert "raised" not in line and "cosine: lr must be >= 0" in line, line


def test_an_exception_through_the_users_frame_is_theirs(tmp_path: Path) -> None:
    path = tmp_path / "theirs.py"
    path.write_text("import lrkit\ndef f():\n    lrkit.parse('cosine(lr=-1)')\n")
    scope: dict[str, object] = {}
    exec(compile(path.read_text(), str(path), "exec"), scope)
    says = r"^f raised SpecError: cosine: lr must be >= 0"
    with pytest.raises(UserCodeError, match=says) as info, user_code("f"):
        scope["f"]()  # type: ignore[operator]
    assert str(path) in info.value.user_traceback()
