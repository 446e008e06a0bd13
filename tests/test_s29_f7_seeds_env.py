"""A run's seed seeds numpy's global RNG and Python's ``random`` too, not only torch (a tester's finding: a
task whose loader shuffled with ``np.random`` gave other numbers on every rerun of one run), and a lab
records what each run ran with: the versions of lrkit, torch, Python and numpy, and torch's threads."""

from __future__ import annotations

import platform
import random
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import lrkit  # noqa: E402
from lrkit.lab.runner import ENV, Strategy, run_lab, run_strategy, with_start_losses  # noqa: E402
from lrkit.lab.store import ResultStore  # noqa: E402
from lrkit.tasks import Task, TaskParts  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class GlobalRandomLoader:
    """A hand-written loader: batches shuffled by numpy's global RNG, with noise from Python's ``random``."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return 4

    def __iter__(self):  # type: ignore[no-untyped-def]
        order = np.random.permutation(len(self.x))
        for i in range(0, len(order), 16):
            j = torch.from_numpy(order[i : i + 16])
            yield self.x[j] + random.gauss(0.0, 0.1), self.y[j]


def _task(seed: int) -> TaskParts:
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(64, 5, generator=g), torch.randint(0, 2, (64,), generator=g)
    model = torch.nn.Linear(5, 2)
    return TaskParts(model, GlobalRandomLoader(x, y), [(x, y)], torch.nn.functional.cross_entropy, epochs=2)


def test_a_task_drawing_from_numpy_and_random_is_reproduced_by_its_seed() -> None:
    task, strategy = Task("np-task", _task), Strategy("c", "constant(0.1)")
    losses = []
    for noise in (1, 2):  # whatever the global states were before the run
        np.random.seed(noise)
        random.seed(noise)
        losses.append(run_strategy(task, strategy, seed=5).losses)
    assert losses[0] == losses[1]
    assert run_strategy(task, strategy, seed=6).losses != losses[0]  # the seed still matters


def test_build_seeds_numpy_and_random() -> None:
    Task("np-task", _task).build(11)
    a = (np.random.random(), random.random())
    Task("np-task", _task).build(11)
    assert (np.random.random(), random.random()) == a


def test_a_lab_records_the_versions_and_threads_each_run_ran_with(tmp_path: Path) -> None:
    db = str(tmp_path / "lab.db")
    result = run_lab(Task("np-task", _task), [Strategy("c", "constant(0.1)")], store=db)
    expected = {
        "lrkit": lrkit.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch_threads": 1,
    }
    assert result.runs[0].config[ENV] == expected
    with ResultStore.open_readonly(db) as store:  # what lrkit report reads
        (run,) = with_start_losses(store, store.runs(1))
    assert run.config[ENV] == expected
