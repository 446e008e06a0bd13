"""Reduce-on-plateau as a framework-free state machine.

:class:`Plateau` watches a metric and says when the learning rate should be cut. It holds no learning
rate and imports no framework: an adapter (``lrkit.torch``'s scheduler, a Keras callback) keeps a
multiplier on top of its schedule and multiplies it by ``factor`` when :meth:`Plateau.step` returns
True. The rules are those of torch's ``ReduceLROnPlateau``:

- a metric is *better* than the best so far when (mode ``min``) ``a < best - threshold * |best|``
  (``rel``) or ``a < best - threshold`` (``abs``); mode ``max`` mirrors it with ``best + threshold *
  |best|`` and ``best + threshold``;
- every metric that is not better is a bad epoch; during the ``cooldown`` metrics after a cut, bad
  epochs are not counted;
- when there have been more than ``patience`` bad epochs in a row, cut: ``lr <- max(lr * factor,
  min_lr)``, skipped when that changes the LR by ``eps`` or less (:meth:`Plateau.reduce`).

One deliberate difference: torch writes the relative margin as ``best * (1 - threshold)``, which for a
negative ``best`` (a negative log-likelihood, an ELBO, a negative Dice loss) lies on the wrong side of
``best``: a flat negative metric counts as an improvement every epoch and is never cut, and a worsening
one becomes the new best (pytorch#38622, #47513). Here the margin is ``threshold * |best|``, computed
as torch does (``best * (1 -/+ threshold)``, the same float) when ``best >= 0``, so the LRs equal torch's
whenever the best metric is not negative. For the same reason a relative ``threshold`` must be ``< 1``.

>>> p = Plateau(patience=1, factor=0.5)
>>> [p.step(m) for m in (1.0, 0.9, 0.9, 0.9, 0.9, 0.9)]
[False, False, False, True, False, True]
>>> p.reduce(0.1), p.num_reductions
(0.05, 2)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, SupportsFloat

from .._checks import as_measured, as_real, check_int

if TYPE_CHECKING:
    from ..schedules.base import Schedule

__all__ = ["MissingStateKeys", "Plateau", "warmup_steps"]

#: what ``mode=`` and ``threshold_mode=`` take (to a type checker; other strings are refused when run)
PlateauMode = Literal["min", "max"]
ThresholdMode = Literal["rel", "abs"]
_MODES = ("min", "max")
_THRESHOLD_MODES = ("rel", "abs")


def _number(
    name: str,
    v: object,
    *,
    low: float,
    low_open: bool = False,
    high: float | None = None,
    high_open: bool = False,
) -> float:
    x = as_real(v)  # numpy's numbers and 0-d arrays or tensors too (lrkit._checks)
    if x is None:
        raise TypeError(f"Plateau: {name} must be a number, got {type(v).__name__} {v!r}")
    ok = math.isfinite(x) and (x > low if low_open else x >= low)
    if high is not None:
        ok = ok and (x < high if high_open else x <= high)
    if not ok:
        lo = f"{'>' if low_open else '>='} {low:g}"
        hi = "" if high is None else f" and {'<' if high_open else '<='} {high:g}"
        raise ValueError(f"Plateau: {name} must be a finite number {lo}{hi}, got {v!r}")
    return x


def _count(name: str, v: object) -> int:
    return check_int(v, name, 0, where="Plateau: ", type_error=numbers.Real)  # numpy's integers too


def _start(v: object) -> int:
    if isinstance(v, str):
        raise ValueError(f"Plateau: start must be 'warmup' or an integer step >= 0, got {v!r}")
    return _count("start", v)


#: the format of :meth:`Plateau.state_dict`: /2 writes strict JSON (``best`` None or ``"inf"``); a state
#: without ``"format"`` is an older lrkit's (/1: ``best`` a float, ``+-inf`` before any metric)
_STATE_FORMAT = "lrkit.plateau/2"


#: what :meth:`Plateau.reset` calls with the plateau, after it forgot its reductions: an adapter that
#: keeps the cuts those made (``lrkit.torch``'s scheduler: ``plateau_cuts``) drops them there
_RESET_HOOKS: list[Callable[[Plateau], None]] = []


def on_reset(hook: Callable[[Plateau], None]) -> None:
    """Have :meth:`Plateau.reset` call ``hook(plateau)`` from now on (once, however often registered)."""
    if hook not in _RESET_HOOKS:
        _RESET_HOOKS.append(hook)


#: keys only the ``state_dict()`` of torch's ``ReduceLROnPlateau`` holds
_TORCH_PLATEAU_KEYS = frozenset({"mode_worse", "min_lrs", "_last_lr", "best", "num_bad_epochs"})


def is_torch_plateau_state(state: object) -> bool:
    """Whether ``state`` is the ``state_dict()`` of ``torch.optim.lr_scheduler.ReduceLROnPlateau``."""
    return isinstance(state, dict) and set(state) >= _TORCH_PLATEAU_KEYS


def newer_format(fmt: object, ours: str) -> bool:
    """Whether ``fmt`` names a later version of the format ``ours`` (``"lrkit.guard/3"`` for
    ``"lrkit.guard/2"``): a state or config written by a newer lrkit."""
    name, _, version = ours.rpartition("/")
    if not isinstance(fmt, str) or not fmt.startswith(name + "/"):
        return False
    theirs = fmt[len(name) + 1 :]
    return theirs.isascii() and theirs.isdigit() and int(theirs) > int(version)


def json_number(x: float, absent: float | None = None) -> float | str | None:
    """``x`` as strict JSON holds it (``json.dumps(..., allow_nan=False)``, orjson, JavaScript): a finite
    number as itself; ``absent``, the value that stands for "none yet" (no best metric, no median), as
    ``None``; any other NaN or infinity (a NaN or infinite loss or metric) by its name, ``"nan"``,
    ``"inf"`` or ``"-inf"``, which ``float()`` reads back. :func:`number_from_json` inverts it."""
    if math.isfinite(x):
        return x
    if absent is not None and (x == absent or (math.isnan(x) and math.isnan(absent))):
        return None
    return str(float(x))


def number_from_json(v: object, name: str, where: str, absent: float | None = None) -> float:
    """The float of a :func:`json_number` value: a number (the ``inf``/``NaN`` floats an older lrkit
    wrote too), the name of a NaN or infinity (``"nan"``, ``"inf"``, ``"-inf"``), or ``None``, read as
    ``absent`` (which a strict JSON writer also writes for a NaN or infinite float); ``absent=None``:
    ``None`` is refused. Anything else raises ``TypeError`` naming ``name``, the value and what was
    expected."""
    if v is None and absent is not None:
        return absent
    if isinstance(v, str):
        try:
            x = float(v)
        except ValueError:
            x = 0.0
        if not math.isfinite(x):
            return x
    elif isinstance(v, numbers.Real) and not isinstance(v, bool):  # numpy's scalars too
        return float(v)
    null = "" if absent is None else ", None"
    raise TypeError(
        f"{where}{name} must be a number{null} or the name of a NaN or infinity ('nan', 'inf', '-inf'), "
        f"got {type(v).__name__} {v!r}"
    )


def warmup_steps(schedule: Schedule) -> float:
    """The steps of the ``warmup(...)`` a resolved schedule starts with (0: none): a chain's first piece,
    either factor of a product (``multistep(...) * warmup(5ep)``, as ``resnet_imagenet``), what a scale
    or a clamp wraps. Where :class:`Plateau`'s ``start="warmup"`` starts counting."""
    from ..schedules.compose import Chain, Clamp, Product, Scale
    from ..schedules.warmup import Warmup

    if isinstance(schedule, Chain):
        return warmup_steps(schedule.pieces[0]) if schedule.pieces else 0.0
    if isinstance(schedule, Product):
        return max(warmup_steps(schedule.a), warmup_steps(schedule.b))
    if isinstance(schedule, (Scale, Clamp)):
        return warmup_steps(schedule.schedule)
    return float(schedule.length_steps or 0.0) if isinstance(schedule, Warmup) else 0.0


class MissingStateKeys(KeyError, ValueError):
    """A state without the keys of one: a ``KeyError`` (as torch's own schedulers raise) that is also the
    ``ValueError`` that loading a corrupt state promises; its message unquoted."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Plateau:
    """Reduce-on-plateau: cut the learning rate by ``factor`` when a metric stops improving.

    Args:
        mode: ``"min"`` (a lower metric is better, e.g. a loss) or ``"max"`` (e.g. an accuracy).
        factor: the cut, ``0 <= factor < 1``: ``lr <- lr * factor``.
        patience: how many bad epochs in a row are tolerated; the cut comes on bad epoch ``patience + 1``.
        threshold: how much better than the best a metric must be to count as an improvement
            (``< 1`` when relative).
        threshold_mode: ``"rel"`` (``best -/+ threshold * |best|``) or ``"abs"`` (``best -/+
            threshold``).
        cooldown: how many metrics after a cut are not counted as bad.
        min_lr: the floor of the cuts, one float or one per parameter group.
        eps: a cut that changes the LR by ``eps`` or less is not made.
        start: from when metrics count, read by ``lrkit.torch``'s scheduler. ``"warmup"`` (the default):
            metrics reported while the schedule warms up (before the end of the ``warmup(...)`` piece it
            starts with; a schedule without one: from step 0) are not given to the plateau, so they
            neither cut nor set the best; an integer ``k >= 0``: metrics reported before scheduler step
            ``k`` are not given (``start=0``: every metric counts, as with torch's ``ReduceLROnPlateau``).

    An adapter gives each metric through :meth:`offer`, which applies ``start`` and counts the metrics
    it holds back in :attr:`skipped`. :attr:`num_reductions` counts the cuts made: each :meth:`step`
    that returned True, less those that moved no LR (:meth:`cut_skipped`; a state saved by an earlier
    lrkit may count those too, and loads as it is). The state (``best``, ``num_bad_epochs``,
    ``cooldown_counter``, ``last_epoch``, ``num_reductions``, and ``mode``, which gives ``best`` its
    meaning) is plain data, strict JSON, saved by :meth:`state_dict`.
    """

    def __init__(
        self,
        mode: PlateauMode = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: ThresholdMode = "rel",
        cooldown: int = 0,
        min_lr: float | Sequence[float] = 0.0,
        eps: float = 1e-8,
        start: int | str = "warmup",
    ) -> None:
        if mode not in _MODES:
            raise ValueError(f"Plateau: mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in _THRESHOLD_MODES:
            raise ValueError(f"Plateau: threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        self.mode = mode
        self.threshold_mode = threshold_mode
        self.factor = _number("factor", factor, low=0.0, high=1.0, high_open=True)
        self.patience = _count("patience", patience)
        self.threshold = _number(
            "threshold", threshold, low=0.0, high=1.0 if threshold_mode == "rel" else None, high_open=True
        )
        self.cooldown = _count("cooldown", cooldown)
        self.eps = _number("eps", eps, low=0.0)
        self.start: int | str = start if start == "warmup" else _start(start)
        self.min_lr: float | tuple[float, ...]
        if as_real(min_lr) is not None:
            self.min_lr = _number("min_lr", min_lr, low=0.0)
        elif isinstance(min_lr, Sequence) and not isinstance(min_lr, str):
            self.min_lr = tuple(_number(f"min_lr[{i}]", v, low=0.0) for i, v in enumerate(min_lr))
            if not self.min_lr:
                raise ValueError("Plateau: min_lr must be a number or a non-empty list of numbers, got []")
        else:
            raise TypeError(f"Plateau: min_lr must be a number or a list of numbers, got {min_lr!r}")
        self.reset()

    # -- state ------------------------------------------------------------------------------------
    @property
    def mode_worse(self) -> float:
        """The worst possible metric: ``inf`` for mode min, ``-inf`` for max."""
        return math.inf if self.mode == "min" else -math.inf

    def reset(self) -> None:
        """Forget the history: no best yet, no bad epochs, no cooldown, no reductions. The cuts those
        reductions made go too: the ``lrkit.torch`` scheduler this plateau was given to drops its
        ``plateau_cuts`` and writes the LRs without them at once."""
        self.best = self.mode_worse
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.last_epoch = 0
        self.num_reductions = 0
        #: the metrics :meth:`offer` held back, reported before ``start`` (not saved in the state)
        self.skipped = 0
        for hook in _RESET_HOOKS:
            hook(self)

    def counts(self, at: float, warmup: float) -> bool:
        """Whether a metric reported after ``at`` steps is given to the plateau: from the end of the
        ``warmup`` steps the schedule starts with (``start="warmup"``; ``warmup`` in the unit of ``at``,
        :func:`warmup_steps`), or from step ``start``."""
        start = getattr(self, "start", 0)  # a plateau pickled by an older lrkit counts every metric
        return not (at < warmup if start == "warmup" else at < start)

    def offer(self, metric: SupportsFloat, at: float, warmup: float = 0.0) -> bool:
        """:meth:`step` for a metric reported after ``at`` steps, when it :meth:`counts`; one before
        ``start`` is held back (counted in :attr:`skipped`) and returns False."""
        if not self.counts(at, warmup):
            self.skipped = getattr(self, "skipped", 0) + 1
            return False
        return self.step(metric)

    @property
    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def is_better(self, a: float, best: float) -> bool:
        """Whether metric ``a`` improves on ``best`` by more than the threshold: ``a < best - margin``
        (mode min) or ``a > best + margin`` (max), ``margin`` = ``threshold * |best|`` (rel) or
        ``threshold`` (abs).

        The relative bound is computed as ``best * (1 -/+ threshold)``, the sign chosen by that of
        ``best`` (torch's float when ``best >= 0``; defined for ``best = +-inf``, where ``inf - threshold
        * inf`` would be NaN).
        """
        t = self.threshold
        if self.mode == "min":
            if self.threshold_mode == "abs":
                return a < best - t
            return a < best * (1.0 - t if best >= 0.0 else 1.0 + t)
        if self.threshold_mode == "abs":
            return a > best + t
        return a > best * (1.0 + t if best >= 0.0 else 1.0 - t)

    def step(self, metric: SupportsFloat) -> bool:
        """Take one metric (a number or a one-element tensor/array); return True when the LR should be
        cut now. NaN is never better than the best, so it counts as a bad epoch (as in torch)."""
        detach = getattr(metric, "detach", None)  # a tensor that requires grad: no warning
        current = as_measured(detach() if callable(detach) else metric)  # lrkit._checks' rule
        if current is None:
            raise TypeError(
                f"Plateau.step: metric must be a number or a one-element array or tensor, got "
                f"{type(metric).__name__} {metric!r}"
            )
        self.last_epoch += 1
        if self.is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
            self.num_reductions += 1
            return True
        return False

    def cut_skipped(self) -> None:
        """Say that the cut :meth:`step` just asked for moved no learning rate (:meth:`reduce` left every
        group's as it was: at ``min_lr``, or within ``eps``): it leaves :attr:`num_reductions`, which
        counts the cuts made. ``lrkit.torch``'s scheduler and ``lrkit.keras.ReduceOnPlateau`` call it;
        with a bare Plateau, call it when ``reduce`` returned your LR unchanged."""
        self.num_reductions = max(self.num_reductions - 1, 0)

    # -- applying a cut ---------------------------------------------------------------------------
    def floor(self, group: int = 0) -> float:
        """``min_lr`` for parameter group ``group``."""
        if isinstance(self.min_lr, tuple):
            if not 0 <= group < len(self.min_lr):
                raise ValueError(
                    f"Plateau: min_lr holds {len(self.min_lr)} values, one per parameter group; "
                    f"there is no group {group}"
                )
            return self.min_lr[group]
        return self.min_lr

    def reduce(self, lr: float, group: int = 0) -> float:
        """The LR after a cut: ``max(lr * factor, min_lr)``, or ``lr`` when that moves it ``eps`` or less."""
        new = max(lr * self.factor, self.floor(group))
        return new if lr - new > self.eps else lr

    # -- checkpoints ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The counters, the best metric and the ``mode`` it was measured in, strict JSON: ``best`` is
        ``None`` before any metric has been the best (the mode's worst, :attr:`mode_worse`), and an
        infinite metric that became the best is ``"inf"`` or ``"-inf"`` (:func:`json_number`). The
        ``"format"`` (``"lrkit.plateau/2"``) lets a later lrkit's state be refused as one."""
        return {
            "format": _STATE_FORMAT,
            "mode": self.mode,
            "best": json_number(self.best, absent=self.mode_worse),
            "num_bad_epochs": self.num_bad_epochs,
            "cooldown_counter": self.cooldown_counter,
            "last_epoch": self.last_epoch,
            "num_reductions": self.num_reductions,
        }

    def check_state(self, state: object) -> dict[str, Any]:
        """Check a :meth:`state_dict` without loading it; return the values it would load.

        ``format`` is ``"lrkit.plateau/2"`` or absent (an older lrkit's state; a later format says it was
        written by a newer lrkit), ``best`` is a number, ``None`` (no best yet: the worst of the state's
        ``mode``) or ``"inf"`` / ``"-inf"`` (states of an older lrkit hold ``+-inf`` floats; never NaN),
        the counters are integers
        ``>= 0``, ``mode`` (optional: states saved before it was kept have none) is ``"min"`` or
        ``"max"``; anything else raises ``TypeError``/``ValueError`` naming the key and the value (missing
        keys: :class:`MissingStateKeys`, both a ``KeyError`` and a ``ValueError``). Whether ``mode`` is
        this plateau's is checked by :meth:`load_state_dict`.
        """
        if not isinstance(state, dict):
            raise TypeError(f"Plateau.load_state_dict: state must be a dict, got {type(state).__name__}")
        if is_torch_plateau_state(state):
            raise ValueError(
                "Plateau.load_state_dict: this is the state_dict() of torch's ReduceLROnPlateau; its cuts "
                f"(_last_lr={state['_last_lr']!r}) have no place in a Plateau, which keeps no learning "
                "rate. Load it into the lrkit.torch scheduler built with this plateau, "
                "scheduler.load_state_dict(torch_state): it takes the best metric, the counters and the "
                "cuts (_last_lr over the scheduler's LR without cuts, per group)"
            )
        fmt = state.get("format", None)
        if newer_format(fmt, _STATE_FORMAT):
            raise ValueError(
                f"Plateau.load_state_dict: the state was written by a newer lrkit (format {fmt!r}; this "
                f"lrkit reads {_STATE_FORMAT!r} and older states): load it with that lrkit, or upgrade "
                "this one"
            )
        if fmt is not None and fmt != _STATE_FORMAT:
            raise ValueError(
                f"Plateau.load_state_dict: format must be {_STATE_FORMAT!r} (or absent: an older lrkit's "
                f"state), got {type(fmt).__name__} {fmt!r}"
            )
        missing = {"best", "num_bad_epochs", "cooldown_counter", "last_epoch"} - set(state)
        if missing:
            raise MissingStateKeys(
                f"Plateau.load_state_dict: state is missing {sorted(missing)}; "
                f"got keys {sorted(map(str, state))}"
            )
        mode = state.get("mode", None)
        if mode is not None and mode not in _MODES:
            raise ValueError(f"Plateau.load_state_dict: mode must be 'min' or 'max', got {mode!r}")
        worst = math.inf if (mode or self.mode) == "min" else -math.inf
        best = number_from_json(state["best"], "best", "Plateau.load_state_dict: ", absent=worst)
        if math.isnan(best):
            raise ValueError(
                f"Plateau.load_state_dict: best must be a number or +-inf, not NaN, got {state['best']!r}"
            )
        out: dict[str, Any] = {"best": best}
        for key in ("num_bad_epochs", "cooldown_counter", "last_epoch", "num_reductions"):
            out[key] = check_int(state.get(key, 0), key, 0, where="Plateau.load_state_dict: ")
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned; a corrupt state raises (see :meth:`check_state`) and
        changes nothing.

        The configuration stays as constructed (torch's ``load_state_dict`` instead puts the saved
        ``patience``, ``factor``... back over the ones you passed): the counters go on under the new
        settings. A state saved in the other ``mode`` raises ``ValueError``: its ``best`` is a maximum
        where a minimum is wanted, or the reverse.
        """
        values = self.check_state(state)
        saved_mode = state.get("mode", self.mode)
        if saved_mode != self.mode:
            raise ValueError(
                f"Plateau.load_state_dict: the state was saved with mode={saved_mode!r} "
                f"(best={values['best']!r}) but this plateau has mode={self.mode!r}; build it with "
                f"mode={saved_mode!r} to resume"
            )
        self.best = values["best"]
        self.num_bad_epochs = values["num_bad_epochs"]
        self.cooldown_counter = values["cooldown_counter"]
        self.last_epoch = values["last_epoch"]
        self.num_reductions = values["num_reductions"]

    def __repr__(self) -> str:
        return (
            f"Plateau(mode={self.mode!r}, factor={self.factor!r}, patience={self.patience!r}, "
            f"threshold={self.threshold!r}, threshold_mode={self.threshold_mode!r}, "
            f"cooldown={self.cooldown!r}, min_lr={self.min_lr!r}, eps={self.eps!r}, start={self.start!r})"
        )
