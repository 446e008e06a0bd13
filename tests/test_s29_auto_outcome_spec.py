"""train_task's outcome (lrkit auto's --json) records what the run used: the seed and the schedule it
trained with after the search, as a spec that lrkit.parse reads back (it had only the prose summary)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import lrkit  # noqa: E402
from lrkit import auto as auto_module  # noqa: E402
from lrkit.tasks import TaskParts  # noqa: E402


def _loader(seed: int) -> Any:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(512, 8, generator=g)
    y = (x[:, :4].sum(dim=1) > 0).long()
    return torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=16, shuffle=True, generator=g
    )


@pytest.mark.parametrize("search", ["in_run", "separate"])
def test_the_outcome_names_its_seed_and_schedule(search: str, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []
    real = auto_module.auto

    def keep(*args: Any, **kwargs: Any) -> Any:
        seen.append(real(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(auto_module, "auto", keep)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
    parts = TaskParts(model, _loader(0), _loader(1), torch.nn.functional.cross_entropy, metric="accuracy",
                      epochs=3, optimizer="adam")  # fmt: skip
    out = auto_module.train_task(parts, search=search, seed=5)
    assert out["seed"] == 5
    run = seen[0]
    back = lrkit.parse(out["schedule"])
    t = np.arange(run.remaining_steps + 1, dtype=float)
    np.testing.assert_allclose(back(t), run.schedule(t), rtol=1e-12)
    assert max(back(t)) == pytest.approx(out["peak_lr"], rel=1e-9)
