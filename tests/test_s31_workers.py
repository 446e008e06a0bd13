"""Workers of a lab and of tune when the task is defined in ``__main__`` of a script with no file
(``python -c``, stdin, a notebook): one process with a warning, not a worker that cannot rebuild the task;
and a worker process that dies says how it died."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import sys, threading, time
    import torch
    from torch.utils.data import DataLoader, TensorDataset
    from lrkit.tasks import TaskParts

    def make(seed):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(256, 4, generator=g)
        y = (x.sum(1) > 0).long()
        dl = lambda: DataLoader(TensorDataset(x, y), batch_size=32)
        return TaskParts(torch.nn.Linear(4, 2), train_loader=dl(), val_loader=dl(),
                         loss_fn=torch.nn.functional.cross_entropy, metric="accuracy", epochs=1,
                         optimizer="sgd")

    if __name__ == "__main__":
        # a running thread makes the lab start its workers from a forkserver, which imports __main__
        threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
        if sys.argv[1] == "lab":
            from lrkit.lab.runner import Strategy, run_lab
            r = run_lab("__main__:make", [Strategy("a", "constant(0.1)"), Strategy("b", "cosine(lr=0.1)")],
                        seeds=[0, 1, 2], workers=2, store=sys.argv[2])
            print("RUNS", sorted((x.label, x.seed, x.status) for x in r.runs))
        else:
            from lrkit.tune import tune
            r = tune("__main__:make", trials=4, workers=2, storage=sys.argv[2], finder=False,
                     lr_range=(1e-3, 1.0), epochs=1)
            print("TRIALS", r.finished)
    """
)


def _run(how: str, what: str, db: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "default"}
    if how == "-c":
        cmd, stdin = [sys.executable, "-c", SCRIPT, what, str(db)], None
    else:
        cmd, stdin = [sys.executable, "-", what, str(db)], SCRIPT
    return subprocess.run(
        cmd, input=stdin, capture_output=True, text=True, env=env, cwd=db.parent, timeout=300
    )


@pytest.mark.parametrize("how", ["-c", "stdin"])
def test_lab_of_a_main_task_without_a_file_runs_in_one_process_with_a_warning(
    tmp_path: Path, how: str
) -> None:
    out = _run(how, "lab", tmp_path / "lab.db")
    assert out.returncode == 0, out.stderr[-3000:]
    runs = sorted((label, seed, "ok") for label in "ab" for seed in range(3))
    assert f"RUNS {runs}" in out.stdout
    assert "workers=2: runs one at a time in this process" in out.stderr
    assert "is defined in __main__" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("how", ["-c", "stdin"])
def test_tune_of_a_main_task_without_a_file_runs_in_one_process_with_a_warning(
    tmp_path: Path, how: str
) -> None:
    out = _run(how, "tune", tmp_path / "tune.db")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "TRIALS 4" in out.stdout
    assert "workers=2: tunes in this process alone" in out.stderr
    assert "Traceback" not in out.stderr  # no worker died on the way


def test_main_unimportable_names_only_a_main_task_without_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    from lrkit.lab.runner import main_unimportable

    main = sys.modules["__main__"]
    assert main_unimportable("digits-mlp-sgd") is None
    assert main_unimportable("mypkg.tasks:make") is None
    monkeypatch.setattr(main, "__spec__", None, raising=False)
    monkeypatch.setattr(main, "__file__", "<stdin>", raising=False)
    why = main_unimportable("__main__:make")
    assert why is not None and "'__main__:make'" in why and "'<stdin>'" in why
    monkeypatch.delattr(main, "__file__")
    assert main_unimportable("__main__:make") is not None
    monkeypatch.setattr(main, "__file__", __file__, raising=False)  # a script file: importable
    assert main_unimportable("__main__:make") is None


def _exit_3() -> None:
    os._exit(3)


def _sleep() -> None:
    import time

    time.sleep(30)


def _one() -> int:
    return 1


def test_a_worker_that_exits_with_an_error_is_not_called_killed_or_out_of_memory() -> None:
    from lrkit.lab.runner import _worker_died

    pool = ProcessPoolExecutor(1, initializer=_exit_3)
    with pytest.raises(BrokenProcessPool):
        pool.submit(_one).result(timeout=60)
    exc = _worker_died("lab.db", pool)
    pool.shutdown(wait=True)
    assert "exited with code 3" in str(exc) and "printed above" in str(exc)
    assert "out of memory: try" not in str(exc) and "lab.db" in str(exc)


def test_a_killed_worker_names_the_signal() -> None:
    from lrkit.lab.runner import _worker_died

    pool = ProcessPoolExecutor(1)
    fut = pool.submit(_sleep)
    pid = next(iter(pool._processes))  # type: ignore[attr-defined]
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(BrokenProcessPool):
        fut.result(timeout=60)
    exc = _worker_died("lab.db", pool)
    pool.shutdown(wait=True)
    assert "died (killed by SIGKILL: from outside, or out of memory" in str(exc)


DYING = textwrap.dedent(
    """
    import multiprocessing, os
    import torch
    from torch.utils.data import DataLoader, TensorDataset
    from lrkit.tasks import TaskParts

    def make(seed):
        if multiprocessing.parent_process() is not None:  # a worker process of tune: it dies
            os._exit(3)
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(128, 4, generator=g)
        y = (x.sum(1) > 0).long()
        dl = DataLoader(TensorDataset(x, y), batch_size=32)
        return TaskParts(torch.nn.Linear(4, 2), dl, dl, torch.nn.functional.cross_entropy,
                         metric="accuracy", epochs=1, optimizer="sgd")
    """
)


def test_tune_without_progress_warns_of_a_worker_that_ended_early(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lrkit.tune import tune

    (tmp_path / "s31_dying_task.py").write_text(DYING)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with pytest.warns(UserWarning, match=r"tune: worker 1 ended early \(exit code 3\); the others finished"):
        r = tune(
            "s31_dying_task:make",
            trials=3,
            workers=2,
            storage=str(tmp_path / "t.db"),
            finder=False,
            lr_range=(1e-3, 1.0),
        )
    assert r.finished == 3
    sys.modules.pop("s31_dying_task", None)
