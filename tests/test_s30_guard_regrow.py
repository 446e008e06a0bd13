"""``DivergenceGuard(regrow_after=N)``: a cut is undone after ``N`` good steps, as ``GradScaler`` grows its
scale back, so one-off bad batches no longer drive the LR towards 0 in a long run; an LR that really is
too high diverges again after each regrowth, the wait doubles each time, and the run settles at the cut
LR after a logarithmic number of events. By default (None) a cut stays, as before.

Before, every one-off NaN halved the LR for good: 10 NaNs whose replays were clean (each recovery held)
left a constant(0.05) schedule at 0.05 / 1024, and 3 over a warmup >> cosine(min_lr=1e-3) left the LR
below the schedule's own min_lr; there was no way to undo a cut but ``factor=1.0``.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import re
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

import lrkit  # noqa: E402
from lrkit.control import DivergenceGuard  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")
F = torch.nn.functional
NEW_KEYS = ("since_change", "backoff", "regrown", "regrow_after")


def _strict(state: Any) -> Any:
    return json.loads(json.dumps(state, allow_nan=False))


# -- the tester's case: one-off NaNs -------------------------------------------------------------------
def _transient(regrow_after: int | None, steps: int = 2000, every: int = 400) -> tuple[Any, Any, Any]:
    """Linear(8, 1), constant(0.05), the guard's defaults, one NaN loss every ``every`` steps (at its
    first try: the replay of that step is clean)."""
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    sched = lrkit.torch.scheduler(opt, "constant(0.05)", total_steps=steps)
    guard = DivergenceGuard(model, opt, sched, regrow_after=regrow_after)
    x, y = torch.randn(32, 8), torch.randn(32, 1)
    bad = set(range(every // 2, steps, every))
    step = 0
    while step < steps:
        loss = F.mse_loss(model(x), y)
        if step in bad:
            bad.discard(step)
            loss = loss * math.nan
        loss.backward()
        if guard.check(loss, step):
            opt.step()
            sched.step()
            step += 1
        else:
            step = guard.resume_step
        opt.zero_grad()
    return guard, sched, opt


def test_one_off_nans_cut_for_good_by_default_and_are_regrown_with_the_option() -> None:
    guard, sched, opt = _transient(None)
    assert [e.recovery for e in guard.events] == [1] * 5  # every recovery held
    assert guard.multiplier == sched.multiplier == 0.5**5 and opt.param_groups[0]["lr"] == 0.05 * 0.5**5
    assert guard.regrow_wait is None
    guard, sched, opt = _transient(150)
    assert [e.recovery for e in guard.events] == [1] * 5
    assert [e.lr_before for e in guard.events] == [(0.05,)] * 5  # each NaN found the LR regrown
    # the run ends at the schedule's own LR, exactly
    assert guard.multiplier == sched.multiplier == 1.0 and opt.param_groups[0]["lr"] == 0.05
    assert guard.regrow_wait == 150


def test_one_off_nans_under_a_cosine_end_at_its_min_lr() -> None:
    """The tester's second case, shortened: NaNs during warmup >> cosine(min_lr=1e-3) no longer leave the
    LR below the schedule's own min_lr."""
    torch.manual_seed(0)
    n = 3000
    model = torch.nn.Linear(8, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    sched = lrkit.torch.scheduler(opt, "warmup(1%) >> cosine(lr=0.05, min_lr=1e-3)", total_steps=n)
    guard = DivergenceGuard(model, opt, sched, regrow_after=200)
    x, y = torch.randn(32, 8), torch.randn(32, 1)
    step, bad = 0, {999, 1999, 2499}
    while step < n:
        loss = F.mse_loss(model(x), y)
        if step in bad:
            bad.discard(step)
            loss = loss * math.nan
        loss.backward()
        if guard.check(loss, step):
            opt.step()
            sched.step()
            step += 1
        else:
            step = guard.resume_step
        opt.zero_grad()
    assert len(guard.events) == 3 and guard.multiplier == 1.0
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-3, rel=1e-9)


# -- an LR that really is too high ---------------------------------------------------------------------
def _too_high(steps: int, regrow_after: int | None) -> tuple[DivergenceGuard, list[float]]:
    """Full-batch least squares with SGD at 1.5x the largest stable LR (the loss grows 4x a step; half
    of it is stable): the LR of every update."""
    torch.manual_seed(0)
    x, y = torch.randn(64, 8), torch.randn(64, 1)
    stable = 2 / float(torch.linalg.eigvalsh(2 * x.T @ x / 64).max())
    model = torch.nn.Linear(8, 1, bias=False)
    opt = torch.optim.SGD(model.parameters(), lr=1.5 * stable)
    sched = lrkit.torch.scheduler(opt, f"constant({1.5 * stable})", total_steps=steps)
    guard = DivergenceGuard(model, opt, sched, snapshot_every=50, regrow_after=regrow_after)
    lrs, step = [], 0
    while step < steps:
        loss = F.mse_loss(model(x), y)
        loss.backward()
        if guard.check(loss, step):
            lrs.append(opt.param_groups[0]["lr"] / (1.5 * stable))
            opt.step()
            sched.step()
            step += 1
        else:
            step = guard.resume_step
        opt.zero_grad()
    return guard, lrs


def test_an_lr_too_high_is_tried_again_ever_more_rarely_and_the_run_settles_cut() -> None:
    steps, wait = 4000, 100
    guard, lrs = _too_high(steps, None)
    assert len(guard.events) == 1 and guard.multiplier == 0.5
    guard, lrs = _too_high(steps, wait)
    # a cut at the first blow-up, then one more per regrowth, each after twice the wait of the one before
    # (100, 200, 400...): 1 + log2 of the run's length in waits, not one every 100 steps (40)
    events = guard.events
    assert 3 <= len(events) <= 2 + math.ceil(math.log2(steps / wait + 1)), [e.step for e in events]
    gaps = np.diff([e.step for e in events])
    assert all(b == 2 * a for a, b in itertools.pairwise(gaps[1:])), gaps
    assert all(e.reason == "jump" and e.recovery == 1 for e in events)
    assert guard.multiplier == 0.5 and max(lrs) == 1.0  # tried at the full LR, never above it
    assert np.mean(np.array(lrs) == 0.5) > 0.9  # and ran at the cut one (the rest: the tries, rolled back)
    assert guard.regrow_wait == wait * 2 ** (len(events) - 1)


def test_a_regrowth_waits_for_the_recovery_to_hold() -> None:
    """With regrow_after=1 < snapshot_every, the replay after a cut and the steps up to the one that
    diverged run at the cut LR: the LR comes back only once the recovery held."""
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    guard = DivergenceGuard(model, opt, snapshot_every=10, regrow_after=1)
    step, seen = 0, []
    while step < 40:
        nan = step == 25 and not guard.events
        if guard.check(math.nan if nan else 1.0, step):
            seen.append((step, opt.param_groups[0]["lr"]))
            step += 1
        else:
            step = guard.resume_step
    cut = [s for s, lr in seen if lr == 0.05]
    # rolled back to the snapshot of step 20; held once past 25 and 10 good steps since: at step 29
    assert cut == list(range(20, 30)) and seen[-1] == (39, 0.1)


def test_a_regrowth_does_not_keep_a_failing_recovery_from_stopping() -> None:
    """A loss that is NaN at step 10 whatever the LR: the recoveries never hold, so nothing is regrown
    and the guard stops after max_recoveries, as without the option."""
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    guard = DivergenceGuard(model, opt, snapshot_every=3, regrow_after=1, max_recoveries=3)
    step = 0
    with pytest.raises(lrkit.control.DivergenceError, match="after 3 recoveries in a row"):
        while True:
            step = step + 1 if guard.check(math.nan if step == 10 else 1.0, step) else guard.resume_step
    assert guard.multiplier == 0.5**3


def _changes(values: list[Any]) -> list[Any]:
    """``values`` without repeats in a row."""
    return [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]


def test_a_nan_soon_after_a_regrowth_doubles_the_wait_and_a_regrowth_that_lasts_sets_it_back() -> None:
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    guard = DivergenceGuard(model, opt, snapshot_every=2, regrow_after=10)
    nans = [5, 17]  # the second 3 steps after the first cut was regrown (at step 14)
    step, seen = 0, []
    while step < 80:
        nan = bool(nans) and step == nans[0]
        if nan:
            nans.pop(0)
        if guard.check(math.nan if nan else 1.0, step):
            step += 1
        else:
            step = guard.resume_step
        seen.append((step, guard.multiplier, guard.regrow_wait))
    assert _changes([m for _, m, _ in seen]) == [1.0, 0.5, 1.0, 0.5, 1.0]
    assert _changes([w for _, _, w in seen]) == [10, 20, 10]
    regrown = [s for (s, m, _), (_, m0, _) in zip(seen[1:], seen, strict=False) if m > m0]
    # 10 good steps after the rollback to step 4; 20 after the one to step 16; the wait back to 10 once
    # that regrowth lasted 20 good steps
    back = next(s for i, (s, _, w) in enumerate(seen) if w == 10 and seen[i - 1][2] == 20)
    assert regrown == [15, 37] and back == 57


@pytest.mark.parametrize("factor", [0.1, 0.7, 0.9])
def test_every_cut_undone_gives_the_schedule_s_lr_back_exactly(factor: float) -> None:
    """Seven cuts, then seven regrowths: the guard's multiplier never above 1 (0.1 / 0.1 / 0.1 can round
    above it), the scheduler's equal to it at every step, bit for bit, and the LR at the end the
    schedule's own (x / old * new, not x * (new / old), which rounds away from it for these factors)."""
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    spec = "warmup(5) >> cosine(lr=0.1, min_lr=0.01)"
    sched = lrkit.torch.scheduler(opt, spec, total_steps=1000)
    guard = DivergenceGuard(model, opt, sched, factor=factor, snapshot_every=2, regrow_after=20)
    nans, step, lowest = list(range(5, 40, 5)), 0, 1.0
    while step < 300:
        nan = bool(nans) and step == nans[0]
        if nan:
            nans.pop(0)
        if guard.check(math.nan if nan else 1.0, step):
            opt.step()
            sched.step()
            step += 1
        else:
            step = guard.resume_step
        assert 0.0 < guard.multiplier <= 1.0 and sched.multiplier == guard.multiplier
        lowest = min(lowest, guard.multiplier)
    assert len(guard.events) == 7 and lowest == pytest.approx(factor**7)
    assert guard.multiplier == sched.multiplier == 1.0
    assert opt.param_groups[0]["lr"] == lrkit.parse(spec).resolve(total_steps=1000)(300)


# -- invariants over random runs -----------------------------------------------------------------------
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    nans=st.lists(st.integers(1, 150), max_size=8),  # step 0: no snapshot yet
    factor=st.sampled_from([0.1, 0.3, 0.5, 0.7, 0.9]),
    regrow_after=st.integers(1, 12),
    snapshot_every=st.integers(1, 6),
    user=st.sampled_from([1.0, 0.3, 2.0, 1 / 3]),
    with_scheduler=st.booleans(),
)
def test_the_lr_never_exceeds_the_uncut_one_and_comes_back_to_it(
    nans: list[int], factor: float, regrow_after: int, snapshot_every: int, user: float, with_scheduler: bool
) -> None:
    """Whatever the NaNs: the guard's multiplier stays in (0, 1]; the scheduler's is the user's own
    scale(...) times it, never above the user's (bit for bit the guard's where the user scaled nothing);
    and after enough good steps every cut is undone, the LR back at the schedule's."""
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = lrkit.torch.scheduler(opt, "warmup(5) >> cosine(lr=0.1, min_lr=0.01)", total_steps=10**6)
    if with_scheduler:
        sched.scale(user)
    else:
        sched = None
        opt.param_groups[0]["lr"] = 0.1 * user
    guard = DivergenceGuard(
        model, opt, sched, factor=factor, regrow_after=regrow_after, snapshot_every=snapshot_every
    )
    pending = sorted(set(nans))
    step = 0
    # on until the NaNs are past and every cut is undone: at most a wait doubled once per NaN, then one
    # wait per cut
    cap = 160 + regrow_after * (2 ** len(nans) + len(nans) + 1) + snapshot_every * 2
    while (pending or guard.multiplier < 1.0 or step < 160) and step < cap:
        nan = bool(pending) and step == pending[0]
        if nan:
            pending.pop(0)
        if guard.check(math.nan if nan else 1.0, step):
            opt.step()  # (no gradients: it changes nothing, but the scheduler counts it)
            if sched is not None:
                sched.step()
            step += 1
        else:
            step = guard.resume_step
        m = guard.multiplier
        assert 0.0 < m <= 1.0
        if sched is None:
            lr = opt.param_groups[0]["lr"]
            assert lr <= 0.1 * user * (1 + 4e-16) and lr == pytest.approx(0.1 * user * m, rel=1e-12)
        elif user == 1.0:
            assert sched.multiplier == m
        else:
            assert sched.multiplier <= user * (1 + 4e-16)
            assert sched.multiplier == pytest.approx(user * m, rel=1e-12)
    assert guard.multiplier == 1.0, (guard.events, guard.regrow_wait)
    if sched is not None:
        assert sched.multiplier == pytest.approx(user, rel=1e-13)
        if user == 1.0:
            assert (
                opt.param_groups[0]["lr"]
                == sched.get_lr()[0]
                == lrkit.parse("warmup(5) >> cosine(lr=0.1, min_lr=0.01)").resolve(total_steps=10**6)(step)
            )


# -- checkpoints ---------------------------------------------------------------------------------------
STEPS = 90
NAN_AT = (10, 12, 21, 30, 40, 47, 70)  # NaN at the first try of each (its replay is clean)


def _build() -> tuple[Any, Any, Any, DivergenceGuard]:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = lrkit.torch.scheduler(opt, "warmup(10) >> cosine(lr=0.1)", total_steps=STEPS)
    guard = DivergenceGuard(model, opt, sched, factor=0.3, snapshot_every=1, regrow_after=4)
    return model, opt, sched, guard


def _train(objs: tuple[Any, Any, Any, DivergenceGuard], step: int, checks: int) -> tuple[list[str], int]:
    model, opt, sched, guard = objs
    out = []
    for _ in range(checks):
        g = torch.Generator().manual_seed(step)
        x = torch.randn(8, 3, generator=g)
        loss = F.mse_loss(model(x), x.sum(1, keepdim=True))
        if step in NAN_AT and all(e.step != step for e in guard.events):
            loss = loss * math.nan
        loss.backward()
        out.append(f"{step} {opt.param_groups[0]['lr']!r} {float(loss.detach())!r} {guard.regrow_wait}")
        if guard.check(loss, step):
            opt.step()
            sched.step()
            step += 1
        else:
            step = guard.resume_step
        opt.zero_grad()
    return out, step


def _checkpoint(objs: tuple[Any, Any, Any, DivergenceGuard]) -> dict[str, Any]:
    model, opt, sched, guard = objs
    return {
        "model": copy.deepcopy(model.state_dict()),
        "optimizer": copy.deepcopy(opt.state_dict()),
        "scheduler": _strict(sched.state_dict()),
        "guard": _strict(guard.state_dict()),
        "rng": torch.get_rng_state(),
    }


def _resume(saved: dict[str, Any], guard_state: dict[str, Any]) -> tuple[Any, Any, Any, DivergenceGuard]:
    objs = _build()
    model, opt, sched, guard = objs
    saved = copy.deepcopy(saved)
    model.load_state_dict(saved["model"])
    opt.load_state_dict(saved["optimizer"])
    sched.load_state_dict(saved["scheduler"])
    torch.set_rng_state(saved["rng"])
    guard.load_state_dict(guard_state)
    return objs


def _end(objs: tuple[Any, Any, Any, DivergenceGuard]) -> list[str]:
    model, _, sched, guard = objs
    return [repr(guard.events), repr(sched.multiplier), repr([p.tolist() for p in model.parameters()])]


CHECKS = STEPS + 2 * len(NAN_AT)  # each NaN rolls back to the snapshot of the step before


def test_a_run_resumed_mid_regrowth_is_the_run_that_never_stopped() -> None:
    """A checkpoint (through strict JSON) before every check but those that diverge: mid-wait, just
    after a regrowth, with the wait doubled (a NaN within the wait after a regrowth) and set back. The
    resumed run's LRs, losses, waits, events and parameters are those of the run that never stopped,
    bit for bit. The states before any regrowth load without the new keys too (an older lrkit's)."""
    whole = _build()
    want, end = _train(whole, 0, CHECKS)
    assert end == STEPS
    waits = {int(line.split()[-1]) for line in want}
    assert {4, 8, 16} <= waits, waits  # the wait doubled, and was set back
    objs, step, states = _build(), 0, set()
    done: list[str] = []
    for k in range(CHECKS):
        saved = _checkpoint(objs)
        g = saved["guard"]
        states.add((g["backoff"], g["regrown"], g["multiplier"] < 1.0))
        if not math.isfinite(float(want[len(done)].split()[-2])):
            more, step = _train(objs, step, 1)  # no snapshot to roll back to after a resume here
            done += more
            continue
        guard_states = [g]
        if g["backoff"] == 0 and not g["regrown"] and g["since_change"] == g["good_since_rollback"]:
            guard_states.append({k: v for k, v in g.items() if k not in NEW_KEYS})  # an older lrkit's
        for state in guard_states:
            resumed = _resume(saved, state)
            got, _ = _train(resumed, step, CHECKS - k)
            assert done + got == want, (k, len(state))
            assert _end(resumed) == _end(whole), k
        more, step = _train(objs, step, 1)
        done += more
    assert done == want
    # checkpoints were taken cut and uncut, with and without a regrowth pending, with the wait doubled
    assert {(0, True, True), (0, False, True), (1, False, True), (1, True, False)} <= states, states


def test_an_older_state_with_cuts_is_regrown_by_a_guard_with_the_option() -> None:
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    old = DivergenceGuard(model, opt, snapshot_every=2)
    step = 0
    while step < 8:
        step = step + 1 if old.check(math.nan if step == 4 and not old.events else 1.0, step) else 2
    state = {k: v for k, v in old.state_dict().items() if k not in NEW_KEYS}
    assert opt.param_groups[0]["lr"] == 0.05 and state["good_since_rollback"] == 5
    new = DivergenceGuard(model, opt, snapshot_every=2, regrow_after=7)
    new.load_state_dict(state)  # 5 good steps since the cut (the replay of step 2 not counted)
    assert new.check(1.0, 8) and opt.param_groups[0]["lr"] == 0.05
    assert new.check(1.0, 9) and opt.param_groups[0]["lr"] == 0.1 and new.multiplier == 1.0


# -- bad values ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "error"),
    [(0, ValueError), (-5, ValueError), (2.5, ValueError), (math.nan, ValueError), (True, TypeError),
     ("100", TypeError), ([100], TypeError)],
)  # fmt: skip
def test_a_bad_regrow_after_is_refused_naming_it(value: Any, error: type[Exception]) -> None:
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(
        error, match=r"regrow_after must be an integer >= 1 or None, got .*" + re.escape(repr(value))
    ):
        DivergenceGuard(model, opt, regrow_after=value)


def test_numpy_and_tensor_integers_are_taken() -> None:
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    assert DivergenceGuard(model, opt, regrow_after=np.int64(7)).regrow_after == 7
    assert type(DivergenceGuard(model, opt, regrow_after=torch.tensor(7)).regrow_after) is int


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [("backoff", -1, "backoff must be an integer >= 0 and <= 64, got -1"),
     ("backoff", 65, "backoff must be an integer >= 0 and <= 64, got 65"),
     ("backoff", "1", "backoff must be an integer"),
     ("since_change", -2, "since_change must be an integer >= -1, got -2"),
     ("since_change", 1.5, "since_change must be an integer"),
     ("regrown", "yes", "regrown must be True or False, got 'yes'")],
)  # fmt: skip
def test_a_bad_regrowth_value_in_a_state_is_refused_naming_it(key: str, value: Any, match: str) -> None:
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    guard = DivergenceGuard(model, opt, regrow_after=3)
    state = guard.state_dict()
    with pytest.raises(ValueError, match=match):
        guard.load_state_dict({**state, key: value})
    assert guard.state_dict() == state  # nothing changed
