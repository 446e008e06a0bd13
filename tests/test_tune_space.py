"""The search space on short runs: every point of it is a schedule that runs for the run's length."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lrkit
from lrkit.tune import KINDS, build_spec
from lrkit.tune.space import WSD_DECAY_RANGE


@settings(max_examples=400, deadline=None)
@given(
    kind=st.sampled_from(KINDS),
    lr=st.floats(1e-5, 10.0),
    warmup=st.floats(0.0, 0.3),
    final=st.floats(1e-4, 0.5),
    decay=st.floats(*WSD_DECAY_RANGE),
    total=st.integers(3, 120),
)
def test_every_point_runs_for_a_short_run(
    kind: str, lr: float, warmup: float, final: float, decay: float, total: int
) -> None:
    """A 6-step run (one epoch of 6 batches) drew one_cycle(pct_start=0.0452): a first phase of -0.73
    steps, refused when the trial built it, and the whole tune stopped. Likewise a WSD cool-down or a
    warmup under one step once its percentage was rounded."""
    spec = build_spec(kind, lr, warmup, final, decay, total_steps=total)
    r = lrkit.parse(spec).resolve(total_steps=total)
    values = np.asarray(r(np.arange(total + 1)), dtype=float)
    assert np.all(np.isfinite(values)) and values.max() <= float(f"{lr:.4g}") * (1 + 1e-9)


def test_a_run_too_short_for_the_search_space_is_refused_before_the_storage(tmp_path: Path) -> None:
    """A 2-step run has no room for one-cycle's rise and fall or WSD's cool-down: refused by name."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("optuna")
    from torch.utils.data import DataLoader, TensorDataset

    from lrkit.tasks import Task, TaskParts
    from lrkit.tune import tune

    def two_steps(seed: int) -> TaskParts:
        x = torch.randn(8, 3)
        y = (x[:, 0] > 0).long()
        data = TensorDataset(x, y)
        model = torch.nn.Linear(3, 2)
        return TaskParts(
            model,
            DataLoader(data, batch_size=4),
            DataLoader(data, batch_size=8),
            torch.nn.functional.cross_entropy,
            metric="accuracy",
            epochs=1,
            optimizer="sgd",
        )

    db = tmp_path / "s.db"
    with pytest.raises(ValueError, match=r"epochs: a run of 1 x 2 = 2 steps is too short to tune"):
        tune(Task("two-steps", two_steps), trials=1, storage=db, finder=False)
    assert not db.exists()
    with pytest.raises(ValueError, match="total_steps must be an integer >= 3 or None"):
        build_spec("cosine", 0.1, 0.0, 0.01, total_steps=2)
