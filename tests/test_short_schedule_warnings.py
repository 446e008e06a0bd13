"""A schedule that ends long before the run and then holds (almost) no LR is named by ``lrkit show
--total`` and by the lab, as ``lrkit.torch`` names it (``ScheduleShorterThanRunWarning``): the classic
``CosineAnnealingLR(T_max=epochs)`` ported as ``cosine(steps=90)`` while stepping per batch."""

from __future__ import annotations

import warnings

import pytest

from lrkit.cli import main
from lrkit.schedules.base import ScheduleShorterThanRunWarning


def test_show_names_a_schedule_that_ends_early_and_holds_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "cosine(lr=0.1, steps=90)", "--total", "9000", "--at", "0,100"]) == 0
    err = capsys.readouterr().err
    assert err == (
        "lrkit show: warning: 'cosine(lr=0.1, steps=90)' ends at step 90 and then holds 0 (under 1% of its "
        "peak 0.1) for the remaining 8,909 steps of --total 9,000 (99.0% of the run). If it should span the "
        "run, give its lengths as fractions of it ('100%' or 'rest') to fit any --total; if they were "
        "counted in epochs, write them in epochs ('90ep', with --steps-per-epoch)\n"
    )


@pytest.mark.parametrize(
    "spec",
    [
        "cosine(lr=0.1, steps=90, min_lr=0.01)",  # ends on a value it means to hold
        "cosine(lr=0.1, steps=8999)",  # ends at the run's last step
        "cosine(lr=0.1)",  # the rest of the run
        "warmup(100) >> constant(lr=0.1)",  # runs for ever
    ],
)
def test_show_is_silent_where_the_end_is_meant(capsys: pytest.CaptureFixture[str], spec: str) -> None:
    assert main(["show", spec, "--total", "9000", "--at", "0"]) == 0
    assert capsys.readouterr().err == ""


def test_the_lab_names_the_strategy_whose_schedule_ends_early() -> None:
    from lrkit.lab.runner import Strategy, check_schedules

    short = Strategy("short", "cosine(lr=0.1, steps=90)")
    fine = Strategy("fine", "warmup(5%) >> cosine(lr=0.1)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_schedules([short, fine], epochs=10, steps_per_epoch=45)
    said = [w for w in caught if issubclass(w.category, ScheduleShorterThanRunWarning)]
    assert len(said) == 1
    assert str(said[0].message).startswith(
        "strategy 'short': its schedule ends at step 90 and then holds 0 (under 1% of its peak 0.1) for "
        "the remaining 359 steps of the run's 450 steps (10 epochs x 45)"
    )
