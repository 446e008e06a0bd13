"""An unknown experiment key or task function is named with the closest known name, as lrkit's other
'unknown' errors are: 'unknown key 'seed'; expected one of ... (did you mean 'seeds'?)'."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lrkit.lab.experiment import parse_experiment
from lrkit.tasks.base import load_factory

TOP = "name, task, epochs, seeds, workers, output, db, optimizer, strategies, diverge_factor"


@pytest.mark.parametrize(
    ("key", "hint"),
    [("seed", " (did you mean 'seeds'?)"), ("strategy", " (did you mean 'strategies'?)"), ("zzz", "")],
)
def test_an_unknown_experiment_key_names_the_closest_one(key: str, hint: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_experiment({"task": "digits-mlp-sgd", "strategies": ["constant(0.1)"], key: 3})
    assert str(info.value) == f"experiment: unknown key {key!r}; expected one of {TOP}{hint}"


def test_an_unknown_strategy_key_still_names_the_closest_one() -> None:
    with pytest.raises(ValueError, match=r"unknown key 'specs'; .* \(did you mean 'spec'\?\)$"):
        parse_experiment({"task": "digits-mlp-sgd", "strategies": [{"specs": "constant(0.1)"}]})


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = "lrkit_test_dym_tasks"
    (tmp_path / f"{name}.py").write_text(
        "def digits_cnnish(seed):\n    pass\n\n"
        "class Tasks:\n    @staticmethod\n    def digits(seed):\n        pass\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, name, raising=False)
    yield name
    sys.modules.pop(name, None)


@pytest.mark.parametrize(
    ("attr", "hint"),
    [
        ("digits_cnn", " (did you mean 'digits_cnnish'?)"),
        ("Tasks.digts", " (did you mean 'Tasks.digits'?)"),
        ("tasks.digits", " (did you mean 'Tasks'?)"),
        ("nothing_alike", ""),
    ],
)
def test_an_unknown_task_function_names_the_closest_one(module: str, attr: str, hint: str) -> None:
    with pytest.raises(ValueError) as info:
        load_factory(f"{module}:{attr}")
    assert str(info.value) == f"task '{module}:{attr}': module {module!r} has no attribute {attr!r}{hint}"


def test_the_command_line_says_it_too(module: str, capsys: pytest.CaptureFixture[str]) -> None:
    from lrkit.cli import main

    assert main(["lab", "--task", f"{module}:digits_cnn", "--strategy", "constant(0.1)"]) == 2
    err = capsys.readouterr().err
    assert err.endswith("has no attribute 'digits_cnn' (did you mean 'digits_cnnish'?)\n"), err
    assert err.count("\n") == 1
