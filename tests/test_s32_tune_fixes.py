"""lrkit tune, explorer TUNE's findings: the pruners judged trials still in their warmup; a NaN metric was
shown as 'complete metric -inf' with 'no trial completed'; a trial did not record its torch threads; --seed
on a rerun was ignored; without the finder the report's baselines ran at the range's centre; a rerun after
a SIGKILL waited --grace s for the killed run's trial. Each test fails on the old code."""

from __future__ import annotations

import dataclasses
import math
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
optuna = pytest.importorskip("optuna")

from lrkit.tasks import Task, TaskParts  # noqa: E402
from lrkit.tune import core, tune  # noqa: E402
from lrkit.tune.core import PID_SPACE, _pid_space  # noqa: E402
from lrkit.tune.space import SearchSpace  # noqa: E402


def _parts(seed: int, metric: object = None, epochs: int = 2) -> TaskParts:
    from torch.utils.data import DataLoader, TensorDataset

    g = torch.Generator().manual_seed(123)
    x = torch.randn(128, 4, generator=g)
    y = x @ torch.randn(4, 1, generator=g)
    train = DataLoader(TensorDataset(x[:96], y[:96]), batch_size=32, shuffle=True,
                       generator=torch.Generator().manual_seed(seed))  # fmt: skip
    val = DataLoader(TensorDataset(x[96:], y[96:]), batch_size=32)
    model = torch.nn.Linear(4, 1)
    if metric is None:
        return TaskParts(model, train, val, torch.nn.functional.mse_loss, metric="loss", epochs=epochs,
                         optimizer="sgd")  # fmt: skip
    return TaskParts(model, train, val, torch.nn.functional.mse_loss, metric=metric, higher_is_better=True,
                     metric_name="score", epochs=epochs, optimizer="sgd")  # fmt: skip


LINEAR = Task("lin", _parts)


def _nan_parts(seed: int) -> TaskParts:
    return _parts(seed, metric=lambda model: math.nan)


# 1. the pruners ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("space", "epochs", "steps", "expected"),
    [
        (SearchSpace(), 10, 45, 3),  # warmups up to 30% of 10 epochs: 3 (0.3 x 10 is 3.0000000000000004)
        (SearchSpace(warmup_max=0.0), 10, 45, 1),  # one-cycle's pct_start is at least 2%: epoch 1
        (SearchSpace(warmup_max=0.25), 8, 100, 2),
        (SearchSpace(warmup_max=0.0, kinds=("cosine",)), 10, 45, 1),  # at least one epoch
        (SearchSpace(), 3, 1, 2),  # one-cycle's rise is at least 2 of 3 steps, at most half: 1.5 epochs
    ],
)
def test_warmup_epochs_is_the_longest_rise_the_space_can_sample(
    space: SearchSpace, epochs: int, steps: int, expected: int
) -> None:
    assert core.warmup_epochs(space, epochs, steps) == expected


def _replay(pruner: object, low_curve: list[float], epochs: int) -> int | None:
    """The epoch at which ``pruner`` stops a trial of ``low_curve`` after 6 completed trials of a higher one
    (None: never)."""
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for _ in range(6):
        tr = study.ask()
        for ep in range(1, epochs + 1):
            tr.report(0.9, ep)
        study.tell(tr, 0.9)
    tr = study.ask()
    for ep, value in enumerate(low_curve, 1):
        tr.report(value, ep)
        if ep < epochs and tr.should_prune():
            return ep
    return None


def test_tune_s_median_pruner_judges_no_trial_before_the_longest_warmup_ends(tmp_path: Path) -> None:
    res = tune(LINEAR, trials=1, storage=tmp_path / "t.db", finder=False, epochs=5, pruner="median")
    w = core.warmup_epochs(res.space, 5, 3)
    assert w == 2  # ceil(0.3 x 5)
    # a curve below the others from its first epoch: stopped at epoch w, not before (the old pruner: epoch 1)
    assert _replay(res.study.pruner, [0.1] * 5, 5) == w
    assert _replay(core._pruner("median", 10, 20, 3), [0.1] * 10, 10) == 3


def test_hyperband_s_first_rung_is_the_warmup() -> None:
    pruner = core._pruner("hyperband", 10, 20, 3)
    assert pruner._min_resource == 3 and pruner._max_resource == 10
    assert core._pruner("hyperband", 2, 20, 5)._min_resource == 2  # at most the run


# 2. a NaN metric --------------------------------------------------------------------------------------


def test_a_nan_metric_is_said_to_be_nan_and_there_is_no_best_for_that_reason(tmp_path: Path) -> None:
    said: list[str] = []
    res = tune(Task("nan-metric", _nan_parts), trials=2, storage=tmp_path / "t.db", finder=False,
               progress=said.append)  # fmt: skip
    lines = [s for s in said if " trial " in s and s.startswith("[")]
    assert len(lines) == 2
    assert all("score nan" in s and "-inf" not in s and "failed run" in s for s in lines), lines
    assert res.no_metric == 2 and res.best_spec is None
    assert [t.user_attrs["status"] for t in res.study.trials] == ["no metric"] * 2
    assert res.no_best() == (
        "every completed trial (2) ended with a NaN or infinite score (a failed run; check the task's metric)"
    )
    text = str(res)
    assert "2 of them with a NaN/inf metric" in text and "no trial completed" not in text
    assert text.endswith("so there is no best spec")


# 3. torch threads -------------------------------------------------------------------------------------


def test_each_trial_records_its_torch_threads_and_the_best_value_names_them_when_they_differ(
    tmp_path: Path,
) -> None:
    res = tune(LINEAR, trials=2, storage=tmp_path / "t.db", finder=False, lr_range=(0.01, 0.1))
    for t in res.study.trials:
        assert t.user_attrs["env"]["torch_threads"] == torch.get_num_threads()
    assert res.best_threads == res.torch_threads == torch.get_num_threads()
    assert res.threads_note() == "" and "torch thread" not in str(res)  # all alike: nothing to say
    mixed = dataclasses.replace(res, best_threads=2, threads=(1, 2), torch_threads=1)
    assert mixed.threads_note() == (
        " with 2 torch threads (the trials ran with 1, 2; this process has 1: the value depends on the count)"
    )
    assert "with 2 torch threads" in str(mixed).splitlines()[1]
    other = dataclasses.replace(res, best_threads=2, threads=(2,), torch_threads=1)  # this process differs
    assert "with 2 torch threads" in other.threads_note()


# 4. --seed on a rerun ---------------------------------------------------------------------------------


def test_a_rerun_with_another_seed_is_refused_naming_the_study_s_seed(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    tune(LINEAR, trials=1, storage=db, finder=False, seed=0)
    with pytest.raises(ValueError, match=r"was started with seed=0, not 1; give seed 0 to continue it, or "
                       r"another study name \(--study NAME"):  # fmt: skip
        tune(LINEAR, trials=1, storage=db, finder=False, seed=1)
    assert tune(LINEAR, trials=1, storage=db, finder=False, seed=0).finished == 1  # the same seed: fine


# 5. the report's baselines without the finder ---------------------------------------------------------


def test_without_the_finder_the_baselines_run_at_the_tuned_peak_lr(tmp_path: Path) -> None:
    from lrkit.tune.cli import baseline_peak

    res = tune(LINEAR, trials=2, storage=tmp_path / "t.db", finder=False, lr_range=(1e-3, 0.5))
    assert res.space.center is None
    assert baseline_peak(res) == (res.best_params["lr"], "tuned LR") != (res.space.peak, "tuned LR")
    found = dataclasses.replace(res, space=SearchSpace.from_finder(0.05, (0.02, 0.1)))
    assert baseline_peak(found) == (0.05, "finder")  # the finder's pick: an LR chosen apart from the search


# 6. a killed run's trial ------------------------------------------------------------------------------


def test_a_rerun_fails_a_killed_run_s_trial_at_once_and_retries_it(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    tune(LINEAR, trials=1, storage=db, finder=False)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid of this machine that no process has now
    study = optuna.load_study(study_name="lrkit-lin", storage=f"sqlite:///{db}")
    killed = study.ask()  # RUNNING, as a SIGKILL leaves it: no heartbeat yet, its worker gone
    study._storage.set_trial_user_attr(killed._trial_id, "worker", f"{socket.gethostname()}:{gone.pid}:dead")
    study._storage.set_trial_user_attr(killed._trial_id, PID_SPACE, _pid_space())  # this PID namespace's
    said: list[str] = []
    began = time.monotonic()
    res = tune(LINEAR, trials=2, storage=db, finder=False, heartbeat=1, grace=60, progress=said.append)
    assert time.monotonic() - began < 50  # not the grace of 60 s
    assert (
        f"trial {killed.number} failed: it was a killed run's trial (process {gone.pid} on this "
        "machine has ended)" in said
    )
    states = {t.number: t.state.name for t in res.study.trials}
    assert states[killed.number] == "FAIL"
    retried = [t for t in res.study.trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retried) == 1 and retried[0].state.name == "COMPLETE"  # Optuna's retry, as for a stale one
