"""The exit status of ``lrkit find`` and ``lrkit auto``, as a shell script or CI job sees it.

Each status the ``--help`` epilog documents is produced by running the command (``lrkit.cli.main``, or a
subprocess for the exit code a shell gets and for Ctrl-C) on a real task: a built-in one, or a task module
written here the way a user writes one.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("matplotlib")

from lrkit import auto_cli, cli
from lrkit.cli import main
from lrkit.finder import cli as finder_cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: a user's task module: ``frozen`` has no signal at any LR (its output ignores its weights), ``raises``
#: is broken code, ``slow`` says it started and then waits (to be interrupted); ``picky`` and ``loader``
#: are --model and --data factories, the model's forward broken; ``midrun``'s loss breaks in training
TASKS = textwrap.dedent(
    """
    import sys, time
    import torch
    from torch.utils.data import DataLoader, TensorDataset
    from lrkit.tasks import TaskParts

    def _parts(model):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(128, 8, generator=g)
        y = (x[:, 0] > 0).long()
        loader = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True, generator=g)
        return TaskParts(model, loader, [(x, y)], torch.nn.functional.cross_entropy, epochs=2,
                         optimizer="sgd")

    class Frozen(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(8, 2)

        def forward(self, x):
            return 0.0 * self.lin(x)  # the loss is log(2) whatever the weights

    def frozen(seed):
        torch.manual_seed(seed)
        return _parts(Frozen())

    def raises(seed):
        raise RuntimeError("boom: my data folder is missing")

    class Picky(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(8, 2)

        def forward(self, x):
            raise ValueError("my forward wants a dict batch")

    def picky():
        return Picky()

    def loader():
        return _parts(Frozen()).train_loader

    calls = [0]

    def loss_breaks_mid_run(out, y):
        calls[0] += 1
        if calls[0] > 150:  # after the check and the search: in the training
            raise ValueError("boom: my loss broke mid-run")
        return torch.nn.functional.cross_entropy(out, y)

    def midrun(seed):
        parts = _parts(torch.nn.Linear(8, 2))
        parts.loss_fn = loss_breaks_mid_run
        parts.epochs = 40
        return parts

    def slow(seed):
        print("building", file=sys.stderr, flush=True)
        for _ in range(1200):  # short sleeps: a SIGINT taken by another thread is seen within 0.1 s
            time.sleep(0.1)
    """
)


@pytest.fixture
def tasks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The module's name (unique: Python caches modules), importable from the current directory."""
    name = f"lrkit_exit_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(TASKS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def documented(epilog: str) -> dict[int, str]:
    """The exit statuses an epilog lists ("  3    no suggestion: ..."), with their first line."""
    section = epilog.split("exit status:\n", 1)[1].split("\n\n", 1)[0]
    return {int(m[1]): m[2] for m in re.finditer(r"^  (\d+) +(.+)$", section, re.M)}


#: what each status means, in words the epilog must use
MEANING = {0: "", 1: "raised", 2: "bad input", 3: "no suggestion", 130: "interrupted"}


@pytest.mark.parametrize(
    ("epilog", "meaning"),
    [(finder_cli.EPILOG, MEANING), (auto_cli.EPILOG, {**MEANING, auto_cli.EXIT_DIVERGED: "diverged"})],
    ids=["find", "auto"],
)
def test_the_help_documents_every_status_the_command_returns(epilog: str, meaning: dict[int, str]) -> None:
    """Each status has its meaning ("no suggestion" is neither 0 nor an error, 1 or 2); the tests below
    run every one of them for ``find``, and 1, 2 and 3 for ``auto`` (whose 0 the auto tests run, and 4
    tests/test_auto_truth_cli.py)."""
    codes = documented(epilog)
    assert set(codes) == set(meaning) and finder_cli.EXIT_NO_SUGGESTION == 3, codes
    for code, words in meaning.items():
        assert words in codes[code], (code, codes[code])


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # a flag argparse refuses (its type= check): the same one line, status 2
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def test_find_suggests_on_a_built_in_task_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(
        ["find", "--task", "digits-mlp-adam", "--num-steps", "30", "--repeats", "2", "--out", "none"], capsys
    )
    assert (code, err) == (0, ""), err
    assert out.startswith("suggested LR") and "trusted" in out
    # the peak comes with a schedule a command-line user can build over the task's planned steps (10
    # epochs of 45 batches), not a Python method
    from lrkit.tasks import get_task

    task = get_task("digits-mlp-adam")
    peak = re.match(r"suggested LR (\S+)", out)[1]  # type: ignore[index]
    total = task.epochs * task.steps_per_epoch
    assert f'lrkit show "warmup(steps=5%) >> cosine(lr={peak})" --total {total}' in out
    assert ".schedule(" not in out
    assert f"a retry could have added {total // 10} (--budget), none was needed" in out


#: what a range test's advice names in Python and must not name on the command line
PYTHON_WORDS = ("batches_per_step", "num_steps", "start_lr", "end_lr", "val_data", "validation set")


def test_find_without_signal_exits_3_and_advises_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A ramp that stops far below any useful LR (1e-7 to 1e-6) on digits: flat, no suggestion. A
    script tells it from an error by the status; the advice names the flags that would help."""
    js = tmp_path / "r.json"
    code, out, err = run_main(
        ["find", "--task", "digits-mlp-sgd", "--start-lr", "1e-7", "--end-lr", "1e-6", "--num-steps", "20",
         "--repeats", "1", "--budget", "2", "--out", "none", "--json", str(js)],
        capsys,
    )  # fmt: skip
    assert code == 3, (out, err)
    assert out.startswith("no suggested LR") and "NOT TRUSTED: flat" in out
    verdict = next(line for line in out.splitlines() if "NOT TRUSTED" in line)
    for flag in ("--batches-per-step N", "--num-steps N", "--start-lr", "--end-lr"):
        assert flag in verdict, (flag, verdict)
    assert not [w for w in PYTHON_WORDS if w in verdict], verdict
    assert err.count("\n") == 1  # the no-result line, on stderr
    last = err.splitlines()[-1]
    assert last.startswith("lrkit find: no learning rate suggested (exit status 3); train a few short runs")
    assert last.endswith("or give the finder a larger budget (--budget)")
    saved = json.loads(js.read_text())  # its reason speaks in flags; its findings keep the placeholders
    assert saved["reason"].startswith("flat: ") and "batches_per_step" not in saved["reason"]
    assert "--batches-per-step" in saved["reason"]  # to read back (FinderResult.from_dict) in any spelling


def test_find_without_signal_exits_3_in_a_shell(tasks: str) -> None:
    """The status a shell script sees, from a separate process: ``lrkit find ... || [ $? = 3 ]``."""
    proc = subprocess.run(
        [sys.executable, "-m", "lrkit", "find", "--task", f"{tasks}:frozen", "--out", "none"],
        capture_output=True, text=True, timeout=300, env=os.environ | {"OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert proc.returncode == 3, (proc.stdout, proc.stderr)
    assert "NOT TRUSTED: flat" in proc.stdout and "check that the model learns" in proc.stdout
    assert proc.stderr.splitlines()[-1].startswith("lrkit find: no learning rate suggested (exit status 3)")


def test_find_exits_1_when_your_task_raises(tasks: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(["find", "--task", f"{tasks}:raises", "--out", "none"], capsys)
    assert code == 1, (out, err)
    assert f"lrkit find: error: --task '{tasks}:raises' raised RuntimeError: boom" in err
    assert "Traceback of your code" in err and "no learning rate suggested" not in out + err


def test_find_exits_1_when_your_model_raises_in_the_test(
    tasks: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A ValueError from your model's forward is your code's error (1, with your traceback), not bad
    input (2, which tells a script its flags are wrong): it was "lrkit find: error: my forward ..."."""
    code, out, err = run_main(
        ["find", "--model", f"{tasks}:picky", "--data", f"{tasks}:loader", "--out", "none"], capsys
    )
    assert code == 1, (out, err)
    assert err.startswith(
        f"lrkit find: error: --model '{tasks}:picky' with --data '{tasks}:loader' raised ValueError: my "
        "forward wants a dict batch"
    ), err
    assert "Traceback of your code" in err and f"{tasks}.py" in err and "torch_driver" not in err


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (
            ["--task", "digits-mlp-sgd", "--repeats", "0"],
            r"--repeats: expected a whole number from 1 to 2\*\*53, got '0'",
        ),
        (["--task", "digits-mlp-sgd", "--out", "lr.find"], r"--out: expected a \.png"),
        (["--task", "no-such-task"], "--task must be a built-in task"),
    ],
)
def test_find_exits_2_on_bad_input(argv: list[str], words: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(["find", *argv], capsys)
    assert (code, out) == (2, "")
    assert re.search("lrkit find: error: " + words, err), err


def test_a_flag_argparse_refuses_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("find", "auto"):
        info = main([command, "--task", "digits-mlp-sgd", "--seed", "one"])
        assert info == 2
        assert "--seed: expected a whole number from 0 to 2**32 - 1, got 'one'" in capsys.readouterr().err


def _as_from_a_shell() -> None:
    """In the child before exec: SIGINT as a terminal's shell leaves it (default action, not blocked).
    A test runner's process may ignore or block it, and a child inherits both."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_exits_130(tasks: str, tmp_path: Path) -> None:
    import time

    err_file = tmp_path / "stderr.txt"  # a file, not a pipe: nothing the child leaves behind can hold it
    here = f"this process: SIGINT handler {signal.getsignal(signal.SIGINT)!r}, "
    here += f"blocked {sorted(signal.pthread_sigmask(signal.SIG_BLOCK, []))!r}"
    with open(err_file, "w") as err_out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lrkit", "find", "--task", f"{tasks}:slow", "--out", "none"],
            stdout=subprocess.DEVNULL, stderr=err_out, text=True, env=os.environ | {"OMP_NUM_THREADS": "1"},
            preexec_fn=_as_from_a_shell,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while "building\n" not in err_file.read_text() and proc.poll() is None:  # in the task's code
                assert time.monotonic() < deadline, (err_file.read_text(), here)
                time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
        finally:
            proc.kill()
    err = err_file.read_text()
    assert proc.returncode == 130, (err, here)
    assert err.strip().endswith("lrkit find: interrupted"), (err, here)


def test_auto_without_signal_exits_3_and_trains_nothing(
    tasks: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``lrkit auto`` gives "no suggestion" the same status as ``lrkit find``; its advice names only
    its own flags (it has no --batches-per-step or --repeats)."""
    js = tmp_path / "auto.json"
    code, out, err = run_main(["auto", "--task", f"{tasks}:frozen", "--json", str(js)], capsys)
    assert code == 3, (out, err)
    assert err.count("\n") == 2  # the no-result lines, on stderr
    why, last = err.splitlines()
    assert why.startswith("lrkit auto: the range test found no usable learning rate: flat: ")
    assert why.endswith("or give the finder a larger budget (--budget)")
    assert "check that the model learns" in why and "--batches-per-step" not in why
    assert not [w for w in PYTHON_WORDS if w in why], why
    assert last == "lrkit auto: nothing trained (exit status 3)"
    assert not js.exists()


def test_auto_exits_1_when_your_task_raises_and_2_on_bad_input(
    tasks: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_main(["auto", "--task", f"{tasks}:raises"], capsys)
    assert code == 1 and "lrkit auto: error: --task" in err and "boom" in err, err
    # raised in the training, after the search: it exited 2 (bad input) without a traceback
    code, _, err = run_main(["auto", "--task", f"{tasks}:midrun"], capsys)
    assert code == 1, err
    assert f"lrkit auto: error: --task '{tasks}:midrun' raised ValueError: boom: my loss broke mid-run" in err
    assert "in loss_breaks_mid_run" in err
    code, out, err = run_main(["auto", "--task", "digits-mlp-sgd", "--budget", "1.5"], capsys)
    assert (code, out) == (2, "") and "lrkit auto: error: --budget: expected a fraction" in err, err


def test_lrkit_demo_without_a_suggestion_exits_3_not_as_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``lrkit demo``'s range test raising NoSuggestionError (a ValueError) was reported as bad input
    (status 2). Here the test's range is cut to [1e-7, 1e-6], where digits-mlp-sgd's loss is flat."""
    from lrkit.tasks.base import Task

    real = Task.find_lr
    monkeypatch.setattr(
        Task, "find_lr", lambda self, **kw: real(self, **kw, start_lr=1e-7, end_lr=1e-6, num_steps=30)
    )
    code = main(["demo", "--quick", "--out", str(tmp_path / "demo")])
    err = capsys.readouterr().err
    assert code == finder_cli.EXIT_NO_SUGGESTION == 3, err
    assert err.startswith("lrkit demo: error: ") and "flat" in err, err


def test_lrkits_warnings_read_as_one_line_of_the_command(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``lrkit auto`` on a 45-step run warns that the search costs more than the run: Python printed it as
    ``/path/auto_cli.py:174: UserWarning: lrkit.auto: ...`` and the source line ``out = train_task(``.
    Another library's warning keeps Python's form (it is not lrkit's to word)."""
    import warnings

    import torch

    monkeypatch.setattr(warnings, "filters", [])  # shown each time, whatever ran before
    before = warnings.showwarning
    assert main(["auto", "--task", "digits-mlp-sgd", "--epochs", "1"]) == 0
    err = capsys.readouterr().err
    assert warnings.showwarning is before
    (line,) = [t for t in err.splitlines() if "search took" in t]
    assert line.startswith("lrkit auto: warning: the LR search took "), err
    assert "UserWarning" not in err and "auto_cli.py" not in err and "train_task(" not in err, err
    passed: list[tuple[Any, ...]] = []
    show = cli._lrkit_warning("lrkit auto: warning:", lambda *a: passed.append(a))
    show(UserWarning("not ours"), UserWarning, torch.__file__, 1)
    show(UserWarning("lrkit.auto: ours"), UserWarning, auto_cli.__file__, 2)
    assert len(passed) == 1 and str(passed[0][0]) == "not ours" and passed[0][2:4] == (torch.__file__, 1)
    assert capsys.readouterr().err == "lrkit auto: warning: ours\n"


@pytest.mark.parametrize(
    ("argv", "error", "status"),
    [
        (["show", "cosine(lr=-1, steps=10)"], "SpecError", 2),  # bad input (a ValueError)
        (["show", "/no/such/dir/spec.yaml"], "SpecError", 2),
        (
            ["plot", "cosine(lr=1, steps=10)", "--total", "10", "--out", "/proc/no-such.png"],
            "FileNotFoundError",
            2,
        ),
        (["find", "--task", "boom_task:boom"], "UserCodeError", 1),  # your code raised
        (["lab", "--task", "nosuch", "--strategy", "cosine(lr=0.1)"], "ValueError", 2),
    ],
)
def test_traceback_shows_the_whole_error_with_the_same_status(
    argv: list[str],
    error: str,
    status: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """Without ``--traceback``: one line; with it (before or after the command), or ``LRKIT_TRACEBACK=1``,
    Python's whole traceback (for a bug report), lrkit's frames included. The status is the same: a
    script that turns tracebacks on still tells bad input (2) from a refusal (1); it was 1 for both.
    ``LRKIT_TRACEBACK=0`` is off."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "boom_task.py").write_text("def boom(seed):\n    raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("LRKIT_TRACEBACK", raising=False)
    assert main(argv) == status
    assert capsys.readouterr().err.count("\n") == 1 or status == 1  # 1: your code's traceback follows
    for whole in (["--traceback", *argv], [*argv, "--traceback"]):
        assert main(whole) == status
        err = capsys.readouterr().err
        assert err.startswith("Traceback (most recent call last):\n"), err
        assert "/lrkit/" in err and re.search(rf"\n(\w+\.)*{error}: ", err), err
    monkeypatch.setenv("LRKIT_TRACEBACK", "1")
    assert main(argv) == status
    assert capsys.readouterr().err.startswith("Traceback (most recent call last):\n")
    monkeypatch.setenv("LRKIT_TRACEBACK", "0")
    assert main(argv) == status
    assert not capsys.readouterr().err.startswith("Traceback")
