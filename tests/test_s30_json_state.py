"""The Plateau's and the DivergenceGuard's states are strict JSON (``json.dumps(..., allow_nan=False)``,
what orjson and JavaScript write) at every moment: before any metric, during the warmup, after NaN and
infinite losses, metrics and events. A state sent through strict JSON resumes bit for bit as the run
that never stopped, and so does the state an older lrkit wrote (``inf``/``NaN`` floats; a strict
writer turns those into ``null``).

Before, ``best`` (``inf`` before any metric), the guard's ``low`` (``inf`` before any median) and an
event's ``loss`` (NaN) made ``json.dumps(state, allow_nan=False)`` raise "Out of range float values",
and the ``null`` a strict writer puts in their place was refused on loading ("best must be a number, got
NoneType None"; the guard: "a corrupt state").
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

import lrkit  # noqa: E402
from lrkit.control import DivergenceGuard, Plateau  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

INF, NAN = math.inf, math.nan


def _strict(state: Any) -> Any:
    """``state`` through strict JSON (raises where it holds a NaN or an infinity)."""
    return json.loads(json.dumps(state, allow_nan=False))


def _old_number(v: Any, none: float) -> Any:
    """What an older lrkit wrote for a value this one writes as ``v``: the float itself."""
    return none if v is None else float(v) if isinstance(v, str) else v


def _old_plateau(state: dict[str, Any]) -> dict[str, Any]:
    worst = INF if state["mode"] == "min" else -INF
    return {**state, "best": _old_number(state["best"], worst)}


def _old_guard(state: dict[str, Any]) -> dict[str, Any]:
    events = [
        {**e, "loss": _old_number(e["loss"], NAN), "reference": _old_number(e["reference"], NAN)}
        for e in state["events"]
    ]
    return {**state, "low": _old_number(state["low"], INF), "events": events}


def _nulled(obj: Any) -> Any:
    """``obj`` as a strict JSON writer (orjson, JavaScript's JSON.stringify) writes it: NaN/inf as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nulled(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nulled(v) for v in obj]
    return obj


# -- the Plateau alone ----------------------------------------------------------------------------------
METRICS = st.lists(
    st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([INF, -INF, NAN, 0.0, -0.0, 1.0, 0.5]),
    ),
    max_size=24,
)
CONFIGS = st.fixed_dictionaries(
    {
        "mode": st.sampled_from(["min", "max"]),
        "threshold_mode": st.sampled_from(["rel", "abs"]),
        "threshold": st.sampled_from([0.0, 1e-4, 0.1]),
        "patience": st.integers(0, 3),
        "cooldown": st.integers(0, 2),
    }
)


@settings(max_examples=300, deadline=None)
@given(cfg=CONFIGS, metrics=METRICS, data=st.data())
def test_a_plateau_state_is_strict_json_and_resumes_bit_for_bit(
    cfg: dict[str, Any], metrics: list[float], data: st.DataObject
) -> None:
    """Any metrics (NaN, +-inf, -0.0, huge), a checkpoint after any of them: the state goes through
    strict JSON, and a plateau that loads it (or the older float form) takes the rest as the plateau
    that never stopped: the same cuts, the same best (bit for bit) and counters."""
    k = data.draw(st.integers(0, len(metrics)), label="k")
    whole = Plateau(**cfg)
    for m in metrics[:k]:
        whole.step(m)
    state = whole.state_dict()
    resumed = [Plateau(**cfg), Plateau(**cfg)]
    resumed[0].load_state_dict(_strict(state))
    resumed[1].load_state_dict(_old_plateau(state))  # an older lrkit's state: inf floats
    for p in resumed:
        assert repr(p.best) == repr(whole.best) and p.state_dict() == state
    want = [whole.step(m) for m in metrics[k:]]
    for p in resumed:
        assert [p.step(m) for m in metrics[k:]] == want
        assert p.state_dict() == whole.state_dict() and repr(p.best) == repr(whole.best)
        json.dumps(p.state_dict(), allow_nan=False)


@pytest.mark.parametrize("mode", ["min", "max"])
def test_best_is_none_before_a_best_and_the_name_of_an_infinite_best(mode: str) -> None:
    p = Plateau(mode=mode)
    assert p.state_dict()["best"] is None
    p.step(NAN)  # never better: still no best
    assert p.state_dict()["best"] is None
    p.step(-INF if mode == "min" else INF)  # the best there can be
    assert p.state_dict()["best"] == ("-inf" if mode == "min" else "inf")
    # an older state (best: the mode's worst, a float) through a strict writer (orjson, JavaScript):
    # its null is the mode's worst again, no best yet
    q = Plateau(mode=mode)
    old = {**q.state_dict(), "best": q.mode_worse}
    assert _nulled(old)["best"] is None
    q.load_state_dict(_nulled(old))
    assert q.best == q.mode_worse


@pytest.mark.parametrize(
    ("best", "error", "match"),
    [
        ("1.0", TypeError, r"best must be a number, None or the name of a NaN or infinity .*got str '1\.0'"),
        ("x", TypeError, r"best must be a number, None .*got str 'x'"),
        (True, TypeError, r"best must be a number, None .*got bool True"),
        ([1.0], TypeError, r"best must be a number, None .*got list \[1\.0\]"),
        ("nan", ValueError, r"best must be a number or \+-inf, not NaN, got 'nan'"),
        (NAN, ValueError, r"best must be a number or \+-inf, not NaN, got nan"),
    ],
)
def test_a_bad_best_is_refused_naming_it(best: Any, error: type[Exception], match: str) -> None:
    p = Plateau()
    p.step(1.0)
    before = p.state_dict()
    with pytest.raises(error, match=match):
        p.load_state_dict({**before, "best": best})
    assert p.state_dict() == before


# -- the torch scheduler and the guard, in a training loop ----------------------------------------------
STEPS = 40
NAN_AT, INF_AT = 14, 23  # the loss is NaN at the first try of step 14, inf at the first try of 23


def _build(mode: str) -> tuple[Any, Any, Any, DivergenceGuard]:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    plateau = Plateau(mode=mode, patience=1, factor=0.5)
    sched = lrkit.torch.scheduler(opt, "warmup(10) >> cosine(lr=0.1)", total_steps=STEPS, plateau=plateau)
    guard = DivergenceGuard(model, opt, sched, factor=0.5, snapshot_every=1)
    return model, opt, sched, guard


def _batch(step: int) -> tuple[Any, Any]:
    g = torch.Generator().manual_seed(step)
    x = torch.randn(8, 3, generator=g)
    return x, x.sum(1, keepdim=True)


def _metric(step: int, loss: float, mode: str) -> float:
    """What is reported every 3rd step: the loss (of a max plateau, minus it); at step 29 the best there
    can be (-inf for min, inf for max), at 32 NaN."""
    if step == 29:
        return -INF if mode == "min" else INF
    if step == 32:
        return NAN
    return loss if mode == "min" else -loss


def _train(
    objs: tuple[Any, Any, Any, DivergenceGuard], step: int, checks: int, mode: str
) -> tuple[list[str], int]:
    """``checks`` checks of the loop from ``step`` (replaying rolled back steps): each check's (step, lr,
    loss) and each report's LR, as text (NaN compares); and the step the loop goes on with."""
    model, opt, sched, guard = objs
    out = []
    for _ in range(checks):
        x, y = _batch(step)
        loss = torch.nn.functional.mse_loss(model(x), y)
        n_events = len(guard.events)
        if step == NAN_AT and n_events == 0:
            loss = loss * NAN
        if step == INF_AT and n_events == 1:
            loss = loss * INF
        loss.backward()
        out.append(f"{step} {opt.param_groups[0]['lr']!r} {float(loss.detach())!r}")
        if guard.check(loss, step):
            opt.step()
            sched.step()
            if step % 3 == 2:
                sched.report(_metric(step, float(loss.detach()), mode))
                out.append(f"report {opt.param_groups[0]['lr']!r}")
            step += 1
        else:
            assert guard.resume_step is not None
            step = guard.resume_step
        opt.zero_grad()
    return out, step


def _end(objs: tuple[Any, Any, Any, DivergenceGuard]) -> list[str]:
    model, _, sched, guard = objs
    return [repr(guard.events), repr(sched.plateau.best), repr([p.tolist() for p in model.parameters()])]


def _checkpoint(objs: tuple[Any, Any, Any, DivergenceGuard]) -> dict[str, Any]:
    model, opt, sched, guard = objs
    return {
        "model": copy.deepcopy(model.state_dict()),
        "optimizer": copy.deepcopy(opt.state_dict()),
        "scheduler": sched.state_dict(),
        "guard": guard.state_dict(),
        "rng": torch.get_rng_state(),
    }


def _resume(saved: dict[str, Any], mode: str, sched_state: Any, guard_state: Any) -> Any:
    objs = _build(mode)
    model, opt, sched, guard = objs
    saved = copy.deepcopy(saved)  # the optimizer takes the saved tensors as they are, and moves them
    model.load_state_dict(saved["model"])
    opt.load_state_dict(saved["optimizer"])
    sched.load_state_dict(sched_state)
    torch.set_rng_state(saved["rng"])
    guard.load_state_dict(guard_state)
    return objs


CHECKS = 44  # checks in all: 40 steps, two rollbacks of two steps (to the snapshot before)


@pytest.mark.parametrize("mode", ["min", "max"])
def test_a_run_resumed_from_a_strict_json_checkpoint_is_the_run_that_never_stopped(mode: str) -> None:
    """A checkpoint before every check but the two that diverge: at step 0, in the warmup (steps < 10, no
    metric counted yet), just after the NaN and the inf losses were rolled back, after an infinite best
    metric and a NaN one. The
    scheduler's and the guard's states go through strict JSON; the resumed run's LRs, losses, reports,
    events and parameters are those of the run that never stopped, bit for bit. So they are for the
    states as an older lrkit wrote them (inf/NaN floats, kept by torch.save)."""
    whole = _build(mode)
    want, end = _train(whole, 0, CHECKS, mode)
    assert end == STEPS and _end(whole)[1] == ("-inf" if mode == "min" else "inf")
    assert "reason='nan'" in _end(whole)[0] and "reason='inf'" in _end(whole)[0]
    objs, step, resumes = _build(mode), 0, 0
    done: list[str] = []
    for k in range(CHECKS):
        saved = _checkpoint(objs)
        if not math.isfinite(float(want[len(done)].split()[-1])):
            # the next loss diverges: the checkpoint holds the seed of the blow-up, and a resumed guard
            # has no snapshot before it to roll back to (it raises, as documented)
            more, step = _train(objs, step, 1, mode)
            done += more
            continue
        resumes += 1
        for sched_state, guard_state in (
            (_strict(saved["scheduler"]), _strict(saved["guard"])),
            (
                {**saved["scheduler"], "plateau": _old_plateau(saved["scheduler"]["plateau"])},
                _old_guard(saved["guard"]),
            ),
        ):
            resumed = _resume(saved, mode, sched_state, guard_state)
            got, _ = _train(resumed, step, CHECKS - k, mode)
            assert done + got == want, k
            assert _end(resumed) == _end(whole), k
        more, step = _train(objs, step, 1, mode)
        done += more
    assert resumes == CHECKS - 2 and done == want


def test_the_guard_state_is_strict_json_from_the_start_and_after_events() -> None:
    objs = _build("min")
    guard = objs[3]
    state = guard.state_dict()
    assert state["low"] is None and json.dumps(state, allow_nan=False)
    _train(objs, 0, CHECKS, "min")
    state = guard.state_dict()
    losses = [e["loss"] for e in state["events"]]
    assert losses == ["nan", "inf"], losses
    json.dumps(state, allow_nan=False)
    # an older state through a strict writer: NaN/inf floats made null, loaded (a null loss: NaN)
    other = DivergenceGuard(*_build("min")[:2])  # (no scheduler: its cuts are not loaded here)
    other.load_state_dict(_nulled(_old_guard(state)))
    assert [repr(e.loss) for e in other.events] == ["nan", "nan"] and other.reference == guard.reference


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("low", "x", r"corrupt state: low must be a number, None or the name of a NaN or infinity .*'x'"),
        ("low", "nan", r"corrupt state: low must be a number, or None before any median, got 'nan'"),
        ("low", [1.0], r"corrupt state: low must be a number, None .*got list \[1\.0\]"),
        ("loss", "big", r"corrupt state: event loss must be a number, None .*got str 'big'"),
        ("lr_before", [None], r"corrupt state: event lr_before\[0\] must be a number or the name .*None"),
    ],
)
def test_a_bad_value_in_a_guard_state_is_refused_naming_it(key: str, value: Any, match: str) -> None:
    objs = _build("min")
    _train(objs, 0, 20, "min")
    state = objs[3].state_dict()
    if key == "low":
        state = {**state, "low": value}
    else:
        state = {**state, "events": [{**state["events"][0], key: value}]}
    other = _build("min")[3]
    with pytest.raises(ValueError, match=match):
        other.load_state_dict(state)
    assert other.events == [] and other.state_dict()["low"] is None


def test_the_issue_example() -> None:
    """Tester H's script: a scheduler with a warmup and a Plateau, before any metric."""
    opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1)
    s = lrkit.torch.scheduler(opt, "warmup(10%) >> cosine(lr=0.1)", total_steps=100, plateau=Plateau())
    sd = _strict(s.state_dict())
    assert sd["plateau"]["best"] is None
    s.load_state_dict(sd)
    assert s.plateau is not None and s.plateau.best == INF
