"""Specs: the string parser, its errors, and dict/JSON/YAML/TOML forms."""

from __future__ import annotations

import contextlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lrkit
from lrkit import REGISTRY, SpecError, parse
from lrkit.schedules import Chain, Cosine, Product, Scale, Warmup


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_documented_example_parses_and_round_trips(name: str) -> None:
    example = REGISTRY[name].example
    assert example, f"{name} has no example"
    s = parse(example)
    assert parse(lrkit.to_string(s)) == s
    assert name in {type(x).name for x in _walk(s)}


def _walk(s: lrkit.Schedule) -> list[lrkit.Schedule]:
    out = [s]
    for v in vars(s).values():
        if isinstance(v, lrkit.Schedule):
            out += _walk(v)
        elif isinstance(v, tuple):
            for x in v:
                if isinstance(x, lrkit.Schedule):
                    out += _walk(x)
    return out


def test_grammar() -> None:
    s = parse("warmup(steps=500) >> cosine(lr=3e-4, min_lr=3e-5)")
    assert s == Chain((Warmup(steps=500), Cosine(lr=3e-4, min_lr=3e-5)))
    assert parse("warmup(500)>>cosine(3e-4,rest,3e-5)") == s  # positional, no spaces
    assert parse("0.5 * cosine(lr=1.0)") == Scale(Cosine(lr=1.0), 0.5)
    assert parse("cosine(lr=1.0) * 2") == Scale(Cosine(lr=1.0), 2.0)
    assert parse("cosine(lr=1.0) * warmup(10)") == Product(Cosine(lr=1.0), Warmup(10))
    assert parse("(warmup(10) >> cosine(lr=1.0)) * 0.1") == Scale(Warmup(10) >> Cosine(lr=1.0), 0.1)
    assert parse("multistep(lr=0.1, milestones=[30ep, 60ep], gamma=0.1)").milestones == (
        lrkit.epochs(30),
        lrkit.epochs(60),
    )
    assert parse("cyclic(lr=0.1, max_lr=1, mode='sine')").mode == "sine"
    assert parse('wsd(lr=1, cooldown="1-sqrt")').cooldown == "1-sqrt"
    clamped = parse("clamp(cosine(lr=1, steps=10) >> constant(0.5), min_lr=0.2)")
    assert clamped.schedule == Cosine(lr=1, steps=10) >> lrkit.Constant(0.5)
    assert parse("repeat(schedule=linear(1, steps=10), times=3)").times == 3


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("cosine(lr=3e-4", r"expected ',' or '\)' .* got the end at position 14"),
        (
            "cosin(lr=1)",
            r"unknown schedule 'cosin' \(did you mean 'cosine'\?\); known: chain, clamp, constant",
        ),
        (
            "cosine(lr=1, foo=2)",
            r"cosine: unknown parameter 'foo'; its parameters are lr, steps, min_lr at position 13",
        ),
        ("cosine(lr=-1)", r"cosine: lr must be >= 0, got -1 at position 0"),
        ("cosine(lr=nan)", r"cosine: lr must be a finite number, got 'nan'"),
        ("cosine(lr=inf)", r"cosine: lr must be a finite number, got 'inf'"),
        ("constant(lr=-Infinity)", r"constant: lr must be a finite number, got '-Infinity'"),
        ("cosine()", r"cosine: missing required parameter 'lr'"),
        ("cosine(lr=1) >>", r"expected a schedule such as .* got the end at position 15"),
        ("", r"empty spec"),
        ("0.1", r"expected a schedule, got the number 0.1"),
        ("cosine(lr=1) cosine(lr=1)", r"expected '>>', '\*' or the end, got 'cosine' at position 13"),
        ("cosine(lr=1, lr=2)", r"parameter 'lr' given twice"),
        ("cosine(lr=1, 5)", r"positional argument cannot follow a keyword"),
        ("step(lr=0.1, step_size=10, gamma=0)", r"step: gamma must be > 0, got 0"),
        ("multistep(lr=0.1, milestones=[60, 30])", r"milestones must be strictly increasing"),
        (
            "cyclic(lr=0.1, max_lr=1, mode=zigzag)",
            r"mode must be one of 'triangular', 'triangular2'.* got 'zigzag'",
        ),
        ("warmup(steps=-5)", r"expected a number of steps >= 0, got -5"),
        ("cosine(lr=1, steps=0)", r"steps must be > 0 steps, got 0"),
        ("constant(1) >> cosine(lr=1)", r"chain: piece 0 \(constant\) has no length"),
        ("cosine(lr=1) $ 2", r"unexpected character '\$' at position 13"),
        ("cosine", r"expected '\(' after schedule name 'cosine'"),
    ],
)
def test_errors_point_at_the_position_and_say_what_was_expected(text: str, pattern: str) -> None:
    with pytest.raises(SpecError, match=pattern):
        parse(text)


def test_parse_never_evals() -> None:
    with pytest.raises(SpecError):
        parse("__import__('os').system('echo hacked')")


ALPHABET = "cosinewarmuplrstep_()[],=*>%.0123456789e- '\"ab"


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=60))
def test_fuzzed_input_gives_spec_error_or_a_schedule(text: str) -> None:
    try:
        s = parse(text)
    except SpecError as exc:
        assert str(exc)
    else:
        assert isinstance(s, lrkit.Schedule)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([c.example for c in REGISTRY.values()]), st.data())
def test_mutated_examples_give_spec_error_or_a_schedule(example: str, data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(example)))
    j = data.draw(st.integers(i, min(len(example), i + 4)))
    junk = data.draw(st.text(alphabet=ALPHABET, max_size=3))
    text = example[:i] + junk + example[j:]
    with contextlib.suppress(SpecError):
        parse(text)


def test_deep_nesting_is_a_spec_error_not_a_crash() -> None:
    with pytest.raises(SpecError, match="nested deeper"):
        parse("(" * 500 + "cosine(lr=1)" + ")" * 500)


def test_from_dict_errors() -> None:
    with pytest.raises(SpecError, match="needs a 'type' key"):
        lrkit.from_dict({"lr": 1})
    with pytest.raises(SpecError, match=r"unknown schedule 'cosin' \(did you mean 'cosine'\?\)"):
        lrkit.from_dict({"type": "cosin", "lr": 1})
    with pytest.raises(SpecError, match="cosine: unknown parameter 'lrr'"):
        lrkit.from_dict({"type": "cosine", "lrr": 1})


def test_dict_form_is_plain_data() -> None:
    s = parse("warmup(5%) >> cosine(lr=3e-4, min_lr=3e-5)")
    assert s.to_dict() == {
        "type": "chain",
        "pieces": [{"type": "warmup", "steps": "5%"}, {"type": "cosine", "lr": 3e-4, "min_lr": 3e-5}],
    }


def test_load_reads_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = parse("warmup(2ep) >> one_cycle(max_lr=0.1)")
    for fmt in ("json", "yaml", "toml"):
        p = tmp_path / f"s.{fmt}"
        p.write_text(lrkit.dumps(s, fmt))
        assert lrkit.load(p) == s
    with pytest.raises(SpecError, match="no such file"):
        lrkit.load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.toml"
    bad.write_text("type = ")
    with pytest.raises(SpecError, match="invalid TOML"):
        lrkit.load(bad)


def test_to_string_is_readable() -> None:
    s = Warmup(steps="10%") >> Cosine(lr=3e-4, min_lr=3e-5)
    assert str(s) == "warmup(steps=10%) >> cosine(lr=0.0003, min_lr=3e-05)"
    assert re.fullmatch(r"[a-z_]+\(.*\)", str(Cosine(lr=1.0)))


def test_missing_yaml_or_toml_writer_says_which_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "yaml", None)  # as if PyYAML were not installed
    monkeypatch.setitem(sys.modules, "tomli_w", None)
    s = parse("cosine(lr=1)")
    with pytest.raises(ImportError, match=r"YAML specs need PyYAML: pip install 'lrkit\[spec\]'"):
        lrkit.dumps(s, "yaml")
    with pytest.raises(ImportError, match=r"TOML specs needs tomli-w"):
        lrkit.dumps(s, "toml")
    assert lrkit.loads(lrkit.dumps(s, "json"), "json") == s  # JSON and reading TOML need no extra


@pytest.mark.parametrize(
    "text",
    ["warmup(10%) >> cosine(lr=0.1)", "one_cycle(max_lr=0.1)", "wsd(lr=3e-4, warmup=1%)", "constant(0.5)"],
)
def test_dumps_defaults_to_the_string_form_and_schedule_from_dict_round_trips(text: str) -> None:
    """dumps(s) and loads(text) both default to the compact string; Schedule.from_dict mirrors to_dict."""
    s = lrkit.parse(text)
    assert lrkit.dumps(s) == lrkit.dumps(s, "string") == str(s)
    assert lrkit.loads(lrkit.dumps(s)) == s
    assert lrkit.Schedule.from_dict(s.to_dict()) == s == lrkit.from_dict(s.to_dict())
