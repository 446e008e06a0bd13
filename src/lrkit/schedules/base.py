"""The :class:`Schedule` base class: an immutable, closed-form function of the step.

Every schedule is a frozen dataclass. Its fields are its parameters; ``s(step)`` evaluates it in closed
form on a Python number, a numpy array, a torch tensor or a jax array (see :mod:`._xp`). A schedule has
an optional *length* (its ``steps`` field); past its length it holds its final value, before step 0 it
holds its first. Durations may be given in epochs or as a fraction of the total, and are turned into
steps by :meth:`Schedule.resolve`.
"""

from __future__ import annotations

import math
import numbers
import os
import sys
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any, ClassVar, SupportsFloat, TypeVar, dataclass_transform, overload

import numpy as np

from .._checks import dtype_kind
from .._text import events_text
from ._xp import Array, Namespace, as_float_time, namespace_of
from .duration import (
    MAX_STEPS,
    REST,
    Duration,
    DurationLike,
    _number,
    _short,
    _unwrapped,
    held_step,
    percent_text,
)

S = TypeVar("S", bound="Schedule")

_CHUNK = 65_536  # numpy arrays longer than this are evaluated block by block

#: How deeply schedules may nest (``scale(scale(...))``, ``a * b * c ...``): deeper ones are refused at
#: construction, so that evaluating, printing and comparing never hit Python's recursion limit.
MAX_NESTING = 64
#: The shortest period, step size or time scale, in steps: shorter ones make ``t / period`` overflow.
MIN_PERIOD = 1e-6

#: Every concrete schedule class by its spec name (``"cosine"`` -> :class:`Cosine`).
REGISTRY: dict[str, type[Schedule]] = {}


# -- field declarations ------------------------------------------------------------------------
# Each is a field specifier of :class:`Schedule`'s ``dataclass_transform``: type checkers read a field
# as required unless its call passes ``default=`` (by keyword, which is why ``default`` is keyword-only:
# a default given by position would be one at run time and not to the checker).
def duration_field(*, default: Any = MISSING, doc: str = "", positive: bool = False) -> Any:
    """A dataclass field holding a :class:`Duration` (coerced from int/str at construction), required
    without a default; ``positive`` rejects a zero duration (a period, a step size)."""
    return field(default=default, metadata={"kind": "duration", "doc": doc, "positive": positive})


def durations_field(*, default: tuple[()] = (), doc: str = "") -> Any:
    """A dataclass field holding a tuple of durations (e.g. milestones); empty by default (write
    ``default=()`` at the field, so that type checkers see the default too)."""
    return field(default=default, metadata={"kind": "durations", "doc": doc})


def schedule_field(*, doc: str = "") -> Any:
    """A required dataclass field holding a schedule."""
    return field(metadata={"kind": "schedule", "doc": doc})


def param(*, default: Any = MISSING, doc: str = "") -> Any:
    """A plain parameter with a one-line doc (shown by ``lrkit schedules``); required without a default."""
    return field(default=default, metadata={"doc": doc})


# -- validation helpers (messages name the argument, the value and what was expected) ----------
def _text_number_hint(v: object) -> str:
    """For a number written as text: PyYAML's ``yaml.safe_load`` (YAML 1.1) reads ``1e-3`` as text (YAML
    1.1 wants a dot and a signed exponent), the usual way one arrives here."""
    if not isinstance(v, str):
        return ""
    try:
        float(v)
    except ValueError:
        return ""
    return (
        " (a number written as text: yaml.safe_load reads 1e-3 as text under YAML 1.1; write 1.0e-3, or "
        "read the file with lrkit.load, which reads 1e-3 as a number)"
    )


def check_number(
    owner: str,
    name: str,
    v: object,
    *,
    low: float | None = None,
    low_open: bool = False,
    high: float | None = None,
    high_open: bool = False,
) -> float:
    """Return ``v`` as a float, or raise naming ``owner.name``, the value and the expected range. A 0-d
    array or tensor counts as the number it holds (:mod:`lrkit._checks`' rule)."""
    where = f"{owner}: {name}"
    v = _unwrapped(v)
    if isinstance(v, str) and v.strip().lower().lstrip("+-") in ("inf", "infinity", "nan"):
        raise ValueError(f"{where} must be a finite number, got {v!r}")  # a spec's bare inf / nan
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{where} must be a number, got {type(v).__name__} {_short(v)}{_text_number_hint(v)}")
    try:
        x = float(v)
    except OverflowError:
        raise ValueError(f"{where} must be a finite number (within 1.8e308), got {_short(v)}") from None
    if not math.isfinite(x):
        raise ValueError(f"{where} must be finite, got {_short(v)}")
    lo_ok = low is None or (x > low if low_open else x >= low)
    hi_ok = high is None or (x < high if high_open else x <= high)
    if not (lo_ok and hi_ok):
        lo = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
        hi = (
            ""
            if high is None
            else f"{'<' if high_open else '<='} {'2**53' if high == MAX_STEPS else f'{high:g}'}"
        )
        want = " and ".join(p for p in (lo, hi) if p)
        raise ValueError(f"{where} must be {want}, got {_short(v)}")
    return x


def check_choice(owner: str, name: str, v: object, choices: tuple[str, ...]) -> str:
    if not isinstance(v, str) or v not in choices:
        raise ValueError(f"{owner}: {name} must be one of {', '.join(map(repr, choices))}, got {_short(v)}")
    return str(v)


def check_bound(owner: str, what: str, value: float, advice: str) -> None:
    """Refuse parameters whose learning rate would overflow: ``value`` is the largest it reaches."""
    if not math.isfinite(value):
        raise ValueError(f"{owner}: {what} overflows (beyond 1.8e308); {advice}")


def growth(base: float, exponent: float) -> float:
    """``base ** exponent`` for ``base > 0``, inf where it overflows (Python raises there)."""
    try:
        return float(base**exponent)
    except OverflowError:
        return math.inf


def _plain_number(v: Any) -> Any:
    """numpy scalars (and 0-d arrays) as Python numbers (so specs print and serialise them), ints beyond
    2**53 as floats."""
    v = _unwrapped(v)
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    exotic = type(v) not in (int, float)  # numpy scalars, Fraction, Decimal, ...
    if isinstance(v, numbers.Real) and (exotic or (isinstance(v, int) and not -MAX_STEPS <= v <= MAX_STEPS)):
        try:
            return _number(v, "value")
        except ValueError:
            return v  # left for the field's own check, which names it
    return v


def _refuse_part_of_a_step(schedule: str, field: str, d: Duration) -> None:
    """A length or a step of 0 < n < 1 *steps* (``Warmup(0.05)``, ``wsd(decay=0.2)``, a milestone at 0.3)
    is no length at all and almost surely meant as a fraction of the run: refused, naming the fraction
    it likely meant. (Periods, which may be shorter than a step, are not lengths.)"""
    if d.unit == "steps" and 0 < d.value < 1:
        v = float(d.value)
        raise ValueError(
            f"{schedule}: {field}={v!r} is less than one step (a number is a count of steps); "
            f"for a fraction of the run write '{percent_text(v)}%' or fraction({v!r})"
        )


def _none_refused(schedule: str, f: Any) -> str:
    """The message for None given to a duration field where None is not a value (its default is not
    None): None there would fail only when the schedule is evaluated."""
    want = "expected a duration (steps, '3ep', '10%', 'rest'), got None"
    if f.default is MISSING:
        return f"{schedule}: {f.name}: {want}; {f.name} is required (it has no default)"
    default = f.default.to_data() if isinstance(f.default, Duration) else f.default
    return f"{schedule}: {f.name}: {want}; leave {f.name} out for its default ({default!r})"


@dataclass_transform(
    frozen_default=True, field_specifiers=(field, param, duration_field, durations_field, schedule_field)
)
@dataclass(frozen=True)
class Schedule:
    """Base class of every schedule. Subclasses set ``name``, declare fields and implement ``_f``.

    ``_f(t, xp)`` receives a floating array of *local* steps already clipped to ``[0, length]`` and
    returns the learning rate, using only ``xp`` functions (``where``, ``clip``, ``cos``, ...) so that
    one code path serves scalars, numpy arrays, torch tensors under ``torch.compile`` and jax under jit.
    """

    name: ClassVar[str] = ""
    #: the field holding the schedule's length, if it has one
    length_field: ClassVar[str | None] = "steps"
    #: whether a length of 0 is a value (the schedule is then absent: ``warmup(0)`` is no warmup); other
    #: schedules refuse it, as a piece that would never be seen
    zero_length_ok: ClassVar[bool] = False
    #: one line for ``lrkit schedules``
    summary: ClassVar[str] = ""
    #: a spec string shown in docs and checked by the tests
    example: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("name"):
            REGISTRY[cls.__dict__["name"]] = cls

    # -- construction ---------------------------------------------------------------------------
    def __post_init__(self) -> None:
        for f in fields(self):
            kind = f.metadata.get("kind")
            v = getattr(self, f.name)
            if kind is None and not isinstance(v, (str, Schedule)):
                v = _plain_number(v)
                object.__setattr__(self, f.name, v)
            if kind is None and f.type == "bool" and not isinstance(v, bool):
                raise TypeError(f"{self.name}: {f.name} must be true or false, got {_short(v)}")
            elif kind == "duration" and v is None and f.default is not None:
                raise TypeError(_none_refused(self.name, f))
            elif kind == "duration" and v is not None:
                d = Duration.parse(_unwrapped(v), name=f"{self.name}: {f.name}")
                if not f.metadata.get("positive"):  # a period may be below a step (MIN_PERIOD); a length not
                    _refuse_part_of_a_step(self.name, f.name, d)
                if d.unit == "rest" and f.name != self.length_field:
                    raise ValueError(f"{self.name}: {f.name} cannot be 'rest'; only the length can")
                if (
                    d.unit == "steps"
                    and d.value == 0
                    and f.name == self.length_field
                    and not self.zero_length_ok
                ):
                    raise ValueError(f"{self.name}: {f.name} must be > 0 steps, got {v!r}")
                if f.metadata.get("positive") and d.unit != "rest" and d.value <= 0:
                    raise ValueError(f"{self.name}: {f.name} must be > 0, got {d.to_data()!r}")
                if f.metadata.get("positive") and d.unit == "steps" and d.value < MIN_PERIOD:
                    raise ValueError(
                        f"{self.name}: {f.name} must be at least {MIN_PERIOD:g} steps "
                        f"(a shorter period only loses precision), got {d.to_data()!r}"
                    )
                object.__setattr__(self, f.name, d)
            elif kind == "durations":
                if isinstance(v, (str, bytes)) or not hasattr(v, "__iter__"):
                    raise TypeError(f"{self.name}: {f.name} must be a list of durations, got {v!r}")
                ds = tuple(Duration.parse(_unwrapped(x), name=f"{self.name}: {f.name}") for x in v)
                for d in ds:
                    _refuse_part_of_a_step(self.name, f.name, d)
                object.__setattr__(self, f.name, ds)
            elif kind == "schedule" and not isinstance(v, Schedule):
                raise TypeError(
                    f"{self.name}: {f.name} must be a schedule, got {type(v).__name__} {_short(v)}"
                )
        self._validate()
        # counted on the fields as _validate leaves them: a chain of chains is one flat chain by then
        depth = 1 + max((p.nesting for p in self._children()), default=0)
        if depth > MAX_NESTING:
            raise ValueError(
                f"{self.name}: schedules nested {depth} levels deep; at most {MAX_NESTING} "
                "(fold repeated factors into one: s * 0.5 * 0.5 -> s * 0.25)"
            )
        object.__setattr__(self, "_nesting", depth)
        # cached here, not with functools.cached_property: its lock breaks torch.compile tracing
        object.__setattr__(self, "_unresolved", self._find_unresolved())

    def _validate(self) -> None:
        """Check parameters; raise ValueError/TypeError naming the argument and the value."""

    def _children(self) -> Iterator[Schedule]:
        """The schedules this one is made of (its schedule fields' values), in field order."""
        for f in fields(self):
            v = getattr(self, f.name)
            if f.metadata.get("kind") == "schedule":
                yield v
            elif f.metadata.get("kind") == "schedules":
                yield from v

    @property
    def nesting(self) -> int:
        """How many schedules deep this one is (1 for a leaf; a chain counts as one level)."""
        return int(self.__dict__["_nesting"])

    def peak(self) -> float | None:
        """An upper bound of the learning rate at every step (None: not known until resolved).

        Used to refuse parameters whose values would overflow (a scale, a product, a growing gamma).
        """
        vals = [
            float(v)
            for f in fields(self)
            if f.metadata.get("kind") is None and "lr" in f.name
            for v in (getattr(self, f.name),)
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        ]
        return max(vals) if vals else 1.0

    # -- evaluation -----------------------------------------------------------------------------
    @overload
    def __call__(self, step: int | float, *, xp: Namespace | None = None) -> float: ...
    @overload
    def __call__(self, step: Array, *, xp: Namespace | None = None) -> Array: ...
    def __call__(self, step: Any, *, xp: Namespace | None = None) -> Any:
        """The learning rate at ``step``: a float for a Python number, else an array like ``step``.

        ``xp`` is the array namespace; pass it when calling inside ``torch.compile`` so the lookup
        happens outside the compiled region.

        Steps are held to ``[-2**53, 2**53]`` (a Python int of any size is fine). A torch or jax array
        of signed integers (32 or 64 bits) is evaluated in the namespace's default float dtype (float32
        unless changed), except where a step falls against a period or a milestone (cyclic, restarts,
        repeat, step decays, staircases, multistep): that is found in integer arithmetic, on the step's
        own steps at any value, where a float32 step past 2**24 would be 1-2 steps off. A NaN or infinite step
        is a ValueError for Python numbers and numpy arrays; torch and jax arrays are not inspected (that
        would sync the device), so there a NaN step gives NaN.
        """
        problem = self.unresolved
        if problem:
            raise ValueError(f"{self.name}: cannot evaluate yet: {problem}")
        scalar = isinstance(step, (int, float, np.integer, np.floating)) and not isinstance(step, bool)
        if xp is None:
            xp = namespace_of(step)
        if scalar:  # through a 1-element array: the same ufunc loops as a vectorised call, bit for bit
            if isinstance(step, (int, np.integer)):
                step = held_step(step)
            elif not math.isfinite(step):
                raise ValueError(f"{self.name}: step must be a finite number, got {step!r}")
            return float(self._eval(np.asarray([step], dtype=np.float64), np)[0])
        mask = np.ma.getmaskarray(step) if isinstance(step, np.ma.MaskedArray) else None
        if mask is not None:  # a masked step's LR is masked; what lies under the mask is not looked at
            step = step.filled(0)
        t = as_float_time(step, xp)
        if xp is np and not np.isfinite(t).all():
            bad = t.reshape(-1)[~np.isfinite(t.reshape(-1))][0]
            raise ValueError(
                f"{self.name}: steps must be finite numbers, got {bad!r} in an array of {t.size}"
            )
        if xp is not np:  # a signed integer step also goes as it is: periodic schedules reduce it exactly
            wide = xp.isdtype(step.dtype, "signed integer") and xp.iinfo(step.dtype).bits >= 32
            return self._eval(t, xp, xp.clip(step, 0, None) if wide else None)  # (held at 0 as t is)
        if t.size > _CHUNK:  # long previews: cache-sized blocks are ~1.5x faster
            flat = t.reshape(-1)
            out = np.empty_like(flat)
            for i in range(0, flat.size, _CHUNK):
                out[i : i + _CHUNK] = self._eval(flat[i : i + _CHUNK], np)
            out = out.reshape(t.shape)
        else:  # a 0-d array in, a 0-d array out, evaluated as a 1-element array as a scalar is (numpy's
            # 0-d power can differ from it in the last bit)
            out = np.asarray(self._eval(t.reshape(-1), xp)).reshape(t.shape)
        return out if mask is None else np.ma.MaskedArray(out, mask=mask)

    def _eval(self, t: Array, xp: Namespace, k: Array | None = None) -> Array:
        """Evaluate at local time ``t``, holding the first value before 0 and the last past the end.

        ``k``, where given, is the same local step as a signed integer array: exact where ``t``, a
        float32, is not past 2**24 (a torch int tensor, a jax count under jit). Periodic schedules
        reduce it in integer arithmetic (:func:`divide`); None for float steps.
        """
        n = self.length_steps
        return self._fk(xp.clip(t, 0.0, n if n is not None else float(MAX_STEPS)), clip_steps(k, n, xp), xp)

    def _fk(self, t: Array, k: Array | None, xp: Namespace) -> Array:
        """``_f`` given also the integer step ``k`` (see :meth:`_eval`); the periodic schedules and the
        step decays define this one instead of ``_f``."""
        return self._f(t, xp)

    def _f(self, t: Array, xp: Namespace) -> Array:
        """The value at local time ``t`` (a float step); a schedule defines this or :meth:`_fk`."""
        if type(self)._fk is Schedule._fk:
            raise NotImplementedError
        return self._fk(t, None, xp)

    # -- durations ------------------------------------------------------------------------------
    @property
    def length(self) -> Duration | None:
        """How long this schedule runs before it holds its final value (None: forever)."""
        if self.length_field is None:
            return None
        d = getattr(self, self.length_field)
        return d if isinstance(d, Duration) else None

    @property
    def length_steps(self) -> float | None:
        d = self.length
        return None if d is None else _steps(d)

    @property
    def unresolved(self) -> str:
        """Why this schedule cannot be evaluated yet ('' when it can)."""
        return str(self.__dict__["_unresolved"])

    def _find_unresolved(self) -> str:
        for owner, fname, d in self._durations():
            if not d.is_steps:
                return (
                    f"{owner}.{fname}={d.to_data()!r} is not in steps; call "
                    ".resolve(total_steps=..., steps_per_epoch=...) first"
                )
        return ""

    # -- events: the schedule's own time constants, for the check against the run ----------------
    def events(self) -> tuple[tuple[float, str], ...]:
        """Where this schedule's own time constants take effect, in its local steps (resolved; () while
        unresolved), each with what it is: a milestone, the first decay of a step decay, the first
        restart, a cycle's peak and end, where a chain's next piece starts. Those past its own end are
        left out (the schedule holds before them). :func:`beyond_run` checks them against a run.

        >>> from lrkit.schedules import MultiStep
        >>> MultiStep(lr=0.1, milestones=[30, 60]).events()
        ((30.0, 'multistep milestones[0]=30'), (60.0, 'multistep milestones[1]=60'))
        """
        if self.unresolved:
            return ()
        n = self.length_steps
        return tuple((t, what) for t, what in self._events() if n is None or t < n)

    def _events(self) -> Iterator[tuple[float, str]]:
        """:meth:`events`, before those past the end are left out; none by default (a curve whose only
        time constant is its length, which :func:`longer_than_run` checks)."""
        return iter(())

    def _durations(self) -> Iterator[tuple[str, str, Duration]]:
        for f in fields(self):
            v = getattr(self, f.name)
            kind = f.metadata.get("kind")
            if kind == "duration" and v is not None:
                yield self.name, f.name, v
            elif kind == "durations":
                for d in v:
                    yield self.name, f.name, d
            elif kind == "schedule":
                yield from v._durations()
            elif kind == "schedules":
                for s in v:
                    yield from s._durations()
            elif kind == "points":
                for d, _ in v:
                    yield self.name, f.name, d

    def resolve(
        self: S, total_steps: SupportsFloat | None = None, steps_per_epoch: SupportsFloat | None = None
    ) -> S:
        """Turn durations in epochs, fractions and "rest" into steps.

        What cannot be converted yet (a fraction with no ``total_steps``) is left as it is, and
        evaluating the schedule then raises an error that says what is missing. ``total_steps`` and
        ``steps_per_epoch`` are numbers or 0-d integer arrays (numpy, torch, jax; not traced values).

        >>> from lrkit.schedules import Cosine
        >>> Cosine(lr=1.0, steps="50%").resolve(total_steps=1000).steps
        steps(500)
        """
        if total_steps is not None:
            total_steps = check_number(
                "resolve",
                "total_steps",
                _count(total_steps, "total_steps"),
                low=0,
                low_open=True,
                high=MAX_STEPS,
            )
        if steps_per_epoch is not None:
            steps_per_epoch = check_number(
                "resolve",
                "steps_per_epoch",
                _count(steps_per_epoch, "steps_per_epoch"),
                low=0,
                low_open=True,
                high=MAX_STEPS,
            )
        return self._resolve(total_steps, steps_per_epoch, total_steps)

    def _resolve(self: S, total: float | None, spe: float | None, span: float | None) -> S:
        def conv(d: Duration) -> Duration:
            try:
                return Duration(d.to_steps(total, spe, span))
            except ValueError:
                return d

        changes: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            kind = f.metadata.get("kind")
            if kind == "duration" and v is not None:
                changes[f.name] = conv(v)
            elif kind == "durations":
                changes[f.name] = tuple(conv(d) for d in v)
            elif kind == "points":
                changes[f.name] = tuple((conv(d), y) for d, y in v)
            elif kind == "schedule":
                changes[f.name] = v._resolve(total, spe, span)
        return replace(self, **changes) if changes else self

    # -- composition ----------------------------------------------------------------------------
    def __rshift__(self, other: Schedule) -> Schedule:
        """``a >> b``: run ``a`` for its length, then ``b`` (in its own local time)."""
        from .compose import chain

        if not isinstance(other, Schedule):
            return NotImplemented
        return chain(self, other)

    def __mul__(self, other: object) -> Schedule:
        """``s * 2.0`` scales; ``a * b`` multiplies two schedules (a multiplier on a base)."""
        from .compose import Product, Scale

        if isinstance(other, Schedule):
            return Product(self, other)
        factor = _unwrapped(other)  # a 0-d tensor or array: the number it holds
        if isinstance(factor, numbers.Real) and not isinstance(factor, (bool, np.bool_)):
            return Scale(self, factor)  # type: ignore[arg-type]  # numpy scalars: normalised by Scale
        return NotImplemented

    __rmul__ = __mul__

    # -- specs ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A plain dict (JSON/YAML/TOML-ready) that :func:`lrkit.from_dict` turns back into ``self``."""
        from ..spec import to_dict

        return to_dict(self)

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> Schedule:
        """The schedule a :meth:`to_dict` dict describes (:func:`lrkit.from_dict`)."""
        from ..spec import from_dict

        return from_dict(data)

    def __str__(self) -> str:
        from ..spec import to_string

        return to_string(self)


class ScheduleLongerThanRunWarning(UserWarning):
    """A schedule lasts longer than the run it drives: the run ends before the schedule does, so its end
    (a cosine's decay, a WSD's cool-down) is never reached; or one of its time constants falls past the
    run's end (:func:`beyond_run`): a milestone, a step decay's first cut, a restart period, a cycle."""


def longer_than_run(s: Schedule, total_steps: float) -> float | None:
    """The length of ``s`` (resolved) in steps when it is longer than a run of ``total_steps`` steps,
    else None (it fits, or runs forever). ``cosine(lr=0.1, steps=10000)`` over 450 steps never decays.

    >>> from lrkit.schedules import Cosine
    >>> longer_than_run(Cosine(lr=0.1, steps=10_000), 450), longer_than_run(Cosine(lr=0.1, steps=450), 450)
    (10000.0, None)
    """
    n = s.length_steps
    return n if n is not None and n > float(total_steps) else None


def beyond_run(s: Schedule, total_steps: float) -> tuple[tuple[float, str], ...]:
    """The :meth:`~Schedule.events` of ``s`` (resolved) that fall past the end of a run of
    ``total_steps`` steps (after step ``total_steps``, as :func:`longer_than_run` counts a length), in
    steps of the run: the LR never changes there. A chain's pieces' events count from each piece's start.

    >>> from lrkit.schedules import MultiStep
    >>> beyond_run(MultiStep(lr=0.1, milestones=[500, 1500]), 1000)
    ((1500.0, 'multistep milestones[1]=1500'),)
    """
    total = float(total_steps)
    return tuple(e for e in s.events() if e[0] > total)


#: ``(where, total_name)`` set by :func:`run_named` for the ``warn_*_than_run`` calls inside it
_RUN_NAMED: ContextVar[tuple[str, str] | None] = ContextVar("lrkit_run_named", default=None)


@contextmanager
def run_named(where: str, total_name: str) -> Iterator[None]:
    """Inside, :func:`warn_longer_than_run` (and ``warn_shorter_than_run``) says ``where`` and ``total_name``
    whatever its caller passes:
    for an adapter built on another (``lrkit.timm`` and ``lrkit.transformers`` on
    ``lrkit.torch.scheduler``), which knows how its user gave the run (``epochs * updates_per_epoch``,
    ``num_training_steps``) where the one underneath only sees ``total_steps``."""
    token = _RUN_NAMED.set((where, total_name))
    try:
        yield
    finally:
        _RUN_NAMED.reset(token)


def run_fit_messages(
    s: Schedule,
    total_steps: float,
    *,
    shown: str,
    run: str,
    fix: str,
    fix_short: str,
    spec: str | None = None,
) -> list[tuple[type[UserWarning], str]]:
    """The warnings of ``s`` (resolved) against a run of ``total_steps`` steps, as ``(category, text)``:
    :func:`longer_than_run`, else its events :func:`beyond_run`; and :func:`shorter_than_run`. One wording
    for every caller (the adapters, ``lrkit show``, the lab), each naming the schedule (``shown``) and the
    run (``run``: ``"total_steps=1,000"``, ``"--total 1,000"``) as its user gave them, and its own advice:
    ``fix`` for a length that does not fit, ``fix_short`` (``{ends}``: the schedule's last step) for one
    that ends early; ``spec`` (default ``shown``) says whether a percent is in play.

    >>> from lrkit.schedules import MultiStep
    >>> s = MultiStep(lr=0.1, milestones=[1500])
    >>> [t for _, t in run_fit_messages(s, 1000, shown="m", run="--total 1,000", fix="", fix_short="")]
    ... # doctest: +ELLIPSIS
    ['m changes the LR past the end of --total 1,000: multistep milestones[0]=1500 at step 1,500. ...']
    """
    out: list[tuple[type[UserWarning], str]] = []
    n = longer_than_run(s, total_steps)
    if n is not None:  # 'cosine(lr=0.1, steps=10000)' over 450 steps: never decays
        out.append(
            (
                ScheduleLongerThanRunWarning,
                f"{shown} lasts {n:,.0f} steps, more than {run}: the run ends before the schedule does, so "
                f"its end is never reached ({fix})",
            )
        )
    else:
        past = beyond_run(s, total_steps)
        if past:  # 'multistep(lr=0.1, milestones=[1500])' over 1,000 steps: never decays
            text = events_text(past, shown if spec is None else spec)
            out.append(
                (ScheduleLongerThanRunWarning, f"{shown} changes the LR past the end of {run}: {text}")
            )
    short = shorter_than_run(s, total_steps)
    if short is not None:  # 'cosine(lr=0.1, steps=90)' over 35,190 steps: 0 for the rest
        ends, held, peak = short
        rest = float(total_steps) - 1.0 - ends
        out.append(
            (
                ScheduleShorterThanRunWarning,
                f"{shown} ends at step {ends:,.0f} and then holds {held:.3g} (under 1% of its peak "
                f"{peak:.3g}) for the remaining {rest:,.0f} steps of {run} ({rest / float(total_steps):.1%} "
                f"of the run). {fix_short.format(ends=f'{ends:.0f}')}",
            )
        )
    return out


def _warn_fit(
    s: Schedule, total_steps: float, which: type[UserWarning], shown: str | None, where: str, total_name: str
) -> None:
    """Give the :func:`run_fit_messages` of category ``which``, for an adapter (see
    :func:`warn_longer_than_run`)."""
    where, total_name = _RUN_NAMED.get() or (where, total_name)
    found = [
        text
        for category, text in run_fit_messages(
            s,
            total_steps,
            shown=repr(str(s)) if shown is None else shown,
            run=f"{total_name}={_total(total_steps)}",
            fix=f"give its lengths as fractions of the run, '100%' or 'rest', to fit any {total_name}",
            fix_short=(
                "If it should span the run, give its lengths as fractions of it ('100%' or 'rest') to fit "
                f"any {total_name}; if they were counted in epochs (a torch scheduler stepped once per "
                "epoch), write them in epochs ('{ends}ep', with steps_per_epoch=...) or count "
                f"{total_name} in the same steps as the schedule"
            ),
        )
        if category is which
    ]
    if not found:
        return
    stacklevel = _caller_stacklevel()
    if stacklevel is None:
        return
    for text in found:
        warnings.warn(f"{where}: {text}", which, stacklevel=stacklevel)


def warn_longer_than_run(
    s: Schedule,
    total_steps: float,
    *,
    shown: str | None = None,
    where: str = "lrkit",
    total_name: str = "total_steps",
) -> None:
    """Warn (:class:`ScheduleLongerThanRunWarning`) when ``s`` is :func:`longer_than_run`, naming the
    schedule (``shown``: as the user wrote it, default ``repr(str(s))``), its length and the run's
    ``total_name`` (as the user gave it), after ``where`` (who warns); both as :func:`run_named` says
    inside it. When it fits but has events :func:`beyond_run` (a milestone past the end), the warning
    names them and where they fall.

    For the adapters (``lrkit.torch.scheduler``, ``lrkit.keras.schedule``, ...): the warning points at
    the code that called them; called from lrkit's own tools (the lab, which warns in its own words
    before it runs, ``lrkit auto``) it is left to them and not given.
    """
    _warn_fit(s, total_steps, ScheduleLongerThanRunWarning, shown, where, total_name)


def _total(total_steps: float) -> str:
    t = float(total_steps)
    return f"{t:,.0f}" if t.is_integer() else f"{t:,}"


class ScheduleShorterThanRunWarning(UserWarning):
    """A schedule ends well before the run it drives and then holds a value under 1% of its peak (0,
    say): the rest of the run trains at almost no learning rate. Typical of a length counted in epochs
    (a torch scheduler stepped once per epoch) used with a run counted in optimizer steps."""


#: :func:`shorter_than_run`: a held value under this fraction of the peak counts as no LR ...
HELD_FRACTION = 0.01
#: ... when the schedule holds it for more than this fraction of the run (and more than one step)
SHORT_FRACTION = 0.01
_PEAK_SAMPLES = 4096


def peak_until(s: Schedule, last: float) -> float:
    """The largest value of ``s`` (resolved) over steps 0 .. ``last``: at every step up to
    :data:`_PEAK_SAMPLES` steps, else at that many evenly spaced points."""
    n = float(last)
    t = np.arange(math.floor(n) + 1.0) if n <= _PEAK_SAMPLES else np.linspace(0.0, n, _PEAK_SAMPLES + 1)
    return float(np.max(s(t)))


def shorter_than_run(s: Schedule, total_steps: float) -> tuple[float, float, float] | None:
    """``(length, held, peak)`` of ``s`` (resolved) when it ends more than 1% of a run of
    ``total_steps`` steps (and more than one step) before the run's last step (``total_steps - 1``) and
    then holds ``held``, under
    1% of ``peak`` (its largest value, sampled at up to 4,097 points of its length); else None. A
    schedule that runs forever, or ends on a value it means to hold (a cosine to ``min_lr``, a warmup),
    is None.

    >>> from lrkit.schedules import Cosine
    >>> shorter_than_run(Cosine(lr=0.1, steps=90), 35_190)
    (90.0, 0.0, 0.1)
    >>> shorter_than_run(Cosine(lr=0.1, steps=90, min_lr=0.01), 35_190)  # ends on a value it means to hold
    >>> shorter_than_run(Cosine(lr=0.1, steps=449), 450)  # ends at the run's last step
    """
    n = s.length_steps
    total = float(total_steps)
    if n is None or total - 1.0 - n <= max(1.0, SHORT_FRACTION * total):
        return None
    held = float(s(n))
    peak = max(peak_until(s, n), held)
    if not (peak > 0.0 and held < HELD_FRACTION * peak):
        return None
    return n, held, peak


def warn_shorter_than_run(
    s: Schedule,
    total_steps: float,
    *,
    shown: str | None = None,
    where: str = "lrkit",
    total_name: str = "total_steps",
) -> None:
    """Warn (:class:`ScheduleShorterThanRunWarning`) when ``s`` is :func:`shorter_than_run`, naming the
    schedule, its length, the value it holds, ``total_name`` and the likely fixes; who is named, and when
    it is left to lrkit's own tools, as for :func:`warn_longer_than_run`."""
    _warn_fit(s, total_steps, ScheduleShorterThanRunWarning, shown, where, total_name)


def warn_run_length(
    s: Schedule,
    total_steps: float,
    *,
    shown: str | None = None,
    where: str = "lrkit",
    total_name: str = "total_steps",
) -> None:
    """Both checks of a schedule against the run it drives, for an adapter given ``total_steps``:
    :func:`warn_longer_than_run` and :func:`warn_shorter_than_run`."""
    warn_longer_than_run(s, total_steps, shown=shown, where=where, total_name=total_name)
    warn_shorter_than_run(s, total_steps, shown=shown, where=where, total_name=total_name)


_LRKIT = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
#: the packages whose frames stand between a caller and :func:`warn_longer_than_run`
_PASSED = tuple(_LRKIT + d + os.sep for d in ("schedules", "adapters"))


def _caller_stacklevel() -> int | None:
    """The ``stacklevel`` (for a ``warnings.warn`` in the function calling this) of the first frame
    outside lrkit's schedules and adapters, or None when that frame is lrkit's own (the lab, auto)."""
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PASSED):
        frame, level = frame.f_back, level + 1
    return None if os.path.abspath(frame.f_code.co_filename).startswith(_LRKIT) else level


def _count(v: Any, name: str) -> Any:
    """A 0-d integer array (numpy, torch, jax: ``len(loader) * epochs`` computed on arrays) as a Python
    int, as a numpy int is taken; other arrays are a TypeError; anything else is left to ``check_number``."""
    kind = dtype_kind(v)
    if kind is None:
        return v
    where = f"resolve: {name} must be a number or a 0-d integer array, got {type(v).__name__}"
    shape = tuple(v.shape)
    if shape != ():
        raise TypeError(f"{where} of shape {shape}")
    if kind != "i":
        raise TypeError(f"{where} of dtype {v.dtype}: {_short(v)}")
    try:
        return int(v)
    except TypeError as exc:  # a traced jax value (ConcretizationTypeError) has no value yet
        raise TypeError(
            f"{where} with no concrete value ({type(exc).__name__}); resolve the schedule outside jax.jit"
        ) from None


def _steps(d: Duration) -> float:
    """The step count of a resolved duration (callers check ``unresolved`` first)."""
    if not d.is_steps:
        raise ValueError(f"duration {d.to_data()!r} is not in steps; call .resolve(...) first")
    return float(d.value)


def step_text(x: float) -> str:
    """A step count as written in a spec: ``1500``, ``2.5``."""
    return str(int(x)) if float(x).is_integer() and abs(x) <= MAX_STEPS else f"{x:g}"


def steps_of(d: DurationLike | None) -> float:
    """The step count of a resolved duration field."""
    if not isinstance(d, Duration):
        raise TypeError(f"expected a Duration, got {d!r}")
    return _steps(d)


def where(xp: Namespace, cond: Array, a: Array, b: Array) -> Array:
    """``xp.where`` for arrays of the same shape (both branches are computed)."""
    return xp.where(cond, a, b)


def floor_div(t: Array, n: float, xp: Namespace) -> Array:
    """``floor(t / n)``, exact at multiples of ``n`` even where ``t / n`` is computed as ``t * (1/n)``
    and rounded down (XLA does that under ``jax.jit``), which would switch a step late."""
    q = xp.floor(t / n)
    return xp.where((q + 1.0) * n <= t, q + 1.0, xp.where(q * n > t, q - 1.0, q))


def _whole(x: float, k: Array, xp: Namespace) -> int | None:
    """``x`` as an int when it is a whole number within the range of ``k``'s integer dtype, else None."""
    return int(x) if float(x).is_integer() and 0 <= x <= xp.iinfo(k.dtype).max else None


def clip_steps(k: Array | None, n: float | None, xp: Namespace) -> Array | None:
    """The integer steps ``k`` held to ``[0, n]`` as :meth:`Schedule._eval` holds the float ones; None
    where ``n`` is not a whole number (a held step would no longer be ``k``)."""
    if k is None:
        return None
    if n is None or n > xp.iinfo(k.dtype).max:
        return xp.clip(k, 0, None)
    hi = _whole(n, k, xp)
    return None if hi is None else xp.clip(k, 0, hi)


def shift_steps(k: Array | None, offset: float, xp: Namespace) -> Array | None:
    """``k - offset`` in integer arithmetic (a chain piece's local step); None where ``offset`` is not a
    whole number; 0 (a step before the piece) where it lies past the range of ``k``'s dtype."""
    if k is None:
        return None
    if offset > xp.iinfo(k.dtype).max:
        return k * 0
    o = _whole(offset, k, xp)
    return None if o is None else k - o


def divide_steps(k: Array | None, n: float, xp: Namespace) -> tuple[Array, Array] | None:
    """``(k // n, k % n)`` in integer arithmetic, exact at any step; None without ``k`` or where ``n`` is
    not a whole number within the range of ``k``'s dtype."""
    w = None if k is None else _whole(n, k, xp)
    if k is None or w is None or w == 0:
        return None
    q = k // w
    return q, k - q * w


def divide(t: Array, k: Array | None, n: float, xp: Namespace) -> tuple[Array, Array]:
    """``(q, r)``: how many whole ``n`` fit in the step, ``floor(t / n)``, and what is left, in
    ``[0, n]``, both as floats like ``t``. From the integer step ``k`` where :func:`divide_steps` can:
    exact at any step (a float32 ``t`` past 2**24 is 1-2 steps off, which would move a restart or a
    cycle's peak); else from ``t`` (:func:`floor_div`)."""
    exact = divide_steps(k, n, xp)
    if exact is not None:
        return xp.astype(exact[0], t.dtype), xp.astype(exact[1], t.dtype)
    q = floor_div(t, n, xp)
    return q, xp.clip(t - q * n, 0.0, n)


def zero_safe(f: Any, x: Array, xp: Namespace) -> Array:
    """``f(x)`` for ``x >= 0``, where ``f(0) == 0`` but ``f'(0)`` is infinite (``sqrt``, ``x ** p`` with
    ``p < 1``), as ``f(x + 1 - pos) * pos`` with ``pos = (x > 0)``: ``f(x)`` where ``x > 0``, ``f(1) * 0 = 0``
    at 0 (NaN for a NaN step). The values are those of ``f(x)``, and the derivative jax and torch
    autograd give at 0 is ``f'(1) * 0 = 0`` (the flat side) instead of inf, which a ``clip`` or ``where``
    around it would turn into ``inf * 0 = NaN``. Arithmetic, not ``where``: a third of the cost in eager
    torch.
    """
    pos = xp.astype(x > 0, x.dtype)
    return f(x + (1.0 - pos)) * pos


def const_like(t: Array, v: float) -> Array:
    """An array shaped like ``t`` filled with ``v`` (keeps dtype and device)."""
    return t * 0.0 + v


__all__ = [
    "MAX_NESTING",
    "MAX_STEPS",
    "MIN_PERIOD",
    "REGISTRY",
    "REST",
    "Schedule",
    "ScheduleLongerThanRunWarning",
    "ScheduleShorterThanRunWarning",
    "beyond_run",
    "check_bound",
    "check_choice",
    "check_number",
    "clip_steps",
    "const_like",
    "divide",
    "divide_steps",
    "duration_field",
    "durations_field",
    "floor_div",
    "growth",
    "longer_than_run",
    "param",
    "run_named",
    "schedule_field",
    "shift_steps",
    "shorter_than_run",
    "step_text",
    "steps_of",
    "warn_longer_than_run",
    "warn_run_length",
    "warn_shorter_than_run",
    "where",
    "zero_safe",
]
