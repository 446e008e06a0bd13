"""The host scheduler's precomputed block holds about BLOCK values in all, however many groups, and the
LRs it writes are the schedule's own, step by step (the closed form, evaluated in one go)."""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import torch

import lrkit
from lrkit.adapters.torch import BLOCK
from lrkit.control import Plateau


def _opt(groups: int) -> torch.optim.Optimizer:
    ps = [torch.nn.Parameter(torch.zeros(1)) for _ in range(groups)]
    return torch.optim.SGD([{"params": [p], "lr": 0.1 * (1 + i % 7)} for i, p in enumerate(ps)], lr=0.1)


def test_many_groups_hold_a_small_block_when_built_and_rescaled() -> None:
    opt = _opt(1000)
    tracemalloc.start()
    try:
        s = lrkit.torch.scheduler(opt, "warmup(5%) >> cosine(lr=1.0)", total_steps=100_000, relative=True)
        s.scale(0.5)  # a rebuilt block
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # 1,000 groups x 4,096 steps of Python floats was ~160 MB; a block is now BLOCK_VALUES (~1 MB)
    assert peak < 16e6, f"building a 1,000-group scheduler peaked at {peak / 1e6:.0f} MB"
    assert len(s._cols) == 1000 and len(s._cols[0]) == 32  # BLOCK_VALUES // 1000


def _steps_held(s: object) -> int:
    s.set_step(0)  # type: ignore[attr-defined]
    return len(s._cols[0])  # type: ignore[attr-defined]


def test_block_length_follows_the_columns() -> None:
    assert _steps_held(lrkit.torch.scheduler(_opt(1), "constant(lr=0.1)")) == BLOCK
    assert _steps_held(lrkit.torch.scheduler(_opt(8), "constant(lr=1.0)", relative=True)) == BLOCK
    assert _steps_held(lrkit.torch.scheduler(_opt(256), "constant(lr=1.0)", relative=True)) == 128
    hp = lrkit.torch.scheduler(
        _opt(256), "constant(lr=1.0)", relative=True, hparams={"weight_decay": "constant(lr=0.0)"}
    )
    assert _steps_held(hp) == 64 and len(hp._hp_cols["weight_decay"][0]) == 64


def test_lrs_are_the_closed_form_at_every_step_across_blocks_and_controls() -> None:
    warnings.simplefilter("ignore")
    groups, n = 300, 1500  # blocks of 109 steps: 14 refills, a scale and plateau cuts inside blocks
    spec = "warmup(5%) >> cosine_restarts(lr=1.0, period=300, mult=1.5)"
    opt = _opt(groups)
    base = np.array([g["lr"] for g in opt.param_groups])
    floors = np.array([0.02 * (i % 2) for i in range(groups)])
    s = lrkit.torch.scheduler(
        opt,
        spec,
        total_steps=n,
        relative=True,
        follow_optimizer=False,
        plateau=Plateau(patience=0, min_lr=list(floors)),
    )
    curve = np.asarray(
        lrkit.parse(spec).resolve(total_steps=n)(np.arange(n, dtype=np.float64)), dtype=np.float64
    )
    mult = 1.0
    cuts = np.ones(groups)
    for k in range(n):
        b = curve[k] * base
        want = np.maximum(b * (mult * cuts), np.minimum(b, floors))
        got = np.array([g["lr"] for g in opt.param_groups])
        assert np.array_equal(got, np.where(floors > 0, want, b * (mult * cuts))), k
        s.step()
        if k in (333, 1000):
            s.scale(0.5)
            mult *= 0.5
        if k in (700, 701):
            assert s.report(1.0) == (k == 701)  # the second flat metric cuts (patience=0)
            cuts = np.array(s.plateau_cuts)  # which groups were cut is the plateau's rule, tested elsewhere
            assert (cuts < 1.0).any() == (k == 701)
