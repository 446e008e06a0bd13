"""``lrkit show --total`` and ``lrkit lab`` warn of a schedule whose LR changes fall past the run's end
(a milestone at 95% behind a 10% warmup, a restart period longer than the run): the adapters warned
(ScheduleLongerThanRunWarning with the schedule's events), these two did not."""

from __future__ import annotations

import warnings

import pytest

from lrkit.cli import main
from lrkit.schedules.base import ScheduleLongerThanRunWarning


@pytest.mark.parametrize(
    ("spec", "what"),
    [
        ("warmup(10%) >> multistep(lr=0.1, milestones=[50%, 95%])", "milestones[1]=950 at step 1,050"),
        ("cosine_restarts(lr=0.1, period=5000)", "at step 5,000"),
        ("multistep(lr=0.1, milestones=[1500, 3000])", "milestones[0]=1500 at step 1,500"),
    ],
)
def test_show_warns_of_changes_past_total(spec: str, what: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", spec, "--total", "1000", "--at", "0,999"]) == 0
    (line,) = [x for x in capsys.readouterr().err.splitlines() if "warning" in x]
    expected = f"lrkit show: warning: {spec!r} changes the LR past the end of --total 1,000"
    assert line.startswith(expected), line
    assert what in line, line


@pytest.mark.parametrize(
    "spec", ["multistep(lr=0.1, milestones=[50%, 75%])", "cosine_restarts(lr=0.1, period=100)"]
)
def test_show_is_quiet_when_every_change_is_inside_the_run(
    spec: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", spec, "--total", "1000", "--at", "0,999"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_the_lab_warns_before_it_runs() -> None:
    pytest.importorskip("torch")
    from lrkit.lab.runner import Strategy, check_schedules

    with pytest.warns(ScheduleLongerThanRunWarning, match=r"'late': its schedule changes the LR past") as got:
        check_schedules([Strategy("late", "multistep(lr=0.1, milestones=[5ep, 20ep])")], 2, 45)
    assert "milestones[0]=225 at step 225" in str(got[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_schedules([Strategy("fits", "multistep(lr=0.1, milestones=[1ep])")], 2, 45)
