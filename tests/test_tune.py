"""``lrkit tune``: the search space's specs against their formulas, the finder-centred LR range, storage
checks, the Python API (seeded, resumable, settings kept with the study), and two worker processes on one
study (SQLite and PostgreSQL) with one SIGKILLed mid-trial: every trial recorded once, the killed trial
FAIL and retried, the best spec printed."""

from __future__ import annotations

import math
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lrkit
from lrkit.tune import KINDS, SearchSpace, build_spec, check_sqlite_path, storage_url

optuna = pytest.importorskip("optuna")
torch = pytest.importorskip("torch")

# A tiny task (two Gaussian blobs, a 6-16-2 MLP) whose training loader sleeps TUNE_TEST_DELAY seconds per
# batch, so that a trial lasts long enough to be killed in the middle.
TASK_MODULE = """
import os
import time

import torch
from torch.utils.data import DataLoader, TensorDataset

from lrkit.tasks import TaskParts

DELAY = float(os.environ.get("TUNE_TEST_DELAY", "0"))


class Slow:
    def __init__(self, loader):
        self.loader = loader

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            time.sleep(DELAY)
            yield batch


def tiny(seed):
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(240, 6, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] - 0.25 * x[:, 2] > 0).long()
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
    shuffle = torch.Generator().manual_seed(seed)
    train = DataLoader(TensorDataset(x[:192], y[:192]), batch_size=32, shuffle=True, generator=shuffle)
    val = DataLoader(TensorDataset(x[192:], y[192:]), batch_size=48)
    return TaskParts(model, Slow(train), val, torch.nn.functional.cross_entropy, metric="accuracy",
                     epochs=3, optimizer="sgd")


def prodigy(seed):  # trains with an optimizer that sets its own step size
    parts = tiny(seed)
    parts.optimizer = "prodigy"
    return parts


def short(seed):  # 4 steps in all: too short for one-cycle's three phases
    parts = tiny(seed)
    parts.train_loader = DataLoader(parts.train_loader.loader.dataset, batch_size=48)
    parts.epochs = 1
    return parts
"""


# --------------------------------------------------------------------------------------------------
# the search space
# --------------------------------------------------------------------------------------------------
@settings(max_examples=150, deadline=None)
@given(
    kind=st.sampled_from(KINDS),
    lr=st.floats(1e-5, 10.0),
    warmup=st.floats(0.0, 0.3),
    final=st.floats(1e-4, 0.5),
    decay=st.floats(0.1, 0.5),
    total=st.integers(100, 5000),
)
def test_every_point_is_a_spec_with_that_peak_final_and_warmup(
    kind: str, lr: float, warmup: float, final: float, decay: float, total: int
) -> None:
    spec = build_spec(kind, lr, warmup, final, decay, total_steps=total)
    sched = lrkit.parse(spec)
    assert lrkit.to_string(sched) == spec  # canonical: round-trips
    r = sched.resolve(total_steps=total)
    values = np.asarray(r(np.arange(total + 1)), dtype=float)
    peak = float(f"{lr:.4g}")
    assert values.max() <= peak * (1 + 1e-9)
    assert values.max() == pytest.approx(peak, rel=1e-2)  # one-cycle's top may sit between two steps
    assert values[total] == pytest.approx(peak * final, rel=2e-3)  # the final fraction, after the run
    shown = float(f"{100 * warmup:.3g}") / 100  # the warmup as the spec writes it
    has_warmup = kind != "one_cycle" and shown * total >= 1 and shown > 0
    if kind == "one_cycle":
        assert values[0] == pytest.approx(peak / 25)  # starts at max_lr / div_factor
    elif has_warmup:
        assert values[0] < peak
        assert "warmup" in spec
    else:
        assert values[0] == pytest.approx(peak)
        assert "warmup" not in spec


def test_bad_points_are_refused_naming_the_argument() -> None:
    for kwargs, word in [
        ({"kind": "step"}, "kind"),
        ({"lr": 0.0}, "lr"),
        ({"lr": math.nan}, "lr"),
        ({"warmup": 1.0}, "warmup"),
        ({"final": 0.0}, "final"),
        ({"kind": "wsd", "decay": None}, "decay"),
        ({"kind": "wsd", "warmup": 0.6, "decay": 0.5}, r"warmup \+ decay"),
    ]:
        args: dict[str, Any] = {"kind": "cosine", "lr": 0.1, "warmup": 0.1, "final": 0.01, **kwargs}
        with pytest.raises(ValueError, match=word):
            build_spec(**args)


@settings(max_examples=200, deadline=None)
@given(
    s=st.floats(1e-6, 10.0),
    below=st.floats(1.0, 30.0),
    above=st.floats(1.0, 30.0),
    widen=st.floats(1.5, 10.0),
)
def test_finder_range_is_centred_on_the_suggestion_and_covers_the_widened_interval(
    s: float, below: float, above: float, widen: float
) -> None:
    a, b = s / below, s * above
    lo, hi = SearchSpace.from_finder(s, (a, b), widen=widen).lr_range
    assert math.sqrt(lo * hi) == pytest.approx(s, rel=1e-9)  # centred on the log axis
    assert lo <= a / widen * (1 + 1e-9) and hi >= b * widen * (1 - 1e-9)  # covers the widened interval
    assert hi / lo == pytest.approx((widen * max(below, above)) ** 2, rel=1e-9)  # and no wider


def test_search_space_checks_its_fields() -> None:
    for kwargs, word in [
        ({"lr_range": (0.1, 0.01)}, "lr_range"),
        ({"lr_range": (0.0, 1.0)}, "lr_range"),
        ({"kinds": ("cosine", "cosine")}, "kinds"),
        ({"kinds": ("exp",)}, "kinds"),
        ({"kinds": ()}, "kinds"),
        ({"final_range": (0.1, 2.0)}, "final_range"),
        ({"warmup_max": 0.7}, "warmup_max"),
    ]:
        with pytest.raises(ValueError, match=word):
            SearchSpace(**kwargs)
    space = SearchSpace(lr_range=(1e-3, 1.0), kinds=("wsd", "cosine"), center=0.03)
    assert SearchSpace.from_dict(space.to_dict()) == space


# --------------------------------------------------------------------------------------------------
# storage
# --------------------------------------------------------------------------------------------------
def _foreign_files(tmp_path: Path) -> list[tuple[Path, str]]:
    text = tmp_path / "notes.db"
    text.write_text("my notes, not a database\n")
    other = tmp_path / "other.sqlite"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE users (name TEXT)")
    con.commit()
    con.close()
    lab = tmp_path / "lab.db"
    from lrkit.lab.store import ResultStore

    ResultStore(lab).close()
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    return [
        (text, "not an SQLite database"),
        (other, "not an Optuna study database"),
        (lab, "lrkit lab database"),
        (empty, "is empty"),
    ]


def test_storage_that_is_not_an_optuna_database_is_refused_and_left_untouched(tmp_path: Path) -> None:
    for path, why in _foreign_files(tmp_path):
        before = path.read_bytes()
        for storage in (str(path), f"sqlite:///{path}"):
            with pytest.raises(ValueError, match=why) as info:
                storage_url(storage)
            assert str(path) in str(info.value)
        assert path.read_bytes() == before
    with pytest.raises(ValueError, match="is a directory"):
        check_sqlite_path(tmp_path)
    with pytest.raises(ValueError, match="three slashes"):
        storage_url("sqlite://relative.db")
    with pytest.raises(ValueError, match="postgresql://"):
        storage_url("redis://u:secret@host/0")
    try:
        storage_url("redis://u:secret@host/0")
    except ValueError as exc:
        assert "secret" not in str(exc)  # the password is never printed
    for bare in ("postgresql://u:p@db:5432/lrkit", "postgres://u:p@db:5432/lrkit"):  # a driver is chosen
        assert storage_url(bare) in (f"postgresql+{d}://u:p@db:5432/lrkit" for d in ("psycopg2", "psycopg"))
    assert storage_url("postgresql+psycopg://u:p@db/x") == "postgresql+psycopg://u:p@db/x"
    ok = tmp_path / "new" / "tune.db"
    assert storage_url(ok) == f"sqlite:///{ok.resolve()}"
    assert not ok.parent.exists()  # checking creates nothing


def test_cli_refuses_a_foreign_storage_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from lrkit.cli import main

    monkeypatch.chdir(tmp_path)
    for path, why in _foreign_files(tmp_path):
        before = path.read_bytes()
        code = main(["tune", "--task", "digits-mlp-sgd", "--trials", "2", "--storage", str(path)])
        assert code == 2
        err = capsys.readouterr().err
        assert "--storage" in err and why in err
        assert path.read_bytes() == before
    assert not (tmp_path / "lrkit-tune").exists()  # nothing written


# --------------------------------------------------------------------------------------------------
# the Python API
# --------------------------------------------------------------------------------------------------
def test_tune_api_centres_on_the_finder_is_seeded_resumable_and_keeps_its_settings(
    tmp_path: Path, tiny_task: Path, one_torch_thread: None
) -> None:
    from lrkit.tasks import get_task
    from lrkit.tune import tune

    task = get_task("tiny_tune_task:tiny")
    db = tmp_path / "tune.db"
    res = tune(task, trials=4, storage=db, epochs=2, finder_repeats=1, seed=3)
    found = task.find_lr(seed=3, repeats=1)
    assert res.space.center == pytest.approx(found.suggestion)
    assert SearchSpace.from_finder(found.suggestion, found.interval).lr_range == pytest.approx(
        res.space.lr_range
    )
    assert res.finished == 4 and res.failed == 0
    assert res.direction == "maximize" and res.metric_name == "val accuracy"
    trials = res.study.get_trials()
    assert [t.number for t in trials] == [0, 1, 2, 3]
    for t in trials:  # each trial's spec is its point, and its LR lies in the searched range
        p = t.params
        assert t.user_attrs["spec"] == build_spec(
            p["kind"], p["lr"], p["warmup"], p["final"], p.get("decay"), total_steps=2 * 6
        )
        assert res.space.lr_range[0] <= p["lr"] <= res.space.lr_range[1]
    best = max((t for t in trials if t.state.name == "COMPLETE"), key=lambda t: t.value)
    assert res.best_value == best.value and res.best_spec == best.user_attrs["spec"]
    lrkit.parse(res.best_spec)

    said: list[str] = []
    again = tune(task, trials=4, storage=db, epochs=2, seed=3, progress=said.append)  # nothing trains
    assert len(again.study.get_trials()) == 4 and again.best_spec == res.best_spec
    assert any("already has 4 finished trials of the 4 asked for: nothing to run" in line for line in said)
    said.clear()
    more = tune(task, trials=5, storage=db, epochs=2, seed=3, progress=said.append)  # a bigger budget
    assert len(more.study.get_trials()) == 5 and more.finished == 5  # continues the study
    assert not any("nothing to run" in line for line in said)

    same = tune(task, trials=4, storage=tmp_path / "again.db", epochs=2, finder_repeats=1, seed=3)
    assert [t.params for t in same.study.get_trials()] == [t.params for t in trials]  # seeded

    with pytest.raises(ValueError, match="epochs=2, not 3"):
        tune(task, trials=6, storage=db, epochs=3)
    with pytest.raises(ValueError, match="seed=3, not 0"):  # the study's seed is one of its settings
        tune(task, trials=6, storage=db, epochs=2)
    with pytest.raises(ValueError, match="kinds"):
        tune(task, trials=6, storage=db, epochs=2, seed=3, kinds=["cosine"])
    with pytest.raises(ValueError, match="lr_range"):
        tune(task, trials=6, storage=db, epochs=2, seed=3, lr_range=(0.01, 0.1))


def test_tune_api_rejects_bad_arguments_by_name(tmp_path: Path) -> None:
    from lrkit.tune import tune

    db = tmp_path / "t.db"
    for kwargs, word in [
        ({"trials": 0}, "trials"),
        ({"trials": 2, "seed": -1}, "seed"),
        ({"trials": 2, "kinds": ["cosine", "exp"]}, "kinds"),
        ({"trials": 2, "pruner": "asha"}, "pruner"),
        ({"trials": 2, "lr_range": (1.0, 0.1)}, "lr_range"),
        ({"trials": 2, "optimizer": "lion"}, "optimizer"),
        ({"trials": 2, "workers": 0}, "workers"),
        ({"trials": 2, "study_name": " "}, "study_name"),
        ({"trials": 2, "heartbeat": 0, "epochs": 1}, "heartbeat"),
        ({"trials": 2, "heartbeat": 5, "grace": 5, "epochs": 1}, "grace"),
    ]:
        with pytest.raises(ValueError, match=word):
            tune("digits-mlp-sgd", storage=db, finder=False, **kwargs)
    assert not db.exists()


def test_workers_2_starts_a_second_process_on_the_same_study_with_a_sampler_seed_of_its_own(
    tmp_path: Path, tiny_task: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the second of two machines (--worker-id 1 --workers 2): the first machine's processes are
    workers 0 and 1, this one's 2 and 3. This process used to be worker 1, seeded as the first machine's
    child: the two drew the same random start-up points."""
    from lrkit.tune import tune

    seeds: list[int] = []
    real = optuna.samplers.TPESampler

    def recording(**kwargs: Any) -> Any:
        seeds.append(kwargs["seed"])
        return real(**kwargs)

    monkeypatch.setattr(optuna.samplers, "TPESampler", recording)  # in this process only
    monkeypatch.setenv("TUNE_TEST_DELAY", "0.03")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tiny_task), os.environ.get("PYTHONPATH", "")]))
    db = tmp_path / "w.db"
    res = tune(
        "tiny_tune_task:tiny",
        trials=5,
        storage=db,
        epochs=2,
        finder=False,
        seed=5,
        workers=2,
        worker=1,
        progress=print,
    )
    out = capfd.readouterr().out
    assert "worker 3: study 'lrkit-tiny_tune_task:tiny'" in out  # the child joined this study and exited 0
    assert seeds == [5 + 7919 * 2]  # this process is worker 2
    assert not re.search(r"^worker [^3]", out, re.M)  # and its only child is worker 3
    trials = res.study.get_trials()
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    assert 5 <= res.finished <= 6 and res.failed == 0  # two workers may overshoot by one
    with pytest.raises(ValueError, match="by name"):
        from lrkit.tasks import Task

        tune(Task("anon", lambda seed: None), trials=2, storage=db, workers=2, finder=False)


# --------------------------------------------------------------------------------------------------
# two workers, one killed
# --------------------------------------------------------------------------------------------------
def _postgres_url() -> str:
    url = os.environ.get("LRKIT_TEST_POSTGRES")
    if url:
        return url
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
        pytest.fail(
            "CI requires the PostgreSQL test, but LRKIT_TEST_POSTGRES is not set (run .ci/postgres.sh)"
        )
    pytest.skip("LRKIT_TEST_POSTGRES is not set; start PostgreSQL with .ci/postgres.sh and export its URL")


def _reader(url: str) -> Any:
    return optuna.storages.RDBStorage(storage_url(url))


def _running_trial_of(study: Any, pid: int) -> Any:
    """The trial worker ``pid`` is training (its point drawn and its spec stored), or None."""
    for t in study.get_trials(deepcopy=False):
        mine = t.user_attrs.get("worker", "").split(":")[1:2] == [str(pid)]
        if t.state.name == "RUNNING" and mine and "spec" in t.user_attrs:
            return t
    return None


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_workers_one_sigkilled_mid_trial_every_trial_once_killed_one_retried(
    tmp_path: Path, tiny_task: Path, backend: str
) -> None:
    url = f"sqlite:///{tmp_path / 'tune.db'}" if backend == "sqlite" else _postgres_url()
    study_name = f"test-{uuid.uuid4().hex[:12]}"
    trials = 6
    env = {
        **os.environ,
        "TUNE_TEST_DELAY": "0.06",
        "OMP_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
        "PYTHONPATH": os.pathsep.join([str(tiny_task), os.environ.get("PYTHONPATH", "")]),
    }
    base = [sys.executable, "-m", "lrkit.cli", "tune", "--task", "tiny_tune_task:tiny"]
    base += ["--trials", str(trials), "--storage", url, "--study", study_name, "--lr-range", "0.01", "1"]
    base += ["--heartbeat", "1", "--grace", "3"]
    out = tmp_path / "report"
    victim_cmd = [*base, "--worker-id", "1", "--no-report"]
    if backend == "sqlite":
        survivor_cmd = [*base, "--worker-id", "0", "--out", str(out), "--report-seeds", "1"]
    else:
        survivor_cmd = [*base, "--worker-id", "0", "--no-report"]
    logs = tmp_path / "logs"
    logs.mkdir()
    with open(logs / "victim.txt", "w") as vlog, open(logs / "survivor.txt", "w") as slog:
        victim = subprocess.Popen(victim_cmd, cwd=tmp_path, env=env, stdout=vlog, stderr=subprocess.STDOUT)
        survivor = subprocess.Popen(
            survivor_cmd, cwd=tmp_path, env=env, stdout=slog, stderr=subprocess.STDOUT
        )
        try:
            killed = None
            deadline = time.monotonic() + 120
            study = None
            while killed is None and time.monotonic() < deadline and victim.poll() is None:
                if study is None:
                    try:
                        study = optuna.load_study(study_name=study_name, storage=_reader(url))
                    except KeyError:  # not created yet
                        time.sleep(0.2)
                        continue
                if _running_trial_of(study, victim.pid) is None:
                    time.sleep(0.02)
                    continue
                victim.send_signal(signal.SIGSTOP)  # freeze it, then make sure it is still mid-trial
                try:
                    t = _running_trial_of(study, victim.pid)
                except Exception:  # e.g. SQLite locked by the frozen worker: let it go on, look again
                    t = None
                if t is not None:
                    victim.send_signal(signal.SIGKILL)
                    killed = t.number
                else:
                    victim.send_signal(signal.SIGCONT)  # it finished that trial in between: next one
            victim.wait(timeout=30)
            assert killed is not None, (logs / "victim.txt").read_text()
            assert victim.returncode == -signal.SIGKILL
            survivor.wait(timeout=240)
        finally:
            for p in (victim, survivor):
                if p.poll() is None:
                    p.kill()
                    p.wait()
    text = (logs / "survivor.txt").read_text()
    assert survivor.returncode == 0, text

    study = optuna.load_study(study_name=study_name, storage=_reader(url))
    try:
        all_trials = study.get_trials(deepcopy=False)
        numbers = [t.number for t in all_trials]
        assert sorted(numbers) == list(range(len(numbers)))  # each trial recorded once
        states = [t.state.name for t in all_trials]
        assert states.count("COMPLETE") + states.count("PRUNED") == trials, states
        assert "RUNNING" not in states and "WAITING" not in states, states
        failed = [t for t in all_trials if t.state.name == "FAIL"]
        assert [t.number for t in failed] == [killed]  # the killed trial, and only it, failed
        retries = [t for t in all_trials if t.system_attrs.get("failed_trial") == killed]
        assert len(retries) == 1  # retried once, by the survivor
        retry = retries[0]
        assert retry.system_attrs["retry_history"] == [killed]
        assert retry.state.name in ("COMPLETE", "PRUNED")
        assert retry.params == failed[0].params and retry.user_attrs["spec"] == failed[0].user_attrs["spec"]
        assert retry.user_attrs["worker"].split(":")[1] == str(survivor.pid)
        assert f"trial {retry.number} (retry of trial {killed})" in text
        for t in all_trials:
            lrkit.parse(t.user_attrs["spec"])
        # the best is reported: the last line is its spec, and it is the study's best
        last = text.strip().splitlines()[-1]
        assert last == study.best_trial.user_attrs["spec"]
        lrkit.parse(last)
        assert f"trial {study.best_trial.number} of study {study_name!r}" in text
        if backend == "sqlite":
            html = (out / "report.html").read_text()
            assert "tuned" in html and "recipe: GPT cosine" in html
    finally:
        if backend == "postgresql":
            optuna.delete_study(study_name=study_name, storage=_reader(url))


@pytest.mark.usefixtures("tiny_task")
def test_a_task_whose_own_optimizer_sets_its_step_size_is_refused_before_any_storage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Prodigy given as --optimizer was refused; the task's own Prodigy used to be searched, to chance."""
    from lrkit.cli import main
    from lrkit.tune import tune

    db = tmp_path / "p.db"
    with pytest.raises(
        ValueError, match=r"the optimizer of task 'tiny_tune_task:prodigy': prodigy estimates"
    ):
        tune("tiny_tune_task:prodigy", trials=1, storage=db, finder=False)
    argv = ["tune", "--task", "tiny_tune_task:prodigy", "--trials", "1", "--no-finder"]
    assert main([*argv, "--storage", str(db), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "the optimizer of --task 'tiny_tune_task:prodigy': prodigy" in err and "give --optimizer" in err
    assert not db.exists() and not (tmp_path / "out").exists()
    res = tune("tiny_tune_task:prodigy", trials=1, storage=db, finder=False, optimizer="adam", epochs=1)
    assert res.finished == 1 and res.optimizer == "adam"  # another optimizer named: searched as asked


@pytest.mark.usefixtures("tiny_task")
def test_the_report_leaves_out_a_recipe_the_run_is_too_short_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 4-step run: one-cycle cannot split it into its phases. The study used to end in an error after
    every trial had run; now that recipe is left out, saying why, and the others are compared."""
    from lrkit.cli import main

    out = tmp_path / "out"
    argv = ["tune", "--task", "tiny_tune_task:short", "--trials", "1", "--no-finder", "--report-seeds", "1"]
    assert main([*argv, "--storage", str(tmp_path / "s.db"), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "lab: 'recipe: fastai one-cycle' left out: one_cycle: steps=4" in text
    assert "warmup + cosine and 2 recipes" in text
    runs = (out / "runs.csv").read_text().splitlines()[1:]
    assert len(runs) == 4 and not any("one-cycle" in r for r in runs)


@pytest.mark.usefixtures("tiny_task")
def test_the_report_judges_the_tuned_schedule_on_seeds_it_was_not_tuned_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every trial trains on seed 0, so the best trial's value is the maximum over the trials on that
    seed: optimistic. The report used to run seeds 0..K-1, seed 0 among them (its tuned row then repeated
    the trial's score); now its seeds are held out, and the page and the last lines say so."""
    from lrkit.cli import main
    from lrkit.tune.cli import held_out_seeds

    assert held_out_seeds(0, 3) == [1, 2, 3] and held_out_seeds(2, 3) == [0, 1, 3]
    out = tmp_path / "out"
    argv = ["tune", "--task", "tiny_tune_task:tiny", "--trials", "1", "--no-finder", "--report-seeds", "2"]
    assert main([*argv, "--storage", str(tmp_path / "s.db"), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    import csv

    with (out / "runs.csv").open() as f:
        runs = list(csv.DictReader(f))
    assert {r["seed"] for r in runs if r["label"] == "tuned"} == {"1", "2"}
    assert {r["seed"] for r in runs} == {"1", "2"}
    assert "seeds 1, 2, held out: every trial trained on seed 0" in text
    assert "on the tuning seed 0, trial 0" in text
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "The report&#x27;s seeds 1, 2, held out: every trial trained on seed 0" in page
    assert re.search(r"\(there, trial 0 scored val accuracy [0-9.]+, the best of the study", page)


def test_pruning_is_off_unless_asked_for() -> None:
    """A decaying schedule gains most at its end, so an early ranking prunes the best trial (see the
    guide): neither the API nor the command line prunes by default."""
    import inspect

    from lrkit.cli import build_parser
    from lrkit.tune import tune
    from lrkit.tune.core import _pruner

    assert inspect.signature(tune).parameters["pruner"].default == "none"
    assert build_parser().parse_args(["tune", "--task", "digits-mlp-sgd", "--trials", "4"]).pruner == "none"
    assert type(_pruner("none", 10, 20)).__name__ == "NopPruner"


def test_a_continued_study_draws_new_points_not_the_ones_it_holds(tmp_path: Path, tiny_task: Path) -> None:
    """Raising --trials (or rerunning after --timeout or Ctrl-C) continues the study; its sampler was
    seeded as the first run's, so TPE's random start-up points came again and those trials were
    trained twice (trial 3 = trial 0). A fresh study keeps the seed it had (reproducible)."""
    from lrkit.tune import tune
    from lrkit.tune.core import sampler_seed

    db = tmp_path / "c.db"
    kw: dict[str, Any] = {"storage": db, "epochs": 1, "finder": False, "seed": 3}
    first = [
        t.params
        for t in sorted(
            tune("tiny_tune_task:tiny", trials=3, **kw).study.get_trials(), key=lambda t: t.number
        )
    ]
    more = tune("tiny_tune_task:tiny", trials=6, **kw)
    trials = sorted(more.study.get_trials(), key=lambda t: t.number)
    assert len(first) == 3 and len(trials) == 6
    drawn = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(drawn)) == 6, drawn  # no trial of the second run repeats one of the first
    assert sampler_seed(3, 0) == 3 and sampler_seed(3, 0, 3) != 3  # a fresh study: the seed it had
    again = tune("tiny_tune_task:tiny", trials=3, **{**kw, "storage": tmp_path / "again.db"})
    assert [t.params for t in sorted(again.study.get_trials(), key=lambda t: t.number)] == first
