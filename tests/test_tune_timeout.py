"""``lrkit tune --timeout`` / ``tune(timeout=)``: a wall-clock budget for the search.

After the deadline a worker starts no new trial; the trial running then finishes (all its epochs, its
value the run's); the study keeps every finished trial, and a later run continues it. The time is a fake
clock (``lrkit.tune.core._clock``) that the training moves on by 10 s per epoch, so that the number of
trials that fit is known in advance; two worker processes (which the fake clock cannot reach) run on the
real clock, and each trial's start, as Optuna stamped it, is checked against the deadline.
"""

from __future__ import annotations

import datetime
import math
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

optuna = pytest.importorskip("optuna")
pytest.importorskip("torch")

#: fake seconds one epoch of a trial takes
EPOCH = 10.0
#: the smallest search: the tiny task, 2 epochs a trial, an LR range where no trial diverges
FAST = {"epochs": 2, "finder": False, "lr_range": (0.01, 0.3)}


class FakeClock:
    """``now`` seconds; every epoch a trial trains moves it on by :data:`EPOCH` (``ticks`` records
    when each epoch of each trial ended)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.ticks: list[tuple[str, int, float]] = []

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch, one_torch_thread: None) -> FakeClock:
    import lrkit.lab.runner
    import lrkit.tune.core

    fake = FakeClock()
    real = lrkit.lab.runner.run_strategy

    def timed(task: Any, strategy: Any, **kwargs: Any) -> Any:
        inner = kwargs.get("on_epoch")
        if inner is not None:

            def on_epoch(epoch: int, metric: float) -> None:
                fake.now += EPOCH
                fake.ticks.append((strategy.label, epoch, fake.now))
                inner(epoch, metric)

            kwargs["on_epoch"] = on_epoch
        return real(task, strategy, **kwargs)

    monkeypatch.setattr(lrkit.lab.runner, "run_strategy", timed)
    monkeypatch.setattr(lrkit.tune.core, "_clock", fake)
    return fake


def _states(study: Any) -> list[str]:
    return [t.state.name for t in study.get_trials(deepcopy=False)]


# --------------------------------------------------------------------------------------------------
# one worker, the Python API
# --------------------------------------------------------------------------------------------------
@pytest.mark.usefixtures("tiny_task")
def test_the_deadline_stops_new_trials_and_the_running_trial_finishes_all_its_epochs(
    tmp_path: Path, clock: FakeClock
) -> None:
    """A 50 s budget, 20 s a trial: trials 0 and 1 end at 20 s and 40 s, trial 2 starts at 40 s and is
    running when the deadline passes (after its first epoch); it finishes its second, and no trial 3
    starts."""
    from lrkit.tune import tune

    said: list[str] = []
    res = tune(
        "tiny_tune_task:tiny", trials=20, timeout=50, storage=tmp_path / "t.db", progress=said.append, **FAST
    )
    trials = res.study.get_trials()
    assert [t.number for t in trials] == [0, 1, 2]
    assert _states(res.study) == ["COMPLETE"] * 3
    assert [(label, epoch) for label, epoch, _ in clock.ticks] == [
        (f"trial {n}", e) for n in range(3) for e in (1, 2)
    ]
    assert clock.ticks[4] == ("trial 2", 1, 50.0)  # the deadline passed during trial 2 ...
    assert sorted(trials[2].intermediate_values) == [1, 2]  # ... which ran its last epoch
    assert trials[2].value == trials[2].intermediate_values[2]  # and is valued as the whole run
    assert res.finished == 3 and res.trials == 20 and res.timeout == 50.0 and res.timed_out
    assert res.best_value == max(t.value for t in trials)
    assert res.best_spec == max(trials, key=lambda t: t.value).user_attrs["spec"]
    assert said[-1] == (
        "time budget of 50 s reached after 1 min: 3 of the 20 trials asked for finished (the one "
        "running at the deadline was let finish); no new trial starts (a larger --timeout / timeout= "
        "continues the study)"
    )
    assert "the search stopped at its time budget (50 s) with 3 of the 20 trials asked for" in str(res)


@pytest.mark.usefixtures("tiny_task")
def test_a_study_stopped_by_its_budget_keeps_its_trials_and_a_later_run_continues_it(
    tmp_path: Path, clock: FakeClock
) -> None:
    from lrkit.tune import tune

    db = tmp_path / "t.db"
    first = tune("tiny_tune_task:tiny", trials=5, timeout=30, storage=db, **FAST)  # trials 0, 1 fit
    assert first.finished == 2 and first.timed_out
    kept = [(t.number, t.params, t.value) for t in first.study.get_trials()]

    said: list[str] = []
    more = tune("tiny_tune_task:tiny", trials=5, timeout=1000, storage=db, progress=said.append, **FAST)
    trials = more.study.get_trials()
    assert [(t.number, t.params, t.value) for t in trials[:2]] == kept  # nothing lost, nothing redone
    assert [t.number for t in trials] == [0, 1, 2, 3, 4] and _states(more.study) == ["COMPLETE"] * 5
    assert more.finished == 5 and not more.timed_out  # the study was full before the deadline
    assert not any("time budget" in line for line in said) and "time budget" not in str(more)
    assert more.best_value == max(t.value for t in trials)

    said.clear()
    again = tune("tiny_tune_task:tiny", trials=5, timeout=1, storage=db, progress=said.append, **FAST)
    assert len(again.study.get_trials()) == 5 and not again.timed_out  # a finished study: nothing to do
    assert any("nothing to run" in line for line in said)
    assert not any("time budget" in line for line in said)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
@pytest.mark.usefixtures("tiny_task")
def test_a_worker_waiting_for_another_workers_trial_stops_waiting_at_its_deadline(
    tmp_path: Path, clock: FakeClock
) -> None:
    """The study lacks one trial, and another worker (on another machine) is running it: this worker
    waits for it, but not past its own deadline."""
    from lrkit.tune import open_storage, tune

    db = tmp_path / "w.db"
    first = tune("tiny_tune_task:tiny", trials=2, storage=db, **FAST)
    other = optuna.load_study(study_name=first.study_name, storage=open_storage(db))
    straggler = other.ask()  # never told: its worker is still training
    straggler.set_user_attr("worker", "another-host:1:0")
    clock.now = 1000.0
    said: list[str] = []
    box: list[Any] = []

    def call() -> None:
        try:
            box.append(
                tune("tiny_tune_task:tiny", trials=3, timeout=5, storage=db, progress=said.append, **FAST)
            )
        except BaseException as exc:  # handed to the test
            box.append(exc)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    for _ in range(1200):  # a minute at most
        if not thread.is_alive() or any(line.startswith("waiting") for line in said):
            break
        thread.join(0.05)
    assert any(line == "waiting for 1 running trial of other workers" for line in said), said
    clock.now = 1004.0
    thread.join(3)
    assert thread.is_alive()  # 4 s of its 5: it still waits
    clock.now = 1005.0
    thread.join(30)
    assert not thread.is_alive(), "still waiting after its deadline"
    res = box[0]
    assert not isinstance(res, BaseException), res
    assert res.finished == 2 and res.timed_out
    assert "RUNNING" in _states(res.study)  # the other worker's trial is its own business
    assert said[-1].startswith("time budget of 5 s reached after 5 s: 2 of the 3 trials asked for finished")


# --------------------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------------------
BAD_TIMEOUTS: list[Any] = [0, 0.0, -1, -0.5, math.nan, math.inf, -math.inf, True, False, "abc", "2h", [60]]


@pytest.mark.parametrize("value", BAD_TIMEOUTS, ids=repr)
def test_the_api_refuses_a_timeout_that_is_not_a_positive_finite_number_of_seconds(
    tmp_path: Path, value: Any
) -> None:
    from lrkit.tune import tune

    db = tmp_path / "t.db"
    with pytest.raises(ValueError) as info:
        tune("digits-mlp-sgd", trials=2, timeout=value, storage=db, finder=False)
    assert str(info.value) == (
        f"timeout must be a positive, finite number of seconds (e.g. 7200 for 2 hours), got {value!r}"
    )
    assert not db.exists()  # refused before the storage is touched


BAD_FLAGS = ["0", "-5", "0m", "-1h", "nan", "inf", "1e999", "abc", "", " ", "2x", "1h30m", "h", "ten"]


@pytest.mark.parametrize("text", BAD_FLAGS, ids=repr)
def test_the_cli_refuses_a_bad_timeout_naming_the_flag_the_value_and_the_forms_it_takes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    from lrkit.cli import main

    monkeypatch.chdir(tmp_path)
    code = main(["tune", "--task", "digits-mlp-sgd", "--trials", "2", f"--timeout={text}"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        "lrkit tune: error: --timeout: expected a positive number of seconds (3600) or a number with a "
        f"unit s, m or h (90m, 2h), got {text!r}"
    ]
    assert list(tmp_path.iterdir()) == []  # no study, no report folder


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90.0),
        ("0.5", 0.5),
        ("1e3", 1000.0),
        ("45s", 45.0),
        ("90m", 5400.0),
        ("1.5h", 5400.0),
        ("2H", 7200.0),
        (" 2h ", 7200.0),
        ("1.5 m", 90.0),
    ],
)
def test_the_cli_reads_a_timeout_in_seconds_or_with_a_unit(text: str, seconds: float) -> None:
    from lrkit.cli import build_parser
    from lrkit.tune.core import parse_duration

    assert parse_duration(text) == seconds
    args = build_parser().parse_args(["tune", "--task", "digits-mlp-sgd", "--trials", "2", "--timeout", text])
    assert args.timeout == text  # read by lrkit tune (and checked before anything runs)


def test_the_duration_is_said_in_seconds_and_in_hours_and_minutes() -> None:
    from lrkit.tune.core import duration

    assert duration(45) == "45 s"
    assert duration(0.25) == "0.25 s"
    assert duration(59.5) == "59.5 s"
    assert duration(60) == "1 min"
    assert duration(100) == "1 min 40 s"
    assert duration(5400) == "1 h 30 min"
    assert duration(7200) == "2 h"
    assert duration(7201.4) == "2 h 1 s"
    assert duration(3 * 10**5 + 1) == "83 h 20 min 1 s"


# --------------------------------------------------------------------------------------------------
# the command line
# --------------------------------------------------------------------------------------------------
TUNE = ["tune", "--task", "tiny_tune_task:tiny", "--epochs", "2", "--lr-range", "0.01", "0.3"]


@pytest.mark.usefixtures("tiny_task")
def test_the_report_and_the_output_say_the_search_stopped_at_its_budget(
    tmp_path: Path, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    from lrkit.cli import main

    out = tmp_path / "out"
    argv = [*TUNE, "--trials", "10", "--timeout", "0.5m", "--no-finder", "--report-seeds", "1"]
    assert main([*argv, "--storage", str(tmp_path / "s.db"), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "[2/10] trial 1 complete" in text and "[3/10]" not in text  # 0 .. 20 s, 20 .. 40 s
    assert (
        "time budget of 30 s reached after 40 s: 2 of the 10 trials asked for finished (the one running at "
        "the deadline was let finish)" in text
    )
    assert (
        "2 finished trials (2 complete, 0 pruned, 0 failed); the search stopped at its time budget (30 s) "
        "with 2 of the 10 trials asked for" in text
    )
    assert "best spec so far (val accuracy" in text
    assert "try: lrkit show SPEC --total 12\n" in text  # 2 epochs x 6 batches of 32 (192 examples)
    page = (out / "report.html").read_text(encoding="utf-8")
    assert (
        "The search stopped at its time budget (--timeout 0.5m = 30 s) with 2 of the 10 trials asked for"
        in page
    )


@pytest.mark.usefixtures("tiny_task")
def test_a_budget_spent_before_any_trial_exits_3_keeps_the_study_and_a_rerun_goes_on_without_the_finder(
    tmp_path: Path, clock: FakeClock, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The LR finder takes longer than the whole budget: no trial starts; the exit status says so (3, as
    ``lrkit find``'s no-signal: neither success nor an error), and the study keeps the search space, so
    the same line with a larger --timeout runs trials at once."""
    from lrkit.cli import main
    from lrkit.tasks.base import Task
    from lrkit.tune.cli import EXIT_OUT_OF_TIME

    finds: list[float] = []
    real = Task.find_lr

    def slow_finder(self: Any, *args: Any, **kwargs: Any) -> Any:
        finds.append(clock.now)
        clock.now += 100.0
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Task, "find_lr", slow_finder)
    db = tmp_path / "s.db"
    argv = ["tune", "--task", "tiny_tune_task:tiny", "--epochs", "2", "--trials", "2", "--no-report"]
    argv += ["--storage", str(db)]
    assert main([*argv, "--timeout", "1m"]) == EXIT_OUT_OF_TIME == 3
    text, err = capsys.readouterr()
    assert "time budget of 1 min reached after 1 min 40 s: 0 of the 2 trials asked for finished" in text
    assert "ran out before any trial completed" not in text  # stdout's last line is never this sentence
    assert err.strip().splitlines()[-1] == (
        "lrkit tune: the time budget (--timeout 1m = 1 min) ran out before any trial completed, so "
        "there is no best spec; the study keeps its search space and 0 recorded trials: the same line "
        "with a larger --timeout continues it (exit status 3)"
    )
    study = optuna.load_study(study_name="lrkit-tiny_tune_task:tiny", storage=f"sqlite:///{db}")
    assert study.get_trials() == [] and "space" in study.user_attrs["lrkit"]  # the finder's work is kept

    assert main([*argv, "--timeout", "5m"]) == 0
    assert len(finds) == 1  # the stored space is searched: no second finder run
    text = capsys.readouterr().out
    assert "[2/2] trial 1 complete" in text and "time budget" not in text
    assert [t.state.name for t in study.get_trials()] == ["COMPLETE", "COMPLETE"]


@pytest.mark.usefixtures("tiny_task")
def test_two_worker_processes_stop_at_the_deadline_of_the_command_that_started_them(tmp_path: Path) -> None:
    """``--workers 2`` on the real clock (a spawned process is out of the fake clock's reach): a trial
    takes about a second, the budget is 12 s and the study asks for 200, so both processes must stop on
    the clock. No trial starts after the deadline (measured from the command's start, so from before the
    first trial's start), each trial running then finishes all its epochs, both processes say why they
    stopped, and the summary counts the trials of both."""
    db = tmp_path / "w.db"
    timeout = 12.0
    env = {**os.environ, "TUNE_TEST_DELAY": "0.05", "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    argv = [sys.executable, "-m", "lrkit.cli", *TUNE, "--trials", "200", "--timeout", f"{timeout:g}s"]
    argv += ["--workers", "2", "--no-finder", "--no-report", "--storage", str(db)]
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    text = done.stdout + done.stderr
    assert done.returncode == 0, text
    lines = text.splitlines()
    assert any(line.startswith("time budget of 12 s reached after ") for line in lines), text
    assert any(line.startswith("worker 1: time budget of 12 s reached after ") for line in lines), text
    study = optuna.load_study(study_name="lrkit-tiny_tune_task:tiny", storage=f"sqlite:///{db}")
    trials = study.get_trials()
    assert 1 <= len(trials) < 200
    assert all(t.state.name == "COMPLETE" and sorted(t.intermediate_values) == [1, 2] for t in trials)
    # the command's clock starts a second or more before its first trial does (it imports torch and
    # Optuna, checks the task, opens the study), so the deadline is before the first trial's start + the
    # timeout; 1 s more is room for a trial started just before it (the sampler, an SQLite lock). A
    # worker process that counted from its own start (seconds later) would start trials after it.
    first = min(t.datetime_start for t in trials)
    latest = first + datetime.timedelta(seconds=timeout + 1)
    late = [
        (t.number, t.user_attrs["worker_index"], t.datetime_start)
        for t in trials
        if t.datetime_start > latest
    ]
    assert not late, (first, late, text)
    assert (
        f"the search stopped at its time budget (12 s) with {len(trials)} of the 200 trials asked for" in text
    )
