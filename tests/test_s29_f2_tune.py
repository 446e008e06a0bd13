"""``lrkit tune``: the median pruner judges an epoch only against completed trials that reported it (a trial
that diverged before its first epoch counted among the start-up trials, so trials were pruned against a
single curve); ``TuneResult.total_steps`` rebuilds ``best_spec`` from ``best_params``; of workers that
start a fresh study together exactly one runs the LR finder (each ran it), the others wait for its search
space while its worker lives, and a time budget bounds that wait (a worker that hangs in its finder keeps
its claim renewed)."""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

optuna = pytest.importorskip("optuna")
torch = pytest.importorskip("torch")

from .test_tune import _postgres_url, _reader  # noqa: E402


# --- 1. the median pruner ---------------------------------------------------------------------------
def test_the_median_pruner_does_not_judge_an_epoch_against_one_curve() -> None:
    """One completed trial diverged before its first epoch (no value reported), one reported 0.9: the
    median of a single curve pruned a trial at 0.5 after epoch 1."""
    from optuna.trial import TrialState, create_trial

    from lrkit.tune.core import _pruner

    study = optuna.create_study(direction="maximize", pruner=_pruner("median", 3, 8))
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=-math.inf, intermediate_values={}))
    study.add_trial(
        create_trial(state=TrialState.COMPLETE, value=0.95, intermediate_values={1: 0.9, 2: 0.95})
    )
    trial = study.ask()
    trial.report(0.5, 1)
    assert not trial.should_prune()
    study.add_trial(
        create_trial(state=TrialState.COMPLETE, value=0.93, intermediate_values={1: 0.85, 2: 0.93})
    )
    assert trial.should_prune()  # two curves at epoch 1: judged, and far below both


def test_no_trial_of_a_tune_is_pruned_against_fewer_curves_than_its_start_up_count(
    tmp_path: Path, one_torch_thread: None
) -> None:
    """Replayed: in a search where half the trials diverge in their first epoch (seed 1), four trials
    were pruned against the curve of the one trial that had trained."""
    from lrkit.tune import tune

    res = tune(
        "digits-mlp-sgd", trials=10, epochs=3, storage=tmp_path / "p.db", finder=False, pruner="median",
        lr_range=(0.01, 300.0), seed=1,
    )  # fmt: skip
    trials = res.study.trials
    assert any(t.user_attrs.get("status") == "diverged" and not t.intermediate_values for t in trials)
    pruned = [t for t in trials if t.state.name == "PRUNED"]
    for t in pruned:
        curves = [
            u
            for u in trials
            if u.state.name == "COMPLETE"
            and u.datetime_complete < t.datetime_complete
            and t.last_step in u.intermediate_values
        ]
        assert len(curves) >= 2, (t.number, [(u.number, u.user_attrs.get("status")) for u in trials])


# --- 2. best_params and total_steps -----------------------------------------------------------------
def test_best_params_with_total_steps_rebuild_best_spec(tmp_path: Path, one_torch_thread: None) -> None:
    from lrkit.tasks import get_task
    from lrkit.tune import build_spec, tune

    res = tune("digits-mlp-sgd", trials=4, epochs=2, storage=tmp_path / "b.db", finder=False, seed=3)
    assert res.total_steps == 2 * get_task("digits-mlp-sgd").build(0).epoch_steps
    assert res.best_spec == build_spec(**res.best_params, total_steps=res.total_steps)
    for t in res.study.trials:
        assert t.user_attrs["spec"] == build_spec(**t.params, total_steps=res.total_steps)
    # what total_steps changes: a warmup under one step of the run is left out
    short = {**res.best_params, "kind": "cosine", "warmup": 0.5 / res.total_steps}
    assert build_spec(**short) != build_spec(**short, total_steps=res.total_steps)
    assert "warmup" not in build_spec(**short, total_steps=res.total_steps)


# --- 3. one finder among workers started together, and the bound on waiting for it ---------------------
DRIVER = """
import os, sys, time
from pathlib import Path

from lrkit.tune import core, tune

if os.environ.get("HANG_FINDER"):  # a worker that hangs in its finder: alive, its claim renewed
    core.CLAIM_RENEW = 0.2

    def hang(*args, **kwargs):
        print("finder hangs", flush=True)
        while True:
            time.sleep(1)

    core._finder_space = hang

go = Path(sys.argv[1])
while not go.exists():
    time.sleep(0.002)
timeout = float(os.environ["TIMEOUT"]) if os.environ.get("TIMEOUT") else None
res = tune(
    "tiny_tune_task:tiny", trials=3, epochs=1, storage=sys.argv[2], study_name=sys.argv[3],
    timeout=timeout, finder_repeats=2, progress=lambda line: print(line, flush=True),
)
print("RESULT", res.finished, res.timed_out, res.best_spec, flush=True)
"""


def _start(tmp_path: Path, tiny_task: Path, url: str, study: str, name: str, **env: str) -> Any:
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    full = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "TUNE_TEST_DELAY": "0.004",  # the finder takes about a second: both workers are in it at once
        "PYTHONPATH": os.pathsep.join([str(tiny_task), os.environ.get("PYTHONPATH", "")]),
        **env,
    }
    log = open(tmp_path / f"{name}.txt", "w")  # noqa: SIM115 (closed by the caller, with the process)
    proc = subprocess.Popen(
        [sys.executable, str(driver), str(tmp_path / "go"), url, study], env=full, stdout=log, stderr=log
    )
    proc.log = log  # type: ignore[attr-defined]
    return proc


def _finish(procs: list[Any], timeout: float = 240) -> None:
    try:
        for p in procs:
            p.wait(timeout=timeout)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.log.close()


def _said(tmp_path: Path, name: str) -> str:
    return (tmp_path / f"{name}.txt").read_text()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_workers_started_together_on_a_fresh_study_run_one_finder(
    tmp_path: Path, tiny_task: Path, backend: str
) -> None:
    url = f"sqlite:///{tmp_path / 'tune.db'}" if backend == "sqlite" else _postgres_url()
    study = f"test-{uuid.uuid4().hex[:12]}"
    procs = [_start(tmp_path, tiny_task, url, study, f"w{i}") for i in range(2)]
    time.sleep(8)  # both have imported torch, Optuna and lrkit, and wait for the signal
    (tmp_path / "go").touch()
    _finish(procs)
    texts = [_said(tmp_path, f"w{i}") for i in range(2)]
    try:
        assert [p.returncode for p in procs] == [0, 0], texts
        finders = [text.count("LR range test on") for text in texts]
        assert sorted(finders) == [0, 1], texts  # each ran it
        waiter = texts[finders.index(0)]
        assert "which computes the study's search space (LR finder)" in waiter, waiter
        results = [next(x for x in text.splitlines() if x.startswith("RESULT")) for text in texts]
        # the same best for both; a trial each started at the same instant may overshoot the 3 by one
        assert results[0] == results[1] and re.match(r"RESULT [34] False \S", results[0]), results
        stored = optuna.load_study(study_name=study, storage=_reader(url)).user_attrs
        assert str(procs[finders.index(1)].pid) == stored["lrkit-finder"].split(":")[1]
    finally:
        if backend == "postgresql":
            optuna.delete_study(study_name=study, storage=_reader(url))


def test_a_hung_finder_is_waited_for_within_the_time_budget_and_taken_over_once_its_worker_dies(
    tmp_path: Path, tiny_task: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'tune.db'}"
    hung = _start(tmp_path, tiny_task, url, "s", "hung", HANG_FINDER="1")
    (tmp_path / "go").touch()
    deadline = time.monotonic() + 120
    while "finder hangs" not in _said(tmp_path, "hung"):
        assert hung.poll() is None and time.monotonic() < deadline, _said(tmp_path, "hung")
        time.sleep(0.1)
    bounded = _start(tmp_path, tiny_task, url, "s", "bounded", TIMEOUT="6")
    waiter = _start(tmp_path, tiny_task, url, "s", "waiter")
    try:
        _finish([bounded])
        text = _said(tmp_path, "bounded")
        assert bounded.returncode == 0, text
        assert "time budget of 6 s reached while waiting for worker" in text, text
        assert "RESULT 0 True None" in text and "LR range test on" not in text, text
        assert "which computes the study's search space" in _said(tmp_path, "waiter")
        assert waiter.poll() is None  # no budget: it waits on while the hung worker lives
        os.kill(hung.pid, signal.SIGKILL)
        hung.wait(timeout=30)  # reaped, as its shell would: a zombie's pid still answers
        _finish([waiter])
    finally:
        _finish([hung, bounded, waiter], timeout=5)
    text = _said(tmp_path, "waiter")
    assert waiter.returncode == 0, text
    assert text.count("LR range test on") == 1 and "RESULT 3 False" in text, text  # took over


OPENER = """
import sys, time
from pathlib import Path

from lrkit.tune import open_storage

Path(sys.argv[1] + ".ready." + sys.argv[3]).touch()
while not Path(sys.argv[1]).exists():
    time.sleep(0.001)
open_storage(sys.argv[2])
"""


def test_workers_that_open_a_new_sqlite_file_at_the_same_moment_all_open_it(tmp_path: Path) -> None:
    """Each created Optuna's tables: the losers failed with 'storage: cannot open ...: UNIQUE constraint
    failed: alembic_version.version_num' or 'table studies already exists' (19 of 32 opens, 4 at once)."""
    opener = tmp_path / "opener.py"
    opener.write_text(OPENER)
    for round_ in range(2):
        go, db = tmp_path / f"go{round_}", tmp_path / f"t{round_}.db"
        procs = [
            subprocess.Popen(
                [sys.executable, str(opener), str(go), str(db), str(i)],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for i in range(4)
        ]
        try:
            deadline = time.monotonic() + 120
            while len(list(tmp_path.glob(f"go{round_}.ready.*"))) < 4:
                assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
                time.sleep(0.01)
            go.touch()
            said = [p.communicate(timeout=120)[0] for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        assert [p.returncode for p in procs] == [0, 0, 0, 0], said
