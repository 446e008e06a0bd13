"""``lrkit.tune.tune()`` from Python is as quiet as ``lrkit tune``: Optuna's INFO line per trial ("[I
2026-...] Trial 3 finished with value ...") and per study ("A new study created in RDB ...") are not
printed; Optuna's log level is lowered to WARNING during the call only, never raised above what the user
set, and given back afterwards, also when the call raises. ``progress=print`` says lrkit's own line per
trial instead."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

optuna = pytest.importorskip("optuna")
torch = pytest.importorskip("torch")

from lrkit.tasks import Task, TaskParts  # noqa: E402
from lrkit.tune import tune  # noqa: E402

#: Optuna's log level, read inside each call of the task's factory (while tune() runs)
SEEN: list[int] = []


def _blobs(seed: int) -> TaskParts:
    from torch.utils.data import DataLoader, TensorDataset

    SEEN.append(optuna.logging.get_verbosity())
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 4, generator=g)
    y = (x[:, 0] > 0).long()
    data = TensorDataset(x, y)
    return TaskParts(
        torch.nn.Linear(4, 2),
        DataLoader(data, batch_size=32),
        DataLoader(data, batch_size=96),
        torch.nn.functional.cross_entropy,
        metric="accuracy",
        epochs=1,
        optimizer="sgd",
    )


TASK = Task("blobs", _blobs)
KWARGS: dict[str, Any] = {"trials": 2, "finder": False, "lr_range": (0.01, 0.1), "epochs": 1}


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def optuna_log() -> Iterator[_Records]:
    """Every record Optuna's logger lets through; Optuna's level is given back afterwards."""
    level = optuna.logging.get_verbosity()
    handler = _Records()
    logger = logging.getLogger("optuna")
    logger.addHandler(handler)
    SEEN.clear()
    yield handler
    logger.removeHandler(handler)
    optuna.logging.set_verbosity(level)


def test_tune_prints_no_optuna_info_lines_and_gives_the_level_back(
    tmp_path: Path, optuna_log: _Records, capfd: pytest.CaptureFixture[str], one_torch_thread: None
) -> None:
    optuna.logging.set_verbosity(optuna.logging.INFO)  # Optuna's default
    said: list[str] = []
    res = tune(TASK, storage=tmp_path / "t.db", progress=said.append, **KWARGS)
    assert res.finished == 2
    infos = [r.getMessage() for r in optuna_log.records if r.levelno <= logging.INFO]
    assert infos == []
    err = capfd.readouterr().err
    assert "Trial 0 finished" not in err and "A new study created" not in err, err
    assert SEEN and set(SEEN) == {optuna.logging.WARNING}  # lowered while trials ran
    assert optuna.logging.get_verbosity() == optuna.logging.INFO  # and given back
    assert sum("trial " in line and "complete" in line for line in said) == 2  # lrkit's line per trial


def test_tune_keeps_a_quieter_level_the_user_set(
    tmp_path: Path, optuna_log: _Records, one_torch_thread: None
) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    tune(TASK, storage=tmp_path / "t.db", **KWARGS)
    assert SEEN and set(SEEN) == {optuna.logging.ERROR}  # not made louder (WARNING) during the call
    assert optuna.logging.get_verbosity() == optuna.logging.ERROR


def test_tune_gives_the_level_back_when_it_raises(
    tmp_path: Path, optuna_log: _Records, one_torch_thread: None
) -> None:
    db = tmp_path / "t.db"
    tune(TASK, storage=db, **KWARGS)
    optuna.logging.set_verbosity(optuna.logging.DEBUG)
    SEEN.clear()
    with pytest.raises(ValueError, match="epochs=1, not 2"):  # raised once the study is open
        tune(TASK, storage=db, **{**KWARGS, "epochs": 2})
    assert SEEN and set(SEEN) == {optuna.logging.WARNING}  # it raised while lowered
    assert optuna.logging.get_verbosity() == optuna.logging.DEBUG


def test_lrkit_tune_prints_its_own_line_per_trial_and_none_of_optunas(
    tmp_path: Path, optuna_log: _Records, capfd: pytest.CaptureFixture[str], one_torch_thread: None
) -> None:
    """The command line relies on the same mechanism; run in-process, it leaves Optuna's level as it was
    (it used to set WARNING for good)."""
    from lrkit.cli import main

    optuna.logging.set_verbosity(optuna.logging.INFO)
    argv = ["tune", "--task", f"{__name__}:_blobs", "--trials", "2", "--epochs", "1", "--no-finder"]
    argv += ["--lr-range", "0.01", "0.1", "--no-report", "--storage", str(tmp_path / "t.db")]
    assert main(argv) == 0
    out, err = capfd.readouterr()
    assert "[1/2] trial 0 complete" in out and "[2/2] trial 1 complete" in out, out
    assert "finished with value" not in out + err and "[I " not in err, err
    assert [r for r in optuna_log.records if r.levelno <= logging.INFO] == []
    assert optuna.logging.get_verbosity() == optuna.logging.INFO
