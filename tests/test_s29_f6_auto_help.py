"""``lrkit auto --help`` says the default --peak-factor as lrkit.auto.PEAK_FACTOR has it: it said 2.5
after the in-run ramp for every kind, where 2.5 is WSD's and cosine or a constant get 3 (a tester's
finding)."""

from __future__ import annotations

import re

import pytest

from lrkit.auto import PEAK_FACTOR
from lrkit.cli import main

SEARCH = {"after the in-run ramp": "in_run", "after the separate test": "separate"}


def test_the_help_s_default_peak_factors_are_the_code_s(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["auto", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    said = re.search(
        r"--peak-factor F the schedule's peak LR is F times the search's suggestion \(default: (.+?)\);", text
    )
    assert said, text
    read: dict[tuple[str, str], float] = {}
    for part in said[1].split("; "):
        words = next(w for w in SEARCH if part.startswith(w + " "))
        for item in part.removeprefix(words + " ").split(", "):
            kinds, factor = item.rsplit(" ", 1)
            for kind in kinds.split("/"):
                read[SEARCH[words], kind] = float(factor)
    assert read == PEAK_FACTOR
