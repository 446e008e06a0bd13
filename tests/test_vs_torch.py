"""lrkit equals the learning rate torch's own schedulers set, step by step, to 1e-9 relative."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch.optim import lr_scheduler as L

from lrkit.schedules import (
    Cosine,
    CosineRestarts,
    Cyclic,
    Exponential,
    Linear,
    MultiStep,
    OneCycle,
    Polynomial,
    Schedule,
    StepDecay,
    Warmup,
)

N = 2500
BASE = 0.1


def torch_lrs(
    make: Callable[[torch.optim.Optimizer], L.LRScheduler], n: int = N, momentum: float = 0.0
) -> np.ndarray:
    """The LR torch writes into the optimizer at steps 0..n-1 (step 0 is set by the constructor)."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=BASE, momentum=momentum)
    sched = make(opt)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns about calling scheduler.step() before optimizer.step()
        for _ in range(n):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
    return np.array(out)


CASES: list[tuple[str, Callable[[torch.optim.Optimizer], L.LRScheduler], Schedule]] = [
    ("StepLR", lambda o: L.StepLR(o, step_size=30, gamma=0.7), StepDecay(lr=BASE, step_size=30, gamma=0.7)),
    (
        "MultiStepLR",
        lambda o: L.MultiStepLR(o, milestones=[300, 800, 1500], gamma=0.1),
        MultiStep(lr=BASE, milestones=[300, 800, 1500], gamma=0.1),
    ),
    ("ExponentialLR", lambda o: L.ExponentialLR(o, gamma=0.998), Exponential(lr=BASE, gamma=0.998)),
    (
        "CosineAnnealingLR",
        lambda o: L.CosineAnnealingLR(o, T_max=N, eta_min=1e-4),
        Cosine(lr=BASE, steps=N, min_lr=1e-4),
    ),
    (
        "CosineAnnealingWarmRestarts-mult1",
        lambda o: L.CosineAnnealingWarmRestarts(o, T_0=150, eta_min=1e-4),
        CosineRestarts(lr=BASE, period=150, min_lr=1e-4),
    ),
    (
        "CosineAnnealingWarmRestarts-mult2",
        lambda o: L.CosineAnnealingWarmRestarts(o, T_0=100, T_mult=2, eta_min=1e-4),
        CosineRestarts(lr=BASE, period=100, mult=2, min_lr=1e-4),
    ),
    (
        "CosineAnnealingWarmRestarts-mult3",
        lambda o: L.CosineAnnealingWarmRestarts(o, T_0=7, T_mult=3, eta_min=0.0),
        CosineRestarts(lr=BASE, period=7, mult=3),
    ),
    *[
        (
            f"CyclicLR-{mode}",
            (
                lambda m: (
                    lambda o: L.CyclicLR(
                        o,
                        base_lr=1e-3,
                        max_lr=BASE,
                        step_size_up=200,
                        step_size_down=300,
                        mode=m,
                        gamma=0.9995,
                        cycle_momentum=False,
                    )
                )
            )(mode),
            Cyclic(lr=1e-3, max_lr=BASE, step_size_up=200, step_size_down=300, mode=mode, gamma=0.9995),
        )
        for mode in ("triangular", "triangular2", "exp_range")
    ],
    *[
        (
            f"OneCycleLR-{anneal}-{'3' if three else '2'}phase",
            (
                lambda a, th: (
                    lambda o: L.OneCycleLR(
                        o,
                        max_lr=BASE,
                        total_steps=N,
                        anneal_strategy=a,
                        three_phase=th,
                        pct_start=0.25,
                        cycle_momentum=False,
                    )
                )
            )(anneal, three),
            OneCycle(max_lr=BASE, steps=N, anneal=anneal, three_phase=three, pct_start=0.25),
        )
        for anneal in ("cos", "linear")
        for three in (False, True)
    ],
    (
        "LinearLR",
        lambda o: L.LinearLR(o, start_factor=0.05, end_factor=0.8, total_iters=700),
        Linear(lr=BASE * 0.05, steps=700, end_lr=BASE * 0.8),
    ),
    (
        "PolynomialLR",
        lambda o: L.PolynomialLR(o, total_iters=1800, power=2.0),
        Polynomial(lr=BASE, steps=1800, power=2.0),
    ),
    (
        "SequentialLR(LinearLR, CosineAnnealingLR)",
        lambda o: L.SequentialLR(
            o,
            [
                L.LinearLR(o, start_factor=0.01, total_iters=250),
                L.CosineAnnealingLR(o, T_max=N - 250, eta_min=1e-4),
            ],
            milestones=[250],
        ),
        Warmup(steps=250, start=0.01) >> Cosine(lr=BASE, steps=N - 250, min_lr=1e-4),
    ),
]


@pytest.mark.parametrize(("name", "make", "ours"), CASES, ids=[c[0] for c in CASES])
def test_equals_torch_step_by_step(name: str, make: Callable[..., L.LRScheduler], ours: Schedule) -> None:
    expected = torch_lrs(make)
    got = ours(np.arange(N))
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=0)
    # the scalar path gives the same numbers as the vectorised one
    for t in (0, 1, 17, 249, 250, 1001, N - 1):
        assert ours(t) == got[t]


def test_one_cycle_holds_past_its_end_where_torch_goes_wrong() -> None:
    """torch 2.13's OneCycleLR sets a wrong (even negative) LR at step == total_steps, then raises."""
    ours = OneCycle(max_lr=BASE, steps=100, anneal="linear")
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=BASE)
    sched = L.OneCycleLR(opt, max_lr=BASE, total_steps=100, anneal_strategy="linear", cycle_momentum=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(100):
            opt.step()
            sched.step()
        torch_at_end = opt.param_groups[0]["lr"]
        with pytest.raises(ValueError, match="Tried to step"):
            sched.step()
    final = BASE / 25 / 1e4
    assert torch_at_end < final  # torch overshoots below its own final LR
    assert ours(99) == pytest.approx(final, rel=1e-12)
    assert ours(100) == ours(99) == ours(10**7)
