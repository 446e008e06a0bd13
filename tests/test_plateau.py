"""Reduce-on-plateau: the framework-free state machine and the torch scheduler's multiplier, checked
against torch's own ``ReduceLROnPlateau`` on recorded metric sequences."""

from __future__ import annotations

import io
import json
import math
import warnings
from typing import Any

import numpy as np
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


class _TorchMirrored(ReduceLROnPlateau):
    """torch's ReduceLROnPlateau with lrkit's one deliberate change: for a negative ``best`` the relative
    test is torch's own test of the other mode on the negated values (``threshold * |best|``), so that
    "better" means better on both sides of zero. Everything else (counters, cooldown, eps, min_lr) is
    torch's code."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        other = "max" if self.mode == "min" else "min"
        self._mirror = ReduceLROnPlateau(_sgd([1.0]), mode=other, threshold=self.threshold)

    def _is_better(self, a: float, best: float) -> bool:
        if self.threshold_mode == "rel" and best < 0:
            return bool(self._mirror._is_better(-a, -best))
        return bool(super()._is_better(a, best))


# metrics with ties, both signs, zeros, the ends of the float range, NaN and +-inf
_POOL = [0.0, -0.0, 0.5, 1.0, 1.0, 1.0001, 0.9999, 2.0, -1.0, -1.0, -1.0001, -0.9999, -2.0]
_EDGE = [math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324, -5e-324, 1e-300]
_VALUE = st.one_of(st.sampled_from(_POOL), st.sampled_from(_POOL), st.sampled_from(_EDGE), st.floats())
# runs of equal values (a plateau is a run of ties), 1 to 40 metrics in all
METRICS = st.lists(st.tuples(_VALUE, st.integers(1, 5)), min_size=1, max_size=12).map(
    lambda runs: [v for v, n in runs for _ in range(n)][:40]
)


@st.composite
def plateau_configs(draw: st.DrawFn) -> dict[str, Any]:
    """Any valid configuration: both modes and threshold modes, 0 <= factor < 1, scalar or per-group
    min_lr (two groups), eps from 0 to large."""
    threshold_mode = draw(st.sampled_from(["rel", "abs"]))
    if threshold_mode == "rel":
        threshold = draw(st.one_of(st.sampled_from([0.0, 1e-4, 0.05, 0.5]), st.floats(0.0, 0.999)))
    else:
        threshold = draw(st.one_of(st.sampled_from([0.0, 1e-4, 0.5, 3.0]), st.floats(0.0, 1e6)))
    one_min_lr = st.one_of(st.sampled_from([0.0, 1e-3, 0.02, 0.05, 0.2]), st.floats(0.0, 1.0))
    return dict(
        mode=draw(st.sampled_from(["min", "max"])),
        factor=draw(st.one_of(st.sampled_from([0.0, 0.1, 0.5, 0.9]), st.floats(0.0, 0.999))),
        patience=draw(st.integers(0, 4)),
        threshold=threshold,
        threshold_mode=threshold_mode,
        cooldown=draw(st.integers(0, 3)),
        min_lr=draw(st.one_of(one_min_lr, st.lists(one_min_lr, min_size=2, max_size=2))),
        eps=draw(st.sampled_from([0.0, 1e-8, 1e-3, 0.05])),
    )


def _plateau_lrs(p: Plateau, metrics: list[float], lrs: list[float]) -> list[list[float]]:
    """The LRs a plain loop gets from ``p`` alone: ``lr <- p.reduce(lr)`` per group at each cut."""
    out = []
    for m in metrics:
        if p.step(m):
            lrs = [p.reduce(lr, i) for i, lr in enumerate(lrs)]
        out.append(list(lrs))
    return out


def _torch_lrs(ref: ReduceLROnPlateau, metrics: list[float]) -> list[list[float]]:
    out = []
    for m in metrics:
        ref.step(m)
        out.append([g["lr"] for g in ref.optimizer.param_groups])
    return out


@settings(max_examples=300, deadline=None)
@given(metrics=METRICS, cfg=plateau_configs())
def test_matches_torch_property(metrics: list[float], cfg: dict[str, Any]) -> None:
    """The LR sequence equals torch's exactly (``==``), over the whole parameter space: torch's own
    ReduceLROnPlateau when no metric is negative, torch with the mirrored relative test otherwise."""
    lrs = [0.1, 0.01]
    p = Plateau(**cfg)
    got = _plateau_lrs(p, metrics, lrs)
    ref = _TorchMirrored(_sgd(lrs), **cfg)
    assert got == _torch_lrs(ref, metrics)
    assert (p.num_bad_epochs, p.cooldown_counter, p.last_epoch) == (
        ref.num_bad_epochs,
        ref.cooldown_counter,
        ref.last_epoch,
    )
    assert p.best == ref.best or (math.isnan(p.best) and math.isnan(ref.best))
    if not any(m < 0 for m in metrics):  # -0.0 and NaN are not < 0
        assert got == _torch_lrs(ReduceLROnPlateau(_sgd(lrs), **cfg), metrics)
    # the torch scheduler (a constant schedule times the plateau's cuts) agrees, to rounding: it keeps
    # the product of the cuts, where torch multiplies the LR by factor one cut at a time
    _, via_scheduler, _, _ = _run_both(metrics, lrs, **cfg)
    for a, b in zip(got, via_scheduler, strict=True):
        assert b == pytest.approx(a, rel=1e-12, abs=1e-300)


@settings(max_examples=100, deadline=None)
@given(metrics=METRICS, cfg=plateau_configs())
def test_negated_metrics_in_the_other_mode_make_the_same_decisions(
    metrics: list[float], cfg: dict[str, Any]
) -> None:
    """What "better" means does not depend on the sign: minimising ``m`` is maximising ``-m``."""
    other = {**cfg, "mode": "max" if cfg["mode"] == "min" else "min"}
    a, b = Plateau(**cfg), Plateau(**other)
    assert [a.step(m) for m in metrics] == [b.step(-m) for m in metrics]


@pytest.mark.parametrize("mode", ["min", "max"])
def test_a_flat_negative_metric_is_cut_as_a_flat_positive_one(mode: str) -> None:
    """torch (pytorch#38622, #47513): with a negative best, ``best * (1 -/+ threshold)`` lies on the
    wrong side of it, so a flat negative metric "improves" every epoch and is never cut. Here it is cut
    as a flat positive one is."""
    want = [False, False, False, True, False, False, True, False]
    for value in (1.0, -1.0):
        p = Plateau(mode=mode, patience=2)
        assert [p.step(value) for _ in range(8)] == want, value
    # torch's own never cuts the flat negative metric
    ref = ReduceLROnPlateau(_sgd([0.1]), mode=mode, patience=2)
    assert _torch_lrs(ref, [-1.0] * 8)[-1] == [0.1]


def test_a_worsening_negative_loss_does_not_become_the_best() -> None:
    # each within torch's margin above the best: torch takes each as the new best and never cuts
    metrics = [-1.0, -0.99995, -0.9999, -0.99985]
    q = Plateau(mode="min", patience=1, threshold=1e-4)
    assert [q.step(m) for m in metrics] == [False, False, True, False]
    assert q.best == -1.0
    ref = ReduceLROnPlateau(_sgd([0.1]), mode="min", patience=1, threshold=1e-4)
    assert _torch_lrs(ref, metrics)[-1] == [0.1] and ref.best == -0.99985


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
        (dict(eps=-1e-9), ValueError, "eps must be a finite number >= 0, got -1e-09"),
        (dict(factor=math.inf), ValueError, "factor"),
        (dict(factor=-0.5), ValueError, "factor must be a finite number >= 0 and < 1, got -0.5"),
        (dict(factor=None), TypeError, "factor must be a number, got NoneType None"),
        (dict(patience="3"), TypeError, "patience must be an integer >= 0, got str '3'"),
        (dict(patience=True), TypeError, "patience must be an integer >= 0, got bool True"),
        (dict(cooldown=math.nan), ValueError, "cooldown must be an integer >= 0, got float nan"),
        (dict(min_lr=math.nan), ValueError, "min_lr must be a finite number >= 0, got nan"),
        (dict(min_lr=[0.1, "a"]), TypeError, r"min_lr\[1\] must be a number, got str 'a'"),
        (dict(threshold=1e400), ValueError, "threshold"),
        # a relative threshold of 100 % or more: in mode min no positive metric could ever improve
        (dict(threshold=1.0), ValueError, "threshold must be a finite number >= 0 and < 1, got 1.0"),
        (dict(threshold=5, threshold_mode="rel"), ValueError, "threshold"),
    ],
)
def test_validation_names_argument_and_value(kwargs: dict[str, object], exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        Plateau(**kwargs)  # type: ignore[arg-type]


def test_numpy_numbers_are_numbers() -> None:
    """Values read from numpy (a config array, np.float32 results) are accepted as the floats they are."""
    p = Plateau(factor=np.float32(0.5), patience=np.int64(2), cooldown=np.int32(1), min_lr=np.float32(0.25))
    assert (p.factor, p.patience, p.cooldown, p.min_lr) == (0.5, 2, 1, 0.25)
    assert type(p.patience) is int and type(p.min_lr) is float
    assert Plateau(threshold=5.0, threshold_mode="abs").threshold == 5.0  # an absolute one may be >= 1


def test_metric_must_be_a_number() -> None:
    for bad in ("loss", "0.5", b"1", True, None, [1.0], torch.ones(3)):
        with pytest.raises(TypeError, match="metric must be a number"):
            Plateau().step(bad)  # type: ignore[arg-type]
    assert Plateau().step(torch.tensor(1.0)) is False  # a 0-d tensor is fine
    assert Plateau().step(np.float32(1.0)) is False
    p = Plateau(patience=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns on float() of a tensor that requires grad
        loss = torch.tensor(2.0, requires_grad=True) * 1.0
        assert [p.step(loss), p.step(loss)] == [False, True]


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


@settings(max_examples=100, deadline=None)
@given(metrics=METRICS, cfg=plateau_configs(), data=st.data())
def test_resuming_from_a_saved_state_gives_the_identical_lr_sequence(
    metrics: list[float], cfg: dict[str, Any], data: st.DataObject
) -> None:
    """Killed after metric ``k`` and resumed from what was saved: the scheduler's state through
    ``torch.save``/``torch.load`` (its default ``weights_only=True``) and the plateau's alone through
    JSON. The LRs and the plateau's state go on as in the run that was never stopped."""
    k = data.draw(st.integers(0, len(metrics)), label="k")
    lrs = [0.1, 0.01]

    def sched(p: Plateau) -> Any:
        return lrkit.torch.scheduler(
            _sgd(lrs), lrkit.Constant(1.0), relative=True, plateau=p, follow_optimizer=False
        )

    whole = sched(Plateau(**cfg))
    want = []
    for m in metrics:
        whole.report(m)
        want.append([g["lr"] for g in whole.optimizer.param_groups])
    first = sched(Plateau(**cfg))
    for m in metrics[:k]:
        first.report(m)
    buf = io.BytesIO()
    torch.save({"scheduler": first.state_dict()}, buf)
    buf.seek(0)
    resumed = sched(Plateau(**cfg))
    resumed.load_state_dict(torch.load(buf)["scheduler"])
    got = want[:k]
    for m in metrics[k:]:
        resumed.report(m)
        got.append([g["lr"] for g in resumed.optimizer.param_groups])
    assert got == want
    assert resumed.plateau.state_dict() == whole.plateau.state_dict()  # type: ignore[union-attr]
    # the plateau alone, through JSON (best may be +-inf: Python's json writes Infinity)
    a, b = Plateau(**cfg), Plateau(**cfg)
    for m in metrics[:k]:
        a.step(m)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    assert [a.step(m) for m in metrics[k:]] == [b.step(m) for m in metrics[k:]]
    assert a.state_dict() == b.state_dict()


def test_a_state_from_another_mode_is_refused_and_changes_nothing() -> None:
    """A min plateau's best (a loss) is meaningless to a max plateau (an accuracy): refused."""
    a = Plateau(mode="min", patience=3)
    for m in (0.9, 0.5, 0.6):
        a.step(m)
    b = Plateau(mode="max", patience=3)
    b.step(0.7)
    before = b.state_dict()
    with pytest.raises(
        ValueError, match=r"saved with mode='min' \(best=0.5\) but this plateau has mode='max'"
    ):
        b.load_state_dict(a.state_dict())
    assert b.state_dict() == before
    # the torch scheduler refuses it before anything changes, too
    s_min = lrkit.torch.scheduler(_sgd([0.1]), "constant(0.1)", plateau=Plateau(mode="min"))
    s_max = lrkit.torch.scheduler(_sgd([0.1]), "constant(0.1)", plateau=Plateau(mode="max"))
    s_min.report(0.5)
    s_max.report(0.7)
    before_s = s_max.state_dict()
    with pytest.raises(ValueError, match="mode='min'"):
        s_max.load_state_dict(s_min.state_dict())
    assert s_max.state_dict() == before_s
    # a state saved before the mode was kept (no "mode") loads as before
    legacy = {k: v for k, v in a.state_dict().items() if k != "mode"}
    c = Plateau(mode="min", patience=3)
    c.load_state_dict(legacy)
    assert c.best == 0.5 and c.num_bad_epochs == 1
    with pytest.raises(ValueError, match=r"mode must be 'min' or 'max', got 'mean'"):
        c.load_state_dict({**legacy, "mode": "mean"})


def test_a_state_from_another_config_goes_on_under_the_new_settings() -> None:
    """Resuming with a new patience/factor/threshold keeps the counters and applies the new settings
    (torch's load_state_dict would put the saved ones back). Reference: torch's ReduceLROnPlateau built
    with the new settings, its counters set to the saved ones."""
    old = Plateau(patience=5, factor=0.5)
    for m in (1.0, 0.8, 0.8, 0.8, 0.8):
        old.step(m)
    state = old.state_dict()
    assert state["num_bad_epochs"] == 3
    new_cfg: dict[str, Any] = dict(patience=1, factor=0.1, threshold=0.01, cooldown=1)
    p = Plateau(**new_cfg)
    p.load_state_dict(state)
    ref = ReduceLROnPlateau(_sgd([0.1]), **new_cfg)
    ref.best, ref.num_bad_epochs, ref.cooldown_counter, ref.last_epoch = (
        state["best"],
        state["num_bad_epochs"],
        state["cooldown_counter"],
        state["last_epoch"],
    )
    rest = [0.8, 0.79, 0.7, 0.7, 0.7, 0.7]
    assert _plateau_lrs(p, rest, [0.1]) == _torch_lrs(ref, rest)
    assert p.num_reductions >= 2 and p.patience == 1 and p.factor == 0.1
