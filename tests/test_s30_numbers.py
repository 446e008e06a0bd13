"""One rule for number arguments across the Python API (:mod:`lrkit._checks`): a count is any integer
(Python's, numpy's, a 0-d integer array or tensor), a rate or a factor any real number (also numpy's
floats, ``Fraction``, a 0-d real array or tensor), taken as the Python ``int`` / ``float`` it holds; a
bool is neither. The finders, ``TaskParts``, ``lrkit.auto``, the tune and lab entry points refused numpy's
numbers ("num_steps must be an integer >= 2, got np.int64(40)"), while the schedules and
``lrkit.torch.scheduler`` took them; 0-d tensors were taken by ``total_steps`` but not by
``scheduler.scale`` or ``Cosine(steps=)``, and ``step(epoch=)`` named ``set_step``'s ``k`` (a tester's
finding). Each call here must give what the same call with Python numbers gives."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lrkit
from lrkit.finder.core import lr_ramp, range_test

torch = pytest.importorskip("torch")

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: the integer kinds a count takes; each maps a Python int to that kind (None where it does not fit)
INT_KINDS: dict[str, Callable[[int], Any]] = {
    "int": int,
    **{
        f"np.{t.__name__}": t
        for t in (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64)
    },
    "np 0-d int64": lambda n: np.array(n, dtype=np.int64),
    "np 0-d uint8": lambda n: np.array(n, dtype=np.uint8),
    "torch 0-d int64": lambda n: torch.tensor(n, dtype=torch.int64),
    "torch 0-d int32": lambda n: torch.tensor(n, dtype=torch.int32),
}

#: the real kinds a rate or a factor takes (besides every integer kind)
REAL_KINDS: dict[str, Callable[[float], Any]] = {
    "float": float,
    "np.float16": np.float16,
    "np.float32": np.float32,
    "np.float64": np.float64,
    "Fraction": lambda x: Fraction(x),
    "np 0-d float32": lambda x: np.array(x, dtype=np.float32),
    "torch 0-d float32": lambda x: torch.tensor(x, dtype=torch.float32),
    "torch 0-d float64": lambda x: torch.tensor(x, dtype=torch.float64),
}

BOOLS = [True, np.True_, np.array(True), torch.tensor(True)]
#: what no number argument takes: a bool, text, a float for a count, an array of more than one value
NOT_COUNTS = [
    *BOOLS,
    3.0,
    np.float32(3.0),
    Fraction(3),
    "3",
    torch.tensor(3.0),
    torch.tensor([3]),
    np.array([3]),
]


def _fits(kind: Callable[[int], Any], n: int) -> bool:
    if isinstance(kind, type) and issubclass(kind, np.integer):
        info = np.iinfo(kind)
        return bool(info.min <= n <= info.max)
    if kind in (INT_KINDS["np 0-d uint8"],):
        return 0 <= n <= 255
    if kind is INT_KINDS["torch 0-d int32"]:
        return -(2**31) <= n < 2**31
    return True


def int_kinds(low: int, high: int) -> st.SearchStrategy[tuple[str, int, Any]]:
    """(kind, n, n as that kind) for n in [low, high]."""

    def build(name: str, n: int) -> st.SearchStrategy[tuple[str, int, Any]]:
        kind = INT_KINDS[name]
        return st.just((name, n, kind(n))) if _fits(kind, n) else st.nothing()

    return st.tuples(st.sampled_from(sorted(INT_KINDS)), st.integers(low, high)).flatmap(lambda a: build(*a))


def real_kinds(low: float, high: float) -> st.SearchStrategy[tuple[str, Any]]:
    """(kind, x as that kind) for x in [low, high] (its value as the kind holds it may differ a little)."""
    floats = st.floats(low, high, allow_nan=False, allow_infinity=False)
    reals = (
        st.tuples(st.sampled_from(sorted(REAL_KINDS)), floats)
        .map(lambda a: (a[0], REAL_KINDS[a[0]](a[1])))
        .filter(lambda a: math.isfinite(held(a[1])))  # float16 holds at most 65504: 1e6 is inf there
    )
    if math.ceil(low) > math.floor(high):
        return reals
    ints = int_kinds(math.ceil(low), math.floor(high)).map(lambda a: (a[0], a[2]))
    return reals | ints


def held(v: Any) -> float:
    """The Python float a real of any kind holds (what the call with a Python number is given)."""
    return float(v.item()) if hasattr(v, "item") and not isinstance(v, np.generic) else float(v)


# -- the range test (framework-free core) ----------------------------------------------------------


def _loss(lr: float) -> float:
    return (math.log10(lr) + 2.0) ** 2 + 1.0


@SETTINGS
@given(int_kinds(2, 60), int_kinds(1, 3), real_kinds(0.0, 0.95), real_kinds(1e-6, 1e-3))
def test_range_test_takes_any_number_kind_as_python_numbers(
    steps: tuple[str, int, Any],
    repeats: tuple[str, int, Any],
    smooth: tuple[str, Any],
    start: tuple[str, Any],
) -> None:
    assume_ok = 0 < held(start[1]) < 10.0 and 0 <= held(smooth[1]) < 1
    if not assume_ok:
        return
    kw = dict(start_lr=start[1], num_steps=steps[2], repeats=repeats[2], smoothing=smooth[1])
    plain = dict(start_lr=held(start[1]), num_steps=steps[1], repeats=repeats[1], smoothing=held(smooth[1]))
    got = range_test(_loss, diverge_factor=None, **kw)
    want = range_test(_loss, diverge_factor=None, **plain)
    assert json.dumps(got.to_dict()) == json.dumps(want.to_dict())  # json: Python numbers only
    assert (
        lr_ramp(kw["start_lr"], 1.0, kw["num_steps"]).tolist()
        == lr_ramp(plain["start_lr"], 1.0, steps[1]).tolist()
    )


@pytest.mark.parametrize("kind", sorted(REAL_KINDS))
def test_a_loss_of_any_real_kind_or_one_element_is_taken(kind: str) -> None:
    as_kind = REAL_KINDS[kind]
    got = range_test(lambda lr: as_kind(_loss(lr)), num_steps=20, diverge_factor=None)
    want = range_test(lambda lr: held(as_kind(_loss(lr))), num_steps=20, diverge_factor=None)
    assert got.curves[0].losses.tolist() == want.curves[0].losses.tolist()
    one = range_test(lambda lr: np.array([_loss(lr)]), num_steps=20, diverge_factor=None)
    assert one.curves[0].losses.tolist() == [_loss(lr) for lr in one.lrs]


@pytest.mark.parametrize("bad", NOT_COUNTS, ids=repr)
def test_range_test_refuses_a_count_that_is_no_integer_by_name(bad: Any) -> None:
    with pytest.raises(TypeError, match=r"^num_steps must be an integer >= 2, got \w+ "):
        range_test(_loss, num_steps=bad)


# -- the torch finder (seed, repeats, num_steps, end_lr, max_grad_norm, budget) ---------------------


def _find(**kw: Any) -> Any:
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = (x[:, 0] > 0).long()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16, shuffle=True)
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    return lrkit.find_lr(model, opt, loader, torch.nn.functional.cross_entropy, **kw)


@pytest.mark.parametrize(
    "kind",
    [np.int64, np.uint16, lambda n: np.array(n), torch.tensor],
    ids=["np.int64", "np.uint16", "np 0-d", "torch 0-d"],
)
def test_torch_find_lr_takes_numpy_and_tensor_numbers(kind: Callable[[Any], Any]) -> None:
    """``num_steps=np.int64(40)`` was "num_steps must be an integer >= 2, got np.int64(40)"."""
    f32 = (lambda x: np.float32(x)) if kind is not torch.tensor else (lambda x: torch.tensor(x))
    got = _find(
        num_steps=kind(30),
        repeats=kind(2),
        seed=kind(3),
        end_lr=f32(2.0),
        max_grad_norm=f32(1.0),
        planned_steps=kind(400),
        budget=f32(0.25),
    )
    want = _find(
        num_steps=30,
        repeats=2,
        seed=3,
        end_lr=held(f32(2.0)),
        max_grad_norm=held(f32(1.0)),
        planned_steps=400,
        budget=held(f32(0.25)),
    )
    assert json.dumps(got.to_dict()) == json.dumps(want.to_dict())


# -- TaskParts, lrkit.auto --------------------------------------------------------------------------


@SETTINGS
@given(int_kinds(1, 50), int_kinds(1, 50), real_kinds(0.01, 100.0))
def test_task_parts_keep_python_numbers(
    epochs: tuple[str, int, Any], spe: tuple[str, int, Any], clip: tuple[str, Any]
) -> None:
    from lrkit.tasks import TaskParts

    loader = [(torch.zeros(2, 2), torch.zeros(2, dtype=torch.long))]
    parts = TaskParts(
        model=torch.nn.Linear(2, 2),
        train_loader=loader,
        val_loader=loader,
        loss_fn=torch.nn.functional.cross_entropy,
        epochs=epochs[2],
        steps_per_epoch=spe[2],
        max_grad_norm=clip[1],
    )
    assert (parts.epochs, parts.steps_per_epoch) == (epochs[1], spe[1])
    assert type(parts.epochs) is int and type(parts.steps_per_epoch) is int
    assert parts.max_grad_norm == held(clip[1]) and type(parts.max_grad_norm) is float


@pytest.mark.parametrize("bad", [True, 2.0, torch.tensor(2.0), "2"], ids=repr)
def test_task_parts_refuse_a_count_that_is_no_integer(bad: Any) -> None:
    from lrkit.tasks import TaskParts

    loader = [(torch.zeros(2, 2), torch.zeros(2, dtype=torch.long))]
    with pytest.raises(ValueError, match=r"^TaskParts: epochs must be an integer >= 1, got \w+ "):
        TaskParts(torch.nn.Linear(2, 2), loader, loader, torch.nn.functional.cross_entropy, epochs=bad)


def _auto(**kw: Any) -> Any:
    from .auto_loops import blobs, mlp

    torch.manual_seed(0)
    model = mlp()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    return lrkit.auto(model, opt, blobs(256), torch.nn.functional.cross_entropy, verbose=False, **kw)


@pytest.mark.filterwarnings("ignore::lrkit.auto.SearchCostWarning")  # a 2-epoch run, on purpose
@pytest.mark.parametrize("as_np", [True, False], ids=["numpy", "torch 0-d"])
def test_auto_takes_numpy_and_tensor_numbers(as_np: bool) -> None:
    """``warmup=np.float32(0.1)`` was "warmup must be a fraction of the run in [0, 1), got np.float32(0.1)";
    peak_factor, guard_threshold, max_grad_norm and budget alike."""
    f = np.float32 if as_np else torch.tensor
    i = np.int64 if as_np else torch.tensor
    run = _auto(
        epochs=i(2),
        warmup=f(0.1),
        peak_factor=f(0.5),
        guard_threshold=f(4.0),
        max_grad_norm=f(1.0),
        budget=i(20),
        search="separate",
        seed=i(1),
        repeats=i(1),
        num_steps=i(30),
    )
    want = _auto(
        epochs=2,
        warmup=held(f(0.1)),
        peak_factor=held(f(0.5)),
        guard_threshold=held(f(4.0)),
        max_grad_norm=held(f(1.0)),
        budget=20,
        search="separate",
        seed=1,
        repeats=1,
        num_steps=30,
    )
    assert str(run.schedule) == str(want.schedule)
    assert run.peak_lr == want.peak_lr
    assert json.dumps(run.scheduler.state_dict()) == json.dumps(want.scheduler.state_dict())


def test_auto_budget_fraction_of_numpy_float_is_a_fraction() -> None:
    """budget=np.float32(0.1) was "budget must be an int (optimizer steps) or a float in (0, 1]"."""
    with pytest.raises(ValueError, match=r"budget as a float is a fraction of planned_steps in \(0, 1\]"):
        _auto(epochs=1, budget=np.float32(1.5))


@pytest.mark.parametrize(
    ("kw", "said"),
    [
        ({"warmup": np.True_}, "warmup must be a fraction of the run in [0, 1), got"),
        ({"peak_factor": torch.tensor(True)}, "peak_factor must be a finite number > 0, got"),
        ({"guard_threshold": np.float32(1.0)}, "guard_threshold must be None"),
        ({"epochs": np.float64(2.0)}, "epochs must be an integer >= 1, got float64"),
    ],
    ids=["warmup", "peak_factor", "guard_threshold", "epochs"],
)
def test_auto_still_refuses_by_name(kw: dict[str, Any], said: str) -> None:
    with pytest.raises(ValueError) as exc:
        _auto(**{"epochs": 1, **kw})
    assert said in str(exc.value)


# -- lrkit.torch.scheduler: step(epoch=), set_step, scale, multiplier --------------------------------


def _scheduler(graph: bool = False) -> tuple[Any, Any]:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=torch.tensor(0.1) if graph else 0.1)
    return opt, lrkit.torch.scheduler(opt, "warmup(10) >> cosine(lr=0.1)", total_steps=100, in_graph=graph)


def _lr(opt: Any) -> float:
    return float(opt.param_groups[0]["lr"])


@SETTINGS
@given(int_kinds(0, 200), real_kinds(0.0, 4.0), st.booleans())
def test_scheduler_jumps_and_scales_with_any_number_kind(
    k: tuple[str, int, Any], factor: tuple[str, Any], graph: bool
) -> None:
    opt, s = _scheduler(graph)
    opt2, s2 = _scheduler(graph)
    s.step(epoch=k[2])
    s2.step(epoch=k[1])
    assert _lr(opt) == _lr(opt2) and s.last_epoch == s2.last_epoch == k[1]
    if graph:
        return
    s.scale(factor[1])
    s2.scale(held(factor[1]))
    assert _lr(opt) == _lr(opt2) and s.multiplier == s2.multiplier and type(s.multiplier) is float
    s.multiplier = factor[1]
    s2.multiplier = held(factor[1])
    assert _lr(opt) == _lr(opt2) and json.dumps(s.state_dict()) == json.dumps(s2.state_dict())


@pytest.mark.parametrize("graph", [False, True], ids=["scheduler", "graph"])
@pytest.mark.parametrize("bad", [-1, 2.5, torch.tensor(5.0), True, torch.tensor(True)], ids=repr)
def test_step_epoch_is_named_epoch(graph: bool, bad: Any) -> None:
    """``step(epoch=torch.tensor(5.0))`` said "set_step: k must be an integer >= 0"."""
    _, s = _scheduler(graph)
    with pytest.raises(ValueError, match=r"^step: epoch must be an integer >= 0 and <= 2\*\*53, got"):
        s.step(epoch=bad)


# -- schedules --------------------------------------------------------------------------------------


@SETTINGS
@given(real_kinds(0.0, 10.0), int_kinds(2, 10_000), real_kinds(0.0, 8.0))
def test_schedules_take_any_number_kind(
    lr: tuple[str, Any], steps: tuple[str, int, Any], f: tuple[str, Any]
) -> None:
    got = lrkit.Cosine(lr=lr[1], steps=steps[2])
    want = lrkit.Cosine(lr=held(lr[1]), steps=steps[1])
    assert got == want and got.to_dict() == want.to_dict()
    assert (got * f[1]).to_dict() == (want * held(f[1])).to_dict()
    assert (f[1] * got).to_dict() == (held(f[1]) * want).to_dict()
    resolved = lrkit.parse("warmup(10%) >> cosine(lr=0.1)").resolve(total_steps=steps[2])
    assert resolved == lrkit.parse("warmup(10%) >> cosine(lr=0.1)").resolve(total_steps=steps[1])


def test_a_tensor_step_is_still_evaluated_as_an_array() -> None:
    s = lrkit.Cosine(lr=0.1, steps=100)
    out = s(torch.tensor([0, 50, 100]))
    assert isinstance(out, torch.Tensor) and out.shape == (3,)
    zero_d = s(torch.tensor(50))
    assert isinstance(zero_d, torch.Tensor) and zero_d.shape == ()


@pytest.mark.parametrize("bad", [torch.tensor([0.1]), np.array([0.1, 0.2]), torch.tensor(True)], ids=repr)
def test_a_schedule_refuses_an_array_of_more_than_0_dims(bad: Any) -> None:
    with pytest.raises(TypeError, match=r"^cosine: lr must be a number, got \w+ "):
        lrkit.Cosine(lr=bad, steps=100)


# -- tune ------------------------------------------------------------------------------------------


@SETTINGS
@given(real_kinds(1e-5, 1e-3), real_kinds(1e-2, 1.0), real_kinds(0.0, 0.4), int_kinds(20, 10_000))
def test_tune_space_and_spec_take_any_number_kind(
    lo: tuple[str, Any], hi: tuple[str, Any], warm: tuple[str, Any], total: tuple[str, int, Any]
) -> None:
    from lrkit.tune.space import SearchSpace, build_spec

    got = SearchSpace(lr_range=(lo[1], hi[1]), warmup_max=warm[1], center=hi[1])
    want = SearchSpace(lr_range=(held(lo[1]), held(hi[1])), warmup_max=held(warm[1]), center=held(hi[1]))
    assert got == want and type(got.warmup_max) is float and type(got.center) is float
    spec = build_spec("wsd", hi[1], warm[1], Fraction(1, 10), 0.2, total_steps=total[2])
    assert spec == build_spec("wsd", held(hi[1]), held(warm[1]), 0.1, 0.2, total_steps=total[1])
    wide = SearchSpace.from_finder(lo[1], widen=np.float32(4.0))
    assert wide == SearchSpace.from_finder(held(lo[1]), widen=4.0)


@pytest.mark.parametrize("bad", [("1e-4", 1.0), (True, 1.0), (torch.tensor([1e-4]), 1.0)], ids=repr)
def test_tune_space_refuses_text_and_bools(bad: tuple[Any, Any]) -> None:
    from lrkit.tune.space import SearchSpace

    with pytest.raises(ValueError, match=r"^lr_range must be two numbers \(low, high\), got"):
        SearchSpace(lr_range=bad)


# -- the lab ---------------------------------------------------------------------------------------


def test_lab_takes_numpy_numbers_and_stores_python_ones() -> None:
    """``run_lab(epochs=np.int64(1))`` was "epochs must be an integer >= 1, got np.int64(1)"; seeds and
    diverge_factor were stored as given (a numpy number in the run's config)."""
    from lrkit.lab.runner import Strategy, run_lab

    def lab(**kw: Any) -> Any:
        return run_lab("digits-mlp-sgd", [Strategy("c", "constant(0.05)")], **kw)

    got = lab(seeds=[np.int64(1)], epochs=np.int64(1), workers=np.int64(1), diverge_factor=np.float32(8.0))
    want = lab(seeds=[1], epochs=1, workers=1, diverge_factor=8.0)
    assert [r.final_metric for r in got.runs] == [r.final_metric for r in want.runs]
    assert [r.key for r in got.runs] == [r.key for r in want.runs]  # the same config, so the same run


@pytest.mark.parametrize(
    ("kw", "said"),
    [
        ({"seeds": [True]}, "seeds[0] must be an integer >= 0, got bool True"),
        ({"seeds": [0, 2.0]}, "seeds[1] must be an integer >= 0, got float 2.0"),
        ({"diverge_factor": np.float32(1.0)}, "diverge_factor must be a number > 1, got np.float32(1.0)"),
        ({"diverge_factor": "10"}, "diverge_factor must be a number > 1, got '10'"),
    ],
    ids=["seed-bool", "seed-float", "factor-1", "factor-str"],
)
def test_lab_refuses_by_name_before_any_run(kw: dict[str, Any], said: str) -> None:
    from lrkit.lab.runner import Strategy, run_lab

    with pytest.raises(ValueError) as exc:
        run_lab("digits-mlp-sgd", [Strategy("c", "constant(0.05)")], epochs=1, **kw)
    assert said in str(exc.value)
