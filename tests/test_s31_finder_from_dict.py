"""FinderResult.from_dict reads back what to_dict wrote (``lrkit find --json``): the same text, suggestion,
verdict, schedule and figure; an older dict without the verdict is judged again; bad dicts are refused."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import matplotlib
import numpy as np
import pytest

from lrkit.finder import FinderResult, range_test

matplotlib.use("Agg")


def bowl(lr: float, rng: np.random.Generator | None = None, noise: float = 0.0) -> float:
    base = 2.0 / (1.0 + lr / 1e-3) + 0.1 + 50.0 * max(0.0, lr - 0.1) ** 2
    return base + (noise * float(rng.standard_normal()) if rng is not None else 0.0)


def _disagree() -> FinderResult:
    shifts = iter([1.0, 1e3])
    shift = [1.0]

    def before(r: int) -> None:
        shift[0] = next(shifts)

    return range_test(lambda lr: bowl(lr * shift[0]), num_steps=100, repeats=2, before_repeat=before)


def _noisy() -> FinderResult:
    rng = np.random.default_rng(2)
    return range_test(lambda lr: bowl(lr, rng, 1.0), num_steps=100, diverge_factor=None)


def _flat() -> FinderResult:
    rng = np.random.default_rng(1)
    return range_test(lambda lr: 1.0 + 0.001 * float(rng.standard_normal()), num_steps=50)


RESULTS: dict[str, Callable[[], FinderResult]] = {
    "trusted, diverged at the cliff": lambda: range_test(bowl, num_steps=60, repeats=3),
    "flat": _flat,
    "noisy": _noisy,
    "still falling": lambda: range_test(lambda lr: 1.0 / (1.0 + lr / 1e-4), end_lr=1e-2, num_steps=40),
    "repeats disagree": _disagree,
    "broken: inf at the first rung": lambda: range_test(lambda lr: math.inf, num_steps=10),
    "phrased for the CLI": lambda: _flat().phrased_for({"repeats": "--repeats N", "num_steps": "--steps N"}),
}


def _through_json(res: FinderResult) -> FinderResult:
    return FinderResult.from_dict(json.loads(json.dumps(res.to_dict(), allow_nan=False)))


@pytest.mark.parametrize("name", list(RESULTS))
def test_a_result_read_back_says_and_suggests_what_it_did(name: str) -> None:
    res = RESULTS[name]()
    back = _through_json(res)
    assert back.to_dict() == res.to_dict()
    assert str(back) == str(res)
    assert back.trusted == res.trusted and back.reason == res.reason and back.problems == res.problems
    assert back.suggestion == res.suggestion
    for rule, value in res.suggestions.items():
        assert back.suggestions[rule] == pytest.approx(value, nan_ok=True), rule
    if res.suggestion is None:
        with pytest.raises(ValueError, match="no"):
            back.require()
    else:
        assert back.require() == res.require()
        assert back.schedule("cosine") == res.schedule("cosine")
    back.plot()  # the figure draws from what was read back


def test_a_dict_of_an_older_lrkit_is_judged_again_from_its_curves() -> None:
    for name in ("trusted, diverged at the cliff", "flat", "noisy", "repeats disagree"):
        res = RESULTS[name]()
        new_keys = ("format", "findings", "settings", "stream")
        old = {k: v for k, v in res.to_dict().items() if k not in new_keys}
        back = FinderResult.from_dict(old)
        assert back.trusted == res.trusted and back.problem_kinds == res.problem_kinds, name
        assert back.suggestion == res.suggestion, name


def test_the_escalation_and_compute_are_kept() -> None:
    res = RESULTS["flat"]()
    res = FinderResult(**{**res.__dict__, "escalation": ("2 batches per step",), "steps": 150,
                          "budget": 120, "first_steps": 50})  # fmt: skip
    back = _through_json(res)
    kept = (back.escalation, back.steps, back.budget, back.first_steps)
    assert kept == (("2 batches per step",), 150, 120, 50)
    assert str(back) == str(res)


def _good() -> dict[str, Any]:
    return json.loads(json.dumps(RESULTS["trusted, diverged at the cliff"]().to_dict()))


def _edit(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    d = _good()
    target = d
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return d


@pytest.mark.parametrize(
    ("data", "exc", "words"),
    [
        ([1, 2], TypeError, "expected a dict, got list"),
        (_edit(("format",), "lrkit.finder/2"), ValueError, "newer lrkit"),
        (_edit(("format",), "lrkit.guard/1"), ValueError, "expected 'lrkit.finder/1'"),
        (_edit(("curves",), KeyError), ValueError, "no 'curves'"),
        (_edit(("curves",), []), ValueError, "at least one curve"),
        (_edit(("curves",), "x"), TypeError, "curves must be a list, got str"),
        (_edit(("curves", 0, "lrs"), KeyError), ValueError, r"curves\[0\] has no 'lrs'"),
        (_edit(("curves", 0, "losses", 3), "1.0"), TypeError, r"curves\[0\].losses\[3\] must be a number"),
        (_edit(("curves", 0, "losses", 3), True), TypeError, r"losses\[3\] must be a number"),
        (_edit(("curves", 1, "smoothed"), [1.0]), ValueError, r"curves\[1\]: lrs, losses and smoothed"),
        (_edit(("curves", 0, "stopped_at"), 10**9), ValueError, "stopped_at must be a rung's index"),
        (_edit(("per_repeat", "lrkit"), [0.1]), ValueError, "one value per curve"),
        (_edit(("rule",), "nope"), ValueError, "rule 'nope'"),
        (_edit(("smoothing",), math.nan), TypeError, "smoothing must be a finite number"),
        (_edit(("steps",), 1.5), TypeError, "steps must be a int"),
        (_edit(("budget",), "10"), TypeError, "budget must be an integer or null"),
        (_edit(("findings",), [{"kind": "flat"}]), TypeError, r"findings\[0\] must be a dict with strings"),
        (_edit(("findings",), [{"kind": "a", "finding": "b", "remedies": "c"}]), TypeError, "remedies must"),
        (_edit(("settings",), {"repeats": 3}), TypeError, "settings must map names to strings"),
    ],
)
def test_a_bad_dict_is_refused_naming_the_key(data: Any, exc: type, words: str) -> None:
    with pytest.raises(exc, match=words):
        FinderResult.from_dict(data)


@pytest.mark.parametrize("name", list(RESULTS))
def test_the_repr_is_one_short_line_with_the_answer(name: str) -> None:
    res = RESULTS[name]()
    text = repr(res)
    assert "\n" not in text and len(text) < 200 and "array(" not in text
    said = "None" if res.suggestion is None else f"{res.suggestion:.4g}"
    assert text.startswith(f"FinderResult(suggestion={said}, rule='lrkit', trusted={res.trusted}")
    assert all(kind in text for kind in res.problem_kinds)
