"""The search space on short runs: every point of it is a schedule that runs for the run's length."""

from __future__ import annotations

import numpy as np
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
