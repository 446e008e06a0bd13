"""cosine_restarts in float32 restarts at step ``period`` for any ``mult``: the cycle starts are
``p * expm1(k * log(m)) / (m - 1)``; as ``p * (m**k - 1) / (m - 1)`` a ``mult`` near 1 lost ``m - 1`` to
float32 rounding (``1.07`` is ``1.0700000525``: 7.5e-7 of a step off at ``k = 1``, beyond the snap to a
whole step), so step ``period`` was read as the first cycle's end, at ``min_lr``, not the restart."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrkit.schedules import CosineRestarts

torch = pytest.importorskip("torch")


@settings(max_examples=80, deadline=None)
@given(period=st.integers(1, 300), mult=st.integers(101, 150).map(lambda c: c / 100))
def test_the_first_restart_is_at_period_in_float32(period: int, mult: float) -> None:
    s = CosineRestarts(lr=0.1, period=period, mult=mult)
    got = s(torch.tensor([float(period)], dtype=torch.float32)).item()
    assert got == pytest.approx(0.1, rel=1e-6), (period, mult, got)


def test_the_reported_case() -> None:
    s = CosineRestarts(lr=0.1, period=1, mult=1.07)
    assert s(torch.arange(3, dtype=torch.float32)).tolist()[:2] == pytest.approx([0.1, 0.1])
