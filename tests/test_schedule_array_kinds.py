"""What a schedule gives back for numpy input is an array like it, for every schedule: a 0-d array in, a
0-d array out (some schedules gave ``np.float64``, others a 0-d array, as numpy's operations happened to
return), with the value the Python step gives; a masked array's LR is masked where the step is, and what
lies under the mask (NaN) is not looked at."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lrkit.schedules import Schedule

from .strategies import schedules, steps


@settings(max_examples=200, deadline=None)
@given(s=schedules, step=steps, dtype=st.sampled_from(["int64", "int32", "float64", "float32"]))
def test_a_0d_array_gives_a_0d_array_with_the_scalars_value(s: Schedule, step: int, dtype: str) -> None:
    out = s(np.array(step, dtype=dtype))
    assert type(out) is np.ndarray and out.shape == () and out.dtype == np.float64, (type(out), s)
    want = s(float(np.array(step, dtype=dtype)))
    assert out.item() == want or (np.isnan(want) and np.isnan(out.item())), (s, step)


@settings(max_examples=100, deadline=None)
@given(s=schedules, values=st.lists(steps, min_size=1, max_size=20), data=st.data())
def test_a_masked_step_gives_a_masked_lr(s: Schedule, values: list[int], data: st.DataObject) -> None:
    mask = data.draw(st.lists(st.booleans(), min_size=len(values), max_size=len(values)))
    raw = np.array(values, dtype=np.float64)
    raw[np.array(mask)] = np.nan  # under the mask: never looked at
    out = s(np.ma.MaskedArray(raw, mask=mask))
    assert isinstance(out, np.ma.MaskedArray)
    np.testing.assert_array_equal(np.ma.getmaskarray(out), mask)
    for v, m, o in zip(values, mask, out.data, strict=True):
        if not m:
            assert o == s(v)
