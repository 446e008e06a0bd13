"""A flag is read as written: argparse's prefix matching (``--steps 0,250`` taken as ``--steps-per-epoch``,
``--epoch`` as ``--epochs``) is off; an unknown flag is refused by the command it was given to, naming the
flag it likely meant. ``--traceback`` works after the command too."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from lrkit.cli import build_parser, main


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A command that wrongly took a flag and ran writes here (as argparse's prefix matching did)."""
    monkeypatch.chdir(tmp_path)


def _commands() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _shortened() -> list[tuple[str, str, str]]:
    """(command, a flag cut short, the flag): every long flag of every command without its last letter,
    and cut before each inner ``-``, where that is not a flag of the command itself."""
    out = []
    for name, parser in _commands().items():
        flags = {o for a in parser._actions for o in a.option_strings if o.startswith("--")} - {"--help"}
        for flag in sorted(flags):
            cuts = {flag[:-1]} | {flag[:i] for i in range(3, len(flag)) if flag[i] == "-"}
            for cut in sorted(cuts):
                if len(cut) > 3 and cut not in flags and sum(f.startswith(cut) for f in flags) == 1:
                    out.append((name, cut, flag))
    return out


SHORTENED = _shortened()

#: what each command requires, so that argparse comes to the unknown flag (no work starts: it is refused)
REQUIRED = {
    "show": ["cosine(lr=1)"],
    "plot": ["cosine(lr=1)", "--total", "10", "--out", "x.png"],
    "scale": ["--lr", "0.1", "--base-batch", "256", "--batch", "512"],
    "report": ["lab.db"],
    "auto": ["--task", "digits-mlp-sgd"],
    "tune": ["--task", "digits-mlp-sgd", "--trials", "1"],
}


def test_required_arguments_are_all_given() -> None:
    for name, parser in _commands().items():
        needed = {a.option_strings[0] if a.option_strings else a.dest for a in parser._actions if a.required}
        given = {x for x in REQUIRED.get(name, []) if x.startswith("--")}
        positional = {a.dest for a in parser._actions if a.required and not a.option_strings}
        assert needed - positional <= given, name
        assert not positional or REQUIRED.get(name), name


def test_every_command_has_flags_to_check() -> None:
    assert {c for c, _, _ in SHORTENED} >= {"show", "lab", "find", "auto", "tune", "report", "scale", "demo"}
    assert ("show", "--tota", "--total") in SHORTENED
    assert ("lab", "--epoch", "--epochs") in SHORTENED


@pytest.mark.parametrize(("command", "cut", "flag"), SHORTENED)
def test_a_flag_cut_short_is_refused_naming_the_whole_flag(
    capsys: pytest.CaptureFixture[str], command: str, cut: str, flag: str
) -> None:
    exc = main([command, *REQUIRED.get(command, []), f"{cut}=1"])
    err = capsys.readouterr().err
    assert exc == 2
    assert err == (
        f"lrkit {command}: error: unrecognized arguments: {cut}=1 (did you mean {flag!r}?) "
        f"(see lrkit {command} --help)\n"
    )


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["show", "cosine(lr=1)", "--totl", "10"], " (did you mean '--total'?)"),
        (["lab", "--task", "digits-mlp-sgd", "--sedes", "3"], " (did you mean '--seeds'?)"),
        (["show", "cosine(lr=1)", "--tracebak"], " (did you mean '--traceback'?)"),
        (["show", "cosine(lr=1)", "--zzzz"], ""),
        (["show", "cosine(lr=1)", "--total", "10", "surplus"], ""),
    ],
)
def test_an_unknown_argument_is_refused_by_its_command_with_the_closest_flag(
    capsys: pytest.CaptureFixture[str], argv: list[str], hint: str
) -> None:
    exc = main(argv)
    err = capsys.readouterr().err
    assert exc == 2 and err.count("\n") == 1
    assert err.startswith(f"lrkit {argv[0]}: error: unrecognized arguments: ")
    assert err.endswith(f"{hint} (see lrkit {argv[0]} --help)\n")


def test_traceback_after_the_command_shows_the_whole_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "cosine(lr=-1, steps=10)"]) == 2  # one line without it
    capsys.readouterr()
    assert main(["show", "cosine(lr=-1, steps=10)", "--traceback"]) == 2  # the same status, whole
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):") and "lr must be >= 0" in err
    assert main(["show", "cosine(lr=1, steps=10)", "--at", "5", "--traceback", "--traceback"]) == 0
    assert "0.5" in capsys.readouterr().out


def test_show_takes_steps_as_another_name_for_at(capsys: pytest.CaptureFixture[str]) -> None:
    """``lrkit show SPEC --steps 0,5`` (what people type for 'at these steps'; it was taken for
    --steps-per-epoch by prefix, then refused as a flag cut short) shows the LR at those steps."""
    assert main(["show", "cosine(lr=1, steps=10)", "--steps", "0,5"]) == 0
    assert capsys.readouterr().out.splitlines()[-2:] == ["   0  1", "   5  0.5"]
