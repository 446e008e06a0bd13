"""Classes of bad input found by a fresh adversarial pass over specs, evaluation and the adapters.

Each test covers a class (every key, every float spelling, every wrong type...), not one example.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lrkit
from lrkit import SpecError
from lrkit.schedules import Schedule

from . import strategies as ST

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- a key given twice ----------------------------------------------------------------------------------
@SETTINGS
@given(ST.schedules, st.data())
def test_a_key_given_twice_in_json_or_yaml_is_refused_by_name(s: Schedule, data: st.DataObject) -> None:
    """json.loads and PyYAML keep the last of two equal keys silently; TOML and the string form refuse
    them. A spec file that says lr twice (or type twice) is a mistake: say which key."""
    d = s.to_dict()
    key = data.draw(st.sampled_from(sorted(d)))
    body = json.dumps(d)[1:-1]
    text = "{" + body + ", " + json.dumps(key) + ": " + json.dumps(d[key]) + "}"
    with pytest.raises(SpecError, match=rf"the key '{re.escape(key)}' is given twice"):
        lrkit.loads(text, "json")
    with pytest.raises(SpecError, match=rf"the key '{re.escape(key)}' is given twice in one mapping"):
        lrkit.loads(text, "yaml")  # JSON is YAML
    assert lrkit.loads(json.dumps(d), "json") == s == lrkit.loads(json.dumps(d), "yaml")


def test_a_key_given_twice_in_a_nested_json_object_or_block_yaml_is_refused() -> None:
    nested = '{"type": "chain", "pieces": [{"type": "constant", "lr": 0.1, "steps": 5, "steps": 6}]}'
    with pytest.raises(SpecError, match=r"the key 'steps' is given twice"):
        lrkit.loads(nested, "json")
    with pytest.raises(
        SpecError, match=r"^spec: line 2, column 1: the key 'type' is given twice .*first on line 1"
    ):
        lrkit.loads("type: cosine\ntype: linear\nlr: 0.1", "yaml")
    # a YAML merge key is no duplicate: the keys written beside it override the merged ones
    assert lrkit.loads("type: cosine\n<<: {lr: 0.2}\nlr: 0.1", "yaml") == lrkit.Cosine(lr=0.1)


# -- YAML floats without a dot ---------------------------------------------------------------------------
@SETTINGS
@given(
    st.floats(min_value=1e-300, max_value=1e300),
    st.sampled_from(["{:e}", "{:E}", "{:.0e}", "{:.3e}", "{:g}"]),
    st.sampled_from(["", "+"]),
)
def test_yaml_reads_exponent_floats_written_without_a_dot(x: float, form: str, sign: str) -> None:
    """YAML 1.1 (PyYAML) reads ``3e-4`` as the string '3e-4' and the spec then said "lr must be a
    number, got str": the most common way to write a learning rate in a config file."""
    text = sign + form.format(x)
    s = lrkit.loads(f"type: constant\nlr: {text}", "yaml")
    assert s == lrkit.Constant(float(text)), text
    assert lrkit.loads(f"type: cosine\nlr: 0.1\nmin_lr: {text}", "yaml").min_lr == float(text)  # type: ignore[attr-defined]


@pytest.mark.parametrize("text", ["3e-4", "3E-4", "3e+2", ".5e-3", "1_0e-1", "-3e-4", "1e999"])
def test_yaml_exponent_floats_get_the_numbers_checks(text: str) -> None:
    value = float(text.replace("_", ""))
    if math.isfinite(value) and value >= 0:
        assert lrkit.loads(f"type: constant\nlr: {text}", "yaml") == lrkit.Constant(value)
    else:
        with pytest.raises(SpecError, match=r"lr must be (finite|>= 0), got"):
            lrkit.loads(f"type: constant\nlr: {text}", "yaml")


@pytest.mark.parametrize("text", ["3e", "e5", "1e-", "0x1p3", "3e-4ep"])
def test_yaml_words_that_are_not_floats_stay_words(text: str) -> None:
    with pytest.raises(SpecError, match=r"lr must be a number, got str"):
        lrkit.loads(f"type: constant\nlr: {text}", "yaml")


# -- non-finite words where a number goes ----------------------------------------------------------------
@pytest.mark.parametrize("word", ["nan", "NaN", "inf", "-inf", "+inf", "Infinity", "-INFINITY"])
@pytest.mark.parametrize(
    "template", ["{} * cosine(lr=0.1)", "cosine(lr=0.1) * {}", "{} >> cosine(lr=0.1)", "({})"]
)
def test_a_non_finite_word_as_a_factor_is_named_as_such(word: str, template: str) -> None:
    """It used to say "unknown schedule 'nan'" (or "expected a schedule, got '-inf'")."""
    text = template.format(word)
    with pytest.raises(SpecError, match=rf"expected a schedule or a finite number, got '{re.escape(word)}'"):
        lrkit.parse(text)


# -- wrong containers ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "pieces",
    [
        {"type": "constant", "lr": 0.1},
        "constant(0.1)",
        None,
        3,
        (x for x in ()),
    ],
)
def test_chain_pieces_must_be_a_list(pieces: object) -> None:
    """A dict became one schedule and was iterated ("'Constant' object is not iterable"); a string was
    iterated character by character ("pieces[0] must be a schedule, got str 'c'")."""
    with pytest.raises(SpecError, match=r"chain: pieces must be a list of schedules, got"):
        lrkit.from_dict({"type": "chain", "pieces": pieces})
    with pytest.raises(TypeError, match=r"chain: pieces must be a list of schedules, got"):
        lrkit.schedules.Chain(pieces)  # type: ignore[arg-type]


@SETTINGS
@given(
    st.sampled_from(sorted(lrkit.schedules.REGISTRY)),
    st.from_regex(r"[a-z_]{1,12}", fullmatch=True),
    st.dictionaries(st.sampled_from(["type", "lr"]), st.sampled_from([0.1, "x", [1]]), max_size=2),
)
def test_an_unknown_parameter_is_named_before_its_value_is_read(
    name: str, key: str, value: dict[str, Any]
) -> None:
    """A misspelt key holding a dict used to be read as a schedule first ("the dict needs a 'type'
    key") instead of being named as the unknown parameter it is."""
    cls = lrkit.schedules.REGISTRY[name]
    if key in {f for f in cls.__dataclass_fields__} or key == "type":
        return
    with pytest.raises(SpecError, match=rf"{name}: unknown parameter '{key}'"):
        lrkit.from_dict({"type": name, key: value})


# -- steps of the wrong kind -----------------------------------------------------------------------------
WRONG_NUMPY_STEPS = {
    "str": np.array(["1"]),
    "bytes": np.array([b"1"]),
    "bool": np.array([True, False]),
    "complex": np.array([1 + 0j]),
    "datetime": np.array(["2020-01-01"], dtype="datetime64[D]"),
    "timedelta": np.array([5], dtype="timedelta64[s]"),
    "object of str": np.array(["1", 2], dtype=object),
    "object of None": np.array([None, 2], dtype=object),
    "record": np.zeros(2, dtype=[("a", "i4")]),
}


@pytest.mark.parametrize("kind", sorted(WRONG_NUMPY_STEPS))
@pytest.mark.parametrize("spec", ["constant(0.1)", "warmup(10) >> cosine(lr=0.1, steps=90)"])
def test_numpy_steps_that_are_not_real_numbers_are_refused(kind: str, spec: str) -> None:
    """Scalars of these types were refused but arrays were cast: "1" was step 1, True step 1, complex
    steps lost their imaginary part with a ComplexWarning."""
    with pytest.raises(
        TypeError, match=r"step: expected an array of real numbers, got (an array of dtype|.* at index)"
    ):
        lrkit.parse(spec)(WRONG_NUMPY_STEPS[kind])


@SETTINGS
@given(st.lists(st.integers(-(2**80), 2**80) | st.floats(-1e300, 1e300), min_size=1, max_size=6))
def test_object_arrays_of_numbers_equal_the_scalar_loop(ts: list[Any]) -> None:
    """np.array of Python ints beyond int64 is an object array: it is read as numbers."""
    s = lrkit.parse("warmup(10) >> cosine(lr=0.1, steps=90)")
    arr = np.array(ts, dtype=object)
    assert s(arr).tolist() == [s(t) for t in ts]


@pytest.mark.parametrize("dtype", ["bool", "complex64", "complex128"])
def test_torch_and_jax_steps_that_are_not_real_numbers_are_refused(dtype: str) -> None:
    torch = pytest.importorskip("torch")
    jnp = pytest.importorskip("jax.numpy")
    s = lrkit.parse("warmup(10) >> cosine(lr=0.1, steps=90)")
    for t in (torch.zeros(3, dtype=getattr(torch, dtype)), jnp.zeros(3, dtype=dtype.replace("128", "64"))):
        with pytest.raises(
            TypeError, match=r"step: expected an array of real numbers, got an array of dtype"
        ):
            s(t)


@SETTINGS
@given(ST.schedules, st.lists(st.floats(-65504, 65504, width=16), min_size=1, max_size=8))
def test_float16_steps_are_evaluated_in_float32(s: Schedule, ts: list[float]) -> None:
    """A float16 step tensor raised "value cannot be converted to type c10::Half without overflow"
    (the clip bound 2**53 is beyond a half) for every schedule without a length of at most 65504."""
    torch = pytest.importorskip("torch")
    t16 = torch.tensor(ts, dtype=torch.float16)
    out = s(t16)
    assert out.dtype == torch.float32
    assert torch.equal(out, s(t16.float()))
    assert bool(torch.isfinite(out).all()) and bool((out >= 0).all())


# -- the torch adapter's arguments and states ----------------------------------------------------------
torch = pytest.importorskip("torch")
import lrkit.torch as LT  # noqa: E402

SPEC = "warmup(10%) >> cosine(lr=0.1)"


def _opt(tensor_lr: bool = False) -> Any:
    lr = torch.tensor(0.1) if tensor_lr else 0.1
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr)


BAD_NUMBERS = [0, -1, math.nan, math.inf, -math.inf, 10**400, -(10**400), True, "100", [100]]


@pytest.mark.parametrize("name", ["total_steps", "steps_per_epoch", "epochs"])
@pytest.mark.parametrize("bad", BAD_NUMBERS, ids=repr)
def test_a_bad_count_is_a_value_error_naming_it(name: str, bad: object) -> None:
    """10**400 raised OverflowError (math.isfinite of a huge int)."""
    kwargs: dict[str, Any] = {"total_steps": 100, name: bad}
    if name == "epochs":
        kwargs = {"epochs": bad, "steps_per_epoch": 10}
    with pytest.raises(ValueError, match=rf"{name} must be a finite number > 0, got") as exc:
        LT.scheduler(_opt(), SPEC, **kwargs)
    assert len(str(exc.value)) < 200


@SETTINGS
@given(
    st.integers(10, 10**6),
    st.sampled_from([int, np.int32, np.int64, np.uint64, float, np.float32, np.float64]),
)
def test_numpy_counts_are_numbers(n: int, kind: type) -> None:
    """np.float64 was taken (a float subclass), np.int64 refused as "not a finite number > 0"."""
    s = LT.scheduler(_opt(), SPEC, total_steps=kind(n))
    assert s.schedules == LT.scheduler(_opt(), SPEC, total_steps=float(kind(n))).schedules


@SETTINGS
@given(
    st.integers(0, 2**53) | st.integers(0, 2**62).map(np.int64),
    st.booleans(),
)
def test_any_step_up_to_2_53_can_be_set_and_loaded(k: int, graph: bool) -> None:
    """numpy ints were refused by set_step (but taken by load_state_dict)."""
    o = _opt(tensor_lr=graph)
    s = LT.scheduler(o, SPEC, total_steps=100, in_graph=graph)
    if int(k) > 2**53:
        with pytest.raises(ValueError, match=r"set_step: k must be an integer >= 0 and <= 2\*\*53, got"):
            s.set_step(k)
        return
    s.set_step(k)
    want = float(s.schedules[0](int(k)))
    assert float(o.param_groups[0]["lr"]) == pytest.approx(want, rel=1e-6, abs=1e-9)
    state = s.state_dict()
    s2 = LT.scheduler(_opt(tensor_lr=graph), SPEC, total_steps=100, in_graph=graph)
    s2.load_state_dict(state)
    assert s2.last_epoch == int(k)


@pytest.mark.parametrize("graph", [False, True])
@pytest.mark.parametrize("k", [2**53 + 1, 2**63 - 1, 2**63, 2**64, 10**30, 10**400, -1, -(2**63)], ids=str)
def test_a_step_beyond_2_53_is_refused_by_set_step_and_load_state_dict(graph: bool, k: int) -> None:
    """It raised OverflowError (numpy), or a RuntimeError/OverflowError writing the int64 step tensor."""
    o = _opt(tensor_lr=graph)
    s = LT.scheduler(o, SPEC, total_steps=100, in_graph=graph)
    with pytest.raises(ValueError, match=r"set_step: k must be an integer >= 0 and <= 2\*\*53, got") as exc:
        s.set_step(k)
    assert len(str(exc.value)) < 200
    state = s.state_dict()
    with pytest.raises(
        ValueError, match=r"load_state_dict: last_epoch must be an integer >= 0 and <= 2\*\*53"
    ):
        s.load_state_dict({**state, "last_epoch": k})
    assert s.last_epoch == 0  # unchanged


@pytest.mark.parametrize("bad", [10**400, -(10**400), math.nan, math.inf, -1, "2", None, True], ids=repr)
def test_a_bad_multiplier_or_factor_is_a_value_error(bad: object) -> None:
    s = LT.scheduler(_opt(), SPEC, total_steps=100)
    with pytest.raises(ValueError, match=r"^multiplier must be a finite number >= 0, got"):
        s.multiplier = bad  # type: ignore[assignment]
    with pytest.raises(ValueError, match=r"^scale: factor must be a finite number >= 0, got"):
        s.scale(bad)  # type: ignore[arg-type]
    state = s.state_dict()
    with pytest.raises((ValueError, TypeError), match=r"load_state_dict: multiplier must be"):
        s.load_state_dict({**state, "multiplier": bad})
    assert s.multiplier == 1.0


def test_multiplier_takes_numpy_numbers_and_scale_refuses_an_overflow() -> None:
    s = LT.scheduler(_opt(), SPEC, total_steps=100)
    s.multiplier = np.float32(0.5)
    s.scale(np.int64(2))
    assert s.multiplier == 1.0
    s.multiplier = 1e300
    with pytest.raises(ValueError, match=r"scale: factor=1e\+10 times the multiplier 1e\+300 overflows"):
        s.scale(1e10)


@pytest.mark.parametrize("hparams", ["momentum", ["momentum"], 3, ("momentum", "cosine(lr=0.9)")])
def test_hparams_must_be_a_dict(hparams: object) -> None:
    """A string raised AttributeError: 'str' object has no attribute 'items'."""
    with pytest.raises(TypeError, match=r"hparams must be a dict of hyperparameter name -> schedule"):
        LT.scheduler(_opt(), SPEC, total_steps=100, hparams=hparams)  # type: ignore[arg-type]


@pytest.mark.parametrize("schedule", [b"cosine(lr=0.1)", bytearray(b"cosine(lr=0.1)")])
def test_a_bytes_schedule_is_a_type_error(schedule: object) -> None:
    """It was taken for a list of 14 schedules ("got 14 schedules for 1 parameter groups")."""
    with pytest.raises(TypeError, match=r"schedule must be a schedule or a list of one schedule per"):
        LT.scheduler(_opt(), schedule, total_steps=100)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "missing", [["last_epoch"], ["base_lrs"], ["multiplier"], ["last_epoch", "base_lrs"]]
)
def test_a_state_missing_keys_is_a_value_error_and_a_key_error(missing: list[str]) -> None:
    """load_state_dict promises ValueError/TypeError for a corrupt state; a KeyError is kept (torch's
    own schedulers raise one), so code catching either sees it."""
    s = LT.scheduler(_opt(), SPEC, total_steps=100)
    state = {k: v for k, v in s.state_dict().items() if k not in missing}
    for exc_type in (ValueError, KeyError):
        with pytest.raises(exc_type) as exc:
            s.load_state_dict(state)
        assert str(exc.value).startswith("load_state_dict: not an lrkit.torch scheduler state (missing")
