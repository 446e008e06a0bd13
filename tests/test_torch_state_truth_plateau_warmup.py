"""Reduce-on-plateau does not count metrics reported during the schedule's warmup (Plateau(start=
"warmup"), the default): a flat metric during warmup(20) cut the LR 10x at step 19. ``start=0`` counts
every metric, as torch's ReduceLROnPlateau; ``start=k`` from scheduler step ``k``."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch

import lrkit
from lrkit.control import Plateau


def _run(spec: str, plateau: Plateau, steps: int = 40, **kw: Any) -> tuple[list[int], Any]:
    o = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    s = lrkit.torch.scheduler(o, spec, total_steps=100, plateau=plateau, **kw)
    cuts = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(steps):
            o.step()
            if s.report(1.0):  # a flat metric
                cuts.append(s.last_epoch)
            s.step()
    return cuts, s


def test_no_cut_during_the_warmup_by_default() -> None:
    cuts, s = _run("warmup(20) >> constant(lr=0.1)", Plateau(patience=2))
    assert cuts[0] == 23  # the metrics of steps 20, 21, 22 set the best and two bad epochs; 23 cuts
    assert s.plateau.last_epoch == 20  # the 20 metrics of the warmup were not given to it


def test_start_0_counts_every_metric_as_torch_does() -> None:
    cuts, s = _run("warmup(20) >> constant(lr=0.1)", Plateau(patience=2, start=0))
    assert cuts[:2] == [3, 6] and s.plateau.last_epoch == 40


def test_start_k_counts_from_scheduler_step_k() -> None:
    cuts, s = _run("constant(lr=0.1)", Plateau(patience=2, start=10))
    assert cuts[0] == 13 and s.plateau.last_epoch == 30


def test_a_schedule_without_warmup_counts_from_the_start() -> None:
    assert _run("cosine(lr=0.1)", Plateau(patience=2))[0][:1] == [3]
    assert _run("warmup(0) >> cosine(lr=0.1)", Plateau(patience=2))[0][:1] == [3]


def test_per_epoch_the_warmup_epoch_metric_is_not_counted() -> None:
    """interval='epoch', warmup(1ep): the metric of epoch 0 (reported before its step()) is the warmup's."""
    o = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    s = lrkit.torch.scheduler(
        o, "warmup(1ep) >> constant(lr=0.1)", steps_per_epoch=4, epochs=10, interval="epoch",
        plateau=Plateau(patience=0),
    )  # fmt: skip
    got = []
    for _ in range(4):
        for _ in range(4):
            o.step()
        got.append(s.report(1.0))
        s.step()
    assert got == [False, False, True, True] and s.plateau.last_epoch == 3


def test_a_warmup_nested_in_a_chain_counts() -> None:
    spec = "(warmup(10) >> constant(lr=0.1, steps=10)) >> cosine(lr=0.1)"
    assert _run(spec, Plateau(patience=2))[0][0] == 13


@pytest.mark.parametrize(("start", "error"), [("epoch", ValueError), (-1, ValueError), (1.5, ValueError)])
def test_a_bad_start_is_refused(start: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="start"):
        Plateau(start=start)  # type: ignore[arg-type]
