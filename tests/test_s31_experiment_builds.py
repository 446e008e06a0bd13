"""How often a command builds your task (calls its factory), and Task.find_lr / Task.train_run with an
optimizer's hyper-parameters (the one path lrkit find --task takes)."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

COUNTED = textwrap.dedent(
    """
    import torch
    from torch.utils.data import DataLoader, TensorDataset
    from lrkit.tasks import TaskParts

    BUILDS = []

    def make(seed):
        BUILDS.append(seed)
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(256, 4, generator=g)
        y = (x.sum(1) > 0).long()
        dl = DataLoader(TensorDataset(x, y), batch_size=32)
        return TaskParts(torch.nn.Linear(4, 2), dl, dl, torch.nn.functional.cross_entropy,
                         metric="accuracy", epochs=1, optimizer="sgd")
    """
)


@pytest.fixture
def counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    (tmp_path / "s31_counted_task.py").write_text(COUNTED)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    import s31_counted_task  # type: ignore[import-not-found]

    yield s31_counted_task
    sys.modules.pop("s31_counted_task", None)


def test_find_on_a_task_builds_it_twice(counted: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """Once for its check (whose build the task's epochs are read from), once for the test itself; the
    budget's build of the old code (only to read epochs and steps per epoch) is gone."""
    from lrkit.cli import main

    argv = ["find", "--task", "s31_counted_task:make", "--num-steps", "20", "--repeats", "1", "--out", "none"]
    assert main(argv) in (0, 3), capsys.readouterr().err  # 3: no suggestion, on so short a test
    assert counted.BUILDS == [0, 0]


def test_lab_builds_the_task_once_for_its_check_then_once_per_run_and_its_probe(
    counted: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """The lab's check, then run_lab's probe and one build per run: the second Task of the old code (which
    built its own probe to read its metric's name) is gone."""
    from lrkit.cli import main

    argv = ["lab", "--task", "s31_counted_task:make", "--strategy", "c=constant(0.1)", "--seeds", "2"]
    assert main([*argv, "--workers", "1", "--out", "lab"]) == 0, capsys.readouterr().err
    assert sorted(counted.BUILDS) == [0, 0, 0, 1]


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    import lrkit.tasks.base as base

    seen: list[tuple[str, dict[str, Any]]] = []
    real = base.make_optimizer

    def spy(name: str, params: Any, lr: float, hyper: Any = None) -> Any:
        seen.append((name, dict(hyper or {})))
        return real(name, params, lr, hyper)

    monkeypatch.setattr(base, "make_optimizer", spy)
    return seen


@pytest.mark.parametrize(
    ("optimizer", "params", "built"),
    [
        (None, {"weight_decay": 0.01}, ("sgd", {"weight_decay": 0.01})),  # on top of the task's own
        ("adamw", {"weight_decay": 0.2}, ("adamw", {"weight_decay": 0.2})),  # in their place
        (None, None, ("sgd", {})),
    ],
)
def test_task_find_lr_and_train_run_take_optimizer_params(
    counted: Any,
    monkeypatch: pytest.MonkeyPatch,
    optimizer: str | None,
    params: dict[str, Any] | None,
    built: tuple[str, dict[str, Any]],
) -> None:
    from lrkit.tasks import get_task

    task = get_task("s31_counted_task:make")
    seen = _spy(monkeypatch)
    task.find_lr(optimizer=optimizer, optimizer_params=params, num_steps=10, repeats=1)
    task.train_run(0.1, optimizer=optimizer, optimizer_params=params)
    task.train(0.1, optimizer=optimizer, optimizer_params=params)
    assert seen == [built] * 3


def test_find_on_task_with_params_finds_what_its_old_copy_of_find_lr_found(counted: Any) -> None:
    """lrkit find --task --optimizer 'adamw(weight_decay=0.2)': one path, Task.find_lr's, with the result
    of the lines find_on_task copied from it before."""
    import numpy as np

    from lrkit.finder import find_lr
    from lrkit.finder.cli import find_on_task
    from lrkit.tasks import get_task

    task = get_task("s31_counted_task:make")
    a = find_on_task(task, "adamw", {"weight_decay": 0.2}, num_steps=20, repeats=1)
    parts = task.build(0)  # the old copy
    opt = parts.make_optimizer(1e-3, "adamw", {"weight_decay": 0.2})
    b = find_lr(
        parts.model,
        opt,
        parts.train_loader,
        parts.loss_fn,
        seed=0,
        max_grad_norm=parts.max_grad_norm,
        num_steps=20,
        repeats=1,
    )
    assert np.array_equal(a.lrs, b.lrs) and np.array_equal(a.losses, b.losses, equal_nan=True)
    assert a.suggestion == b.suggestion
