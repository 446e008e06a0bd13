"""Schedules as data: plain dicts, JSON, YAML, TOML and a compact string form.

Every schedule round-trips: ``from_dict(to_dict(s)) == s`` and ``parse(to_string(s)) == s``.
The string form is read by a small recursive-descent parser (never ``eval``)::

    expr    := product ('>>' product)*          a >> b   : chain, b runs after a
    product := atom ('*' atom)*                 a * b    : product; 0.5 * a : scale
    atom    := NUMBER | call | '(' expr ')'
    call    := NAME '(' [arg (',' arg)*] ')'    positional args follow the parameter order
    arg     := NAME '=' value | value
    value   := expr | NUMBER | DURATION | WORD | STRING | '[' [value (',' value)*] ']'

Durations are written ``500`` (steps), ``3ep`` (epochs), ``10%`` (of the total) or ``rest``.

>>> s = parse("warmup(steps=500) >> cosine(lr=3e-4, min_lr=3e-5)")
>>> to_string(s)
'warmup(steps=500) >> cosine(lr=0.0003, min_lr=3e-05)'
>>> from_dict(to_dict(s)) == s
True
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import MISSING, Field, fields
from pathlib import Path
from typing import Any, NoReturn

from .schedules.base import REGISTRY, Schedule
from .schedules.compose import Chain, Product, Scale
from .schedules.duration import Duration

__all__ = [
    "ScheduleLike",
    "SpecError",
    "as_schedule",
    "dumps",
    "from_dict",
    "from_json",
    "from_toml",
    "from_yaml",
    "load",
    "loads",
    "parse",
    "to_dict",
    "to_json",
    "to_string",
    "to_toml",
    "to_yaml",
]

MAX_DEPTH = 64


class SpecError(ValueError):
    """A schedule spec that cannot be read; the message says where and what was expected."""


# -- dicts ---------------------------------------------------------------------------------------
def _default_of(f: Field[Any]) -> Any:
    if f.default is MISSING:
        return MISSING
    if f.metadata.get("kind") == "duration" and f.default is not None:
        return Duration.parse(f.default)
    return f.default


def _data(v: Any) -> Any:
    if isinstance(v, Schedule):
        return to_dict(v)
    if isinstance(v, Duration):
        return v.to_data()
    if isinstance(v, (tuple, list)):
        return [_data(x) for x in v]
    return v


def to_dict(s: Schedule) -> dict[str, Any]:
    """``{"type": name, param: value, ...}``, leaving out parameters at their defaults.

    >>> from lrkit.schedules import Cosine
    >>> to_dict(Cosine(lr=0.1, steps="90%"))
    {'type': 'cosine', 'lr': 0.1, 'steps': '90%'}
    """
    if not isinstance(s, Schedule):
        raise TypeError(f"schedule: expected a Schedule, got {type(s).__name__} {s!r}")
    out: dict[str, Any] = {"type": s.name}
    for f in fields(s):
        v = getattr(s, f.name)
        if _default_of(f) is not MISSING and v == _default_of(f):
            continue
        out[f.name] = _data(v)
    return out


def known_names() -> str:
    return ", ".join(sorted(REGISTRY))


def _lookup(name: object) -> type[Schedule]:
    if not isinstance(name, str) or name not in REGISTRY:
        close = difflib.get_close_matches(str(name), REGISTRY, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise SpecError(f"unknown schedule {name!r}{hint}; known: {known_names()}")
    return REGISTRY[name]


def _build(cls: type[Schedule], kwargs: dict[str, Any]) -> Schedule:
    names = [f.name for f in fields(cls)]
    for k in kwargs:
        if k not in names:
            raise SpecError(f"{cls.name}: unknown parameter {k!r}; its parameters are {', '.join(names)}")
    missing = [f.name for f in fields(cls) if f.default is MISSING and f.name not in kwargs]
    if missing:
        raise SpecError(
            f"{cls.name}: missing required parameter {missing[0]!r}; its parameters are {', '.join(names)}"
        )
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise SpecError(str(exc)) from None


def _from_data(v: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise SpecError(f"spec nested deeper than {MAX_DEPTH} levels")
    if isinstance(v, dict):
        return from_dict(v, _depth=depth + 1)
    if isinstance(v, (list, tuple)):
        return tuple(_from_data(x, depth + 1) for x in v)
    return v


def from_dict(d: dict[str, Any], *, _depth: int = 0) -> Schedule:
    """The schedule a :func:`to_dict` dict describes (nested dicts become nested schedules)."""
    if not isinstance(d, dict):
        raise SpecError(f"spec: expected a dict with a 'type' key, got {type(d).__name__} {d!r}")
    if "type" not in d:
        raise SpecError(
            f"spec: the dict needs a 'type' key naming the schedule (one of {known_names()}), got {d!r}"
        )
    cls = _lookup(d["type"])
    kwargs = {str(k): _from_data(v, _depth) for k, v in d.items() if k != "type"}
    return _build(cls, kwargs)


ScheduleLike = Schedule | str | Mapping[str, Any]


def as_schedule(x: object, where: str = "schedule") -> Schedule:
    """A Schedule as it is, a spec string parsed, a spec dict read; anything else is a TypeError."""
    if isinstance(x, Schedule):
        return x
    if isinstance(x, str):
        return parse(x)
    if isinstance(x, Mapping):
        return from_dict(dict(x))
    raise TypeError(
        f"{where} must be an lrkit Schedule, a spec string or a spec dict, got {type(x).__name__} {x!r}"
    )


# -- files ---------------------------------------------------------------------------------------
def to_json(s: Schedule, indent: int | None = None) -> str:
    return json.dumps(to_dict(s), indent=indent)


def from_json(text: str) -> Schedule:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"spec: invalid JSON: {exc}") from None
    return from_dict(data)


def _yaml() -> Any:
    try:
        import yaml
    except ImportError:
        raise ImportError("YAML specs need PyYAML: pip install 'lrkit[spec]'") from None
    return yaml


def to_yaml(s: Schedule) -> str:
    yaml = _yaml()
    return str(yaml.safe_dump(to_dict(s), sort_keys=False))


def from_yaml(text: str) -> Schedule:
    yaml = _yaml()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"spec: invalid YAML: {exc}") from None
    return from_dict(data)


def to_toml(s: Schedule) -> str:
    try:
        import tomli_w
    except ImportError:
        raise ImportError("writing TOML specs needs tomli-w: pip install 'lrkit[spec]'") from None
    return str(tomli_w.dumps(to_dict(s)))


def from_toml(text: str) -> Schedule:
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"spec: invalid TOML: {exc}") from None
    return from_dict(data)


_FORMATS = {
    ".json": (to_json, from_json),
    ".yaml": (to_yaml, from_yaml),
    ".yml": (to_yaml, from_yaml),
    ".toml": (to_toml, from_toml),
}


def dumps(s: Schedule, fmt: str) -> str:
    """``s`` as ``fmt``: json, yaml, toml or string."""
    if fmt == "string":
        return to_string(s)
    key = "." + fmt.lower()
    if key not in _FORMATS:
        raise ValueError(f"fmt: expected one of json, yaml, toml, string, got {fmt!r}")
    return _FORMATS[key][0](s)


def loads(text: str, fmt: str = "string") -> Schedule:
    """Read a spec in ``fmt`` (json, yaml, toml or string)."""
    if fmt == "string":
        return parse(text)
    key = "." + fmt.lower()
    if key not in _FORMATS:
        raise ValueError(f"fmt: expected one of json, yaml, toml, string, got {fmt!r}")
    return _FORMATS[key][1](text)


def load(spec: str | Path) -> Schedule:
    """A spec string, or a path to a .json/.yaml/.yml/.toml file holding one."""
    p = Path(spec)
    if p.suffix.lower() in _FORMATS:
        if not p.is_file():
            raise SpecError(f"spec: no such file {str(spec)!r}")
        return loads(p.read_text(), p.suffix[1:])
    return parse(str(spec))


# -- the string form -----------------------------------------------------------------------------
_TOKEN = re.compile(
    r"\s*(?:(>>)|([*()\[\],=])|('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")|([A-Za-z0-9_.%+\-]+))"
)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_INT = re.compile(r"[+-]?\d+\Z")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\Z")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks: list[tuple[str, str, int]] = []  # (kind, text, position)
        pos = 0
        while True:
            while pos < len(text) and text[pos].isspace():
                pos += 1
            if pos >= len(text):
                break
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                self.fail(pos, f"unexpected character {text[pos]!r}")
            kinds = ("op", "punct", "str", "atom")
            kind = next(k for k, g in zip(kinds, m.groups()) if g is not None)
            self.toks.append((kind, m.group(m.lastindex or 0), m.start(m.lastindex or 0)))
            pos = m.end()
        self.i = 0
        self.depth = 0

    def fail(self, pos: int, msg: str) -> NoReturn:
        raise SpecError(f"{msg} at position {pos} of {self.text!r}")

    def peek(self) -> tuple[str, str, int]:
        return self.toks[self.i] if self.i < len(self.toks) else ("end", "", len(self.text))

    def take(self, want: str, what: str) -> tuple[str, str, int]:
        tok = self.peek()
        if tok[1] != want or tok[0] == "str":
            self.fail(tok[2], f"expected {what}, got {_show(tok)}")
        self.i += 1
        return tok

    def enter(self, pos: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(pos, f"nested deeper than {MAX_DEPTH} levels")

    def parse(self) -> Schedule:
        if not self.toks:
            raise SpecError(
                f"empty spec; expected a schedule such as 'cosine(lr=0.1)' (known: {known_names()})"
            )
        v = self.expr()
        tok = self.peek()
        if tok[0] != "end":
            self.fail(tok[2], f"expected '>>', '*' or the end, got {_show(tok)}")
        if not isinstance(v, Schedule):
            self.fail(0, f"expected a schedule, got the number {v!r}")
        return v

    def expr(self) -> Any:
        start = self.peek()[2]
        self.enter(start)
        parts = [self.product()]
        while self.peek()[1] == ">>" and self.peek()[0] == "op":
            pos = self.peek()[2]
            self.i += 1
            parts.append(self.product())
            if not all(isinstance(p, Schedule) for p in parts):
                self.fail(pos, "'>>' joins schedules, not numbers")
        self.depth -= 1
        if len(parts) == 1:
            return parts[0]
        try:
            return Chain(tuple(parts))
        except (TypeError, ValueError) as exc:
            self.fail(start, str(exc))

    def product(self) -> Any:
        left = self.atom()
        while self.peek()[1] == "*" and self.peek()[0] == "punct":
            pos = self.peek()[2]
            self.i += 1
            right = self.atom()
            nums = [isinstance(x, (int, float)) and not isinstance(x, bool) for x in (left, right)]
            try:
                if all(nums):
                    left = left * right
                elif nums[0]:
                    left = Scale(right, float(left))
                elif nums[1]:
                    left = Scale(left, float(right))
                elif isinstance(left, Schedule) and isinstance(right, Schedule):
                    left = Product(left, right)
                else:
                    self.fail(pos, "'*' multiplies schedules and numbers")
            except (TypeError, ValueError) as exc:
                if isinstance(exc, SpecError):
                    raise
                self.fail(pos, str(exc))
        return left

    def atom(self) -> Any:
        kind, text, pos = self.peek()
        if kind == "punct" and text == "(":
            self.i += 1
            v = self.expr()
            self.take(")", "')'")
            return v
        if (
            kind == "atom"
            and _NAME.match(text)
            and self.i + 1 < len(self.toks)
            and self.toks[self.i + 1][1] == "("
        ):
            return self.call()
        if kind == "atom":
            v = _scalar(text)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                self.i += 1
                return v
            if _NAME.match(text):
                self.fail(
                    pos,
                    f"expected '(' after schedule name {text!r}"
                    if text in REGISTRY
                    else f"unknown schedule {text!r}{_did_you_mean(text)}; known: {known_names()}",
                )
        self.fail(pos, f"expected a schedule such as 'cosine(lr=0.1)', got {_show(self.peek())}")

    def call(self) -> Schedule:
        _, name, pos = self.peek()
        if name not in REGISTRY:
            self.fail(pos, f"unknown schedule {name!r}{_did_you_mean(name)}; known: {known_names()}")
        cls = REGISTRY[name]
        self.i += 2  # name and '('
        params = [f.name for f in fields(cls)]
        kwargs: dict[str, Any] = {}
        positional_ok = True
        while not (self.peek()[1] == ")" and self.peek()[0] == "punct"):
            tok = self.peek()
            nxt = self.toks[self.i + 1] if self.i + 1 < len(self.toks) else ("end", "", len(self.text))
            if tok[0] == "atom" and nxt[1] == "=" and nxt[0] == "punct":
                key = tok[1]
                if key not in params:
                    self.fail(
                        tok[2],
                        f"{name}: unknown parameter {key!r}{_did_you_mean(key, params)}; "
                        f"its parameters are {', '.join(params)}",
                    )
                self.i += 2
                positional_ok = False
            else:
                if not positional_ok:
                    self.fail(tok[2], f"{name}: a positional argument cannot follow a keyword argument")
                if len(kwargs) >= len(params):
                    self.fail(tok[2], f"{name}: takes at most {len(params)} arguments ({', '.join(params)})")
                key = params[len(kwargs)]
            if key in kwargs:
                self.fail(tok[2], f"{name}: parameter {key!r} given twice")
            if self.peek()[0] == "end":
                self.fail(self.peek()[2], f"expected a value for {name}'s {key!r}, got the end")
            kwargs[key] = self.value()
            if self.peek()[1] == "," and self.peek()[0] == "punct":
                self.i += 1
            elif not (self.peek()[1] == ")" and self.peek()[0] == "punct"):
                self.fail(self.peek()[2], f"expected ',' or ')' in {name}(...), got {_show(self.peek())}")
        self.i += 1
        try:
            return _build(cls, kwargs)
        except SpecError as exc:
            self.fail(pos, str(exc))

    def value(self) -> Any:
        kind, text, pos = self.peek()
        if kind == "punct" and text == "[":
            self.enter(pos)
            self.i += 1
            items: list[Any] = []
            while not (self.peek()[1] == "]" and self.peek()[0] == "punct"):
                if self.peek()[0] == "end":
                    self.fail(self.peek()[2], "expected ']' to close the list, got the end")
                items.append(self.value())
                if self.peek()[1] == "," and self.peek()[0] == "punct":
                    self.i += 1
                elif not (self.peek()[1] == "]" and self.peek()[0] == "punct"):
                    self.fail(self.peek()[2], f"expected ',' or ']' in a list, got {_show(self.peek())}")
            self.i += 1
            self.depth -= 1
            return tuple(items)
        if kind == "str":
            self.i += 1
            return _unquote(text)
        if kind == "punct" and text == "(":
            return self.expr()
        if kind == "atom":
            nxt = self.toks[self.i + 1] if self.i + 1 < len(self.toks) else ("end", "", 0)
            if _NAME.match(text) and nxt[1] == "(" and nxt[0] == "punct":
                return self.expr()
            v = _scalar(text)
            number = isinstance(v, (int, float)) and not isinstance(v, bool)
            if number and (nxt[0] == "op" or (nxt[0] == "punct" and nxt[1] == "*")):
                return self.expr()
            self.i += 1
            return v
        self.fail(pos, f"expected a value, got {_show(self.peek())}")


def _show(tok: tuple[str, str, int]) -> str:
    return "the end" if tok[0] == "end" else repr(tok[1])


def _did_you_mean(name: str, options: Any = None) -> str:
    close = difflib.get_close_matches(name, list(options if options is not None else REGISTRY), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unquote(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)", r"\1", body)


def _scalar(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text):
        return float(text)
    return text


def parse(text: str) -> Schedule:
    """Read the compact string form (see the module docstring).

    >>> parse("warmup(10%) >> cosine(lr=0.1)").pieces[0].steps
    fraction(0.1)
    """
    if not isinstance(text, str):
        raise TypeError(f"spec: expected a string, got {type(text).__name__} {text!r}")
    return _Parser(text).parse()


def _fmt(v: Any) -> str:
    if isinstance(v, Schedule):
        return to_string(v)
    if isinstance(v, Duration):
        return _fmt(v.to_data())
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "none"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    s = str(v)
    if re.fullmatch(r"[A-Za-z0-9_.%+\-]+", s) and not isinstance(_scalar(s), (int, float, type(None))):
        return s
    return json.dumps(s)


def to_string(s: Schedule) -> str:
    """The compact string form; ``parse(to_string(s)) == s``.

    >>> from lrkit.schedules import Warmup, Cosine
    >>> to_string(Warmup(steps=100) >> Cosine(lr=0.1) * 0.5)
    'warmup(steps=100) >> 0.5 * cosine(lr=0.1)'
    """
    if isinstance(s, Chain):
        return " >> ".join(to_string(p) for p in s.pieces)

    def wrapped(x: Schedule, kinds: tuple[type[Schedule], ...]) -> str:
        return f"({to_string(x)})" if isinstance(x, kinds) else to_string(x)

    if isinstance(s, Scale):  # "0.5 * a * b" would read as (0.5 * a) * b: wrap what binds looser
        return f"{s.factor!r} * {wrapped(s.schedule, (Chain, Scale, Product))}"
    if isinstance(s, Product):
        return f"{wrapped(s.a, (Chain,))} * {wrapped(s.b, (Chain, Scale, Product))}"
    d = to_dict(s)
    args = ", ".join(f"{k}={_fmt(getattr(s, k))}" for k in d if k != "type")
    return f"{s.name}({args})"
