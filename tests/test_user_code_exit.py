"""``sys.exit(...)`` in the user's own code (``--task mod:fn``): one ``lrkit CMD: error:`` line saying the
task called sys.exit, exit 1, instead of lrkit ending silently with the user's status (0: "success").
``KeyboardInterrupt`` still passes through (Ctrl-C: "interrupted", 130)."""

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

torch = pytest.importorskip("torch")

TASKS = """
import sys
import torch
from torch.utils.data import DataLoader, TensorDataset
from lrkit.tasks import TaskParts

def exits(seed):
    sys.exit(0)

def exits_text(seed):
    sys.exit("bye")

def interrupted(seed):
    raise KeyboardInterrupt

def late(seed):  # fine for the check and the first epoch; exits at the second
    x = torch.randn(64, 4)
    y = (x[:, 0] > 0).long()
    dl = DataLoader(TensorDataset(x, y), batch_size=16)
    calls = []

    def late_metric(model):
        calls.append(1)
        if len(calls) == 2:
            sys.exit(0)
        return 0.5

    return TaskParts(torch.nn.Linear(4, 2), dl, dl, torch.nn.functional.cross_entropy,
                     metric=late_metric, higher_is_better=True, epochs=2, optimizer="sgd")
"""


@pytest.fixture
def mod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"lrkit_exit_{uuid.uuid4().hex[:8]}"
    src = tmp_path / "src"
    src.mkdir()
    (src / f"{name}.py").write_text(textwrap.dedent(TASKS))
    (src / f"{name}_import.py").write_text("import sys\nsys.exit(3)\ndef task(seed):\n    return None\n")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.syspath_prepend(str(src))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(sys.path))  # for a worker process
    yield name
    sys.modules.pop(name, None)
    sys.modules.pop(f"{name}_import", None)


def _argv(cmd: str, task: str) -> list[str]:
    if cmd == "lab":
        return ["lab", "--task", task, "--strategy", "constant(0.1)", "--workers", "1", "--out", "lab-out"]
    return ["find", "--task", task, "--out", "f.png", "--json", "f.json"]


def _error_line(cmd: str, err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith(f"lrkit {cmd}: error: ")]
    assert len(lines) == 1, err
    assert "Traceback" not in err.partition(lines[0])[0], err
    return lines[0]


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("cmd", ["lab", "find"])
@pytest.mark.parametrize(
    ("fn", "said"),
    [("exits", "sys.exit(0)"), ("exits_text", "sys.exit('bye')"), ("import:task", "sys.exit(3)")],
)
def test_sys_exit_in_a_task_is_an_error(
    mod: str, capsys: pytest.CaptureFixture[str], cmd: str, fn: str, said: str
) -> None:
    task = f"{mod}_{fn}" if fn.startswith("import:") else f"{mod}:{fn}"
    code = main(_argv(cmd, task))
    out, err = capsys.readouterr()
    assert code == 1, (code, out, err)
    line = _error_line(cmd, err)
    assert repr(task) in line and f"called {said}" in line, line
    assert f"{mod}" in err.partition(line)[2], err  # the user's frame follows
    assert sorted(p.name for p in Path.cwd().iterdir()) == []  # nothing written


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("workers", [1, 2])
def test_sys_exit_mid_run_names_the_run(mod: str, capsys: pytest.CaptureFixture[str], workers: int) -> None:
    """In the lab's thread and in a worker process: the run's error, not a silent exit or a dead pool."""
    task = f"{mod}:late"
    argv = ["lab", "--task", task, "--strategy", "a=constant(0.1)", "--strategy", "b=constant(0.01)"]
    code = main([*argv, "--workers", str(workers), "--out", "out"])
    _, err = capsys.readouterr()
    assert code == 1, err
    line = _error_line("lab", err)
    assert f"task '{task}' (strategy '" in line and "called sys.exit(0)" in line, line


@pytest.mark.usefixtures("one_torch_thread")
def test_keyboard_interrupt_in_a_task_still_interrupts(mod: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(KeyboardInterrupt), user_code("--task 'x'"):
        raise KeyboardInterrupt
    for cmd in ("lab", "find"):
        assert main(_argv(cmd, f"{mod}:interrupted")) == 130
        assert capsys.readouterr().err.strip() == f"lrkit {cmd}: interrupted"


def test_sys_exit_of_lrkit_itself_passes_through() -> None:
    """Only the user's exit is turned into an error (one raised in an lrkit frame is lrkit's own)."""
    from lrkit import _usercode

    with pytest.raises(UserCodeError, match=r"^f called sys.exit\(2\)"), user_code("f"):
        sys.exit(2)
    code = compile("raise SystemExit(5)", _usercode.__file__, "exec")  # a frame in lrkit's own file
    with pytest.raises(SystemExit) as info, user_code("f"):
        exec(code)
    assert info.value.code == 5
