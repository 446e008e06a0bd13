"""None (a spec's ``None``, JSON/YAML ``null``) for a duration field: refused at construction, naming the
schedule and the field, wherever None is not the field's own default; accepted (and evaluable) where it is.
Checked over every schedule class in the registry and every duration field."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import MISSING, Field, fields, replace
from typing import Any

import pytest

import lrkit
from lrkit.cli import main
from lrkit.schedules.base import REGISTRY, Schedule
from lrkit.spec import SpecError


def _walk(s: Schedule) -> Iterator[Schedule]:
    yield s
    for f in fields(s):
        v = getattr(s, f.name)
        if isinstance(v, Schedule):
            yield from _walk(v)
        elif isinstance(v, tuple):
            for x in v:
                if isinstance(x, Schedule):
                    yield from _walk(x)


def _instance(cls: type[Schedule]) -> Schedule:
    """An instance of ``cls`` from its documented example (which may wrap it in a chain)."""
    return next(s for s in _walk(lrkit.parse(cls.example)) if type(s) is cls)


CASES = [
    pytest.param(cls, f, id=f"{name}.{f.name}")
    for name, cls in sorted(REGISTRY.items())
    for f in fields(cls)
    if f.metadata.get("kind") == "duration"
]


def test_the_registry_has_duration_fields_of_both_kinds() -> None:
    defaults = [c.values[1].default for c in CASES]
    assert any(d is None for d in defaults) and any(d is not None for d in defaults)


@pytest.mark.parametrize(("cls", "f"), CASES)
def test_none_for_a_duration(cls: type[Schedule], f: Field[Any]) -> None:
    base = _instance(cls)
    if f.default is None:  # None means "forever" / "same as another field": it must work
        s = replace(base, **{f.name: None})
        assert getattr(s, f.name) is None
        assert math.isfinite(s.resolve(total_steps=1000, steps_per_epoch=10)(5))
        return
    hint = f"{f.name} is required" if f.default is MISSING else f"leave {f.name} out for its default"
    want = rf"^{cls.name}: {f.name}: expected a duration .*got None; {hint}"
    with pytest.raises(TypeError, match=want):
        replace(base, **{f.name: None})
    d = {**base.to_dict(), f.name: None}
    with pytest.raises(SpecError, match=want):
        lrkit.from_dict(d)
    with pytest.raises(SpecError, match=want):
        lrkit.from_dict(json.loads(json.dumps(d)))  # "null" in a JSON spec


def test_spec_string_none_and_cli_show(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(
        SpecError, match=r"^cosine: steps: .*None; leave steps out for its default \('rest'\)"
    ):
        lrkit.parse("cosine(0.1, steps=None)")
    with pytest.raises(SpecError, match=r"^step: step_size: .*got None; step_size is required"):
        lrkit.parse("step(0.1, step_size=None)")
    assert main(["show", "cosine(0.1, steps=None)"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lrkit show: error: cosine: steps: ") and "got None" in err
    assert "\n" not in err and "Traceback" not in err
