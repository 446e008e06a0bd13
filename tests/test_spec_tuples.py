"""Spec strings take Python's tuples wherever they take lists: ``piecewise(points=[(0, 0.0), (10, 1.0)])``.

``(a, b)``, ``(a,)`` and ``()`` are tuples, read as the list of the same values; ``(v)`` is ``v``, as in
Python. ``to_string`` still writes lists.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lrkit
from lrkit.cli import main
from lrkit.schedules import MultiStep, Piecewise, Schedule, chain
from lrkit.spec import SpecError, _Parser, parse, to_string

from . import strategies as S

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_piecewise_points_as_tuples(capsys: pytest.CaptureFixture[str]) -> None:
    want = Piecewise(points=[(0, 0.0), (10, 1.0)])
    for text in [
        "piecewise(points=[(0, 0.0), (10, 1.0)])",  # as `lrkit schedules` describes it
        "piecewise(points=((0, 0.0), (10, 1.0)))",
        "piecewise(points=((0, 0.0), (10, 1.0),))",
        "piecewise(points=[[0, 0.0], [10, 1.0]])",
        "piecewise(points=[([0, 0.0]), ((10, 1.0))])",  # (v) is v
    ]:
        s = parse(text)
        assert s == want, text
        assert to_string(s) == "piecewise(points=[[0, 0.0], [10, 1.0]])"
    assert main(["show", "piecewise(points=[(0, 0.0), (10, 1.0)])", "--total", "10"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^\s*5\s+0\.5$", out, re.MULTILINE), out


def test_one_element_and_empty_tuples() -> None:
    assert parse("multistep(lr=1, milestones=(5,))") == MultiStep(lr=1, milestones=[5])
    assert parse("multistep(lr=1, milestones=((5, 7)))") == MultiStep(lr=1, milestones=[5, 7])
    assert parse("multistep(lr=1, milestones=())") == parse("multistep(lr=1, milestones=[])")


def test_grouping_parentheses_still_group() -> None:
    assert parse("cosine(lr=(0.5) * 2)") == parse("cosine(lr=1.0)")
    assert parse("cosine(lr=((0.5)) * 2 * (2))") == parse("cosine(lr=2.0)")
    assert parse("warmup(steps=(10%)) >> cosine(lr=(0.1))") == parse("warmup(steps=10%) >> cosine(lr=0.1)")
    assert parse("(cosine(lr=1)) * 2") == parse("2 * cosine(lr=1)")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "piecewise(points=(1,",
            "expected ')' to close the (...) from position 17, got the end at position 20",
        ),
        ("piecewise(points=(,))", "expected a value, got ',' at position 18"),
        (
            "piecewise(points=((1, 2)",
            "expected ',' or ')' in the (...) from position 17, got the end at position 24",
        ),
        (
            "piecewise(points=((0, 1), (2, 3))",
            "expected ',' or ')' in piecewise(...), got the end at position 33",
        ),
        (
            "piecewise(points=[(0, 0.0), (10, 1.0])",
            "expected ',' or ')' in the (...) from position 28, got ']' at position 36",
        ),
        (
            "piecewise(points=[(0, 0.0) (10, 1.0)])",
            "expected ',' or ']' in the [...] from position 17, got '(' at position 27",
        ),
        (
            "piecewise(points=[[0, 1]",
            "expected ',' or ']' in the [...] from position 17, got the end at position 24",
        ),
        ("cosine(lr=(1 2))", "expected ',' or ')' in the (...) from position 10, got '2' at position 13"),
    ],
)
def test_malformed_tuples_say_where(text: str, message: str) -> None:
    with pytest.raises(SpecError) as exc:
        parse(text)
    assert str(exc.value) == f"{message} of {text!r}"


def test_deep_tuples_are_refused_by_depth() -> None:
    with pytest.raises(SpecError, match=r"nested deeper than 64 levels"):
        parse("piecewise(points=" + "(" * 100 + ")" * 100 + ")")
    with pytest.raises(SpecError, match=r"nested deeper than 64 levels"):
        parse("piecewise(points=" + "(1, " * 100_000 + ")" * 100_000 + ")")


# -- fuzz: any nesting of lists, tuples and grouping parentheses reads as the same value --------------
Tree = Any  # an int, or a list of trees

trees = st.recursive(st.integers(-9, 99), lambda t: st.lists(t, max_size=4), max_leaves=12)


@st.composite
def written(draw: st.DrawFn, tree: Tree) -> str:
    """``tree`` as a spec value: each list as [...], (...) (with ',' after a single item) or either of
    them inside grouping parentheses, with or without a trailing comma, in random spacing."""
    sp = draw(st.sampled_from(["", " ", "  "]))
    if isinstance(tree, int):
        text = str(tree)
    else:
        items = [draw(written(x)) for x in tree]
        body = f",{sp}".join(items)
        form = draw(st.sampled_from(["list", "tuple"]))
        comma = "," if items and (draw(st.booleans()) or (form == "tuple" and len(items) == 1)) else ""
        text = f"[{sp}{body}{comma}]" if form == "list" else f"({sp}{body}{comma})"
    if draw(st.integers(0, 4)) == 0:
        text = f"({sp}{text}{sp})"
    return text


def as_tuples(tree: Tree) -> Any:
    return tree if isinstance(tree, int) else tuple(as_tuples(x) for x in tree)


@SETTINGS
@given(trees, st.data())
def test_nested_lists_and_tuples_read_as_the_same_value(tree: Tree, data: st.DataObject) -> None:
    text = data.draw(written(tree))
    p = _Parser(text)
    assert p.value() == as_tuples(tree), text
    assert p.peek()[0] == "end", text


def tuples_for_lists(text: str, choices: Any) -> str:
    """``text`` (a to_string output) with each [...] written as a tuple, a grouped tuple, a grouped
    list or left as it is, as ``choices`` says, and a trailing comma where one is needed or chosen."""
    out: list[str] = []
    opened: list[list[Any]] = []  # per open bracket: [kind, saw a comma at its level, form]
    for ch in text:
        if ch == "[":
            form = choices()
            opened.append(["[", False, form])
            out.append({"list": "[", "tuple": "(", "grouped tuple": "((", "grouped list": "(["}[form])
        elif ch == "(":
            opened.append(["(", False, None])
            out.append(ch)
        elif ch == "]":
            _, comma, form = opened.pop()
            single = not comma and out[-1] != "(" and out[-1] != "(("
            trail = "," if "tuple" in form and single else ""
            out.append({"list": "]", "tuple": ")", "grouped tuple": "))", "grouped list": "])"}[form])
            out[-1] = trail + out[-1]
        elif ch == ")":
            opened.pop()
            out.append(ch)
        else:
            if ch == "," and opened:
                opened[-1][1] = True
            out.append(ch)
    return "".join(out)


#: schedules holding lists (piecewise's points, multistep's milestones), alone, chained, composed
listed = st.one_of(S.piecewise(), st.builds(MultiStep, lr=S.lrs, milestones=S.milestones(), gamma=S.gammas))
with_lists = st.one_of(
    listed,
    st.builds(chain, S.piecewise(), listed),
    st.builds(lambda a, b: a * b, listed, S.schedules),
    S.schedules,
)


@SETTINGS
@given(with_lists, st.data())
def test_schedules_written_with_tuples_round_trip(s: Schedule, data: st.DataObject) -> None:
    text = to_string(s)
    forms = st.sampled_from(["list", "tuple", "grouped tuple", "grouped list"])
    tupled = tuples_for_lists(text, lambda: data.draw(forms))
    back = parse(tupled)
    assert back == s, (text, tupled)
    assert to_string(back) == text
    assert lrkit.from_dict(back.to_dict()) == s
