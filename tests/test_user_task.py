"""Your own task (``--task module:function``) broken in each way a user breaks one, through ``lrkit lab``,
``lrkit tune``, ``lrkit find`` and ``lrkit auto``: one ``lrkit CMD: error:`` line that names the task and
what is wrong, your code's traceback only when your code raised (without lrkit's frames), and no file
written. Then an error in the middle of a run (in a worker process, too) naming the run, and a killed
``lrkit tune --workers 2`` leaving no orphan worker behind."""

from __future__ import annotations

import os
import pickle
import re
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lrkit._usercode import UserCodeError, user_code
from lrkit.cli import main

torch = pytest.importorskip("torch")

LRKIT_SRC = str(Path(__file__).resolve().parent.parent / "src" / "lrkit")
ERROR_LINE = re.compile(r"^lrkit (lab|tune|find|auto): error: ")

TASKS = """
import math
import torch
from torch.utils.data import DataLoader, TensorDataset
from lrkit.tasks import TaskParts

def _xy():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    return x, (x[:, 0] > 0).long()

def parts(model=None, train=None, val=None, loss=torch.nn.functional.cross_entropy, **kw):
    x, y = _xy()
    dl = DataLoader(TensorDataset(x, y), batch_size=16)
    return TaskParts(model or torch.nn.Linear(4, 2), dl if train is None else train,
                     dl if val is None else val, loss, **{"epochs": 1, **kw})

def good(seed):
    return parts()

def raises(seed):
    raise RuntimeError("boom: my data folder is missing")

def wrong_type(seed):
    return {"model": None}

def none_loader(seed):
    return TaskParts(torch.nn.Linear(4, 2), None, [], torch.nn.functional.cross_entropy)

def empty_train(seed):
    return parts(train=[])

def empty_val(seed):
    return parts(val=[])

def nan_loss(seed):
    return parts(loss=lambda out, y: torch.nn.functional.cross_entropy(out, y) * math.nan)

def unreduced_loss(seed):
    return parts(loss=torch.nn.CrossEntropyLoss(reduction="none"))

def detached_loss(seed):
    return parts(loss=lambda out, y: torch.nn.functional.cross_entropy(out.detach(), y))

def str_metric(seed):
    return parts(metric=lambda model: "0.9", higher_is_better=True)

def none_metric(seed):
    return parts(metric=lambda model: None, higher_is_better=True)

def raising_metric(seed):
    def my_metric(model):
        raise KeyError("boom: no such split")
    return parts(metric=my_metric, higher_is_better=True)

def no_parameters(seed):
    return parts(model=torch.nn.Identity())

def triples(seed):
    x, y = _xy()
    return parts(train=DataLoader(TensorDataset(x, y, y), batch_size=16))

def shape_mismatch(seed):
    return parts(model=torch.nn.Linear(3, 2))

class Broken(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 2)

    def forward(self, x):
        raise RuntimeError("boom: my forward")

def bad_forward(seed):
    return parts(model=Broken())

NOT_CALLABLE = 3
"""

LATE = """
import torch
from torch.utils.data import DataLoader, TensorDataset
from lrkit.tasks import TaskParts

def task(seed):
    x = torch.randn(64, 4)
    y = (x[:, 0] > 0).long()
    dl = DataLoader(TensorDataset(x, y), batch_size=16)
    calls = []

    def late_metric(model):  # fine for the check and the first epoch, broken at the second
        calls.append(1)
        if len(calls) == 2:
            raise FloatingPointError("boom: metric broke at epoch 2")
        return 0.5

    return TaskParts(torch.nn.Linear(4, 2), dl, dl, torch.nn.functional.cross_entropy,
                     metric=late_metric, higher_is_better=True, epochs=2, optimizer="sgd")
"""


@pytest.fixture
def mods(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Modules with unique names (Python caches a module that imported, never one that failed)."""
    texts = {
        "tasks": TASKS,
        "late": LATE,
        "syntax": "def task(seed)\n    return 1\n",
        "dep": "import no_such_package_for_lrkit_tests\ndef task(seed):\n    return None\n",
    }
    names = {key: f"lrkit_ut_{key}_{uuid.uuid4().hex[:8]}" for key in texts}
    src = tmp_path / "src"
    src.mkdir()
    for key, text in texts.items():
        (src / f"{names[key]}.py").write_text(textwrap.dedent(text))
    names["absent"] = f"lrkit_ut_absent_{uuid.uuid4().hex[:8]}"
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.syspath_prepend(str(src))
    yield names
    for name in names.values():
        sys.modules.pop(name, None)


# (task template, words the error line must hold, the user's traceback shown)
BROKEN = [
    ("{absent}:task", ["no module named '{absent}'"], False),
    ("{syntax}:task", ["raised SyntaxError"], True),
    ("{dep}:task", ["raised ModuleNotFoundError", "no_such_package_for_lrkit_tests"], True),
    ("{tasks}:missing", ["has no attribute 'missing'"], False),
    ("{tasks}:NOT_CALLABLE", ["is not callable"], False),
    ("{tasks}:raises", ["raised RuntimeError: boom"], True),
    ("{tasks}:wrong_type", ["must return lrkit.tasks.TaskParts, got dict"], False),
    ("{tasks}:none_loader", ["train_loader must be an iterable", "NoneType"], False),
    ("{tasks}:empty_train", ["train_loader is empty"], False),
    ("{tasks}:empty_val", ["val_loader is empty"], False),
    ("{tasks}:nan_loss", ["loss_fn gave nan", "first training batch"], False),
    ("{tasks}:unreduced_loss", ["loss_fn must return a one-element tensor", "(16,)"], False),
    ("{tasks}:detached_loss", ["does not depend on the model's parameters"], False),
    ("{tasks}:str_metric", ["must return a number, got '0.9' (str)"], False),
    ("{tasks}:none_metric", ["must return a number, got None"], False),
    ("{tasks}:raising_metric", ["raised KeyError", "boom"], True),
    ("{tasks}:no_parameters", ["model (Identity) has no parameters"], False),
    ("{tasks}:triples", ["a list of 3; a task takes (input, target) pairs"], False),
    ("{tasks}:shape_mismatch", ["raised RuntimeError"], True),
    ("{tasks}.py:good", ["is a file path", "'{tasks}:good'"], False),
    ("src/{tasks}.py:good", ["is a file path", "'{tasks}:good'"], False),
    (".{tasks}:good", ["is a relative module name", "'{tasks}:good'"], False),
]


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _one_error(code: int, err: str, words: list[str], user_tb: bool) -> str:
    assert code != 0, err
    lines = [line for line in err.splitlines() if ERROR_LINE.match(line)]
    assert len(lines) == 1, err
    for word in words:
        assert word in lines[0], (word, lines[0])
    before, _, after = err.partition(lines[0])
    assert "Traceback" not in before and LRKIT_SRC not in err, err
    assert "importlib" not in after, err  # neither lrkit's frames nor the import machinery's
    if user_tb:
        assert after.strip(), err  # the user's error (a SyntaxError: its file and line) follows
    else:
        assert "Traceback" not in after, err
    return lines[0]


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize(("template", "words", "user_tb"), BROKEN, ids=[b[0] for b in BROKEN])
def test_a_broken_task_is_one_error_naming_it_before_any_file_is_written(
    mods: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    template: str,
    words: list[str],
    user_tb: bool,
) -> None:
    task = template.format(**mods)
    words = [w.format(**mods) for w in words]
    work = Path.cwd()
    lab = ["lab", "--task", task, "--strategy", "cosine(lr=0.1)", "--workers", "1", "--out", "lab-out"]
    tune = ["tune", "--task", task, "--trials", "1", "--no-finder", "--storage", "t.db", "--out", "t-out"]
    find = ["find", "--task", task, "--out", "f.png", "--json", "f.json"]
    auto = ["auto", "--task", task, "--plot", "a.png", "--json", "a.json"]
    for argv in (lab, tune, find, auto):
        code = main(argv)
        out, err = capsys.readouterr()
        line = _one_error(code, err, words, user_tb)
        assert repr(task) in line, line  # which task
        assert out == "", out
        assert _files(work) == [], argv  # no output folder, database or study was made


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("workers", [1, 2])
def test_your_code_failing_mid_run_names_the_run_and_shows_your_frame(
    mods: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """With 2 workers (a thread here and a process) the error names the run, whichever worker raised it."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([*sys.path]))
    task = f"{mods['late']}:task"
    argv = ["lab", "--task", task, "--strategy", "a=constant(0.1)", "--strategy", "b=constant(0.01)"]
    code = main([*argv, "--workers", str(workers), "--out", "out"])
    _, err = capsys.readouterr()
    line = _one_error(code, err, ["raised FloatingPointError: boom: metric broke at epoch 2"], True)
    assert re.search(rf"task '{task}' \(strategy '[ab]', seed 0\)", line), line
    tb = err.partition(line)[2]
    assert f"{mods['late']}.py" in tb and "in late_metric" in tb, tb


def test_user_code_error_survives_pickling_with_its_traceback() -> None:
    def users_function() -> None:
        raise ZeroDivisionError("boom")

    with pytest.raises(UserCodeError) as info, user_code("--task 'm:f'"):
        users_function()
    tb = info.value.user_traceback()
    assert "in users_function" in tb and "ZeroDivisionError: boom" in tb
    back = pickle.loads(pickle.dumps(info.value))  # as from a worker process: the cause stays behind
    assert type(back) is UserCodeError and back.__cause__ is None
    assert (
        str(back)
        == str(info.value)
        == "--task 'm:f' raised ZeroDivisionError: boom (traceback of your code below)"
    )
    assert back.user_traceback() == tb


SLOW = """
import time
import torch
from torch.utils.data import DataLoader, TensorDataset
from lrkit.tasks import TaskParts

class Slow(list):
    def __iter__(self):
        for batch in super().__iter__():
            time.sleep(0.2)
            yield batch

def task(seed):
    x = torch.randn(64, 4)
    y = (x[:, 0] > 0).long()
    return TaskParts(torch.nn.Linear(4, 2), Slow(DataLoader(TensorDataset(x, y), batch_size=16)),
                     [(x, y)], torch.nn.functional.cross_entropy, epochs=50, optimizer="sgd")
"""


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists and has not exited (a zombie waiting to be reaped has)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        kids += [int(k) for k in (task / "children").read_text().split()]
    return kids


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads child processes from /proc")
def test_a_sigkilled_tune_leaves_no_worker_process_training_on(tmp_path: Path) -> None:
    """A worker process of ``lrkit tune --workers 2`` exits with its tune, as the lab's workers do: killed
    mid-trial, its trial goes silent and is retried by the next run, instead of training on unseen."""
    name = f"lrkit_ut_slow_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(SLOW)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path]), "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "lrkit.cli", "tune", "--task", f"{name}:task", "--trials", "50"]
    argv += ["--workers", "2", "--no-finder", "--no-report", "--storage", str(tmp_path / "t.db")]
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        children: list[int] = []
        while time.monotonic() < deadline and proc.poll() is None:
            # the worker process (spawned: its command line is multiprocessing's), once it is tuning
            children = [
                c
                for c in _children(proc.pid)
                if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()
                and len(list(Path(f"/proc/{c}/task").glob("*"))) > 1  # its watcher thread is started
            ]
            if children:
                break
            time.sleep(0.1)
        assert children, proc.stdout.read().decode() if proc.poll() is not None else "no worker started"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        gone = time.monotonic() + 10
        while time.monotonic() < gone and any(_running(c) for c in children):
            time.sleep(0.1)
        alive = [c for c in children if _running(c)]
        for c in alive:
            os.kill(c, signal.SIGKILL)
        assert not alive, "the tune's worker process trained on after the tune was killed"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _users_function() -> None:
    raise ZeroDivisionError("boom")


def _fails_in_a_worker() -> None:
    with user_code("task 'm:f' (strategy 'a', seed 0)"):
        _users_function()


def test_a_user_code_error_from_a_worker_process_shows_the_users_frames_only() -> None:
    """``concurrent.futures`` hands the error back with its own ``__cause__``: the worker's whole
    traceback through lrkit and the pool, which ``lrkit lab --workers 2`` printed as "your code"."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=spawn) as pool, pytest.raises(UserCodeError) as info:
        pool.submit(_fails_in_a_worker).result()
    tb = info.value.user_traceback()
    assert tb.startswith("Traceback of your code (most recent call last):\n") and "in _users_function" in tb
    assert tb.endswith("ZeroDivisionError: boom\n") and tb.count('  File "') == 2, tb  # the with, the raise
    files = [line for line in tb.splitlines() if line.startswith('  File "')]
    assert all(line.startswith(f'  File "{__file__}"') for line in files) and "RemoteTraceback" not in tb, tb


def test_torchs_call_machinery_before_the_users_forward_is_left_out(
    mods: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A model's ``forward`` is reached through ``torch.nn.Module.__call__`` (two frames in torch): the
    traceback of the user's code starts at the user's ``forward``. Code with no frame of the user's own
    (torch's loss given as the loss) keeps torch's frames: something must show where it failed."""
    code = main(["lab", "--task", f"{mods['tasks']}:bad_forward", "--strategy", "constant(0.1)"])
    _, err = capsys.readouterr()
    line = _one_error(code, err, ["raised RuntimeError: boom: my forward"], True)
    frames = [t for t in err.partition(line)[2].splitlines() if t.startswith('  File "')]
    assert (
        frames and frames[0].startswith(f'  File "{Path.cwd().parent}') and frames[0].endswith("in forward")
    )
    assert "torch/nn/modules" not in "".join(frames), err
    with pytest.raises(UserCodeError) as info, user_code("task 'm:f'"):
        torch.nn.functional.cross_entropy(torch.zeros(2, 3), torch.tensor([0, 5]))
    tb = info.value.user_traceback()
    assert "functional.py" in tb and "out of bounds" in tb, tb


def test_a_loaded_factory_still_imports_its_siblings_after_a_chdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The directory ``load_factory`` puts on the path is the absolute one ``python -m`` puts there, not
    ``""``: a factory that imports a sibling module when called (the lab calls it later, in its thread
    and its forked workers) still finds it after the working directory changed."""
    from lrkit.tasks.base import load_factory

    tag = uuid.uuid4().hex[:8]
    home = tmp_path / "home"
    home.mkdir()
    (home / f"lrkit_ut_sib_{tag}.py").write_text("VALUE = 42\n")
    (home / f"lrkit_ut_fac_{tag}.py").write_text(
        f"def task(seed):\n    import lrkit_ut_sib_{tag}\n    return lrkit_ut_sib_{tag}.VALUE + seed\n"
    )
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(home))])
    monkeypatch.chdir(home)
    factory = load_factory(f"lrkit_ut_fac_{tag}:task")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    try:
        assert factory(1) == 43
    finally:
        for name in (f"lrkit_ut_fac_{tag}", f"lrkit_ut_sib_{tag}"):
            sys.modules.pop(name, None)
