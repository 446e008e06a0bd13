"""Any input to a spec loader gets a SpecError or a schedule, never another exception (issue 9).

Classes of input: arbitrary text and data, huge numbers, deep nesting, long inputs, wrong argument
types, files that are not UTF-8, boolean flags, and round trips of every schedule that constructs.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lrkit
from lrkit import SpecError, parse
from lrkit import spec as S
from lrkit.schedules import REGISTRY, Chain, Constant, Schedule

from . import strategies as ST

SETTINGS = settings(
    max_examples=int(__import__("os").environ.get("LRKIT_EXAMPLES", 200)),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
FORMATS = ("string", "json", "yaml", "toml")


def read(text: str | bytes, fmt: str) -> Schedule | None:
    """A loader's answer: the schedule, or None for a SpecError with a short message. Anything else
    (OverflowError, RecursionError, AttributeError, UnicodeDecodeError, ...) fails the test."""
    try:
        return lrkit.loads(text, fmt)
    except SpecError as exc:
        assert len(str(exc)) < 1000, f"{len(str(exc))}-character message"
        return None


# -- arbitrary text and data --------------------------------------------------------------------------
SPEC_ALPHABET = st.sampled_from(
    [*list("()[]{},=*>%'\":.-+_ \n\t#&!0123456789eE"), "ep", "rest", "true", "no"]
)
examples = st.sampled_from(sorted(REGISTRY[n].example for n in REGISTRY))


@SETTINGS
@given(st.text() | st.binary() | st.lists(SPEC_ALPHABET).map("".join), st.sampled_from(FORMATS))
def test_any_text_gets_a_schedule_or_a_spec_error(text: str | bytes, fmt: str) -> None:
    read(text, fmt)


@SETTINGS
@given(examples, st.data())
def test_mutated_examples_get_a_schedule_or_a_spec_error(example: str, data: st.DataObject) -> None:
    text = example
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(text)))
        cut = data.draw(st.integers(0, 3))
        text = text[:i] + data.draw(st.lists(SPEC_ALPHABET, max_size=3).map("".join)) + text[i + cut :]
    read(text, "string")


json_values = st.recursive(
    st.none()
    | st.booleans()
    | ST.any_floats
    | st.integers()
    | st.text(max_size=8)
    | st.sampled_from(list(REGISTRY)),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.sampled_from(["type", "lr", "steps", "x"]), kids)
    ),
    max_leaves=12,
)


@SETTINGS
@given(st.sampled_from(sorted(REGISTRY)), st.dictionaries(st.text(max_size=12), json_values, max_size=5))
def test_any_dict_gets_a_schedule_or_a_spec_error(name: str, extra: dict[str, Any]) -> None:
    for d in ({"type": name, **extra}, extra, [extra], name):
        with contextlib.suppress(SpecError):
            lrkit.from_dict(d)  # type: ignore[arg-type]


# -- huge numbers ---------------------------------------------------------------------------------------
HUGE = {"10**400": "1" + "0" * 400, "5000 digits": "9" * 5000, "1e400": "1e400", "-1e400": "-1e400"}
PLACES = {
    "lr": ("cosine", {"lr": "N"}),
    "steps": ("cosine", {"lr": 0.1, "steps": "N"}),
    "times": ("repeat", {"schedule": {"type": "cosine", "lr": 0.1, "steps": 5}, "times": "N"}),
    "milestone": ("multistep", {"lr": 0.1, "milestones": ["N"]}),
    "point": ("piecewise", {"points": [[0, 0.1], ["N", 0.5]]}),
}


def _as(fmt: str, kind: str, params: dict[str, Any], number: str) -> str:
    """The spec in ``fmt`` with the literal ``number`` where ``"N"`` stands."""
    d = {"type": kind, **params}
    if fmt == "string":
        text = lrkit.to_string(lrkit.from_dict(json.loads(json.dumps(d).replace('"N"', "7"))))
        return (
            text.replace("=7", f"={number}")
            .replace("[7", f"[{number}")
            .replace("[[0, 0.1], [7", f"[[0, 0.1], [{number}")
        )
    if fmt == "json":
        return json.dumps(d).replace('"N"', number)
    if fmt == "yaml":
        return json.dumps(d).replace('"N"', number)  # JSON is YAML
    import tomli_w

    return tomli_w.dumps(d).replace('"N"', number)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("place", sorted(PLACES))
@pytest.mark.parametrize("size", sorted(HUGE))
def test_huge_numbers_get_a_spec_error_that_says_so(fmt: str, place: str, size: str) -> None:
    kind, params = PLACES[place]
    text = _as(fmt, kind, params, HUGE[size])
    assert HUGE[size] in text
    with pytest.raises(
        SpecError, match=r"out of range|finite|at most|2\*\*53|>= 0|integer of|number, got str"
    ) as exc:
        lrkit.loads(text, fmt)
    assert len(str(exc.value)) < 500


def test_huge_numbers_from_python() -> None:
    with pytest.raises(SpecError, match=r"lr must be a finite number"):
        lrkit.from_dict({"type": "cosine", "lr": 10**400})
    with pytest.raises(SpecError, match=r"steps: expected a finite number"):
        lrkit.from_dict({"type": "cosine", "lr": 0.1, "steps": 10**400})
    with pytest.raises(SpecError, match=r"out of range"):
        parse("2 * 1e300 * 1e300 * cosine(lr=0.1)")  # numbers multiplied in the spec
    with pytest.raises(SpecError, match=r"scale: factor=1e\+300 times the peak 1e\+300 overflows"):
        parse("cosine(lr=1e300) * 1e300")


# -- depth and size -----------------------------------------------------------------------------------
DEEP = {
    "product": lambda n: " * ".join(["constant(lr=1.0)"] * n),
    "scale": lambda n: "cosine(lr=0.1)" + " * 1.0" * n,
    "parens": lambda n: "(" * n + "cosine(lr=0.1)" + ")" * n,
    "lists": lambda n: "piecewise(points=" + "[" * n + "]" * n + ")",
    "clamp": lambda n: "clamp(" * n + "constant(0.1)" + ")" * n,
}


@pytest.mark.parametrize("n", [65, 500, 1000, 10_000])
@pytest.mark.parametrize("kind", sorted(DEEP))
def test_deep_strings_get_a_spec_error(kind: str, n: int) -> None:
    with pytest.raises(SpecError, match=r"nested|deep|levels") as exc:
        parse(DEEP[kind](n))
    assert len(str(exc.value)) < 500


def test_nesting_up_to_the_limit_works() -> None:
    s = parse(" * ".join(["constant(lr=1.0)"] * 64))
    assert s.nesting == 64 and s(0) == 1.0
    assert parse(lrkit.to_string(s)) == s


@pytest.mark.parametrize("n", [100, 10_000, 100_000])
@pytest.mark.parametrize("fmt", ["json", "yaml", "toml"])
def test_deep_files_get_a_spec_error(fmt: str, n: int) -> None:
    lists = "[" * n + "]" * n
    text = {
        "json": '{"type": "piecewise", "points": ' + lists + "}",
        "yaml": "type: piecewise\npoints: " + lists,
        "toml": 'type = "piecewise"\npoints = ' + lists,
    }[fmt]
    with pytest.raises(SpecError, match=r"nested|deep|levels|invalid"):
        lrkit.loads(text, fmt)
    m = min(n, 30_000)  # 31 characters a level: within the size cap
    with pytest.raises(SpecError, match=r"nested|deep|levels"):
        if fmt == "toml":
            inner = '{type = "clamp", schedule = ' * m + '{type = "constant", lr = 0.1}' + "}" * m
            lrkit.loads('type = "clamp"\nschedule = ' + inner, fmt)
        else:
            lrkit.loads(
                '{"type": "clamp", "schedule": ' * m + '{"type": "constant", "lr": 0.1}' + "}" * m, fmt
            )


def test_deep_python_schedules_are_refused_at_construction() -> None:
    s: Schedule = Constant(0.1)
    for _ in range(63):
        s = s * 1.0
    with pytest.raises(ValueError, match=r"scale: schedules nested 65 levels deep; at most 64"):
        s * 1.0


def test_yaml_aliases_cannot_blow_up() -> None:
    """Nine levels of nine aliases hold 9**9 values in a 700-byte file."""
    lines = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1]"] + [
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)
    ]
    text = "type: piecewise\npoints:\n" + "\n".join("  - " + line.split(": ", 1)[1] for line in lines)
    with pytest.raises(SpecError, match=r"holds more than 100000 values"):
        lrkit.loads(text, "yaml")
    with pytest.raises(SpecError, match=r"holds more than 100000 values"):
        lrkit.from_dict({"type": "piecewise", "points": _shared(9)})


def _shared(levels: int) -> list[Any]:
    x: list[Any] = [[0, 0.1]]
    for _ in range(levels):
        x = [x] * 9
    return x


@pytest.mark.parametrize("n", [20_000, 34_000])
def test_long_chains_parse(n: int) -> None:
    text = " >> ".join(["constant(lr=0.1, steps=1)"] * n)
    s = parse(text)
    assert isinstance(s, Chain) and len(s.pieces) == n and s(n - 1) == 0.1


@pytest.mark.parametrize("fmt", FORMATS)
def test_inputs_over_the_size_cap_are_refused_before_they_are_read(fmt: str) -> None:
    text = "constant(lr=0.1) >> " * (S.MAX_INPUT // 20 + 1)
    with pytest.raises(SpecError, match=r"characters is too long; a spec holds at most 1000000") as exc:
        lrkit.loads(text, fmt)
    assert len(str(exc.value)) < 200


@given(st.integers(0, 200_000), st.integers(0, 20))
@settings(max_examples=40, deadline=None)
def test_errors_show_the_neighbourhood_of_the_position(prefix_pieces: int, tail: int) -> None:
    bad = "cosine(lr=0.1, stepz=5)"
    text = "constant(lr=0.1, steps=1) >> " * (prefix_pieces // 29) + bad + " " * tail
    with pytest.raises(SpecError) as exc:
        parse(text)
    msg = str(exc.value)
    assert "unknown parameter 'stepz'" in msg and "stepz" in msg.split(" at position ")[1]
    assert len(msg) < 400
    pos = int(msg.split(" at position ")[1].split()[0])
    assert text[pos:].startswith("stepz")


# -- argument types, files ------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", [None, 3, "xml", "", b"json", ["json"]])
def test_a_bad_format_gets_a_spec_error_naming_fmt(fmt: object) -> None:
    with pytest.raises(SpecError, match=r"fmt: expected one of json, yaml, yml, toml, string, got"):
        lrkit.loads("{}", fmt)  # type: ignore[arg-type]
    with pytest.raises(SpecError, match=r"fmt: expected one of"):
        lrkit.dumps(Constant(0.1), fmt)  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("text", [None, 3, 0.5, ["cosine(lr=0.1)"], {"type": "constant"}, object()])
def test_a_non_text_spec_gets_a_spec_error(fmt: str, text: object) -> None:
    with pytest.raises(SpecError, match=r"expected a string, got"):
        lrkit.loads(text, fmt)  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", FORMATS)
def test_utf8_bytes_are_read_and_invalid_bytes_get_a_spec_error(fmt: str) -> None:
    s = Constant(lr=0.1)
    assert lrkit.loads(lrkit.dumps(s, fmt).encode(), fmt) == s
    with pytest.raises(SpecError, match=r"not valid UTF-8 \(invalid start byte at byte 0\)"):
        lrkit.loads(b"\xff" + lrkit.dumps(s, fmt).encode(), fmt)


@pytest.mark.parametrize("ext", ["json", "yaml", "yml", "toml"])
@pytest.mark.parametrize("junk", [b"\xff\xfe", b"\x80", b"type: \xc3\x28", b"\xed\xa0\x80"])
def test_spec_files_that_are_not_utf8_get_a_spec_error(tmp_path: Path, ext: str, junk: bytes) -> None:
    p = tmp_path / f"bad.{ext}"
    p.write_bytes(junk)
    with pytest.raises(SpecError, match=r"bad\.\w+' is not valid UTF-8"):
        lrkit.load(p)


def test_spec_paths_that_are_no_file_get_a_spec_error(tmp_path: Path) -> None:
    (tmp_path / "d.json").mkdir()
    with pytest.raises(SpecError, match=r"is a directory, not a spec file"):
        lrkit.load(tmp_path / "d.json")
    with pytest.raises(SpecError, match=r"no such file"):
        lrkit.load(str(tmp_path / "missing.yaml"))
    big = tmp_path / "big.toml"
    big.write_bytes(b" " * (S.MAX_INPUT + 1))
    with pytest.raises(SpecError, match=r"holds 1000001 bytes; a spec file holds at most 1000000"):
        lrkit.load(big)
    with pytest.raises(SpecError, match=r"expected a spec string or a path, got int"):
        lrkit.load(3)  # type: ignore[arg-type]


# -- boolean flags -------------------------------------------------------------------------------------
FLAGGED = ["exponential(lr=0.1, gamma=0.9, staircase={})", "inverse_time(lr=0.1, k=0.1, staircase={})",
           "one_cycle(max_lr=0.1, steps=100, three_phase={})"]  # fmt: skip


@SETTINGS
@given(
    st.sampled_from(FLAGGED),
    st.sampled_from(
        ["no", "yes", "off", "on", "y", "n", "nan", "inf", "0", "1", "2", "none", "'true'", "[]", "t"]
    )
    | st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True).filter(
        lambda w: w.lower() not in ("true", "false")
    ),
)
def test_a_flag_takes_true_or_false_only(template: str, word: str) -> None:
    with pytest.raises(SpecError, match=r"must be true or false, got|unknown schedule|expected"):
        parse(template.format(word))


@pytest.mark.parametrize("template", FLAGGED)
@pytest.mark.parametrize(
    ("word", "value"), [("true", True), ("false", False), ("True", True), ("FALSE", False)]
)
def test_true_and_false_set_the_flag(template: str, word: str, value: bool) -> None:
    s = parse(template.format(word))
    assert value in vars(s).values() and parse(str(s)) == s


@pytest.mark.parametrize(("word", "value"), [("true", True), ("False", False), ("TRUE", True)])
def test_yaml_and_toml_booleans_set_the_flag(word: str, value: bool) -> None:
    assert lrkit.loads(f"type: exponential\nlr: 0.1\nstaircase: {word}", "yaml").staircase is value  # type: ignore[attr-defined]
    toml = f'type = "exponential"\nlr = 0.1\nstaircase = {str(value).lower()}'
    assert lrkit.loads(toml, "toml").staircase is value  # type: ignore[attr-defined]


@pytest.mark.parametrize("word", ["yes", "no", "on", "off"])
def test_yaml_11_booleans_are_text_and_refused_for_a_flag(word: str) -> None:
    """YAML 1.2 (and experiment files): only true/false are booleans; YAML 1.1's words are refused,
    not read as text where a flag is meant."""
    with pytest.raises(SpecError, match=rf"staircase must be true or false, got '{word}'"):
        lrkit.loads(f"type: exponential\nlr: 0.1\nstaircase: {word}", "yaml")


@pytest.mark.parametrize("v", ["no", "false", 1, 0, 0.0, None, float("nan"), [True]])
def test_a_flag_in_a_dict_takes_a_boolean_only(v: object) -> None:
    with pytest.raises(SpecError, match=r"staircase must be true or false, got"):
        lrkit.from_dict({"type": "inverse_time", "lr": 0.1, "k": 0.1, "staircase": v})


# -- round trips of every schedule that constructs ---------------------------------------------------------
def _round_trips(s: Schedule) -> None:
    assert parse(lrkit.to_string(s)) == s, lrkit.to_string(s)
    assert lrkit.from_dict(s.to_dict()) == s
    assert lrkit.from_dict(json.loads(json.dumps(s.to_dict(), allow_nan=False))) == s
    for fmt in ("json", "yaml", "toml"):
        assert lrkit.loads(lrkit.dumps(s, fmt), fmt) == s


@SETTINGS
@given(ST.wild_schedules())
def test_every_schedule_that_constructs_round_trips(s: Schedule) -> None:
    _round_trips(s)


@SETTINGS
@given(ST.fractions_wide.filter(lambda f: f > 0), ST.wide_lrs)
def test_fractions_and_tiny_values_round_trip(f: float, lr: float) -> None:
    _round_trips(lrkit.Cosine(lr=lr, steps=lrkit.fraction(f)))
    _round_trips(lrkit.Warmup(steps=lrkit.fraction(f)) >> lrkit.Constant(lr))


def test_the_issues_round_trips() -> None:
    s = lrkit.Cosine(lr=0.1, steps=lrkit.fraction(1 / 3))
    assert lrkit.to_string(s) == "cosine(lr=0.1, steps=33.33333333333333%)"
    _round_trips(s)
    w = parse("warmup(1e-320%) >> cosine(lr=0.1)")
    assert lrkit.to_string(w) == "warmup(steps=1e-320%) >> cosine(lr=0.1)"
    _round_trips(w)


def test_a_file_or_directory_without_a_spec_suffix_is_named_as_such(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``lrkit show notes.txt`` or a directory: the error says what the path is and which names a spec file
    has, with the reading as a spec string, not only 'unexpected character'."""
    monkeypatch.chdir(tmp_path)
    Path("notes.txt").write_text("cosine(lr=0.1)")
    Path("runs").mkdir()
    for path, kind in (
        ("notes.txt", "a file"),
        (str(tmp_path / "notes.txt"), "a file"),
        ("runs", "a directory"),
    ):
        with pytest.raises(SpecError) as info:
            lrkit.load(path)
        msg = str(info.value)
        assert f"is {kind}, but a spec file's name ends in .json, .yaml, .yml, .toml" in msg, msg
        assert "read as a spec string: " in msg, msg
    # a spec string is read as one, even where a file of that name exists; nothing there: the parse error
    Path("constant(0.1)").write_text("x")
    assert lrkit.load("constant(0.1)") == Constant(0.1)
    with pytest.raises(SpecError, match=r"^unexpected character '/' at position 0"):
        lrkit.load(str(tmp_path / "missing"))


def test_parse_given_a_dict_or_a_schedule_says_what_to_do() -> None:
    with pytest.raises(SpecError, match=r"got a dict .*; read a spec dict with lrkit.from_dict"):
        parse({"type": "constant", "lr": 0.1})  # type: ignore[arg-type]
    with pytest.raises(SpecError, match=r"got the schedule constant\(lr=0.1\), which needs no parsing"):
        parse(Constant(0.1))  # type: ignore[arg-type]
