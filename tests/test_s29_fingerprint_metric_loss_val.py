"""The lab's task fingerprint also covers the metric (a stored accuracy was reported as "final val loss"
after the task's metric changed), the loss function and the validation data: each change is refused
before training, named."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from lrkit.lab.runner import Strategy, run_lab  # noqa: E402
from lrkit.tasks import Task, TaskParts  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")
STRATEGY = [Strategy("c", "constant(0.1)")]


def _factory(
    metric: str = "accuracy", loss: Any = None, val_shift: float = 0.0
) -> Callable[[int], TaskParts]:
    def factory(seed: int) -> TaskParts:
        g = torch.Generator().manual_seed(7)
        x, y = torch.randn(48, 6, generator=g), torch.randint(0, 3, (48,), generator=g)
        model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
        train = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 48, 16)]
        val = [(x[:16] + val_shift, y[:16])]
        fn = torch.nn.functional.cross_entropy if loss is None else loss
        return TaskParts(model, train, val, fn, metric=metric, epochs=1, optimizer="sgd")

    return factory


@pytest.mark.parametrize(
    ("edited", "said"),
    [
        (
            _factory(metric="loss"),
            "metric val accuracy (higher is better) then, val loss (lower is better) now",
        ),
        (_factory(loss=torch.nn.CrossEntropyLoss(label_smoothing=0.1)), "loss function "),
        (_factory(val_shift=1.0), "the first validation batch differs"),
    ],
)
def test_a_changed_metric_loss_or_validation_set_is_refused(tmp_path: Any, edited: Any, said: str) -> None:
    db = str(tmp_path / "lab.db")
    run_lab(Task("mine", _factory()), STRATEGY, store=db)
    with pytest.raises(ValueError) as err:
        run_lab(Task("mine", edited), STRATEGY, store=db)
    assert said in str(err.value), str(err.value)


def test_the_same_task_is_still_reused(tmp_path: Any) -> None:
    db = str(tmp_path / "lab.db")
    first = run_lab(Task("mine", _factory()), STRATEGY, store=db)
    again = run_lab(Task("mine", _factory()), STRATEGY, store=db)
    assert [r.final_metric for r in again.runs] == [r.final_metric for r in first.runs]
