"""``--steps-per-epoch`` (show, plot, gallery) is an epoch's steps: at least one, at most 2**53, as a
flag error naming it. 0.5 answered with warmup's "less than one step, write '50%'" advice and 1e308 with
"resolve: steps_per_epoch must be ..." (a tester's findings). Fractions above one stay valid."""

from __future__ import annotations

import pytest

from lrkit.cli import main

SPEC = "warmup(1ep) >> cosine(lr=0.1)"


@pytest.mark.parametrize("value", ["0.5", "0", "-3", "1e308", "nan", "inf", "x"])
def test_an_epoch_of_less_than_one_step_or_past_2_53_is_refused_by_the_flag(
    capsys: pytest.CaptureFixture[str], value: str
) -> None:
    e = main(["show", SPEC, "--total", "100", "--steps-per-epoch", value])
    err = capsys.readouterr().err
    assert e == 2 and err.count("\n") == 1, err
    assert err.startswith(
        f"lrkit show: error: --steps-per-epoch: expected a number >= 1 and < 9.0072e+15, got '{value}'"
    )


@pytest.mark.parametrize("value", ["1", "4.375", "45"])
def test_one_step_or_more_is_taken(capsys: pytest.CaptureFixture[str], value: str) -> None:
    assert main(["show", SPEC, "--total", "100", "--steps-per-epoch", value, "--at", "0"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].split()[0] == "0"
