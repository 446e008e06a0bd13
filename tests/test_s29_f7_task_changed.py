"""A lab refuses to reuse stored runs of a task edited since they were trained (a tester's finding: a run's
identity is the task's name, so after a narrower model or another batch size the edited task's runs were
skipped as "already in the database" and new seeds were averaged with old ones). The task's fingerprint
(batches per epoch, parameter count, a hash of the initial weights, the first training batch) is stored
with each run, outside its key: a database from before it keeps its keys and is reused as before."""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from lrkit.cli import main  # noqa: E402
from lrkit.lab.runner import Strategy, run_config, run_lab  # noqa: E402
from lrkit.lab.store import FINGERPRINT, ResultStore, run_key  # noqa: E402
from lrkit.tasks import Task, TaskParts  # noqa: E402
from lrkit.tasks.base import fingerprint_changes, task_fingerprint  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MODULE = """\
import torch, lrkit.tasks
WIDTH = {width}
def task(seed):
    g = torch.Generator().manual_seed(123)
    x = torch.randn(96, 8, generator=g); y = torch.randint(0, 3, (96,), generator=g)
    tr = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[:64], y[:64]), batch_size={batch},
                                     shuffle=True, generator=torch.Generator().manual_seed(seed))
    va = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[64:], y[64:]), batch_size=32)
    model = torch.nn.Sequential(torch.nn.Linear(8, WIDTH), torch.nn.ReLU(), torch.nn.Linear(WIDTH, 3))
    return lrkit.tasks.TaskParts(model, tr, va, torch.nn.functional.cross_entropy, epochs=1, optimizer="sgd")
"""


def _write(folder: Path, name: str, width: int, batch: int) -> None:
    (folder / f"{name}.py").write_text(MODULE.format(width=width, batch=batch), encoding="utf-8")
    sys.modules.pop(name, None)  # a new lrkit process imports the file anew; so does this one now


def _lab(out: Path, name: str, seeds: int, *extra: str) -> int:
    argv = ["lab", "--task", f"{name}:task", "--strategy", "a=cosine(lr=0.05)", "--seeds", str(seeds)]
    return main([*argv, "--workers", "1", "--out", str(out), *extra])


def _stored(db: Path) -> list[tuple[int, int]]:
    """``(seed, steps)`` of each stored run."""
    con = sqlite3.connect(db)
    try:
        return sorted(con.execute("SELECT seed, steps FROM runs").fetchall())
    finally:
        con.close()


def test_a_task_module_edited_between_two_labs_is_refused_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # an edit within one second is read anew
    name = f"f7_edited_{tmp_path.name.replace('-', '_')}"
    out = tmp_path / "out"
    _write(tmp_path, name, width=32, batch=8)
    assert _lab(out, name, 1) == 0
    assert _stored(out / "lab.db") == [(0, 8)]
    capsys.readouterr()

    _write(tmp_path, name, width=4, batch=32)  # a narrower model, a larger batch: another problem
    assert _lab(out, name, 2) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"lrkit lab: error: task '{name}:task' has changed since 1 stored run of this lab ")
    assert "batches per epoch 8 then, 2 now" in err
    assert "parameters 387 then, 51 now" in err
    assert "first training batch float32[8, 8], int64[8] then, float32[32, 8], int64[32] now" in err
    assert "--fresh" in err and "another --out or --db" in err
    assert _stored(out / "lab.db") == [(0, 8)]  # nothing trained, nothing mixed

    _write(tmp_path, name, width=32, batch=8)  # the task as it was: its run is reused, the new seed runs
    assert _lab(out, name, 2) == 0
    printed = capsys.readouterr()
    assert "(1 already in the database, skipped)" in printed.out
    assert "warning" not in printed.err
    assert _stored(out / "lab.db") == [(0, 8), (1, 8)]

    _write(tmp_path, name, width=4, batch=32)  # --fresh: the edited task's runs replace the old ones
    assert _lab(out, name, 2, "--fresh") == 0
    assert _stored(out / "lab.db") == [(0, 2), (1, 2)]


def _factory(shift: float = 0.0, width: int = 16) -> Callable[[int], TaskParts]:
    def factory(seed: int) -> TaskParts:
        g = torch.Generator().manual_seed(7)
        x, y = torch.randn(48, 6, generator=g) + shift, torch.randint(0, 3, (48,), generator=g)
        model = torch.nn.Sequential(torch.nn.Linear(6, width), torch.nn.Tanh(), torch.nn.Linear(width, 3))
        pairs = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 48, 16)]
        return TaskParts(
            model, pairs, pairs[:1], torch.nn.functional.cross_entropy, epochs=1, optimizer="sgd"
        )

    return factory


STRATEGY = [Strategy("c", "constant(0.1)")]


def test_other_data_of_the_same_shapes_is_a_change(tmp_path: Path) -> None:
    db = str(tmp_path / "lab.db")
    run_lab(Task("mine", _factory()), STRATEGY, store=db)
    with pytest.raises(ValueError) as err:
        run_lab(Task("mine", _factory(shift=1.0)), STRATEGY, seeds=[0, 1], store=db)
    assert "the first training batch's values differ (same shapes" in str(err.value)
    assert "parameters" not in str(err.value)
    assert _stored(Path(db)) == [(0, 3)]  # nothing trained
    with ResultStore(db) as store:
        assert len(store.experiments()) == 1  # refused before its experiment was written


def test_other_initial_weights_of_the_same_size_are_a_change(tmp_path: Path) -> None:
    def reinit(seed: int) -> TaskParts:
        parts = _factory()(seed)
        torch.nn.init.zeros_(parts.model[0].bias)
        return parts

    db = str(tmp_path / "lab.db")
    run_lab(Task("mine", _factory()), STRATEGY, store=db)
    with pytest.raises(ValueError, match=r"the initial weights \(seed 0\) differ, 163 parameters both"):
        run_lab(Task("mine", reinit), STRATEGY, store=db)


def test_the_run_key_is_unchanged_and_the_fingerprint_is_stored_beside_it(tmp_path: Path) -> None:
    task = Task("mine", _factory())
    result = run_lab(task, STRATEGY, store=str(tmp_path / "lab.db"))
    (run,) = result.runs
    assert run.key == run_key(run_config("mine", STRATEGY[0], 0, 1, "sgd"))  # as lrkit keyed it before
    assert run.config[FINGERPRINT] == task_fingerprint(task.build(0))
    assert set(run.config[FINGERPRINT]) == {
        *("epoch_steps", "parameters", "init", "batch", "batch_hash", "metric", "loss", "val_batch_hash")
    }


def test_a_run_stored_without_a_fingerprint_is_reused_with_a_warning(tmp_path: Path) -> None:
    db = tmp_path / "lab.db"
    run_lab(Task("mine", _factory()), STRATEGY, store=str(db))
    con = sqlite3.connect(db)  # as an lrkit before the fingerprint wrote it
    (config,) = con.execute("SELECT config FROM runs").fetchone()
    old = {k: v for k, v in json.loads(config).items() if k != FINGERPRINT}
    con.execute("UPDATE runs SET config = ?", (json.dumps(old, sort_keys=True),))
    con.commit()
    con.close()
    with pytest.warns(UserWarning, match="1 stored run of this lab was written by an lrkit that kept no"):
        result = run_lab(Task("mine", _factory(width=4)), STRATEGY, store=str(db))
    assert len(result.runs) == 1 and FINGERPRINT not in result.runs[0].config  # reused, as before


def test_a_first_batch_that_differs_on_every_build_tells_no_change(tmp_path: Path) -> None:
    def unseeded(seed: int) -> TaskParts:
        parts = _factory()(seed)
        g = torch.Generator()
        g.seed()  # from the OS: another first batch each time the task is built
        x = torch.randn(48, 6, generator=g)
        y = torch.randint(0, 3, (48,), generator=g)
        parts.train_loader = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 48, 16)]
        return parts

    db = str(tmp_path / "lab.db")
    run_lab(Task("mine", unseeded), STRATEGY, store=db)
    with pytest.warns(UserWarning, match="gives another batch_hash each time it is built from seed 0"):
        result = run_lab(Task("mine", unseeded), STRATEGY, store=db)  # not refused: the task is the same
    assert len(result.runs) == 1


def test_an_unchanged_task_is_fingerprinted_alike_and_quickly() -> None:
    import time

    task = Task("mine", _factory())
    t0 = time.perf_counter()
    first = task_fingerprint(task.build(0))
    assert time.perf_counter() - t0 < 1.0
    assert first == task_fingerprint(task.build(0))
    assert fingerprint_changes(first, first) == []
    assert fingerprint_changes({"parameters": 1}, {"init": "x"}) == []  # items one lacks: not compared
