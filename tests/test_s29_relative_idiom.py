"""relative=True's peak warning is for a schedule in LRs over groups whose lrs are LRs too (it trains at
their product); torch's LambdaLR idiom, groups' lrs as factors (1.0 and 0.1) and the schedule in LRs,
trains at the intended LRs and is not warned."""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")

import lrkit  # noqa: E402


def _groups(lrs: tuple[float, float]) -> torch.optim.Optimizer:
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    return torch.optim.AdamW([{"params": [a], "lr": lrs[0]}, {"params": [b], "lr": lrs[1]}])


def test_factors_as_group_lrs_are_quiet() -> None:
    o = _groups((0.1, 1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = lrkit.torch.scheduler(o, "warmup(5%) >> cosine(lr=3e-4)", total_steps=1000, relative=True)
    s.set_step(50)  # type: ignore[attr-defined]
    assert [g["lr"] for g in o.param_groups] == pytest.approx([3e-5, 3e-4])


def test_lrs_as_group_lrs_are_warned_naming_the_fastest_group() -> None:
    o = _groups((1e-4, 1e-3))
    with pytest.warns(UserWarning, match=r"param_groups\[1\] \(lr 0\.001\) would train at up to 3e-07"):
        lrkit.torch.scheduler(o, "warmup(5%) >> cosine(lr=3e-4)", total_steps=1000, relative=True)


def test_a_finders_suggestion_as_a_relative_schedule_is_warned() -> None:
    """The tester's repro: found.schedule('cosine') (peak 0.0126) with relative=True over groups at 1e-4
    and 1e-3 trains at 1.26e-6 at most; its peak is above 0.01, which alone was not warned."""
    o = _groups((1e-4, 1e-3))
    with pytest.warns(UserWarning, match=r"peaks at 0\.0126: param_groups\[1\]"):
        lrkit.torch.scheduler(o, "warmup(5%) >> cosine(lr=0.0126)", total_steps=1000, relative=True)
