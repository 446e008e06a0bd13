"""Schedules as data: plain dicts, JSON, YAML, TOML and a compact string form.

Every schedule round-trips: ``from_dict(to_dict(s)) == s`` and ``parse(to_string(s)) == s``.
The string form is read by a small recursive-descent parser (never ``eval``)::

    expr    := product ('>>' product)*          a >> b   : chain, b runs after a
    product := atom ('*' atom)*                 a * b    : product; 0.5 * a : scale
    atom    := NUMBER | call | '(' expr ')'
    call    := NAME '(' [arg (',' arg)*] ')'    positional args follow the parameter order
    arg     := NAME '=' value | value
    value   := expr | NUMBER | DURATION | WORD | STRING | list | tuple | '(' value ')'
    list    := '[' [value (',' value)* [',']] ']'
    tuple   := '(' [value ',' [value (',' value)* [',']]] ')'     as in Python: (a, b), (a,), ()

A tuple reads as the list of the same values (``piecewise(points=[(0, 1.0), (10, 0.0)])`` is
``piecewise(points=[[0, 1.0], [10, 0.0]])``); :func:`to_string` writes lists.

Durations are written ``500`` (steps), ``3ep`` (epochs), ``10%`` (of the total) or ``rest``.

Limits (so that any input gets a :class:`SpecError`, quickly, never a crash): a spec holds at most
:data:`MAX_INPUT` characters (a file at most that many bytes, in UTF-8), nests at most :data:`MAX_DEPTH`
levels, and a dict/list spec holds at most :data:`MAX_NODES` values. Numbers lie within +-1.8e308 (and
integers have at most 400 digits). An error message shows the input near the error, never all of it.

>>> s = parse("warmup(steps=500) >> cosine(lr=3e-4, min_lr=3e-5)")
>>> to_string(s)
'warmup(steps=500) >> cosine(lr=0.0003, min_lr=3e-05)'
>>> from_dict(to_dict(s)) == s
True
"""

from __future__ import annotations

import errno
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, fields
from pathlib import Path
from typing import Any, NoReturn

from ._text import did_you_mean
from ._yaml import DuplicateKey, describe_error, loader
from .schedules.base import REGISTRY, Schedule
from .schedules.compose import Chain, Product, Scale
from .schedules.duration import Duration, _short

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
#: The longest spec read, in characters (or bytes, for a file).
MAX_INPUT = 1_000_000
#: The most values (dicts, lists and scalars) a dict/JSON/YAML/TOML spec may hold, aliases counted each time.
MAX_NODES = 100_000
_MAX_DIGITS = 400  # an integer with more digits is beyond any float

#: What a loader turns into a SpecError: anything a bad input can raise on its way in.
_BAD_INPUT = (ValueError, TypeError, OverflowError, RecursionError, ArithmeticError, UnicodeError)


class SpecError(ValueError):
    """A schedule spec that cannot be read; the message says where and what was expected."""


def _spec_error(exc: BaseException) -> SpecError:
    if isinstance(exc, SpecError):
        return exc
    if isinstance(exc, RecursionError):
        return SpecError(f"spec: nested too deeply (at most {MAX_DEPTH} levels)")
    msg = str(exc)
    digits = re.search(
        r"Exceeds the limit \(\d+ digits\) for integer string conversion: value has (\d+) digits", msg
    )
    if digits:  # Python's own message for a huge integer literal (YAML, TOML)
        return SpecError(
            f"spec: an integer with {digits.group(1)} digits is out of range (at most +-1.8e308)"
        )
    if len(msg) > 2000:
        msg = f"{msg[:1500]} ... {msg[-300:]}"
    return SpecError(
        msg if isinstance(exc, (ValueError, TypeError)) else f"spec: {type(exc).__name__}: {msg}"
    )


def _text(text: object, what: str) -> str:
    """A spec's text: a str, or UTF-8 bytes; at most MAX_INPUT characters."""
    if isinstance(text, (bytes, bytearray)):
        if len(text) > MAX_INPUT:
            raise SpecError(f"{what}: {len(text)} bytes is too long; a spec holds at most {MAX_INPUT}")
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SpecError(f"{what}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    if not isinstance(text, str):
        raise SpecError(f"{what}: expected a string, got {type(text).__name__} {_short(text)}")
    if len(text) > MAX_INPUT:
        raise SpecError(f"{what}: {len(text)} characters is too long; a spec holds at most {MAX_INPUT}")
    return text


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
        hint = did_you_mean(name[:100], REGISTRY) if isinstance(name, str) else ""
        raise SpecError(f"unknown schedule {_short(name)}{hint}; known: {known_names()}")
    return REGISTRY[name]


def _build(cls: type[Schedule], kwargs: dict[str, Any], check_only: bool = False) -> Schedule:
    """``cls(**kwargs)``, every problem a SpecError; with ``check_only`` only the names are checked."""
    names = [f.name for f in fields(cls)]
    for k in kwargs:
        if k not in names:
            raise SpecError(
                f"{cls.name}: unknown parameter {_short(k)}; its parameters are {', '.join(names)}"
            )
    missing = [f.name for f in fields(cls) if f.default is MISSING and f.name not in kwargs]
    if missing:
        raise SpecError(
            f"{cls.name}: missing required parameter {missing[0]!r}; its parameters are {', '.join(names)}"
        )
    if check_only:
        return None  # type: ignore[return-value]
    try:
        return cls(**kwargs)
    except _BAD_INPUT as exc:
        raise _spec_error(exc) from None


class _Budget:
    """Counts the values a dict spec holds (YAML aliases can make a small file hold billions)."""

    def __init__(self) -> None:
        self.left = MAX_NODES

    def spend(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise SpecError(f"spec: holds more than {MAX_NODES} values")


def _from_data(v: Any, depth: int, budget: _Budget) -> Any:
    budget.spend()
    if depth > MAX_DEPTH:
        raise SpecError(f"spec: nested deeper than {MAX_DEPTH} levels")
    if isinstance(v, dict):
        return _from_dict(v, depth + 1, budget)
    if isinstance(v, (list, tuple)):
        return tuple(_from_data(x, depth + 1, budget) for x in v)
    return v


def from_dict(d: Mapping[str, Any]) -> Schedule:
    """The schedule a :func:`to_dict` dict describes (nested dicts become nested schedules).

    Raises :class:`SpecError` (a ``ValueError``) for anything that does not describe a schedule.
    """
    try:
        return _from_dict(d, 0, _Budget())
    except _BAD_INPUT as exc:
        raise _spec_error(exc) from None


def _from_dict(d: Any, depth: int, budget: _Budget) -> Schedule:
    if not isinstance(d, Mapping):
        raise SpecError(f"spec: expected a dict with a 'type' key, got {type(d).__name__} {_short(d)}")
    if "type" not in d:
        raise SpecError(
            "spec: the dict needs a 'type' key naming the schedule "
            f"(one of {known_names()}), got {_short(dict(d))}"
        )
    cls = _lookup(d["type"])
    _build(cls, {str(k): None for k in d if k != "type"}, check_only=True)  # names before values
    kwargs = {str(k): _from_data(v, depth, budget) for k, v in d.items() if k != "type"}
    return _build(cls, kwargs)


ScheduleLike = Schedule | str | Mapping[str, Any]


def as_schedule(x: object, where: str = "schedule") -> Schedule:
    """A Schedule as it is, a spec string parsed, a spec dict read; anything else is a TypeError."""
    if isinstance(x, Schedule):
        return x
    if isinstance(x, str):
        return parse(x)
    if isinstance(x, Mapping):
        return from_dict(x)
    raise TypeError(
        f"{where} must be an lrkit Schedule, a spec string or a spec dict, got {type(x).__name__} {x!r}"
    )


# -- files ---------------------------------------------------------------------------------------
def to_json(s: Schedule, indent: int | None = None) -> str:
    return json.dumps(to_dict(s), indent=indent)


def _json_int(s: str) -> int:
    if len(s.lstrip("-")) > _MAX_DIGITS:
        raise SpecError(f"spec: an integer with {len(s)} digits is out of range (at most +-1.8e308)")
    return int(s)


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object; a key given twice is refused (json.loads would keep the last one silently)."""
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise SpecError(f"spec: invalid JSON: the key {_short(k)} is given twice in one object")
        out[k] = v
    return out


def from_json(text: str | bytes) -> Schedule:
    text = _text(text, "JSON spec")
    try:
        data = json.loads(text, parse_int=_json_int, object_pairs_hook=_json_object)
    except SpecError:
        raise
    except _BAD_INPUT as exc:
        bad = exc if isinstance(exc, RecursionError) else SpecError(f"spec: invalid JSON: {exc}")
        raise _spec_error(bad) from None
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


def from_yaml(text: str | bytes) -> Schedule:
    yaml = _yaml()
    text = _text(text, "YAML spec")
    try:
        data = yaml.load(text, Loader=loader())  # a SafeLoader subclass reading YAML 1.2's scalars
    except yaml.YAMLError as exc:
        at, problem = describe_error(text, exc)
        raise SpecError(f"spec: {'' if at is None else f'line {at[0]}, column {at[1]}: '}{problem}") from None
    except DuplicateKey as dup:
        raise SpecError(
            f"spec: line {dup.line}, column {dup.column}: the key {_short(dup.key)} is given twice in one "
            f"mapping (first on line {dup.first}); give each key once (YAML keeps only the last)"
        ) from None
    except _BAD_INPUT as exc:
        raise _spec_error(exc) from None
    return from_dict(data)


def to_toml(s: Schedule) -> str:
    try:
        import tomli_w
    except ImportError:
        raise ImportError("writing TOML specs needs tomli-w: pip install 'lrkit[spec]'") from None
    return str(tomli_w.dumps(to_dict(s)))


def from_toml(text: str | bytes) -> Schedule:
    import tomllib

    text = _text(text, "TOML spec")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _spec_error(ValueError(f"spec: invalid TOML: {exc}")) from None
    except _BAD_INPUT as exc:
        raise _spec_error(exc) from None
    return from_dict(data)


_FORMATS: dict[str, tuple[Callable[[Schedule], str], Callable[[str], Schedule]]] = {
    ".json": (to_json, from_json),
    ".yaml": (to_yaml, from_yaml),
    ".yml": (to_yaml, from_yaml),
    ".toml": (to_toml, from_toml),
}


def _format(fmt: object) -> str:
    key = "." + fmt.lower() if isinstance(fmt, str) else ""
    if fmt != "string" and key not in _FORMATS:
        raise SpecError(f"fmt: expected one of json, yaml, yml, toml, string, got {_short(fmt)}")
    return key


def dumps(s: Schedule, fmt: str = "string") -> str:
    """``s`` as ``fmt``: json, yaml, toml or string (the default, as :func:`loads`)."""
    key = _format(fmt)
    return to_string(s) if fmt == "string" else _FORMATS[key][0](s)


def loads(text: str | bytes, fmt: str = "string") -> Schedule:
    """Read a spec in ``fmt`` (json, yaml, toml or string); :class:`SpecError` for anything else."""
    key = _format(fmt)
    return parse(text) if fmt == "string" else _FORMATS[key][1](text)  # type: ignore[arg-type]


def not_a_file(p: Path, shown: str) -> str:
    """Why ``p`` (``shown``), which is not a regular file, cannot be read as one: it does not exist, is a
    link to nothing or a link loop, or is something else (a FIFO, a device such as /dev/zero)."""
    if p.is_symlink():
        try:
            p.resolve(strict=True)
        except RuntimeError:  # a loop (Python 3.11)
            return f"{shown} is a symbolic link in a loop, not a spec file"
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return f"{shown} is a symbolic link in a loop, not a spec file"
            return f"no such file {shown} (a symbolic link to nothing)"
    if not p.exists():
        return f"no such file {shown}"
    return f"{shown} is not a regular file (a FIFO, a device, a socket...)"


def load(spec: str | Path) -> Schedule:
    """A spec string, or a path to a .json/.yaml/.yml/.toml file holding one (UTF-8, at most
    :data:`MAX_INPUT` bytes)."""
    if not isinstance(spec, (str, Path)):
        raise SpecError(f"spec: expected a spec string or a path, got {type(spec).__name__} {_short(spec)}")
    if isinstance(spec, str) and len(spec) > MAX_INPUT:
        return parse(spec)  # refused for its length, without asking the file system about it
    p = Path(spec)
    if p.suffix.lower() in _FORMATS:
        try:
            if p.is_dir():
                raise SpecError(f"spec: {_short(str(spec))} is a directory, not a spec file")
            if not p.is_file():
                raise SpecError(f"spec: {not_a_file(p, _short(str(spec)))}")
            size = p.stat().st_size
            if size > MAX_INPUT:
                raise SpecError(
                    f"spec: {_short(str(spec))} holds {size} bytes; a spec file holds at most {MAX_INPUT}"
                )
            data = p.read_bytes()
        except OSError as exc:
            raise SpecError(f"spec: cannot read {_short(str(spec))}: {exc.strerror or exc}") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SpecError(
                f"spec: {_short(str(spec))} is not valid UTF-8 ({exc.reason} at byte {exc.start})"
            ) from None
        return loads(text, p.suffix[1:])
    try:
        return parse(str(spec))
    except SpecError as exc:
        kind = _path_kind(p)
        if kind is None:
            raise
        raise SpecError(
            f"spec: {_short(str(spec))} is {kind}, but a spec file's name ends in {', '.join(_FORMATS)}; "
            f"read as a spec string: {exc}"
        ) from None


def _path_kind(p: Path) -> str | None:
    """``"a directory"``, ``"a file"`` or None (nothing there, or a name the file system refuses)."""
    try:
        return "a directory" if p.is_dir() else "a file" if p.exists() else None
    except (OSError, ValueError):
        return None


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
        raise SpecError(f"{msg} at position {pos} of {_near(self.text, pos)}")

    def number(self, text: str, pos: int) -> Any:
        """A scalar token's value; numbers beyond a float's range are refused here, by position."""
        digits = len(text.lstrip("+-"))
        if _INT.match(text) and digits > _MAX_DIGITS:
            self.fail(pos, f"an integer with {digits} digits is out of range (at most +-1.8e308)")
        v = _scalar(text)
        if isinstance(v, float) and not math.isfinite(v):
            self.fail(pos, f"the number {_short(text)} is out of range (at most +-1.8e308)")
        return v

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

    def expr(self, first: Any = None) -> Any:
        """``first``: the first operand, already read (a parenthesised value)."""
        start = self.peek()[2]
        self.enter(start)
        parts = [self.product(first)]
        while self.peek()[1] == ">>" and self.peek()[0] == "op":
            pos = self.peek()[2]
            self.i += 1
            parts.append(self.product())
            if not (isinstance(parts[0], Schedule) and isinstance(parts[-1], Schedule)):
                self.fail(pos, "'>>' joins schedules, not numbers")
        self.depth -= 1
        if len(parts) == 1:
            return parts[0]
        try:
            return Chain(tuple(parts))
        except (TypeError, ValueError) as exc:
            self.fail(start, str(exc))

    def product(self, first: Any = None) -> Any:
        left = self.atom() if first is None else first
        while self.peek()[1] == "*" and self.peek()[0] == "punct":
            pos = self.peek()[2]
            self.i += 1
            right = self.atom()
            nums = [isinstance(x, (int, float)) and not isinstance(x, bool) for x in (left, right)]
            try:
                if all(nums):
                    left = float(left) * float(right)
                    if not math.isfinite(left):
                        self.fail(pos, "the product of these numbers is out of range (at most +-1.8e308)")
                elif nums[0]:
                    left = Scale(right, left)
                elif nums[1]:
                    left = Scale(left, right)
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
            v = self.number(text, pos)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                self.i += 1
                return v
            if re.fullmatch(r"[+-]?(nan|inf|infinity)", text, re.IGNORECASE):
                self.fail(pos, f"expected a schedule or a finite number, got {text!r}")
            if _NAME.match(text):
                self.fail(
                    pos,
                    f"expected '(' after schedule name {text!r}"
                    if text in REGISTRY
                    else f"unknown schedule {text!r}{did_you_mean(text, REGISTRY)}; known: {known_names()}",
                )
        self.fail(pos, f"expected a schedule such as 'cosine(lr=0.1)', got {_show(self.peek())}")

    def call(self) -> Schedule:
        _, name, pos = self.peek()
        if name not in REGISTRY:
            self.fail(pos, f"unknown schedule {name!r}{did_you_mean(name, REGISTRY)}; known: {known_names()}")
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
                        f"{name}: unknown parameter {key!r}{did_you_mean(key, params)}; "
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
            items, _ = self.items("]")
            return items
        if kind == "punct" and text == "(":
            items, comma = self.items(")")
            if comma or not items:
                return items  # a tuple: the same value as a list
            v = items[0]  # (v): grouping, as in Python; a number or schedule may go on (0.5) * a
            operand = isinstance(v, (int, float, Schedule)) and not isinstance(v, bool)
            return self.expr(v) if operand else v
        if kind == "str":
            self.i += 1
            return _unquote(text)
        if kind == "atom":
            nxt = self.toks[self.i + 1] if self.i + 1 < len(self.toks) else ("end", "", 0)
            if _NAME.match(text) and nxt[1] == "(" and nxt[0] == "punct":
                return self.expr()
            v = self.number(text, pos)
            number = isinstance(v, (int, float)) and not isinstance(v, bool)
            if number and (nxt[0] == "op" or (nxt[0] == "punct" and nxt[1] == "*")):
                return self.expr()
            self.i += 1
            return v
        self.fail(pos, f"expected a value, got {_show(self.peek())}")

    def items(self, close: str) -> tuple[tuple[Any, ...], bool]:
        """The values between an opening bracket and ``close``, and whether a ',' separated them."""
        _, opening, start = self.peek()
        what = f"the {opening}...{close} from position {start}"
        self.enter(start)
        self.i += 1
        items: list[Any] = []
        comma = False
        while not (self.peek()[1] == close and self.peek()[0] == "punct"):
            if self.peek()[0] == "end":
                self.fail(self.peek()[2], f"expected {close!r} to close {what}, got the end")
            items.append(self.value())
            if self.peek()[1] == "," and self.peek()[0] == "punct":
                self.i += 1
                comma = True
            elif not (self.peek()[1] == close and self.peek()[0] == "punct"):
                self.fail(self.peek()[2], f"expected ',' or {close!r} in {what}, got {_show(self.peek())}")
        self.i += 1
        self.depth -= 1
        return tuple(items), comma


def _show(tok: tuple[str, str, int]) -> str:
    return "the end" if tok[0] == "end" else _short(tok[1])


def _near(text: str, pos: int, width: int = 30) -> str:
    """The input around ``pos`` (all of it when short), quoted, with "..." where it is cut."""
    if len(text) <= 2 * width + 20:
        return repr(text)
    lo, hi = max(0, pos - width), min(len(text), pos + width)
    return f"{'...' if lo else ''}{text[lo:hi]!r}{'...' if hi < len(text) else ''} ({len(text)} characters)"


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
    if isinstance(text, Mapping):
        raise SpecError(
            f"spec: expected a string, got a dict {_short(text)}; read a spec dict with lrkit.from_dict"
        )
    if isinstance(text, Schedule):
        raise SpecError(f"spec: expected a string, got the schedule {text}, which needs no parsing")
    text = _text(text, "spec")
    try:
        return _Parser(text).parse()
    except _BAD_INPUT as exc:
        raise _spec_error(exc) from None


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
