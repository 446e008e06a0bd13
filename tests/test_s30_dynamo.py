"""A schedule called on a torch tensor inside ``torch.compile`` compiles without Dynamo's warnings about
``functools.lru_cache`` (array_api_compat's cached class lookup, traced through five times per compile
before) and gives the eager values. ``backend="eager"``: Dynamo's tracing alone, quick on a CPU."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch
from array_api_compat import array_namespace
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lrkit
from lrkit.schedules._xp import namespace_of

SCHEDULES = [
    lrkit.parse("warmup(10) >> cosine(lr=0.1, steps=90)"),
    lrkit.Polynomial(lr=1.0, steps=100, power=0.5),
    lrkit.CosineRestarts(lr=1.0, period=10, mult=2.0, decay=0.5),
    lrkit.Cyclic(lr=0.1, max_lr=1.0, step_size_up=10, mode="triangular2"),
    lrkit.Repeat(lrkit.Piecewise(points=[(0, 0.0), (10, 1.0), (30, 0.1)]), times=2),
    (lrkit.Warmup(5) >> lrkit.MultiStep(lr=1.0, milestones=[20, 50])) * 0.5,
    lrkit.Exponential(lr=1.0, gamma=0.99),
]
STEPS = [0, 1, 5, 9, 10, 25, 50, 80, 99, 100, 150]


@pytest.fixture(autouse=True)
def _fresh_dynamo() -> Any:
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _compiled_without_dynamo_warnings(s: lrkit.Schedule, t: torch.Tensor, fullgraph: bool) -> torch.Tensor:
    f = torch.compile(lambda x: s(x) * 2, backend="eager", fullgraph=fullgraph)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = f(t)
    dynamo = [str(w.message) for w in caught if "lru_cache" in str(w.message) or "Dynamo" in str(w.message)]
    assert dynamo == [], f"{s.name}: torch.compile warned:\n" + "\n".join(m[:200] for m in dynamo)
    return out


@pytest.mark.parametrize("s", SCHEDULES, ids=lambda s: s.name)
def test_fullgraph_compile_is_quiet_and_equals_eager(s: lrkit.Schedule) -> None:
    t = torch.tensor(STEPS)
    out = _compiled_without_dynamo_warnings(s, t, fullgraph=True)
    assert torch.equal(out, s(t) * 2)
    np.testing.assert_allclose(out.numpy(), 2 * s(np.array(STEPS)), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("dtype", [torch.int64, torch.float32, torch.float64, torch.bfloat16], ids=str)
def test_default_compile_is_quiet_and_equals_eager_for_each_step_dtype(dtype: torch.dtype) -> None:
    s = SCHEDULES[0]
    t = torch.tensor(STEPS, dtype=dtype)
    out = _compiled_without_dynamo_warnings(s, t, fullgraph=False)
    assert out.dtype == (s(t) * 2).dtype
    assert torch.equal(out, s(t) * 2)


_DTYPES = [torch.int8, torch.uint8, torch.int32, torch.int64, torch.float16, torch.float32, torch.float64]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    dtype=st.sampled_from(_DTYPES),
    shape=st.lists(st.integers(0, 3), max_size=3),
    parameter=st.booleans(),
)
def test_a_torch_tensors_namespace_is_array_api_compats(
    dtype: torch.dtype, shape: list[int], parameter: bool
) -> None:
    """The namespace found for any torch tensor (any dtype, shape, a Parameter) is the one
    ``array_api_compat.array_namespace`` gives, and eager values stay those of numpy."""
    t = torch.zeros(shape, dtype=dtype)
    if parameter:
        t = torch.nn.Parameter(t, requires_grad=False)
    assert namespace_of(t) is array_namespace(t)
    k = torch.arange(0, 120, 7).to(dtype)
    np.testing.assert_allclose(SCHEDULES[0](k).numpy(), SCHEDULES[0](k.numpy()), rtol=1e-5, atol=1e-7)
