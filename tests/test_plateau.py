"""Reduce-on-plateau: the framework-free state machine and the torch scheduler's multiplier, checked
against torch's own ``ReduceLROnPlateau`` on recorded metric sequences."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.optim.lr_scheduler import ReduceLROnPlateau

import lrkit
from lrkit.control import Plateau

# A recorded validation-loss curve: improves, stalls, wobbles, improves a little, stalls again.
RECORDED = [
    2.30, 1.90, 1.62, 1.50, 1.49, 1.49, 1.495, 1.51, 1.48, 1.35, 1.34, 1.34, 1.341, 1.339, 1.36,
    1.37, 1.20, 1.19, 1.19, 1.19, 1.19, 1.19, 1.10, 1.1001, 1.1, 1.1, 1.2, 1.3, 1.0, 1.0,
]  # fmt: skip


def _sgd(lrs: list[float]) -> torch.optim.SGD:
    return torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in lrs])


def _run_both(
    metrics: list[float], lrs: list[float], **cfg: object
) -> tuple[list[list[float]], list[list[float]], ReduceLROnPlateau, Plateau]:
    """Feed ``metrics`` to torch's ReduceLROnPlateau and to lrkit (constant schedule x plateau)."""
    opt_t = _sgd(lrs)
    ref = ReduceLROnPlateau(opt_t, **cfg)  # type: ignore[arg-type]
    opt_l = _sgd(lrs)
    plateau = Plateau(**cfg)  # type: ignore[arg-type]
    sch = lrkit.torch.scheduler(opt_l, lrkit.Constant(1.0), relative=True, plateau=plateau)
    got_t, got_l = [], []
    for m in metrics:
        ref.step(m)
        sch.report(m)
        got_t.append([g["lr"] for g in opt_t.param_groups])
        got_l.append([g["lr"] for g in opt_l.param_groups])
    return got_t, got_l, ref, plateau


CONFIGS = [
    dict(mode="min", factor=0.5, patience=2),
    dict(mode="min", factor=0.1, patience=0, threshold=0.05, threshold_mode="abs"),
    dict(mode="min", factor=0.5, patience=1, cooldown=2, min_lr=0.02),
    dict(mode="min", factor=0.3, patience=1, threshold=0.01, threshold_mode="rel", min_lr=[0.01, 0.001]),
    dict(mode="max", factor=0.5, patience=1, threshold=0.0),
    dict(mode="min", factor=0.5, patience=0, min_lr=0.0999, eps=1e-3),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=[str(c) for c in CONFIGS])
def test_matches_torch_on_recorded_sequence(cfg: dict[str, object]) -> None:
    metrics = [-m for m in RECORDED] if cfg.get("mode") == "max" else RECORDED
    got_t, got_l, ref, p = _run_both(metrics, [0.1, 0.01], **cfg)
    for k, (a, b) in enumerate(zip(got_t, got_l, strict=True)):
        assert b == pytest.approx(a, rel=1e-12, abs=0.0), f"metric #{k}"
    assert (p.best, p.num_bad_epochs, p.cooldown_counter) == (
        ref.best,
        ref.num_bad_epochs,
        ref.cooldown_counter,
    )
    changed = any(x != [0.1, 0.01] for x in got_t)
    # every config cuts on this sequence, except the one where each cut moves the LR by less than eps
    assert changed is (cfg.get("eps") is None)


@settings(max_examples=60, deadline=None)
@given(
    metrics=st.lists(
        st.sampled_from([0.5, 0.9, 1.0, 1.0, 1.0001, 1.1, 2.0, math.nan]), min_size=1, max_size=40
    ),
    mode=st.sampled_from(["min", "max"]),
    factor=st.sampled_from([0.0, 0.1, 0.5, 0.9]),
    patience=st.integers(0, 3),
    threshold=st.sampled_from([0.0, 1e-4, 0.05]),
    threshold_mode=st.sampled_from(["rel", "abs"]),
    cooldown=st.integers(0, 2),
    min_lr=st.sampled_from([0.0, 1e-3, 0.05]),
)
def test_matches_torch_property(metrics: list[float], **cfg: object) -> None:
    got_t, got_l, ref, p = _run_both(metrics, [0.1], **cfg)
    for a, b in zip(got_t, got_l, strict=True):
        assert b == pytest.approx(a, rel=1e-12, abs=1e-300)
    assert p.num_bad_epochs == ref.num_bad_epochs
    assert p.cooldown_counter == ref.cooldown_counter
    assert p.best == ref.best or (math.isnan(p.best) and math.isnan(ref.best))


def test_state_machine_alone() -> None:
    """Hand-worked: patience 1, cooldown 1."""
    p = Plateau(patience=1, cooldown=1, factor=0.5)
    #        best  bad   bad->cut  cooldown  bad   bad->cut
    seq = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    assert [p.step(m) for m in seq] == [False, False, True, False, False, True]
    assert p.num_reductions == 2 and p.last_epoch == 6
    assert p.reduce(0.1) == 0.05
    assert Plateau(min_lr=0.04, factor=0.5).reduce(0.05) == 0.04
    assert Plateau(min_lr=0.04, eps=0.02, factor=0.5).reduce(0.05) == 0.05  # change <= eps: skipped
    assert p.in_cooldown


def test_state_dict_round_trip_continues_identically() -> None:
    a = Plateau(patience=2, cooldown=1, factor=0.5)
    for m in RECORDED[:12]:
        a.step(m)
    b = Plateau(patience=2, cooldown=1, factor=0.5)
    b.load_state_dict(a.state_dict())
    assert [a.step(m) for m in RECORDED[12:]] == [b.step(m) for m in RECORDED[12:]]
    assert a.state_dict() == b.state_dict()
    for exc in (KeyError, ValueError):  # a KeyError as torch's own, and the ValueError a corrupt state is
        with pytest.raises(exc, match=r"^Plateau.load_state_dict: state is missing \['cooldown_counter'"):
            b.load_state_dict({"best": 1.0})


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        (dict(mode="mean"), ValueError, "mode must be 'min' or 'max', got 'mean'"),
        (dict(threshold_mode="pct"), ValueError, "threshold_mode"),
        (dict(factor=1.0), ValueError, "factor must be .*< 1.*got 1.0"),
        (dict(factor="0.1"), TypeError, "factor must be a number"),
        (dict(patience=-1), ValueError, "patience must be an integer >= 0, got -1"),
        (dict(patience=1.5), ValueError, "patience"),
        (dict(cooldown=-2), ValueError, "cooldown"),
        (dict(threshold=-0.1), ValueError, "threshold"),
        (dict(min_lr=-1.0), ValueError, "min_lr"),
        (dict(min_lr=[0.1, -1.0]), ValueError, r"min_lr\[1\]"),
        (dict(min_lr=[]), ValueError, "min_lr"),
        (dict(min_lr="x"), TypeError, "min_lr"),
        (dict(eps=math.nan), ValueError, "eps"),
    ],
)
def test_validation_names_argument_and_value(kwargs: dict[str, object], exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        Plateau(**kwargs)  # type: ignore[arg-type]


def test_metric_must_be_a_number() -> None:
    with pytest.raises(TypeError, match="metric must be a number"):
        Plateau().step("loss")  # type: ignore[arg-type]
    assert Plateau().step(torch.tensor(1.0)) is False  # a 0-d tensor is fine


def test_plateau_on_top_of_warmup_cosine() -> None:
    """What torch's SequentialLR refuses (pytorch#68978): warmup, then cosine, with plateau cuts on top.

    Reference by hand: lr(k) = schedule(k) * 0.5 ** (cuts reported so far).
    """
    base = lrkit.Warmup(5) >> lrkit.Cosine(lr=0.1, min_lr=0.0)
    n = 40
    opt = _sgd([0.1])
    sch = lrkit.torch.scheduler(opt, base, total_steps=n, plateau=Plateau(patience=1, factor=0.5))
    ref = base.resolve(total_steps=n)
    cuts = 0
    for k in range(n):
        assert opt.param_groups[0]["lr"] == pytest.approx(ref(k) * 0.5**cuts, rel=1e-12), k
        if k % 4 == 3:  # a validation every 4 steps; the loss stalls from the 3rd on
            cuts += sch.report(1.0 if k > 8 else 2.0 - k * 0.1)
        opt.step()
        sch.step()
    assert cuts == 3 and sch.plateau_cuts == [0.125] and sch.multiplier == 1.0


def test_min_lr_bounds_the_cuts_not_the_schedule() -> None:
    base = lrkit.Linear(lr=0.1, end_lr=0.0, steps=10)
    opt = _sgd([0.1])
    sch = lrkit.torch.scheduler(
        opt, base, plateau=Plateau(patience=0, factor=0.1, min_lr=0.05), follow_optimizer=False
    )
    sch.report(1.0)
    sch.report(1.0)  # cut: 0.1 * 0.1 = 0.01, floored at 0.05
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)
    for _ in range(9):
        sch.step()
    # the schedule itself may go under min_lr (0.01 at step 9); the cut does not take it lower
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01)


def test_step_with_metric_reports_then_advances() -> None:
    """Lightning calls ``scheduler.step(metric)`` for a scheduler configured with reduce_on_plateau."""
    opt = _sgd([0.1])
    sch = lrkit.torch.scheduler(
        opt, lrkit.Constant(1.0), relative=True, plateau=Plateau(patience=0), follow_optimizer=False
    )
    sch.step(1.0)
    sch.step(1.0)
    assert sch.last_epoch == 2 and opt.param_groups[0]["lr"] == pytest.approx(0.01)


def test_report_without_plateau_is_an_error() -> None:
    sch = lrkit.torch.scheduler(_sgd([0.1]), lrkit.Constant(0.1))
    with pytest.raises(ValueError, match="no plateau"):
        sch.report(1.0)


def test_plateau_min_lr_per_group_must_match_groups() -> None:
    with pytest.raises(ValueError, match="min_lr holds 3 values for 2 parameter groups"):
        lrkit.torch.scheduler(_sgd([0.1, 0.1]), lrkit.Constant(0.1), plateau=Plateau(min_lr=[0.0, 0.0, 0.0]))
