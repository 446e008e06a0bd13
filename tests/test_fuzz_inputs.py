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
    with pytest.raises(SpecError, match=rf"found the key '{re.escape(key)}' twice"):
        lrkit.loads(text, "yaml")  # JSON is YAML
    assert lrkit.loads(json.dumps(d), "json") == s == lrkit.loads(json.dumps(d), "yaml")


def test_a_key_given_twice_in_a_nested_json_object_or_block_yaml_is_refused() -> None:
    nested = '{"type": "chain", "pieces": [{"type": "constant", "lr": 0.1, "steps": 5, "steps": 6}]}'
    with pytest.raises(SpecError, match=r"the key 'steps' is given twice"):
        lrkit.loads(nested, "json")
    with pytest.raises(SpecError, match=r"found the key 'type' twice\s+in .*line 2"):
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
