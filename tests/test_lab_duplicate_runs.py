"""Two strategies that are one run (one run key for a seed) are refused before anything is written: the
lab used to stop in store.experiment() with sqlite3's 'UNIQUE constraint failed: members...' traceback,
status 1, leaving lab.db behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from lrkit.cli import main
from lrkit.lab import runner
from lrkit.lab.runner import Strategy, run_config, run_lab, run_strategy
from lrkit.tasks import Task, TaskParts, get_task

TASK = "digits-mlp-sgd"  # trained with momentum


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def _same_run(a: str, b: str, spec: str, optimizer: str = "momentum") -> str:
    return (
        f"strategies {a!r} and {b!r} are the same run (spec {spec!r}, optimizer {optimizer!r}, "
        "optimizer_params {}); give one of them another spec or optimizer, or leave it out"
    )


@pytest.mark.parametrize(
    "second",
    [
        "b=cosine(lr=0.05)",  # the same text under another label
        "b=cosine(0.05)",  # the same spec, normalised
        "b@momentum=cosine(lr=0.05)",  # the task's own optimizer, named
    ],
)
def test_the_command_line_refuses_two_strategies_that_are_one_run(
    second: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["lab", "--task", TASK, "--epochs", "1", "--out", "dup", "--strategy", "a=cosine(lr=0.05)"]
    rc = main([*argv, "--strategy", second])
    out, err = capsys.readouterr()
    assert rc == 2
    assert out == ""  # before the first line of output
    assert err == f"lrkit lab: error: --strategy: {_same_run('a', 'b', 'cosine(lr=0.05)')}\n"
    assert not (tmp_path / "dup").exists() and not (tmp_path / "dup" / "lab.db").exists()


@pytest.mark.parametrize(
    "strategies",
    [
        "  a: constant(0.05)\n  b: constant(lr=0.05)\n",
        "  a: constant(0.05)\n  b: {spec: {type: constant, lr: 0.05}}\n",  # a string beside a mapping
        "  a: constant(0.05)\n  b: {spec: constant(0.05), optimizer: momentum}\n",
    ],
)
def test_an_experiment_file_with_two_strategies_that_are_one_run_is_refused(
    strategies: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text(f"task: {TASK}\nepochs: 1\noutput: dup\nstrategies:\n{strategies}", encoding="utf-8")
    rc = main(["lab", str(path)])
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    assert err == f"lrkit lab: error: experiment: {_same_run('a', 'b', 'constant(lr=0.05)')}\n"
    assert not (tmp_path / "dup").exists()


def test_run_lab_raises_before_the_database_exists(tmp_path: Path) -> None:
    db = tmp_path / "lab.db"
    strategies = [
        Strategy("a", "cosine(lr=0.05)"),
        Strategy("c", "constant(0.1)"),
        Strategy("b", "cosine(0.05)"),
    ]
    with pytest.raises(ValueError) as info:
        run_lab(TASK, strategies, epochs=1, store=str(db))
    assert str(info.value) == f"strategies: {_same_run('a', 'b', 'cosine(lr=0.05)')}"
    assert not db.exists()


def test_run_lab_refuses_a_seed_given_twice(tmp_path: Path) -> None:
    db = tmp_path / "lab.db"
    with pytest.raises(ValueError, match=r"^seeds must be distinct, got \[0, 1, 0\]$"):
        run_lab(TASK, [Strategy("a", "constant(0.05)")], seeds=[0, 1, 0], epochs=1, store=str(db))
    assert not db.exists()


def _adamw_task(seed: int) -> TaskParts:
    """digits-mlp-sgd trained with AdamW at weight decay 0.5 (a task with hyper-parameters of its own)."""
    parts = get_task(TASK).build(seed)
    parts.optimizer, parts.optimizer_params = "adamw", {"weight_decay": 0.5}
    return parts


def test_the_tasks_optimizer_named_without_its_hyper_parameters_is_another_run() -> None:
    """On a task trained with AdamW at weight decay 0.5, 'b@adamw' trains at torch's 0.01: another run
    (the run key used to leave the task's hyper-parameters out, so both had one key)."""
    task = Task("adamw-task", _adamw_task)
    a, b = Strategy("a", "constant(1e-3)"), Strategy("b", "constant(1e-3)", "adamw")
    assert runner.optimizer_of(a, "adamw", {"weight_decay": 0.5}) == ("adamw", {"weight_decay": 0.5})
    assert runner.optimizer_of(b, "adamw", {"weight_decay": 0.5}) == ("adamw", {})
    result = run_lab(task, [a, b], epochs=1)
    assert result.labels() == ["a", "b"]
    assert [r.config["optimizer_params"] for r in result.runs] == [{"weight_decay": 0.5}, {}]
    assert result.runs[0].losses != result.runs[1].losses


def test_a_strategys_hyper_parameters_without_an_optimizer_apply_to_the_tasks() -> None:
    """optimizer_params without an optimizer go on top of the task's own (they used to be stored in the
    run's key and left out of the run)."""
    c = Strategy("c", "constant(1e-3)", None, {"betas": (0.8, 0.9)})
    assert runner.optimizer_of(c, "adamw", {"weight_decay": 0.5}) == (
        "adamw",
        {"weight_decay": 0.5, "betas": (0.8, 0.9)},
    )
    cfg = run_config("t", c, 0, 1, "adamw", 10.0, {"weight_decay": 0.5})
    assert cfg["optimizer_params"] == {"betas": (0.8, 0.9), "weight_decay": 0.5}
    task = Task("adamw-task", _adamw_task)
    with_betas = run_strategy(task, c, epochs=1)
    without = run_strategy(task, Strategy("a", "constant(1e-3)"), epochs=1)
    assert with_betas.losses[0] == without.losses[0] and with_betas.losses[1:] != without.losses[1:]
