"""Every number flag of every command is refused in one wording: ``lrkit CMD: error: --FLAG: expected a
whole number from LOW to HIGH, got 'VALUE' (see lrkit CMD --help)`` (or ``a finite number > 0``, ...),
status 2. Before, the same mistake read ``--epochs must be an int >= 1, got 0``, ``--epochs: expected
an integer >= 1, got 0`` or ``--seeds: invalid int value: '1.5'`` depending on the command, and a huge
``--seed`` or ``--workers`` ended in a traceback.

The ranges are written out here by hand (the test's reference), not read from lrkit."""

from __future__ import annotations

import argparse

import pytest

from lrkit._cliargs import path
from lrkit.cli import build_parser

from .test_cli_inputs import invoke

STEPS = (1, 2**53, "2**53")
SEED = (0, 2**32 - 1, "2**32 - 1")
C_INT = (1, 2**31 - 1, "2**31 - 1")
C_INT0 = (0, 2**31 - 1, "2**31 - 1")
DRAWN = (1, 1_000_000, "1,000,000")
PLOTTED = (1, 1_000_000_000, "1,000,000,000")

TUNE = ["tune", "--task", "digits-mlp-sgd", "--trials", "2"]
FIND = ["find", "--task", "digits-mlp-sgd"]
AUTO = ["auto", "--task", "digits-mlp-sgd"]
SCALE = ["scale", "--lr", "0.1", "--base-batch", "8", "--batch", "16"]

#: (the command line before the flag, the flag, (low, high, high as the message writes it), after the range)
WHOLE = [
    (["show", "cosine(lr=1)"], "--total", STEPS, ""),
    (["plot", "cosine(lr=1)", "--out", "p.png"], "--total", PLOTTED, " (every step is evaluated)"),
    (["gallery"], "--total", DRAWN, " (every step of about 30 schedules is evaluated)"),
    (SCALE, "--base-batch", STEPS, ""),
    (SCALE, "--batch", STEPS, ""),
    (SCALE, "--accumulation-steps", STEPS, ""),
    (SCALE, "--devices", STEPS, ""),
    (["lab", "--strategy", "constant(0.1)"], "--seeds", STEPS, ""),
    (["lab", "--strategy", "constant(0.1)"], "--epochs", STEPS, ""),
    (["lab", "--strategy", "constant(0.1)"], "--workers", C_INT, ""),
    (FIND, "--num-steps", (2, 1_000_000, "1,000,000"), ""),
    (FIND, "--repeats", STEPS, ""),
    (FIND, "--batches-per-step", STEPS, ""),
    (FIND, "--accumulation-steps", STEPS, ""),
    (FIND, "--epochs", STEPS, ""),
    (FIND, "--seed", SEED, ""),
    (AUTO, "--epochs", STEPS, ""),
    (AUTO, "--seed", SEED, ""),
    (TUNE, "--trials", STEPS, ""),
    (TUNE, "--epochs", STEPS, ""),
    (TUNE, "--report-seeds", STEPS, ""),
    (TUNE, "--workers", C_INT, ""),
    (TUNE, "--heartbeat", C_INT, ""),
    (TUNE, "--grace", C_INT, ""),
    (TUNE, "--worker-id", C_INT0, ""),
    (TUNE, "--max-retry", C_INT0, ""),
    (TUNE, "--seed", SEED, ""),
]

BAD_WHOLE = ["0", "-1", "1.5", "x", str(10**30), "nan", "1e3", ""]


def _whole_cases() -> list[tuple[list[str], str, str, str]]:
    cases = []
    for head, flag, (low, high, shown), why in WHOLE:
        for value in [*BAD_WHOLE, str(low - 1), str(high + 1)]:
            try:
                good = low <= int(value) <= high
            except ValueError:
                good = False
            if not good:
                expected = f"expected a whole number from {low:,} to {shown}{why}, got {value!r}"
                cases.append((head, flag, value, expected))
    return cases


POSITIVE = "expected a finite number > 0"
NON_NEGATIVE = "expected a finite number >= 0"
STEPS_PER_EPOCH = "expected a number >= 1 and < 9.0072e+15"  # an epoch holds at least one step
BUDGET = "expected a fraction in (0, 1] or a whole number of steps up to 2**53"
#: (the command line before the flag, the flag, what is expected, bad values)
FLOATS = [
    (
        ["show", "cosine(lr=1)", "--total", "9"],
        "--steps-per-epoch",
        STEPS_PER_EPOCH,
        ["0", "0.5", "x", "nan", "inf"],
    ),
    (
        ["plot", "cosine(lr=1)", "--total", "9", "--out", "p.png"],
        "--steps-per-epoch",
        STEPS_PER_EPOCH,
        ["0", "1e308"],
    ),
    (["scale", "--base-batch", "8", "--batch", "16"], "--lr", POSITIVE, ["0", "-1", "x", "nan", "1e400"]),
    (FIND, "--start-lr", POSITIVE, ["0", "-1e-3", "x", "nan", "inf"]),
    (FIND, "--end-lr", POSITIVE, ["0", "-1", "x", "nan", "-inf"]),
    (FIND, "--max-grad-norm", POSITIVE, ["0", "-1", "x", "nan", "inf"]),
    (FIND, "--momentum", NON_NEGATIVE, ["-1", "x", "nan", "inf"]),
    (FIND, "--weight-decay", NON_NEGATIVE, ["-0.1", "x", "nan", "inf"]),
    (FIND, "--smoothing", "expected a number >= 0 and < 1", ["1", "-0.1", "x", "nan", "inf"]),
    (FIND, "--budget", BUDGET, ["0", "-1", "2.5", "x", "nan", "inf", "1e30"]),
    (AUTO, "--max-grad-norm", POSITIVE, ["0", "-1", "nan"]),
    (AUTO, "--peak-factor", POSITIVE, ["0", "-1", "nan", "inf", "x"]),
    (AUTO, "--budget", BUDGET, ["0", "1.5", "nan", "1e30"]),
]


def _float_cases() -> list[tuple[list[str], str, str, str]]:
    return [
        (head, flag, value, f"{expected}, got {value!r}")
        for head, flag, expected, values in FLOATS
        for value in values
    ]


CASES = _whole_cases() + _float_cases()


@pytest.mark.parametrize(
    ("head", "flag", "value", "expected"), CASES, ids=[f"{h[0]} {f}={v[:12]}" for h, f, v, _ in CASES]
)
def test_a_bad_number_reads_the_same_in_every_command(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], head: list[str],
    flag: str, value: str, expected: str,
) -> None:  # fmt: skip
    monkeypatch.chdir(str(tmp_path))
    code, out, err = invoke(capsys, [*head, f"{flag}={value}"])  # '=': '-1' is a value, not a flag
    command = head[0]
    assert (code, out) == (2, "")
    assert err == f"lrkit {command}: error: {flag}: {expected} (see lrkit {command} --help)\n"


@pytest.mark.parametrize(
    ("low", "high"), [("0", "1"), ("-1", "1"), ("x", "1"), ("1e-3", "nan"), ("1e-3", "inf")]
)
def test_tune_lr_range_reads_the_same(capsys: pytest.CaptureFixture[str], low: str, high: str) -> None:
    code, out, err = invoke(capsys, [*TUNE, "--lr-range", low, high])
    bad = low if low in ("0", "-1", "x") else high
    assert (code, out) == (2, "")
    assert err == f"lrkit tune: error: --lr-range: {POSITIVE}, got {bad!r} (see lrkit tune --help)\n"


def test_report_experiment_is_a_whole_number(capsys: pytest.CaptureFixture[str]) -> None:
    for value in ("x", "1.5", "nan"):
        code, out, err = invoke(capsys, ["report", "lab.db", f"--experiment={value}"])
        assert (code, out) == (2, "")
        expected = f"--experiment: expected a whole number, got {value!r} (see lrkit report --help)"
        assert err == f"lrkit report: error: {expected}\n"


def _number_flags() -> set[tuple[str, str]]:
    """(command, flag) of every flag whose value is converted by a ``type=``, found in the parser."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    found = set()
    for command, p in sub.choices.items():
        for action in p._actions:
            # a path's type (~ expanded) converts no number: tested in test_s31_env
            if action.type not in (None, path) and action.option_strings:
                found.add((command, action.option_strings[0]))
    return found


def test_every_number_flag_is_covered_and_none_uses_a_bare_int_or_float() -> None:
    """A new flag with ``type=int`` would say argparse's ``invalid int value: 'x'`` and take 0 and 10**30:
    every converted flag is in the tables above, with its own range."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    bare = [
        (command, action.option_strings)
        for command, p in sub.choices.items()
        for action in p._actions
        if action.type in (int, float)
    ]
    assert bare == []
    covered = {(h[0], f) for h, f, _, _ in WHOLE} | {(h[0], f) for h, f, _, _ in FLOATS}
    covered |= {("tune", "--lr-range"), ("report", "--experiment"), ("show", "--at")}  # tested on their own
    covered |= {(c, "--optimizer") for c in ("find", "tune", "auto")}  # a call form: test_s31_cli_optimizer
    assert _number_flags() - covered == set()
