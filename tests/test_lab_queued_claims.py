"""A lab that stops (Ctrl-C, a worker's error, a killed worker process) while a claimed run waits in a
worker's queue, not yet started, releases that run's claim: else a rerun, even in the same process,
waited STALE_SECONDS (a minute) for the claim to go stale before running it. CI hit this: a rerun after
a killed worker took 61 s."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")

from lrkit.lab import runner
from lrkit.lab.runner import Strategy, run_lab
from lrkit.tasks import TASKS, Task


class _NeverStarts(Executor):
    """A worker pool whose workers have not taken any run yet when the lab stops: every run handed to it
    waits in its queue, and ``shutdown(cancel_futures=True)`` cancels it, as a real pool does."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.queued: list[Future[Any]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        f: Future[Any] = Future()
        self.queued.append(f)
        return f

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        for f in self.queued:
            if cancel_futures:
                f.cancel()


def _running(db: Path) -> int:
    con = sqlite3.connect(db)
    try:
        return int(con.execute("SELECT count(*) FROM runs WHERE status = 'running'").fetchone()[0])
    finally:
        con.close()


# a task object, not a name: the lab runs it in threads of this process (the pool replaced below)
MINE = Task("mine", TASKS["digits-mlp-sgd"].factory, "digits, by object")


@pytest.mark.parametrize("stop", [KeyboardInterrupt, RuntimeError])  # Ctrl-C, a worker's error
def test_runs_queued_but_not_started_are_released_when_the_lab_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stop: type[BaseException]
) -> None:
    monkeypatch.setattr(runner, "ThreadPoolExecutor", _NeverStarts)
    db = tmp_path / "lab.db"
    strategies = [Strategy("a", "constant(0.05)"), Strategy("b", "cosine(lr=0.05)")]
    claimed: list[int] = []

    def progress(event: str, info: dict[str, Any]) -> None:
        if event == "tick":  # the runs are claimed and queued: now the lab is stopped
            claimed.append(_running(db))
            raise stop("stopped while runs were queued")

    with pytest.raises(stop):
        run_lab(MINE, strategies, seeds=[0, 1], epochs=1, store=str(db), progress=progress)
    assert claimed == [1]  # the lab's own worker thread: one run claimed, not started
    assert _running(db) == 0  # the claim released: a rerun runs it at once

    monkeypatch.undo()  # the real thread pool: the rerun runs all four, none waits on a claim
    res = run_lab(MINE, strategies, seeds=[0, 1], epochs=1, store=str(db))
    assert len(res.runs) == 4 and _running(db) == 0


def test_workers_on_a_task_object_run_one_at_a_time_and_say_why(tmp_path: Path) -> None:
    """A task given as an object cannot be rebuilt in a worker process, and runs in threads would share
    torch's one random state (not reproducible): the lab runs them one at a time and says so, where it
    used to say nothing; the results are those of ``workers=1``."""
    strategies = [Strategy("a", "constant(0.05)")]
    with pytest.warns(
        UserWarning, match=r"workers=2: runs one at a time in this process, as task 'mine' was"
    ):
        two = run_lab(MINE, strategies, seeds=[0, 1], epochs=1, store=str(tmp_path / "two.db"), workers=2)
    with pytest.warns(UserWarning, match=r"workers=2: .* the results go to ':memory:'"):
        run_lab("digits-mlp-sgd", strategies, seeds=[0, 1], epochs=1, workers=2)
    one = run_lab(MINE, strategies, seeds=[0, 1], epochs=1, store=str(tmp_path / "one.db"))
    assert [(r.seed, r.final_metric, r.losses) for r in two.runs] == [
        (r.seed, r.final_metric, r.losses) for r in one.runs
    ]
