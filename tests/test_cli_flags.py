"""Flags of ``lrkit find``, ``auto``, ``tune``, ``lab``, ``report``, ``scale`` and ``show``, class by class:
a bad value is refused before any work with one ``lrkit CMD: error:`` line that names the flag (not the
library's parameter) and the value; a flag that would be ignored is refused, not dropped.

Every refusal test swaps the work (building a task, training, tuning, running a lab) for a tripwire, so
a check that moved after the work fails the test instead of slowing it down.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from lrkit.cli import main

from .test_cli_inputs import assert_one_error, invoke


class WorkStarted(BaseException):  # not an Exception: nothing in lrkit may catch it
    """Raised by the tripwires: a refusal came after the work had started."""


def _tripwire(*args: Any, **kwargs: Any) -> Any:
    raise WorkStarted("the work started before the flags were checked")


@pytest.fixture
def no_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Building a task, finding, training, tuning or running a lab raises WorkStarted; the current
    directory is an empty ``tmp_path`` (nothing may be written there)."""
    import lrkit.auto
    import lrkit.finder
    import lrkit.lab.cli
    import lrkit.tasks.base
    import lrkit.tune.core

    monkeypatch.setattr(lrkit.tasks.base.Task, "build", _tripwire)
    monkeypatch.setattr(lrkit.finder, "find_lr", _tripwire)
    monkeypatch.setattr(lrkit.auto, "train_task", _tripwire)
    monkeypatch.setattr(lrkit.tune.core, "tune", _tripwire)
    monkeypatch.setattr(lrkit.lab.cli, "run_and_report", _tripwire)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def refused(capsys: pytest.CaptureFixture[str], argv: list[str], *words: str) -> str:
    """``argv`` exits 2 with one error line holding ``words``; returns the line."""
    code, out, err = invoke(capsys, argv)
    line = assert_one_error(code, out, err, *words)
    assert code == 2, (code, err)
    return line


# ---------------------------------------------------------------------------------------------------
# lrkit find: every numeric flag under its own name, checked before anything is built

FIND = ["find", "--task", "digits-mlp-sgd", "--num-steps", "20", "--repeats", "1", "--out", "none"]

FIND_NUMBERS = [
    ("--start-lr", "-1"),
    ("--start-lr", "0"),
    ("--start-lr", "nan"),
    ("--end-lr", "inf"),
    ("--end-lr", "-3"),
    ("--num-steps", "0"),
    ("--num-steps", "1"),
    ("--smoothing", "1"),
    ("--smoothing", "-0.1"),
    ("--smoothing", "nan"),
    ("--repeats", "0"),
    ("--accumulation-steps", "0"),
    ("--seed", "-1"),
    ("--max-grad-norm", "-1"),
    ("--max-grad-norm", "0"),
    ("--max-grad-norm", "inf"),
    ("--epochs", "0"),
    ("--budget", "0"),
    ("--budget", "2.5"),
    ("--budget", "inf"),
    ("--budget", "nan"),
]


@pytest.mark.parametrize(("flag", "value"), FIND_NUMBERS, ids=[f"{f}={v}" for f, v in FIND_NUMBERS])
def test_find_names_the_flag_of_a_bad_number(
    no_work: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str
) -> None:
    line = refused(capsys, [*FIND, flag, value], flag)
    internal = flag.removeprefix("--").replace("-", "_")
    assert f" {internal} " not in line and f"{internal}=" not in line, line  # no library name
    assert value in line or value.lower() in line.lower() or str(float(value)) in line, line


def test_find_end_lr_below_start_lr_names_both_flags(
    no_work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    refused(capsys, [*FIND, "--start-lr", "1", "--end-lr", "0.1"], "--end-lr", "--start-lr", "0.1")


MODEL_ONLY = [
    ("--loss", "bogus"),
    ("--loss", "mse"),
    ("--momentum", "0"),
    ("--momentum", "0.5"),
    ("--weight-decay", "0"),
    ("--weight-decay", "0.1"),
    ("--data", "mod:data"),
]


def test_find_with_a_task_replaces_its_optimizer_by_name(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--optimizer`` with ``--task`` was refused ("goes with --model"), while lrkit lab, tune and auto
    take it: it replaces the task's optimizer, with torch's defaults; a bad or LR-free name is refused."""
    import lrkit.finder

    seen: list[str] = []

    def fake_find_lr(model: Any, opt: Any, loader: Any, loss_fn: Any, **options: Any) -> Any:
        seen.append(type(opt).__name__)
        result = SimpleNamespace(suggestion=0.1)
        result.phrased_for = lambda settings: result
        return result

    monkeypatch.setattr(lrkit.finder, "find_lr", fake_find_lr)
    for given, built in (
        ([], "SGD"),
        (["--optimizer", "adam"], "Adam"),
        (["--optimizer", "rmsprop"], "RMSprop"),
    ):
        code, _, err = invoke(capsys, [*FIND, *given])
        assert code == 0 and seen[-1] == built, (given, seen, err)
    refused(capsys, [*FIND, "--optimizer", "bogus"], "--optimizer", "bogus")
    refused(capsys, [*FIND, "--optimizer", "prodigy"], "--optimizer prodigy")


@pytest.mark.parametrize(("flag", "value"), MODEL_ONLY, ids=[f"{f}={v}" for f, v in MODEL_ONLY])
def test_find_refuses_model_flags_with_a_task(
    no_work: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str
) -> None:
    """A task brings its own optimizer and loss: these flags would be silently ignored."""
    refused(capsys, [*FIND, flag, value], flag, "--model", "--task")


BAD_MODEL_FLAGS = [
    (["--momentum", "-1"], "--momentum"),
    (["--momentum", "nan"], "--momentum"),
    (["--weight-decay", "-1"], "--weight-decay"),
    (["--weight-decay", "inf"], "--weight-decay"),
    (["--optimizer", "bogus"], "--optimizer"),
    (["--optimizer", "adam", "--momentum", "0.5"], "--momentum"),  # adam has no momentum to set
    (["--loss", "bogus"], "--loss"),
    (["--start-lr", "-1"], "--start-lr"),
]


@pytest.mark.parametrize(("rest", "flag"), BAD_MODEL_FLAGS, ids=[" ".join(r) for r, _ in BAD_MODEL_FLAGS])
def test_find_with_model_names_the_flag_before_your_code_runs(
    no_work: Path, capsys: pytest.CaptureFixture[str], rest: list[str], flag: str
) -> None:
    """The model and data modules do not exist: a check made after loading them would report that."""
    absent = f"lrkit_absent_{uuid.uuid4().hex[:8]}"
    argv = ["find", "--model", f"{absent}:model", "--data", f"{absent}:data", "--num-steps", "20"]
    line = refused(capsys, [*argv, "--repeats", "1", "--out", "none", *rest], flag, rest[-1])
    assert absent not in line and "Invalid" not in line, line  # neither the import nor torch's message


@pytest.fixture
def setup_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module with ``model()`` and ``data()``; find_lr is replaced by a recorder of its arguments."""
    pytest.importorskip("torch")
    name = f"lrkit_flags_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            """
            import torch

            def model():
                return torch.nn.Linear(3, 2)

            def data():
                return [(torch.randn(4, 3), torch.tensor([0, 1, 0, 1]))] * 4
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


@pytest.mark.parametrize(
    ("rest", "cls", "momentum", "weight_decay", "loss"),
    [
        ([], "SGD", 0.9, 0.0, "cross_entropy"),  # the defaults for --model
        (["--momentum", "0.5", "--weight-decay", "0.01"], "SGD", 0.5, 0.01, "cross_entropy"),
        (["--optimizer", "adamw", "--weight-decay", "0.1", "--loss", "nll"], "AdamW", None, 0.1, "nll_loss"),
    ],
)
def test_find_with_model_uses_the_given_flags_or_the_defaults(
    setup_module: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    rest: list[str],
    cls: str,
    momentum: float | None,
    weight_decay: float,
    loss: str,
) -> None:
    import lrkit.finder

    seen: dict[str, Any] = {}

    def fake_find_lr(model: Any, opt: Any, loader: Any, loss_fn: Any, **options: Any) -> Any:
        seen.update(opt=opt, loss_fn=loss_fn)
        result = SimpleNamespace(suggestion=0.1)
        result.phrased_for = lambda settings: result  # the CLI words the advice for its flags
        return result

    monkeypatch.setattr(lrkit.finder, "find_lr", fake_find_lr)
    argv = ["find", "--model", f"{setup_module}:model", "--data", f"{setup_module}:data", "--out", "none"]
    code, _, err = invoke(capsys, [*argv, *rest])
    assert code == 0, err
    group = seen["opt"].param_groups[0]
    assert type(seen["opt"]).__name__ == cls
    assert group["weight_decay"] == weight_decay
    if momentum is not None:
        assert group["momentum"] == momentum
    name = getattr(seen["loss_fn"], "__name__", "")
    assert name == loss or name == loss.removesuffix("_loss"), name


# ---------------------------------------------------------------------------------------------------
# --task names: find, auto, lab and tune say --task

TASK_COMMANDS = {
    "find": ["find", "--num-steps", "20", "--repeats", "1", "--out", "none", "--task"],
    "auto": ["auto", "--task"],
    "lab": ["lab", "--strategy", "constant(0.1)", "--task"],
    "tune": ["tune", "--trials", "1", "--no-report", "--task"],
}
BAD_TASKS = ["nosuch", "digits-mlp", "a:b:c", ":f", "mod:"]


@pytest.mark.parametrize("name", BAD_TASKS)
@pytest.mark.parametrize("command", list(TASK_COMMANDS))
def test_unknown_task_names_the_task_flag(
    no_work: Path, capsys: pytest.CaptureFixture[str], command: str, name: str
) -> None:
    line = refused(capsys, [*TASK_COMMANDS[command], name], "--task", repr(name), "digits-mlp-sgd")
    assert "task must be one of" not in line.replace("--task", ""), line
    assert list(no_work.iterdir()) == []


# ---------------------------------------------------------------------------------------------------
# lrkit auto

AUTO_BAD = [
    (["--seed", "-1"], "--seed"),
    (["--optimizer", "prodigy"], "--optimizer"),
    (["--optimizer", "bogus"], "--optimizer"),
    (["--epochs", "0"], "--epochs"),
    *[(["--budget", v], "--budget") for v in ("0", "-1", "2.5", "inf", "nan")],
]


@pytest.mark.parametrize(("rest", "flag"), AUTO_BAD, ids=[" ".join(r) for r, _ in AUTO_BAD])
def test_auto_names_the_flag_before_training(
    no_work: Path, capsys: pytest.CaptureFixture[str], rest: list[str], flag: str
) -> None:
    refused(capsys, ["auto", "--task", "digits-mlp-sgd", *rest], flag, rest[-1])


# ---------------------------------------------------------------------------------------------------
# lrkit tune

TUNE = ["tune", "--task", "digits-mlp-sgd", "--trials", "2", "--no-report"]
TUNE_BAD = [
    (["--kinds", "cosine,bogus"], "--kinds", "bogus"),
    (["--kinds", "cosine,cosine"], "--kinds", "cosine,cosine"),
    (["--kinds", ","], "--kinds", "','"),
    (["--lr-range", "1", "0.1"], "--lr-range", "0.1"),
    (["--lr-range", "0", "1"], "--lr-range", "'0'"),
    (["--lr-range", "1e-3", "inf"], "--lr-range", "inf"),
    (["--optimizer", "bogus"], "--optimizer", "bogus"),
    (["--optimizer", "prodigy"], "--optimizer", "own step size"),
    (["--storage", "mysql://user:secret@host/db"], "--storage", "postgresql://"),
    (["--storage", "redis://host/0"], "--storage", "SQLite"),
    (["--storage", "sqlite://relative.db"], "--storage", "three slashes"),
    (["--storage", ""], "--storage", "''"),
    (["--heartbeat", "10", "--grace", "5"], "--grace", "--heartbeat"),
    (["--study", " "], "--study", "' '"),
]


@pytest.mark.parametrize(
    ("rest", "flag", "word"), TUNE_BAD, ids=[" ".join(r) or "''" for r, _, _ in TUNE_BAD]
)
def test_tune_names_the_flag_before_tuning(
    no_work: Path, capsys: pytest.CaptureFixture[str], rest: list[str], flag: str, word: str
) -> None:
    pytest.importorskip("optuna")
    line = refused(capsys, [*TUNE, *rest], flag, word)
    assert "secret" not in line  # a password is never printed
    assert list(no_work.iterdir()) == []  # no study file


def test_tune_refuses_an_unreachable_postgres_server_naming_storage(
    no_work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("optuna")
    if not any(_importable(m) for m in ("psycopg2", "psycopg")):
        pytest.skip("no PostgreSQL driver")
    url = "postgresql://user:secret@127.0.0.1:1/db"  # port 1: nothing listens, refused at once
    line = refused(capsys, [*TUNE, "--storage", url], "--storage", "cannot open", "127.0.0.1")
    assert "secret" not in line and not line.split("error: ", 1)[1].startswith("storage")


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


# ---------------------------------------------------------------------------------------------------
# lrkit lab --strategy and experiment files; lrkit report --experiment

LAB_BAD = [
    ("=constant(0.1)", "LABEL"),
    (" =constant(0.1)", "LABEL"),
    ("a@=constant(0.1)", "no optimizer name after the last '@'"),
    ("a@ =constant(0.1)", "no optimizer name after the last '@'"),
    ("a@bogus=constant(0.1)", "bogus"),
    ("a=", "SPEC"),
    ("", "empty"),
    ("a=nosuch(1)", "nosuch"),
]


@pytest.mark.parametrize(("text", "word"), LAB_BAD, ids=[t or "''" for t, _ in LAB_BAD])
def test_lab_strategy_names_the_flag(
    no_work: Path, capsys: pytest.CaptureFixture[str], text: str, word: str
) -> None:
    line = refused(capsys, ["lab", "--epochs", "1", "--workers", "1", "--strategy", text], "--strategy", word)
    assert "strategy: label" not in line, line
    assert list(no_work.iterdir()) == []


def test_lab_strategy_with_an_optimizer_keeps_it() -> None:
    from lrkit.lab.runner import Strategy

    s = Strategy.parse("a @ adam = constant(1e-3)", "--strategy")
    assert (s.label, s.optimizer, s.spec) == ("a", "adam", "constant(lr=0.001)")
    plain = Strategy.parse("cosine(lr=0.1)", "--strategy", default_optimizer="momentum")
    assert (plain.label, plain.optimizer) == ("cosine(lr=0.1)", "momentum")


def test_experiment_file_refuses_an_empty_optimizer_after_at(
    no_work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("yaml")
    (no_work / "e.yaml").write_text("task: digits-mlp-sgd\nstrategies:\n  - 'a@=constant(0.1)'\n")
    refused(capsys, ["lab", str(no_work / "e.yaml")], "strategies[0]", "no optimizer name after the last '@'")


def _lab_db(folder: Path, experiments: int) -> Path:
    from lrkit.lab.store import ResultStore

    folder.mkdir()
    with ResultStore(folder / "lab.db") as store:
        for i in range(experiments):
            store.experiment(f"e{i}", "digits-mlp-sgd", "val accuracy", True, {"epochs": 1})
    return folder


@pytest.mark.parametrize("experiment", ["99", "0", "-1"])
def test_report_names_the_experiment_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], experiment: str
) -> None:
    folder = _lab_db(tmp_path / "lab", 2)
    line = refused(capsys, ["report", str(folder), "--experiment", experiment], "--experiment", experiment)
    assert "1, 2" in line and "experiment_id" not in line, line
    assert not [p.name for p in folder.iterdir() if not p.name.startswith("lab.db")]  # no report written


def test_report_of_an_empty_database_names_its_argument(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _lab_db(tmp_path / "lab", 0)
    line = refused(capsys, ["report", str(folder)], "DB_OR_DIR", "no experiment")
    assert "db_path" not in line


# ---------------------------------------------------------------------------------------------------
# lrkit scale --optimizer


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("bogus", ("'bogus'", "sgd", "adamw", "schedulefree_adamw")),
        ("lion", ("'lion'", "sgd")),
        ("", ("''",)),
        ("prodigy", ("'prodigy'", "own step size")),
        ("Prodigy", ("'Prodigy'", "own step size")),
    ],
)
def test_scale_refuses_optimizers_it_does_not_know(
    capsys: pytest.CaptureFixture[str], name: str, words: tuple[str, ...]
) -> None:
    argv = ["scale", "--lr", "1e-3", "--base-batch", "256", "--batch", "4096", "--optimizer", name]
    refused(capsys, argv, "--optimizer", *words)


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("sgd", "linear"),
        ("momentum", "linear"),
        ("nesterov", "linear"),
        ("adamw", "sqrt"),
        ("AdamW", "sqrt"),
        ("schedulefree_adamw", "sqrt"),
        ("rmsprop", "sqrt"),
        ("lamb", "sqrt"),
    ],
)
def test_scale_picks_the_rule_by_optimizer(capsys: pytest.CaptureFixture[str], name: str, rule: str) -> None:
    argv = ["scale", "--lr", "1e-3", "--base-batch", "256", "--batch", "4096", "--optimizer", name]
    code, out, err = invoke(capsys, argv)
    assert code == 0, err
    assert f"({rule} rule, x{16 if rule == 'linear' else 4})" in out, out


def test_scale_knows_every_optimizer_lrkit_trains_with() -> None:
    """Each name of lrkit.tasks.OPTIMIZERS gets a rule, or is refused as setting its own step size."""
    from lrkit.scaling import LR_FREE, OPTIMIZERS, scale_lr
    from lrkit.tasks.optimizers import OPTIMIZERS as TRAINED

    assert set(TRAINED) <= set(OPTIMIZERS) | set(LR_FREE)
    for name in TRAINED:
        if name in LR_FREE:
            with pytest.raises(ValueError, match="own step size"):
                scale_lr(1e-3, 32, 64, optimizer=name)
        else:
            assert scale_lr(1e-3, 32, 64, optimizer=name).rule in ("linear", "sqrt")


# ---------------------------------------------------------------------------------------------------
# lrkit show: which flag is missing; a schedule of known length needs no --total

SHOW_MISSING = [
    ("warmup(3ep) >> cosine(lr=0.1)", ["--total", "1000"], ["--steps-per-epoch"], ["--total"]),
    ("cosine(lr=0.1, steps=3ep)", ["--total", "1000"], ["--steps-per-epoch"], ["--total"]),
    ("cosine(lr=0.1)", ["--steps-per-epoch", "10"], ["--total"], ["--steps-per-epoch"]),
    ("warmup(3ep) >> cosine(lr=0.1)", ["--steps-per-epoch", "10"], ["--total"], ["--steps-per-epoch"]),
    ("warmup(3ep) >> cosine(lr=0.1)", [], ["--total", "--steps-per-epoch"], []),
    ("warmup(10%) >> cosine(lr=0.1, steps=100)", [], ["--total"], ["--steps-per-epoch"]),
]


@pytest.mark.parametrize(("spec", "rest", "asked", "not_asked"), SHOW_MISSING)
def test_show_asks_only_for_the_missing_flag(
    capsys: pytest.CaptureFixture[str], spec: str, rest: list[str], asked: list[str], not_asked: list[str]
) -> None:
    line = refused(capsys, ["show", spec, *rest], *asked)
    advice = line.split("; pass ", 1)[1]
    for flag in not_asked:
        assert flag not in advice, line


@pytest.mark.parametrize(
    ("spec", "total"),
    [
        ("cosine(lr=0.1, steps=100)", 100),
        ("warmup(100) >> cosine(lr=0.1, steps=900)", 1000),
        ("one_cycle(max_lr=0.1, steps=50)", 50),
    ],
)
def test_show_uses_the_schedules_own_length(
    capsys: pytest.CaptureFixture[str], spec: str, total: int
) -> None:
    import json

    code, out, err = invoke(capsys, ["show", spec])
    assert code == 0, err
    rows = out.splitlines()[2:]
    assert len(rows) == 11 and rows[0].split()[0] == "0" and rows[-1].split()[0] == str(total), out
    assert out == invoke(capsys, ["show", spec, "--total", str(total)])[1]  # as if --total were given
    code, out, err = invoke(capsys, ["show", spec, "--json"])
    assert code == 0 and json.loads(out)["total_steps"] == total


def test_show_of_an_endless_schedule_still_asks_for_total(capsys: pytest.CaptureFixture[str]) -> None:
    refused(capsys, ["show", "constant(0.1)"], "--total", "--at")


# ---------------------------------------------------------------------------------------------------
# lrkit with no command; a closed pipe


def test_no_command_prints_the_full_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = invoke(capsys, [])
    assert code == 2 and out == ""
    for command in ("show", "schedules", "scale", "lab", "report", "find", "auto", "tune"):
        assert f"\n    {command} " in err or f"\n    {command}\n" in err, err
    assert err.rstrip().splitlines()[-1].startswith("lrkit: error:")


class ClosedPipe:
    """A stdout whose reader has gone."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")


@pytest.mark.parametrize("argv", [["schedules"], ["recipes"], ["show", "cosine(lr=0.1)", "--total", "10"]])
def test_a_closed_pipe_ends_quietly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    code = main(argv)
    assert code == 1
    assert capsys.readouterr().err == ""


def test_a_closed_pipe_ends_quietly_in_a_real_process(tmp_path: Path) -> None:
    """`lrkit schedules | head -1`: the reader is gone before the first write."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys, lrkit.cli; sys.exit(lrkit.cli.main(['schedules']))"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert err == "" and proc.returncode == 1, (proc.returncode, err)


# ---------------------------------------------------------------------------------------------------
# grammar: 1 strategy, 1 seed, 1 epoch


@pytest.mark.parametrize(
    ("rest", "words"),
    [
        ([], "1 strategy x 1 seed x 1 epoch on digits-mlp-sgd, 1 worker"),
        (["--strategy", "b=constant(0.2)", "--seeds", "2"], "2 strategies x 2 seeds x 1 epoch"),
    ],
)
def test_lab_counts_in_the_singular_and_plural(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    rest: list[str],
    words: str,
) -> None:
    import lrkit.lab.cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(lrkit.lab.cli, "run_and_report", lambda *a, **k: 0)
    argv = ["lab", "--strategy", "a=constant(0.1)", "--epochs", "1", "--workers", "1", *rest]
    code, out, err = invoke(capsys, argv)
    assert code == 0, err
    assert words in out, out


@pytest.mark.parametrize(
    ("epochs", "events", "words"),
    [(1, 1, ("1 epoch)", "1 guard rollback)")), (3, 0, ("3 epochs)", "0 guard rollbacks)"))],
)
def test_auto_counts_in_the_singular_and_plural(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    epochs: int,
    events: int,
    words: tuple[str, ...],
) -> None:
    pytest.importorskip("torch")
    import lrkit.auto

    def train(parts: Any, **kwargs: Any) -> dict[str, Any]:
        return {
            "optimizer": "momentum",
            "epochs": epochs,
            "metric": 0.5,
            "train_steps": 10,
            "compute": 1.0,
        } | {"events": events}

    monkeypatch.setattr(lrkit.auto, "train_task", train)
    code, out, err = invoke(capsys, ["auto", "--task", "digits-mlp-sgd"])
    assert code == 0, err
    for word in words:
        assert word in out, out


@pytest.mark.parametrize(
    ("seeds", "epochs", "words"), [(1, 1, "1 seed x 1 epoch"), (2, 3, "2 seeds x 3 epochs")]
)
def test_tune_report_counts_in_the_singular_and_plural(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    seeds: int,
    epochs: int,
    words: str,
) -> None:
    import lrkit.lab.cli
    from lrkit.tune.cli import _report

    monkeypatch.setattr(lrkit.lab.cli, "run_and_report", lambda *a, **k: 0)
    result = SimpleNamespace(
        space=SimpleNamespace(center=0.1, peak=0.1),
        best_spec="cosine(lr=0.1)",
        optimizer=None,
        optimizer_params={},
        study_name="s",
        epochs=epochs,
        train_seed=0,
        best_trial=3,
        metric_name="val accuracy",
        best_value=0.97,
    )
    args = argparse.Namespace(report_seeds=seeds, workers=1)
    from lrkit.tasks import get_task

    assert _report(result, get_task("digits-mlp-sgd"), tmp_path, tmp_path / "lab.db", args) == 0
    assert words in capsys.readouterr().out


@pytest.mark.parametrize(("value", "given"), [("0.05", 0.05), ("1", 1.0), ("30", 30)])
def test_auto_budget_is_a_fraction_or_a_number_of_steps_as_in_find(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], value: str, given: float | int
) -> None:
    """lrkit auto --budget as lrkit find's: a fraction (<= 1) of the planned steps, or whole steps (an
    int reaches lrkit.auto, which counts an int as steps); it used to refuse anything above 1."""
    pytest.importorskip("torch")
    import lrkit.auto

    seen: list[Any] = []

    def train(parts: Any, **kwargs: Any) -> dict[str, Any]:
        seen.append(kwargs["budget"])
        return {
            "optimizer": "momentum",
            "epochs": 1,
            "metric": 0.5,
            "train_steps": 10,
            "compute": 1.0,
            "events": 0,
        }

    monkeypatch.setattr(lrkit.auto, "train_task", train)
    code, _, err = invoke(capsys, ["auto", "--task", "digits-mlp-sgd", "--budget", value])
    assert code == 0, err
    assert seen == [given] and type(seen[0]) is type(given)


@pytest.mark.parametrize("spec", ["constant(0)", "linear(lr=0, steps=10)"])
def test_plot_on_a_log_scale_refuses_schedules_never_above_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], spec: str
) -> None:
    """An LR of 0 everywhere used to draw an empty log-scale plot without a word; beside another
    schedule it is drawn with a legend saying why it is not visible."""
    pytest.importorskip("matplotlib")
    out = tmp_path / "lr.png"
    refused(capsys, ["plot", spec, "--log", "--total", "50", "--out", str(out)], "--log", spec)
    assert not out.exists()
    code, _, err = invoke(
        capsys, ["plot", spec, "cosine(lr=0.1)", "--log", "--total", "50", "--out", str(out)]
    )
    assert code == 0 and out.exists(), err
    from lrkit.plot import plot_schedules

    fig = plot_schedules([spec, "cosine(lr=0.1)"], 50, log=True)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert labels == [f"{spec} (never > 0: nothing to draw on a log scale)", "cosine(lr=0.1)"]
