"""A plateau whose every metric came during the schedule's warmup (held back by Plateau(start="warmup"))
was warned "not given a metric yet" at the run's end: it was fed. The warning says the metrics came during
the warmup and were skipped, and how to count them; a plateau given none keeps the old warning."""

from __future__ import annotations

import warnings

import pytest
import torch

import lrkit
from lrkit.adapters.torch import UnfedPlateauWarning
from lrkit.control import Plateau


def _run(spec: str, report_at: set[int], plateau: Plateau, total: int = 30) -> list[str]:
    o = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    s = lrkit.torch.scheduler(o, spec, total_steps=total, plateau=plateau)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(1, total + 1):
            o.step()
            s.step()
            if step in report_at:
                s.report(1.0)
    return [str(w.message) for w in caught if issubclass(w.category, UnfedPlateauWarning)]


def test_metrics_all_inside_the_warmup_are_named_as_skipped() -> None:
    said = _run("warmup(25) >> constant(lr=0.1)", {5, 10, 15, 20}, Plateau(patience=1))
    assert len(said) == 1, said
    assert "not been given a metric" not in said[0]
    assert "the 4 metrics given to it all came during the schedule's warmup (before step 25)" in said[0]
    assert "Plateau(start=0) counts every metric" in said[0]


def test_a_plateau_given_nothing_keeps_the_unfed_warning() -> None:
    said = _run("warmup(25) >> constant(lr=0.1)", set(), Plateau(patience=1))
    assert len(said) == 1 and "has not been given a metric yet" in said[0], said


@pytest.mark.parametrize("report_at", [{5, 25}, {26}])
def test_a_metric_after_the_warmup_warns_nothing(report_at: set[int]) -> None:
    assert _run("warmup(25) >> constant(lr=0.1)", report_at, Plateau(patience=1)) == []


@pytest.mark.parametrize(
    ("spec", "warm"),
    [
        ("multistep(lr=0.4, milestones=[30, 60]) * warmup(10, start=0.25)", 10),  # resnet_imagenet's form
        ("scale(warmup(8) >> cosine(lr=0.1), factor=0.5)", 8),
        ("cosine(lr=0.1) * constant(lr=1.0)", 0),
    ],
)
def test_a_warmup_inside_a_product_or_a_scale_is_the_warmup(spec: str, warm: int) -> None:
    """start='warmup' missed the warmup of a product (resnet_imagenet: multistep * warmup): a flat metric
    cut the LR during its 5 warmup epochs."""
    o = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    s = lrkit.torch.scheduler(o, spec, total_steps=100, plateau=Plateau(patience=0))
    cuts = []
    for step in range(1, 16):
        o.step()
        s.step()
        if s.report(1.0):
            cuts.append(step)
    assert cuts[0] == max(warm, 1) + 1 and s.plateau.skipped == max(warm - 1, 0)
