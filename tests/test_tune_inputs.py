"""``lrkit tune``'s study name: one a database cannot hold is refused by name before anything runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("optuna")
pytest.importorskip("torch")

from lrkit._usercode import UserCodeError


def test_a_study_name_longer_than_a_database_takes_is_refused_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """PostgreSQL holds study names of at most 512 characters: a longer one ended in Optuna's
    StorageInternalError traceback there (after the task was built), and SQLite took it, so a study
    could not move to a server."""
    from lrkit.cli import main
    from lrkit.tune import tune

    db = tmp_path / "t.db"
    long = "x" * 513
    with pytest.raises(ValueError, match=r"study_name must be at most 512 characters .*got 513: 'xxx"):
        tune("digits-mlp-sgd", trials=1, storage=db, study_name=long, finder=False, epochs=1)
    argv = ["tune", "--task", "digits-mlp-sgd", "--trials", "1", "--no-finder", "--epochs", "1"]
    assert main([*argv, "--storage", str(db), "--study", long, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "--study must be at most 512 characters" in err and len(err.strip().splitlines()) == 1
    assert not db.exists() and not (tmp_path / "out").exists()
    res = tune("digits-mlp-sgd", trials=1, storage=db, study_name="y" * 512, finder=False, epochs=1)
    assert res.study_name == "y" * 512 and res.finished == 1  # 512 is taken


def test_a_storage_url_that_does_not_parse_or_lacks_its_driver_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """These used to print Python's own words with no flag: "invalid literal for int() with base 10:
    'notaport'", "No module named 'pg8000'"."""
    import importlib.util

    from lrkit.cli import main
    from lrkit.tune import open_storage

    cases = [("postgresql://u:secret@db:notaport/x", "the URL does not parse (invalid literal")]
    if importlib.util.find_spec("pg8000") is None:
        cases.append(
            ("postgresql+pg8000://u:secret@db/x", "its driver is not installed (No module named 'pg8000')")
        )
    argv = ["tune", "--task", "digits-mlp-sgd", "--trials", "1", "--no-report", "--storage"]
    for url, why in cases:
        masked = url.replace("secret", "***")
        with pytest.raises(ValueError) as info:
            open_storage(url)
        api = masked.replace("postgresql://", "postgresql+psycopg2://")  # the API names the driver it chose
        assert str(info.value).startswith(
            (f"storage: cannot open {masked!r}: {why}", f"storage: cannot open {api!r}: {why}")
        ), info.value
        assert main([*argv, url]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"lrkit tune: error: --storage: cannot open {masked!r}: {why}"), err
        assert len(err.strip().splitlines()) == 1 and "secret" not in err


def test_a_study_resumed_with_its_kinds_in_another_order_is_the_same_study(tmp_path: Path) -> None:
    """--kinds wsd,cosine on a study started with --kinds cosine,wsd was refused as another search."""
    from lrkit.tune import tune

    kwargs = {"storage": tmp_path / "k.db", "finder": False, "epochs": 1, "trials": 1}
    first = tune("digits-mlp-sgd", kinds=["cosine", "wsd"], **kwargs)
    said: list[str] = []
    again = tune("digits-mlp-sgd", kinds="wsd,cosine", progress=said.append, **kwargs)
    assert again.best_spec == first.best_spec and again.space.kinds == ("cosine", "wsd")
    assert any("nothing to run" in line for line in said)
    with pytest.raises(ValueError, match=r"searches kinds \['cosine', 'wsd'\], not \['wsd'\]"):
        tune("digits-mlp-sgd", kinds=["wsd"], **kwargs)


BATCH_TASK = """
import os

import torch
from torch.utils.data import DataLoader, TensorDataset

from lrkit.tasks import TaskParts


def blobs(seed):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 4, generator=g)
    y = (x[:, 0] > 0).long()
    data = TensorDataset(x, y)
    batch = int(os.environ["BATCH_TASK_SIZE"])
    train, val = DataLoader(data, batch_size=batch), DataLoader(data, batch_size=96)
    return TaskParts(torch.nn.Linear(4, 2), train, val, torch.nn.functional.cross_entropy,
                     metric="accuracy", epochs=1, optimizer="sgd")
"""


def test_a_study_resumed_after_the_task_changed_its_batches_per_epoch_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch size is part of the problem (its best LR with it): a study of batches of 32 went on
    with batches of 8, mixing the two in one search and one 'best'."""
    import sys

    from lrkit.tune import tune

    (tmp_path / "batch_task.py").write_text(BATCH_TASK)
    monkeypatch.syspath_prepend(str(tmp_path))
    kwargs = {"storage": tmp_path / "b.db", "finder": False, "trials": 1, "lr_range": (0.01, 0.1)}
    try:
        monkeypatch.setenv("BATCH_TASK_SIZE", "32")
        tune("batch_task:blobs", **kwargs)
        monkeypatch.setenv("BATCH_TASK_SIZE", "8")
        with pytest.raises(ValueError, match=r"was started with steps_per_epoch=3, not 12; give the same"):
            tune("batch_task:blobs", **kwargs)
    finally:
        sys.modules.pop("batch_task", None)


def test_the_api_names_its_storage_argument_and_the_cli_its_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad storage given to ``tune(storage=...)`` or ``open_storage`` named the command line's
    ``--storage``, a flag a Python caller never typed."""
    from lrkit.cli import main
    from lrkit.tune import open_storage, storage_url, tune

    foreign = tmp_path / "notes.txt"
    foreign.write_text("mine")
    cases = {
        str(tmp_path): "is a directory",
        str(foreign): "exists and is not an SQLite database",
        f"sqlite:///{foreign}": "exists and is not an SQLite database",
    }
    for storage, why in cases.items():
        for call in (
            lambda s=storage: storage_url(s),
            lambda s=storage: open_storage(s),
            lambda s=storage: tune("digits-mlp-sgd", trials=1, storage=s, finder=False, epochs=1),
        ):
            with pytest.raises(ValueError) as info:
                call()
            assert str(info.value).startswith("storage: ") and why in str(info.value), info.value
        argv = ["tune", "--task", "digits-mlp-sgd", "--trials", "1", "--no-report", "--storage", storage]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("lrkit tune: error: --storage: ") and why in err, err
    assert foreign.read_text() == "mine"
    with pytest.raises(TypeError, match=r"^storage must be a path or a URL string, got int"):
        storage_url(3)  # type: ignore[arg-type]


def test_a_trial_whose_code_raised_is_told_once_without_optunas_traceback(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Optuna logged its own "Trial 0 failed with parameters ... because of ..." with the whole chained
    traceback (~35 lines) and "Trial 0 failed with value None." before lrkit's one error."""
    import dataclasses
    import logging

    import torch

    from lrkit.cli import main
    from lrkit.tasks import Task, get_task
    from lrkit.tune import tune

    class Broken(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("out of memory (from the user's model)")

    def broken(seed: int) -> Any:
        levels.append(optuna.logging.get_verbosity())  # while tune runs
        parts = get_task("digits-mlp-sgd").build(seed)
        return dataclasses.replace(parts, model=Broken(parts.model))

    class Said(logging.Handler):  # what Optuna's own handler (on the "optuna" logger) is given
        def emit(self, record: logging.LogRecord) -> None:
            said.append(record.getMessage())

    import optuna

    levels: list[int] = []
    said: list[str] = []
    handler = Said()
    logging.getLogger("optuna").addHandler(handler)
    argv = ["tune", "--task", "tests.test_tune_inputs:_broken_task", "--trials", "2", "--epochs", "1"]
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.INFO)
    try:
        with pytest.raises(UserCodeError, match=r"trial 0: .* raised RuntimeError: out of memory"):
            tune(Task("broken", broken), trials=2, storage=tmp_path / "a.db", finder=False, epochs=1)
        assert not logging.getLogger("optuna.study._optimize").filters  # only while tune runs
        out = tmp_path / "o"
        assert main([*argv, "--no-finder", "--storage", str(tmp_path / "b.db"), "--out", str(out)]) == 1
    finally:
        logging.getLogger("optuna").removeHandler(handler)
        optuna.logging.set_verbosity(level)
    # Optuna's two "Trial 0 failed ..." lines are WARNINGs, which its level during the call lets through:
    # lrkit's filter is what drops them
    assert levels and max(levels) <= optuna.logging.WARNING
    assert not [m for m in said if "failed" in m], said
    err = capfd.readouterr().err  # lrkit's own line, then the traceback of the user's code alone
    assert err.startswith("lrkit tune: error: task 'tests.test_tune_inputs:_broken_task' (trial 0: ") and (
        err.count("Traceback") == 1 and "optuna" not in err
    ), err


def _broken_task(seed: int) -> Any:
    """digits-mlp-sgd whose loss raises: a user's task that fails in its first trial."""
    import dataclasses

    from lrkit.tasks import get_task

    parts = get_task("digits-mlp-sgd").build(seed)
    calls = [0]

    def loss(*args: Any) -> Any:  # the batch lrkit checks a task with passes; the fifth raises
        calls[0] += 1
        if calls[0] >= 5:
            raise ValueError("shapes do not match (from the user's loss)")
        return parts.loss_fn(*args)

    return dataclasses.replace(parts, loss_fn=loss)


def test_a_worker_whose_code_raised_says_it_in_lrkits_words(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A worker process of ``--workers 2`` whose trial raised printed multiprocessing's "Process
    lrkit-tune-1:" and ~50 lines of traceback through lrkit and Optuna."""
    from lrkit.cli import main

    argv = ["tune", "--task", "tests.test_tune_inputs:_broken_task", "--trials", "4", "--epochs", "1"]
    argv += [
        "--workers",
        "2",
        "--no-finder",
        "--storage",
        str(tmp_path / "w.db"),
        "--out",
        str(tmp_path / "o"),
    ]
    assert main(argv) == 1
    err = capfd.readouterr().err
    assert "lrkit tune: error: worker 1: task 'tests.test_tune_inputs:_broken_task' (trial " in err, err
    assert "Process lrkit-tune" not in err and "optuna" not in err and err.count("Traceback") == 2, err


def test_help_names_the_built_in_tasks_and_every_default() -> None:
    """``lrkit tune --help`` lists the built-in tasks (as find's and auto's do) and the defaults of the
    heartbeat, grace and retry flags (10 s, 60 s, 3 retries), which it left out."""
    import argparse

    from lrkit.tasks import TASKS
    from lrkit.tune.cli import register

    parser = argparse.ArgumentParser(prog="lrkit")
    text = " ".join(register(parser.add_subparsers()).format_help().split())
    assert all(name in text for name in TASKS), text
    for flag, default in (("--heartbeat S", 10), ("--grace S", 60), ("--max-retry N", 3)):
        i = text.index(f"{flag} ")  # the flag's own line, not the usage
        assert f"(default {default})" in text[i : text.index("--", i + len(flag))], flag


@pytest.mark.parametrize(
    ("complete", "pruned", "words"), [(1, 0, "1 finished trial ("), (2, 1, "3 finished trials (")]
)
def test_the_summary_counts_finished_trials_in_words(complete: int, pruned: int, words: str) -> None:
    """One finished trial is "1 finished trial", not "1 finished trials" (a one-trial study, a --timeout
    that let one finish)."""
    from lrkit.tune.core import TuneResult
    from lrkit.tune.space import SearchSpace

    res = TuneResult(
        task="digits-mlp-sgd", study_name="s", storage="sqlite:///s.db", direction="maximize",
        metric_name="val accuracy", epochs=2, optimizer=None, space=SearchSpace(),
        best_spec="constant(lr=0.05)", best_value=0.9, best_trial=0, best_params={},
        complete=complete, pruned=pruned, failed=0,
    )  # fmt: skip
    assert f": {words}{complete} complete, {pruned} pruned, 0 failed)" in str(res)


def test_the_largest_seed_works_for_every_worker(tmp_path: Path, one_torch_thread: None) -> None:
    """Worker j's sampler is seeded (seed + 7919 j) mod 2**32: with ``--seed 4294967295`` (the largest the
    command line takes) the second machine's worker failed with numpy's "Seed must be between 0 and
    2**32 - 1"."""
    import optuna

    from lrkit.tune import tune

    seeds: list[int] = []
    real = optuna.samplers.TPESampler

    def recording(**kwargs: Any) -> Any:
        seeds.append(kwargs["seed"])
        return real(**kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(optuna.samplers, "TPESampler", recording)
        res = tune(
            "digits-mlp-sgd",
            trials=1,
            epochs=1,
            finder=False,
            seed=2**32 - 1,
            worker=1,
            storage=tmp_path / "s.db",
        )
    assert res.finished == 1
    assert seeds == [(2**32 - 1 + 7919) % 2**32] == [7918]
