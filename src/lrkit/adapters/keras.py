"""Keras 3 adapter: an lrkit schedule as a ``keras.optimizers.schedules.LearningRateSchedule``, and a
reduce-on-plateau callback that works *with* a schedule.

::

    import keras, lrkit
    sched = lrkit.keras.schedule("warmup(100) >> cosine(lr=1e-3, min_lr=1e-5)", total_steps=5_000)
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=sched), loss="mse")
    model.fit(x, y, epochs=10, validation_split=0.1,
              callbacks=[lrkit.keras.ReduceOnPlateau(monitor="val_loss", factor=0.5, patience=2)])
    model.save("m.keras"); keras.models.load_model("m.keras")   # the schedule comes back

The optimizer calls the schedule with its iteration counter; :class:`KerasSchedule` evaluates the
closed form on the backend's tensor through ``array_api_compat`` (the torch, jax and numpy backends;
the tensorflow backend is not supported) and multiplies it by a non-trainable Keras variable, the
*multiplier*, that controllers change. At step ``t`` the learning rate is

    ``lr(t) = max(s(t) * multiplier, min(s(t), floor))``

(``floor`` = the plateau's ``min_lr``, 0 by default): cuts never take the LR below ``min_lr`` and
never raise it above the schedule. Keras' own ``ReduceLROnPlateau`` refuses schedules (it assigns a
float to ``optimizer.learning_rate``, which raises ``TypeError`` for a schedule); :class:`ReduceOnPlateau`
multiplies the schedule instead, with the rules of torch's ``ReduceLROnPlateau``
(:class:`lrkit.control.Plateau`).

The schedule serialises as its lrkit spec dict (``get_config()["schedule"]``), already resolved to
steps, with the current multiplier and floor, so ``model.save`` / ``keras.models.load_model`` restore
the learning rate exactly (the optimizer's iteration counter is saved with the optimizer's variables).
In a new process, ``import lrkit.keras`` before ``load_model``: importing this module registers the
class with Keras (``import lrkit`` alone imports no Keras), or Keras "could not locate" it. Weights
alone (``save_weights`` / ``load_weights``, ``ModelCheckpoint(save_weights_only=True)``,
``BackupAndRestore``) restore the step count but not the cuts nor the plateau's state, which live in the
config: the optimizer does not own the schedule's variables, and Keras saves only the variables it owns.
Under ``mixed_float16``, set the policy before ``load_model``: a model loaded under another policy gets
an optimizer whose variables Keras does not load (step 0), and the callback warns.

The cuts and the plateau state belong to the run of the optimizer that calls the schedule. A schedule
built once and given to the optimizer of each new model (folds, trials: Keras' own schedules hold no
state, so this is the Keras idiom) starts each new optimizer afresh, at the multiplier it was made with
(:meth:`KerasSchedule.reset`), at a fit boundary: a new optimizer's first training step, or
:class:`ReduceOnPlateau` starting a ``fit``. Reading an LR is none (another model's
``optimizer.learning_rate`` read while one trains leaves its cuts alone); a loaded model's schedule,
rebuilt from its config, keeps its state, and so does the same model's next ``fit``.

Steps are the optimizer's batch counter: with ``gradient_accumulation_steps=k`` Keras calls the
schedule with the number of batches (``optimizer._iterations``), not of updates
(``optimizer.iterations``), as it does its own schedules. Under ``mixed_float16`` the callback cuts the
schedule of the ``LossScaleOptimizer``'s inner optimizer. The jax backend traces the train step once,
with the multiplier and floor as constants: :class:`ReduceOnPlateau` rebuilds it when they change;
set by hand after a ``fit``, they warn and take effect after ``model.make_train_function(force=True)``
(a train step you ``jax.jit`` yourself: after jitting it again).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import warnings
import weakref
from dataclasses import dataclass
from typing import Any, Literal, SupportsFloat, overload

try:
    import keras
except ModuleNotFoundError as _exc:  # keras 3 picks TensorFlow unless told otherwise
    if _exc.name != "tensorflow":
        raise
    raise ModuleNotFoundError(
        "keras is set to its default backend, TensorFlow, which is not installed: set KERAS_BACKEND=torch "
        "(or jax) in the environment before keras is first imported, or install tensorflow",
        name="tensorflow",
    ) from _exc
import numpy as np
from array_api_compat import array_namespace

from .._checks import as_integer, as_real
from .._warnings import PastTheRunWarning  # re-exported: lrkit.keras.PastTheRunWarning
from ..control.plateau import (
    Plateau,
    ThresholdMode,
    json_number,
    newer_format,
    number_from_json,
    warmup_steps,
)
from ..schedules.base import _caller_stacklevel, warn_run_length
from ..schedules.duration import _real, _short
from ..schedules.warmup import refuse_bare_warmup
from ..spec import ScheduleLike, as_schedule
from ._host import _MISSING, deprecated, host_steps, schedule_argument

__all__ = ["Cut", "KerasSchedule", "PastTheRunWarning", "ReduceOnPlateau", "find_lr", "schedule"]


_FLOAT32_MAX = 3.4028234663852886e38
#: the version of :meth:`KerasSchedule.get_config`'s dict that this lrkit writes: ``/2`` names its
#: non-finite metrics as strings (``"inf"``, ``"nan"``), which an lrkit reading ``/1`` (a config without a
#: ``"format"`` key) misread; that lrkit refuses ``/2`` as newer. Both load here.
CONFIG_FORMAT = "lrkit.keras/2"
_READ_FORMATS = ("lrkit.keras/1", CONFIG_FORMAT)
_CONFIG_KEYS = ("schedule", "multiplier", "floor", "plateau")
_CUT_KEYS = ("epoch", "metric", "lr_before", "lr_after")


try:  # Keras 3 has no public name for it; a Variable's assign inside a stateless scope is dropped
    from keras.src.backend.common.stateless_scope import in_stateless_scope as _in_stateless_scope
except ImportError:  # pragma: no cover - another Keras layout: no scope is seen, traced steps still are

    def _in_stateless_scope() -> bool:
        return False


try:  # nor for this: an optimizer's apply (a training step) runs inside a name scope whose caller it is
    from keras.src.backend.common.global_state import get_global_attribute as _keras_global
except ImportError:  # pragma: no cover - another Keras layout: every call counts as a training step
    _keras_global = None


def _in_step_of(counter: Any) -> bool:
    """Whether the schedule is called from inside the ``apply`` (a training step, traced or not) of the
    optimizer whose step counter ``counter`` is, rather than read (``optimizer.learning_rate``, a callback
    logging it, ``schedule(optimizer.iterations)``)."""
    if _keras_global is None:  # pragma: no cover - another Keras layout
        return True
    stack = _keras_global("name_scope_stack") or []
    return any(getattr(getattr(e, "caller", None), "_iterations", None) is counter for e in stack)


if keras.backend.backend() == "jax":
    import jax

    def _traced(x: Any) -> bool:
        return isinstance(x, jax.core.Tracer)

else:

    def _traced(x: Any) -> bool:
        return False


def _positive_or_zero(where: str, v: object, *, positive: bool) -> float:
    x = _real(v)  # Python or numpy reals, finite
    if x is None:
        raise ValueError(f"{where} must be a finite number, got {_short(v)}")
    if (x <= 0) if positive else (x < 0):
        raise ValueError(f"{where} must be {'> 0' if positive else '>= 0'}, got {_short(v)}")
    if x > _FLOAT32_MAX:  # kept in a float32 variable: it would be inf
        raise ValueError(f"{where} must be at most {_FLOAT32_MAX:.7g} (a float32), got {_short(v)}")
    return x


def _backend_namespace() -> Any:
    """The array namespace of the active Keras backend's tensors (looked up once)."""
    try:
        return array_namespace(keras.ops.convert_to_tensor(0.0))
    except TypeError as exc:
        raise TypeError(
            f"lrkit.keras: the {keras.backend.backend()!r} backend's tensors are not array-API arrays; "
            "use the torch, jax or numpy backend (KERAS_BACKEND=torch)"
        ) from exc


# keras is untyped here (ignore_missing_imports): the base class is Any to the type checker
@keras.saving.register_keras_serializable(package="lrkit")
class KerasSchedule(keras.optimizers.schedules.LearningRateSchedule):  # type: ignore[misc]
    """An lrkit schedule as a Keras ``LearningRateSchedule``: ``lr(t) = max(s(t) * m, min(s(t), floor))``.

    Args:
        schedule: an lrkit :class:`~lrkit.Schedule`, a spec string or a spec dict.
        total_steps, steps_per_epoch: resolve durations given as fractions, "rest" or epochs (a Keras
            step is one batch: ``steps_per_epoch = ceil(n_train / batch_size)``, with ``n_train`` the
            samples left for training after ``validation_split``: ``int(n * (1 - validation_split))``;
            a fractional one is warned about).
        multiplier: the initial multiplier ``m`` (> 0), changed by :class:`ReduceOnPlateau`.
        floor: the LR below which cuts do not go (>= 0); the plateau's ``min_lr``.
        plateau: the :class:`ReduceOnPlateau` state saved in a config (best, counters, mode, monitor,
            and its cuts: each :class:`Cut` as a dict).

    >>> s = KerasSchedule("warmup(10, start=0) >> cosine(lr=0.1)", total_steps=110)
    >>> [round(float(s(t)), 6) for t in (0, 5, 10, 60, 110)]
    [0.0, 0.05, 0.1, 0.05, 0.0]
    """

    def __init__(
        self,
        schedule: ScheduleLike,
        total_steps: SupportsFloat | None = None,
        steps_per_epoch: SupportsFloat | None = None,
        multiplier: float = 1.0,
        floor: float = 0.0,
        plateau: dict[str, Any] | None = None,
    ) -> None:
        given = as_schedule(schedule, "schedule")
        if multiplier == 1.0:  # with a multiplier, a bare warmup is a factor of it, as it should be
            refuse_bare_warmup(given, " (multiplier=1)", "; or pass multiplier=YOUR_LR to scale it")
        s = given.resolve(total_steps=total_steps, steps_per_epoch=steps_per_epoch)
        if s.unresolved:
            raise ValueError(
                f"schedule ({s}) cannot be evaluated: {s.unresolved}. Pass total_steps=... and/or "
                "steps_per_epoch=... (Keras steps are batches)"
            )
        if total_steps is not None:
            warn_run_length(s, float(total_steps), shown=repr(str(given)), where="lrkit.keras.schedule")
        # a Keras step is one batch, the last of an epoch partial: a count that is not whole ends early
        spe, total = _real(steps_per_epoch), _real(total_steps)
        if spe is not None and not spe.is_integer():  # 0-d integer arrays are whole; resolve refused the rest
            warnings.warn(
                f"lrkit.keras.schedule: steps_per_epoch={steps_per_epoch!r} is not a whole number; a Keras "
                f"step is one batch, and an epoch runs ceil({steps_per_epoch!r}) = {math.ceil(spe)} of them "
                "(the last one partial), so durations in epochs would end early: pass "
                f"steps_per_epoch=math.ceil(n_train / batch_size) ({math.ceil(spe)} here)",
                UserWarning,
                stacklevel=_caller_stacklevel() or 2,
            )
        if total is not None and not total.is_integer():
            warnings.warn(
                f"lrkit.keras.schedule: total_steps={total_steps!r} is not a whole number; a Keras step is "
                "one batch and every epoch runs ceil(n_train / batch_size) of them (the last one partial), "
                "so durations in fractions of the run would end early: pass "
                "total_steps=epochs * math.ceil(n_train / batch_size)",
                UserWarning,
                stacklevel=_caller_stacklevel() or 2,
            )
        self.schedule = s
        self._xp = _backend_namespace()
        m = _positive_or_zero("multiplier", multiplier, positive=True)
        f = _positive_or_zero("floor", floor, positive=False)
        #: the multiplier ``m`` and the floor, as non-trainable variables read at every evaluation
        self.multiplier_variable = keras.Variable(
            m, dtype="float32", trainable=False, name="lrkit_multiplier"
        )
        self.floor_variable = keras.Variable(f, dtype="float32", trainable=False, name="lrkit_floor")
        #: the multiplier and floor this schedule was made with (or loaded with): a new optimizer starts here
        self._initial = (float(np.float32(m)), float(np.float32(f)))  # as the float32 variables hold them
        #: the step counters (``keras.Variable``) of the optimizers that have called this schedule, as weak
        #: references; the last one's run is the one the multiplier, floor and plateau state belong to
        self._counters: list[weakref.ref[Any]] = []
        self._warned_traced_reuse = False
        #: jax backend: the (multiplier, floor) the last traced train step holds as constants, or None
        self._traced_with: tuple[float, float] | None = None
        #: the :class:`ReduceOnPlateau` callback's state (best metric, counters), kept here so that it is
        #: saved with the model and a resumed ``fit`` cuts exactly when an uninterrupted one would
        self.plateau_state: dict[str, Any] | None = None
        if plateau is not None:
            if not isinstance(plateau, dict):
                raise TypeError(f"plateau must be a ReduceOnPlateau state dict, got {type(plateau).__name__}")
            no_best = plateau.get("best", 0.0) is None  # no metric yet (JSON has no infinity)
            try:
                state = Plateau().check_state({**plateau, "best": math.inf} if no_best else plateau)
            except KeyError as exc:  # keys missing: a corrupt config is a ValueError, as a bad value is
                raise ValueError(f"plateau: {exc.args[0] if exc.args else exc}") from None
            monitor = plateau.get("monitor")
            if monitor is not None and not isinstance(monitor, str):
                raise ValueError(f"plateau: monitor must be a log key (a str), got {_short(monitor)}")
            # what the best was measured on (older configs have neither): kept, so that a callback
            # watching another metric, or in the other mode, does not take this best for its own; and
            # the state's format, as written
            seen = {k: plateau[k] for k in ("format", "mode", "monitor") if plateau.get(k) is not None}
            if plateau.get("cuts") is not None:  # configs written before the cuts were kept have none
                seen["cuts"] = [_cut_state(c) for c in _cut_list(plateau["cuts"])]
            self.plateau_state = {**state, **seen, "best": None if no_best else state["best"]}

    # -- evaluation -------------------------------------------------------------------------------
    def __call__(self, step: Any) -> Any:
        """The learning rate at ``step`` (the optimizer's iteration counter), a float32 backend tensor.

        A step from the host (a Python or numpy number or array) is checked as ``lrkit.optax``'s count
        is: a bool is a TypeError, a NaN or infinite step a ValueError, an int is held to +-2**53; a
        tensor of bools or complex numbers is a TypeError."""
        m, f = self.multiplier_variable.value, self.floor_variable.value
        if isinstance(step, keras.Variable):  # an optimizer's step counter: whose run is this?
            if _in_step_of(step):
                self._meet(step)  # a training step: a new optimizer starts its run afresh
            elif self._starts_afresh(step):
                m = self._initial[0]  # read: the LR it will start with; the run that trains keeps its own
        if isinstance(step, (int, float, np.generic, np.ndarray, list, tuple)):  # from the host
            step = host_steps(step, "step", "a tensor")
            # evaluated on the host in float64 (exact at any step: a float32 step past 2**24 is one or two
            # steps off, a restart or a cycle with it)
            lr = np.asarray(self.schedule(np.asarray(step, dtype=np.float64)), dtype=np.float32)
            base = keras.ops.convert_to_tensor(lr)
            return keras.ops.maximum(base * m, keras.ops.minimum(base, f))
        # a tensor or a Keras variable (the optimizer's counter): its dtype is known, even traced
        dtype = getattr(step, "dtype", None)
        kind = None if dtype is None else keras.backend.standardize_dtype(dtype)
        if kind is None or not kind.startswith(("int", "uint", "float", "bfloat")):
            raise TypeError(
                f"step: expected an int, a float or a tensor of integer or real floating steps, got "
                f"{type(step).__name__} {_short(step) if kind is None else f'of dtype {kind}'}"
            )
        # an integer step stays one: periodic schedules reduce it exactly (a float32 step past 2**24 is not)
        t = keras.ops.convert_to_tensor(step)
        t = t if keras.backend.standardize_dtype(t.dtype).startswith("int") else keras.ops.cast(t, "float32")
        if _traced(t) and not _traced(m):  # jax traces the train step once: m and f become constants
            self._traced_with = (self.multiplier, self.floor)
        base = self.schedule(t, xp=self._xp)
        return keras.ops.maximum(base * m, keras.ops.minimum(base, f))

    # -- the optimizer it belongs to --------------------------------------------------------------------
    def _owner(self) -> Any:
        """The step counter of the optimizer whose run the cuts belong to (None before any)."""
        return self._counters[-1]() if self._counters else None

    def _starts_afresh(self, counter: Any) -> bool:
        """Whether the optimizer of ``counter`` would start a new run: it is not one of the run's, and the
        run (another optimizer's, alive or not) carries cuts or a plateau state."""
        if any(r() is counter for r in self._counters):
            return False
        return bool(self._counters) and self._carries_state()

    def _meet(self, counter: Any) -> None:
        """Called at a fit boundary: an optimizer's training step (from inside its ``apply``) or
        :class:`ReduceOnPlateau`'s ``on_train_begin``, with the optimizer's step counter. A schedule is a
        Keras optimizer's argument, and Keras' schedules hold no state, so one is often built once and
        given to the optimizer of each new model (folds, trials): the cuts and the plateau state of the
        last optimizer's run must not go on in the next one. A counter not seen before, after another
        one, is a new optimizer: the multiplier goes back to the one the schedule was made (or loaded)
        with and the plateau state is dropped (the floor, a callback's setting, stays). The first counter
        a schedule meets is adopted with its state (a loaded model: ``load_model`` rebuilds the schedule
        from its config); one met before changes nothing. Reading an LR is no boundary: it changes
        nothing (a new optimizer's reads show the LR it will start with). Inside a traced step (jax) the
        variables cannot be reset: a schedule that carries another optimizer's cuts warns there, once."""
        if any(r() is counter for r in self._counters):
            return  # one of the run's optimizers: the path of every step
        if self._starts_afresh(counter):
            if _traced(keras.ops.convert_to_tensor(counter)) or _in_stateless_scope():
                self._warn_traced_reuse()
            else:
                self._forget_run()
        self._counters = [r for r in self._counters if r() is not None] + [weakref.ref(counter)]

    def _carries_state(self) -> bool:
        """Whether a run's cuts or plateau state are held (the floor is a setting, a callback's
        ``min_lr``, not a run's: two optimizers of one model, a GAN's, share the schedule and its floor)."""
        return self.plateau_state is not None or self.multiplier != self._initial[0]

    def reset(self) -> None:
        """Forget the run so far: the multiplier and the floor the schedule was made (or loaded) with,
        and no plateau state. When an optimizer other than the last one calls it, it forgets the run
        by itself but keeps the floor (a callback's ``min_lr``, set before the optimizers' first calls)."""
        self._set(floor=self._initial[1])
        self._forget_run()

    def _forget_run(self) -> None:
        self._set(multiplier=self._initial[0])
        self.plateau_state = None
        self._traced_with = None  # the new optimizer's step has not been traced

    def _warn_traced_reuse(self) -> None:
        if self._warned_traced_reuse:
            return
        self._warned_traced_reuse = True
        warnings.warn(
            f"lrkit.keras: this schedule ({self!r}) carries the cuts of another optimizer's run, and a new "
            "optimizer first called it inside a traced train step (jax), where they cannot be undone: this "
            "run starts from them. Build the schedule for each model (lrkit.keras.schedule(...) inside the "
            "loop), call schedule.reset() before fit, or pass lrkit.keras.ReduceOnPlateau(...) to fit, "
            "which resets it at the start of the fit",
            RuntimeWarning,
            stacklevel=2,
        )

    # -- the controller's handles -----------------------------------------------------------------
    @property
    def multiplier(self) -> float:
        """The product of the cuts so far (1.0 when none)."""
        return float(keras.ops.convert_to_numpy(self.multiplier_variable.value))

    @multiplier.setter
    def multiplier(self, value: float) -> None:
        self._set(multiplier=value)
        self._warn_if_stale("multiplier")

    def scale(self, factor: float) -> None:
        """Multiply :attr:`multiplier` by ``factor`` (> 0)."""
        f = _positive_or_zero("scale: factor", factor, positive=True)
        self.multiplier = self.multiplier * f

    @property
    def floor(self) -> float:
        """The LR below which cuts do not go."""
        return float(keras.ops.convert_to_numpy(self.floor_variable.value))

    @floor.setter
    def floor(self, value: float) -> None:
        self._set(floor=value)
        self._warn_if_stale("floor")

    def _set(self, multiplier: float | None = None, floor: float | None = None) -> None:
        if multiplier is not None:
            self.multiplier_variable.assign(_positive_or_zero("multiplier", multiplier, positive=True))
        if floor is not None:
            self.floor_variable.assign(_positive_or_zero("floor", floor, positive=False))

    def _stale(self) -> bool:
        """True when a traced train step (jax backend) holds another multiplier or floor than now."""
        return self._traced_with is not None and self._traced_with != (self.multiplier, self.floor)

    def _warn_if_stale(self, name: str) -> None:
        if self._stale():
            assert self._traced_with is not None
            m, f = self._traced_with
            warnings.warn(
                f"lrkit.keras: {name} changed after the jax backend traced the train step with "
                f"multiplier={m:g}, floor={f:g} as constants; the new value is used once the step is "
                "traced again: call model.make_train_function(force=True) (or model.compile) before the "
                "next fit; a train step you jit yourself (around optimizer.stateless_apply) holds them too: "
                "jit it again (a new jax.jit of your step function). ReduceOnPlateau does this itself for "
                "model.fit.",
                RuntimeWarning,
                stacklevel=3,
            )

    # -- serialisation ----------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """``{"schedule": spec dict (resolved to steps), "multiplier": m, "floor": f, "plateau": state}``
        (``plateau``: the :class:`ReduceOnPlateau` state with its ``mode``, ``monitor`` and ``cuts``,
        ``None`` before its first epoch; an infinite best metric is written as ``None`` and a cut's NaN
        or infinite metric as ``"nan"``/``"inf"``, JSON has neither)."""
        plateau = None
        if self.plateau_state is not None:
            plateau = dict(self.plateau_state)
            best = plateau["best"]  # a Plateau's state names an infinite best already ("-inf")
            if isinstance(best, (int, float)) and not math.isfinite(best):
                # the mode's worst is "no best yet" (None); the other infinity a best measured ("-inf"
                # in mode min), by its name: it must survive every save and load, not only the first
                worst = {"min": math.inf, "max": -math.inf}.get(str(plateau.get("mode")))
                plateau["best"] = None if worst is None else json_number(best, absent=worst)
            if "cuts" in plateau:
                plateau["cuts"] = [_cut_json(c) for c in plateau["cuts"]]
        return {
            "format": CONFIG_FORMAT,
            "schedule": self.schedule.to_dict(),
            "multiplier": self.multiplier,
            "floor": self.floor,
            "plateau": plateau,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> KerasSchedule:
        """The schedule of :meth:`get_config`'s dict. A key this lrkit does not know is a ``ValueError``
        naming it; so is a ``"format"`` this lrkit does not read (``"lrkit.keras/1"``, the same as none,
        or :data:`CONFIG_FORMAT`; a later version was written by a newer lrkit)."""
        if not isinstance(config, dict):
            raise TypeError(
                f"KerasSchedule.from_config: config must be a dict from get_config(), got "
                f"{type(config).__name__} {_short(config)}"
            )
        fmt = config.get("format", _READ_FORMATS[0])
        if fmt not in _READ_FORMATS:
            newer = newer_format(fmt, CONFIG_FORMAT)
            known = " or ".join(map(repr, _READ_FORMATS))
            raise ValueError(
                f"KerasSchedule.from_config: the config was written by a newer lrkit (format {fmt!r}; this "
                f"lrkit reads {known}): load it with that lrkit, or upgrade this one"
                if newer
                else f"KerasSchedule.from_config: format must be {known} (or absent), got {fmt!r}"
            )
        unknown = sorted(set(config) - {"format", *_CONFIG_KEYS}, key=str)
        if unknown:
            raise ValueError(
                f"KerasSchedule.from_config: unknown key(s) {unknown} in the config; this lrkit writes and "
                f"reads {list(_CONFIG_KEYS)} (a config with more keys was written by another, newer lrkit, "
                "or edited by hand)"
            )
        return cls(**{k: v for k, v in config.items() if k != "format"})

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle and ``copy.deepcopy`` through :meth:`get_config` (the backend's array namespace, a
        module, and the Keras variables are built afresh): the copy evaluates to the same LRs, with its
        own multiplier and floor."""
        return (type(self).from_config, (self.get_config(),))

    def __repr__(self) -> str:
        return f"KerasSchedule({str(self.schedule)!r}, multiplier={self.multiplier:g}, floor={self.floor:g})"


#: ``lrkit.torch.scheduler``'s keywords that ``schedule`` does not take, with what to do in Keras
_TORCH_ONLY = {
    "relative": "a Keras optimizer has one learning rate: write it in the schedule (cosine(lr=1e-3)), "
    "or scale a relative one with lrkit.keras.KerasSchedule(spec, multiplier=LR)",
    "plateau": "pass the callback lrkit.keras.ReduceOnPlateau(monitor='val_loss', ...) to "
    "model.fit(callbacks=[...]); it cuts this schedule",
    "in_graph": "Keras already evaluates the schedule inside its train step: leave it out",
    "fuse": "Keras already evaluates the schedule inside its train step: leave it out",
    "follow_optimizer": "the step is the optimizer's own batch counter: leave it out",
    "epochs": "pass total_steps=epochs * steps_per_epoch",
    "interval": "Keras calls the schedule at every batch: give lengths in epochs ('30ep') with "
    "steps_per_epoch=...",
    "hparams": "Keras optimizers take a schedule for learning_rate only",
}


@overload
def schedule(
    schedule: ScheduleLike,
    total_steps: SupportsFloat | None = None,
    steps_per_epoch: SupportsFloat | None = None,
) -> KerasSchedule: ...


@overload
@deprecated("lrkit.keras.schedule: s= is now schedule=")
def schedule(
    *, s: ScheduleLike, total_steps: SupportsFloat | None = None, steps_per_epoch: SupportsFloat | None = None
) -> KerasSchedule: ...


def schedule(
    schedule: ScheduleLike = _MISSING,
    total_steps: SupportsFloat | None = None,
    steps_per_epoch: SupportsFloat | None = None,
    **unexpected: Any,
) -> KerasSchedule:
    """``schedule`` as a Keras ``LearningRateSchedule`` (see :class:`KerasSchedule`); ``lrkit.torch``'s
    other keywords (``relative``, ``plateau``, ``in_graph``...) are a TypeError that says what to use
    here, another unknown keyword a TypeError that names it. The keyword ``s=`` (this parameter's old
    name) still works, with a DeprecationWarning."""
    given = schedule_argument("lrkit.keras.schedule", schedule, unexpected, "s", _TORCH_ONLY, _TAKES)
    return KerasSchedule(given, total_steps=total_steps, steps_per_epoch=steps_per_epoch)


#: the keywords ``schedule`` takes
_TAKES = ("schedule", "total_steps", "steps_per_epoch")


@dataclass(frozen=True)
class Cut:
    """One reduction made by :class:`ReduceOnPlateau`."""

    epoch: int
    metric: float
    lr_before: float
    lr_after: float


def _cut_list(cuts: object) -> list[Any]:
    if not isinstance(cuts, (list, tuple)):
        raise ValueError(f"plateau: cuts must be a list of cuts, got {_short(cuts)}")
    return list(cuts)


def _cut_json(cut: dict[str, Any]) -> dict[str, Any]:
    """A cut's plain data as strict JSON: a NaN or infinite metric by its name, ``"nan"``, ``"inf"`` or
    ``"-inf"`` (:func:`~lrkit.control.plateau.json_number`; the LRs are finite)."""
    return {**cut, "metric": json_number(cut["metric"])}


def _cut_state(data: object) -> dict[str, Any]:
    """A :class:`Cut` as plain data (``dataclasses.asdict``), checked (``ValueError`` naming the key);
    a metric may be NaN or infinite, written as ``"nan"``, ``"inf"`` or ``"-inf"`` (:func:`_cut_json`),
    or as a float (states written before they were strict JSON)."""
    if not isinstance(data, dict) or set(data) != set(_CUT_KEYS):
        raise ValueError(f"plateau: a cut must be a dict of {list(_CUT_KEYS)}, got {_short(data)}")
    epoch = as_integer(data["epoch"])  # numpy's and 0-d tensors too (lrkit._checks)
    if epoch is None or epoch < 0:
        raise ValueError(f"plateau: a cut's epoch must be an integer >= 0, got {_short(data['epoch'])}")
    out: dict[str, Any] = {"epoch": epoch}
    for key in ("metric", "lr_before", "lr_after"):
        v = data[key]
        if key == "metric" and isinstance(v, str):
            try:
                x: float | None = number_from_json(v, "a cut's metric", "plateau: ")
            except TypeError as exc:
                raise ValueError(str(exc)) from None
        elif key == "metric":
            x = as_real(v)  # NaN and infinities too
        else:
            x = _real(v)  # a finite number
        if x is None:
            raise ValueError(f"plateau: a cut's {key} must be a number, got {_short(v)}")
        out[key] = x
    return out


class ReduceOnPlateau(keras.callbacks.Callback):  # type: ignore[misc]  # keras is untyped (Any)
    """Cut the learning rate by ``factor`` when ``monitor`` stops improving; works with schedules.

    The decisions are :class:`lrkit.control.Plateau`'s (torch's ``ReduceLROnPlateau`` rules: a cut on
    the ``patience + 1``-th bad epoch in a row, ``threshold`` relative or absolute, ``cooldown``,
    ``min_lr``, ``eps``). With a :class:`KerasSchedule` a cut multiplies its multiplier by ``factor``
    (and its floor is ``min_lr``), so the schedule keeps its shape, scaled down; with a float learning
    rate the optimizer's LR variable is multiplied, as Keras' own callback does. Any other schedule is
    refused with ``TypeError``: wrap it as an lrkit schedule.

    Args:
        monitor: the log key to watch (``"val_loss"``, ``"loss"``, ``"val_accuracy"``...).
        mode: ``"min"``, ``"max"`` or ``"auto"``, which reads the direction as Keras' own callbacks do
            (``MonitorCallback``): ``"min"`` for ``loss``/``val_loss``; otherwise, when the fit starts,
            that of the compiled metric whose name is ``monitor`` without ``val_`` (its ``_direction``:
            ``"max"`` for accuracy, AUC, precision, recall, F1, IoU, R2...). Where no compiled metric says,
            a ``monitor`` whose name without ``val_`` ends in ``loss`` is ``"min"`` (a custom
            ``train_step``'s loss tracker ``g_loss``, a per-output ``val_a_loss``: Keras' own callback
            raises for these; lrkit keeps the min it always used). Any other ``monitor`` it cannot tell
            raises ``ValueError``: when the fit starts if the model has a metric of that name that has no
            direction (a plain function), else at the first epoch's end (the model has no such metric):
            pass ``mode="min"`` or ``mode="max"``.
        factor, patience, threshold, threshold_mode, cooldown, min_lr, eps: as :class:`Plateau`.
        start: from when metrics count, as :class:`Plateau`'s ``start`` in ``lrkit.torch``'s scheduler:
            ``"warmup"`` (the default, as torch's) skips the metrics of epochs that end before the
            ``warmup(...)`` an lrkit schedule starts with is over, so that they neither cut nor set the
            best (a float LR, or a schedule without a warmup: every metric counts); an integer ``k``: those
            of epochs that end before optimizer step ``k`` (``start=0``: every metric, as Keras' own
            callback). Steps are the batches the schedule is called with.
        verbose: print a line at each cut.
        schedule: the :class:`KerasSchedule` to cut, for a model that trains with optimizers of its own
            (a custom ``train_step``, a GAN's ``compile(d_optimizer, g_optimizer)``); by default the
            schedule (or the float LR) of ``model.optimizer``.

    Every cut is recorded in :attr:`cuts` (a list of :class:`Cut`); ``logs["learning_rate"]`` is the
    LR after the epoch's decision (Keras' callback logs the LR before it). A missing ``monitor`` raises
    ``KeyError`` naming the keys there are, except a ``val_*`` one in an epoch without validation
    (``fit(validation_freq=k)``): that epoch is skipped, as Keras' callback skips it; a fit without
    validation data warns at its first epoch, and a fit where validation never ran raises ``KeyError``
    at its end. A fit longer than the schedule warns
    (``PastTheRunWarning``) at its first epoch; a ``model.optimizer`` that has not stepped after an epoch
    warns once (the model trains with optimizers of its own: pass ``schedule=``). A callback or a
    schedule that ran with another optimizer (the last model's) starts afresh with this one (see
    :meth:`KerasSchedule.reset`).

    From Keras' ``ReduceLROnPlateau``: Keras counts ``patience`` and ``cooldown`` from the first bad
    epoch (torch after it), and its ``min_delta`` is absolute, so
    ``keras.callbacks.ReduceLROnPlateau(patience=p, cooldown=c, min_delta=d)`` is
    ``ReduceOnPlateau(patience=max(p - 1, 0), cooldown=max(c - 1, 0), threshold=d,
    threshold_mode="abs")`` (and ``start=0`` when the schedule begins with a warmup: the default,
    ``start="warmup"``, skips the metrics of epochs that end inside it, which Keras counts); the same
    ``patience`` cuts one epoch later than Keras'.

    The state (best metric, counters, the cuts), with the ``monitor`` and ``mode`` it was measured in,
    is kept in the :class:`KerasSchedule` and saved with the model: a fresh callback watching the same
    metric goes on from it (its :attr:`cuts` start with those made before the save; a model saved by an
    lrkit that did not keep them gives only their number, ``plateau.num_reductions``, which such an lrkit
    also raised for the cuts that ``min_lr`` or ``eps`` stopped), one watching another metric starts
    afresh, one in the other mode raises. ``plateau.num_reductions`` counts the cuts made (``len(cuts)``
    for a fit from scratch).
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        mode: Literal["auto", "min", "max"] = "auto",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: ThresholdMode = "rel",
        cooldown: int = 0,
        min_lr: float = 0.0,
        eps: float = 1e-8,
        start: int | str = "warmup",
        verbose: int = 0,
        schedule: KerasSchedule | None = None,
    ) -> None:
        super().__init__()
        if schedule is not None and not isinstance(schedule, KerasSchedule):
            raise TypeError(
                f"ReduceOnPlateau: schedule must be the lrkit.keras.schedule(...) to cut (a KerasSchedule), "
                f"or None for model.optimizer's, got {type(schedule).__name__} {_short(schedule)}"
            )
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(
                f"ReduceOnPlateau: monitor must be a log key such as 'val_loss', got {monitor!r}"
            )
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"ReduceOnPlateau: mode must be 'auto', 'min' or 'max', got {mode!r}")
        #: the mode asked for ("auto": the monitored metric's direction, read when the fit starts)
        self.mode = mode
        if mode == "auto" and monitor.removeprefix("val_") == "loss":
            mode = "min"
        #: whether the plateau's mode is known (an "auto" one is "min" until the metric says otherwise)
        self._mode_known = mode != "auto"
        if isinstance(min_lr, (list, tuple)):
            raise TypeError(f"ReduceOnPlateau: min_lr must be one number (one optimizer), got {min_lr!r}")
        self.monitor = monitor
        self.plateau = Plateau(
            mode="min" if mode == "auto" else mode,
            factor=factor,
            patience=patience,
            threshold=threshold,
            threshold_mode=threshold_mode,
            cooldown=cooldown,
            min_lr=min_lr,
            eps=eps,
            start=start,
        )
        if self.plateau.factor <= 0.0:
            raise ValueError(f"ReduceOnPlateau: factor must be > 0 (a multiplier), got {factor!r}")
        self.verbose = verbose
        self.schedule = schedule
        self.cuts: list[Cut] = []
        #: the step counter of the optimizer this callback last ran with (weak): another one starts afresh
        self._ran_with: weakref.ref[Any] | None = None
        self._seen_monitor = False  # this fit logged the monitor at least once
        self._skipped: list[int] = []  # this fit's epochs without validation (a val_* monitor missing)
        self._checked_length = False  # this fit's length was held against the schedule's
        self._warned_idle = False
        self._keys: list[str] = []  # the log keys of the last epoch skipped
        self._warned_no_validation = False  # this fit warned that a val_* monitor had no validation

    # -- what is being cut ------------------------------------------------------------------------
    def _optimizer(self) -> Any:
        opt = self.model.optimizer
        if isinstance(opt, keras.optimizers.LossScaleOptimizer):  # mixed_float16 wraps the optimizer
            opt = opt.inner_optimizer
        return opt

    def _target(self) -> Any:
        if self.schedule is not None:
            return self.schedule
        lr = self._optimizer()._learning_rate  # the schedule or variable itself; `learning_rate` evaluates it
        if isinstance(lr, KerasSchedule):
            return lr
        if isinstance(lr, keras.Variable):
            return None
        raise TypeError(
            f"ReduceOnPlateau: the optimizer's learning_rate is a {type(lr).__name__}; use a float or an "
            "lrkit schedule (lrkit.keras.schedule(...)), whose multiplier this callback cuts"
        )

    def _counter(self) -> Any:
        """The step counter of the optimizer whose LR is cut (``schedule=``: the last optimizer that
        called it; None before any did)."""
        if self.schedule is not None:
            return self.schedule._owner()
        return self._optimizer()._iterations

    def _steps_done(self) -> int:
        counter = self._counter()
        return 0 if counter is None else int(keras.ops.convert_to_numpy(counter))

    def _current_lr(self) -> float:
        if self.schedule is not None:
            counter = self.schedule._owner()
            lr = self.schedule(0 if counter is None else counter)
        else:
            lr = self.model.optimizer.learning_rate
        return float(keras.ops.convert_to_numpy(lr))

    # -- state ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The plateau's state (best metric and counters) and the cuts made so far (``cuts``: each
        :class:`Cut` as a dict; ``num_cuts``: how many), strict JSON (a cut's NaN or infinite metric by its
        name, ``"nan"``, ``"inf"`` or ``"-inf"``)."""
        cuts = [_cut_json(dataclasses.asdict(c)) for c in self.cuts]
        return {"plateau": self.plateau.state_dict(), "num_cuts": len(cuts), "cuts": cuts}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (for a float learning rate, whose optimizer has nowhere to keep it;
        with an lrkit schedule the state is saved with the model and restored by itself), :attr:`cuts`
        included (a state written before they were kept has only their number: the list is left as is)."""
        if not isinstance(state, dict) or not isinstance(state.get("plateau"), dict):
            raise TypeError(
                f"ReduceOnPlateau.load_state_dict: expected a dict from state_dict(), got {state!r}"
            )
        cuts = None
        if state.get("cuts") is not None:
            try:
                cuts = [Cut(**_cut_state(c)) for c in _cut_list(state["cuts"])]
            except ValueError as exc:
                raise ValueError(f"ReduceOnPlateau.load_state_dict: {exc}") from None
        if not self._mode_known:  # mode="auto" before the metric said: the state's, until it does
            self._adopt_mode(state["plateau"].get("mode"))
        self.plateau.load_state_dict(state["plateau"])
        if cuts is not None:
            self.cuts = cuts
        self._ran_with = None  # a loaded state is the next optimizer's, whichever ran before

    # -- mode="auto" -----------------------------------------------------------------------------
    def _model_metrics(self) -> list[Any]:
        """The model's metrics, those ``compile(metrics=...)`` made included (Keras keeps them inside a
        ``CompileMetrics``)."""
        out: list[Any] = []
        for m in getattr(self.model, "metrics", None) or []:
            out.append(m)
            inner = getattr(m, "metrics", None)
            if isinstance(inner, (list, tuple)):
                out.extend(inner)
        return out

    def _metric_mode(self) -> str | None:
        """Keras 3's rule for ``mode="auto"`` (``MonitorCallback._set_monitor_op``): ``monitor`` without
        ``val_`` is ``loss``: min; a metric of the model of that name with a ``_direction``: max when it
        is ``"up"``, else min. Past Keras' rule (which raises), a name that ends in ``loss`` with no
        metric to say otherwise is min, as lrkit always read it (``g_loss``, ``a_loss``). None when
        nothing tells."""
        name = self.monitor.removeprefix("val_")
        found = "min" if name == "loss" else None
        for m in self._model_metrics():
            if getattr(m, "name", None) == name and hasattr(m, "_direction"):
                found = "max" if m._direction == "up" else "min"
        if found is None and name.endswith("loss"):
            found = "min"
        return found

    def _resolve_mode(self, strict: bool) -> None:
        """Set an ``"auto"`` mode from the model's metrics; raise when they cannot tell and ``strict``, or
        when the model has a metric of that name that has no direction (it will not get one later)."""
        if self._mode_known:
            return
        mode = self._metric_mode()
        if mode is None:
            name = self.monitor.removeprefix("val_")
            names = sorted({str(getattr(m, "name", "?")) for m in self._model_metrics()})
            if strict or name in names:
                why = (
                    f"metric {name!r} has no direction (a plain function or a metric class without one: "
                    "Keras cannot tell whether higher is better)"
                    if name in names
                    else f"the model has no metric named {name!r} (its metrics: {names})"
                )
                raise ValueError(
                    f"ReduceOnPlateau: mode='auto' cannot tell whether monitor {self.monitor!r} should go "
                    f"down or up: {why}; pass mode='min' (lower is better: a loss, an error) or mode='max' "
                    "(higher is better: an accuracy, a precision, an IoU)"
                )
            return
        self._mode_known = True
        self._adopt_mode(mode)

    def _adopt_mode(self, mode: object) -> None:
        """Give the plateau of an ``"auto"`` callback ``mode`` (the metric's, or a loaded state's while the
        metric has not said yet); one that already holds a history in the other mode raises."""
        p = self.plateau
        if mode not in ("min", "max") or mode == p.mode:
            return
        if p.last_epoch > 0 or p.best != p.mode_worse:
            way = "maximize" if mode == "max" else "minimize"
            raise ValueError(
                f"ReduceOnPlateau: monitor {self.monitor!r} is a metric to {way} (mode={mode!r}), but "
                "the plateau state this callback holds was measured in "
                f"mode={p.mode!r} (best={p.best!r}); pass mode={p.mode!r} to go on from it, or start "
                "a fresh callback"
            )
        p.mode = "max" if mode == "max" else "min"
        p.best = p.mode_worse

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._seen_monitor, self._skipped, self._checked_length = False, [], False
        self._warned_no_validation = False
        self._resolve_mode(strict=False)  # the metrics are built by now (a directionless one raises here)
        target = self._target()
        counter = self._counter()
        if counter is not None:
            if target is not None:
                target._meet(counter)  # a schedule that another optimizer ran with starts afresh
            if self._ran_with is not None and self._ran_with() is not counter:
                self.plateau.reset()  # this callback ran with another optimizer: not this one's history
                self.cuts = []
            self._ran_with = weakref.ref(counter)
        if target is not None:
            target._set(floor=self.plateau.floor())
            self._retrace_if_stale(target)
            saved = target.plateau_state
            if (
                saved is not None
                and self.plateau.last_epoch == 0
                and saved.get("monitor", self.monitor) == self.monitor
            ):
                # a fresh callback on a schedule that has run with one watching the same metric (a
                # loaded model): go on from its state, so the cuts come when they would have without
                # the interruption (a state saved in the other mode raises)
                if not self._mode_known:
                    self._adopt_mode(saved.get("mode"))  # until the metric says (first epoch's end)
                best = self.plateau.mode_worse if saved["best"] is None else saved["best"]
                self.plateau.load_state_dict({**saved, "best": best})
                # the cuts made before the save (a config written before they were kept has none)
                self.cuts = [Cut(**c) for c in saved.get("cuts", [])]
                done = self.plateau.last_epoch > 0 or self.cuts
                if done and counter is not None and self._steps_done() == 0:
                    self._warn_state_without_steps(target)

    def _warn_state_without_steps(self, target: KerasSchedule) -> None:
        warnings.warn(
            f"lrkit.keras.ReduceOnPlateau: the schedule's saved plateau state has {self.plateau.last_epoch} "
            f"epoch(s) and {len(self.cuts)} cut(s) (multiplier {target.multiplier:g}), but the optimizer's "
            "step count is 0, so the schedule starts again from step 0 with those cuts kept. The likely "
            "cause: the model was loaded under another dtype policy than it was saved with (a "
            "mixed_float16 model loaded without keras.mixed_precision.set_global_policy('mixed_float16') "
            "first), and Keras skipped loading the optimizer's variables. Set the policy before "
            "keras.models.load_model",
            UserWarning,
            stacklevel=2,
        )

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if not self._checked_length:
            self._checked_length = True
            self._check_length(epoch)

    def _check_length(self, epoch: int) -> None:
        """Warn (``PastTheRunWarning``) when this fit's batches take the schedule past its end, as
        lrkit.torch's scheduler does past its run (its first step past the end passes unwarned)."""
        target = self._target()
        params = self.params or {}
        epochs, steps = params.get("epochs"), params.get("steps")
        if target is None or self.schedule is not None or not epochs or not steps:
            return  # schedule=: how many steps a batch takes is the model's own business
        length = target.schedule.length_steps
        if length is None:
            return  # it never ends (a constant, a periodic schedule)
        at = self._steps_done()
        last = at + (int(epochs) - epoch) * int(steps) - 1  # the step of the fit's last batch
        if last <= length:
            return
        end_lr = float(keras.ops.convert_to_numpy(target(np.float64(length))))
        warnings.warn(
            f"lrkit.keras.ReduceOnPlateau: this fit runs past the schedule: the schedule covers "
            f"{length:,.0f} steps (batches), and fit(epochs={epochs}) at {steps} batches an epoch, from "
            f"epoch {epoch} (step {at}), runs to step {last}; past step {length:,.0f} the LR stays at its "
            f"last value, {end_lr:.3g}. The run is longer than the schedule: build it with total_steps = "
            "epochs * steps_per_epoch of this fit (steps_per_epoch = ceil(n_train / batch_size), n_train "
            "what validation_split leaves). (Warned once per fit.)",
            PastTheRunWarning,
            stacklevel=2,
        )

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs if logs is not None else {}
        if self.monitor not in logs:
            if self.monitor.startswith("val_") and not any(str(k).startswith("val_") for k in logs):
                # no validation this epoch (fit's validation_freq): skipped, as Keras' own callback does
                if not self._warned_no_validation:
                    self._warn_no_validation(epoch)
                self._skipped.append(epoch)
                self._keys = sorted(logs)
                logs["learning_rate"] = self._current_lr()
                return
            raise KeyError(
                f"ReduceOnPlateau: monitor {self.monitor!r} is not in the logs of epoch {epoch}; the logs "
                f"hold {sorted(logs)}"
            )
        self._seen_monitor = True
        self._resolve_mode(strict=True)  # mode="auto" the metrics could not tell at the fit's start
        metric = float(logs[self.monitor])
        target = self._target()
        before = self._current_lr()
        # the step the schedule is at (the batches so far) against the end of its warmup (start)
        at = self._steps_done()
        if at == 0 and not self._warned_idle:
            self._warn_idle(epoch)
        warmup = 0.0 if target is None else warmup_steps(target.schedule)
        due = self.plateau.offer(metric, at, warmup)
        if due and self.plateau.reduce(before) == before:
            self.plateau.cut_skipped()  # at min_lr or within eps: no cut made
        elif due:
            if target is not None:  # a float LR is an optimizer variable, which jax's step reads
                target._set(multiplier=target.multiplier * self.plateau.factor)
                self._retrace_if_stale(target)
            else:
                self.model.optimizer.learning_rate = self.plateau.reduce(before)
            after = self._current_lr()
            self.cuts.append(Cut(epoch, metric, before, after))
            if self.verbose:
                print(
                    f"\nEpoch {epoch + 1}: ReduceOnPlateau: {self.monitor}={metric:.5g} has not improved "
                    f"for {self.plateau.patience + 1} epochs; learning rate {before:.4g} -> {after:.4g}"
                )
        if target is not None:
            target.plateau_state = {
                **self.plateau.state_dict(),
                "monitor": self.monitor,
                "cuts": [dataclasses.asdict(c) for c in self.cuts],
            }
        logs["learning_rate"] = self._current_lr()

    def _fit_validation(self) -> tuple[bool, Any] | None:
        """Whether the running ``Model.fit`` has validation data (``validation_data``, or what
        ``validation_split`` made), and its ``validation_freq``, read from its frame: Keras gives
        callbacks neither (``params`` holds epochs, steps and verbose). None outside a ``fit``."""
        frame = inspect.currentframe()
        try:
            while frame is not None:
                seen = frame.f_locals if frame.f_code.co_name == "fit" else {}
                if seen.get("self") is self.model and {"validation_data", "validation_freq"} <= set(seen):
                    return seen["validation_data"] is not None, seen["validation_freq"]
                frame = frame.f_back
            return None
        finally:
            del frame

    def _warn_no_validation(self, epoch: int) -> None:
        """The first epoch of a fit whose logs lack the ``val_*`` monitor: warn when the fit has no
        validation data, or when its ``validation_freq`` says this epoch validates (an epoch that
        ``validation_freq`` skips is not warned about)."""
        fit = self._fit_validation()
        if fit is None:
            return  # not inside a Model.fit (callbacks called by hand): the end of the fit tells
        has_data, freq = fit
        if has_data:
            if isinstance(freq, int):
                due = (epoch + 1) % freq == 0 if freq > 0 else False
            else:
                due = isinstance(freq, (list, tuple, set, range)) and (epoch + 1) in freq
            if not due:
                return
            why = (
                f"fit(validation_freq={freq!r}) validates after epoch {epoch} (epoch {epoch + 1}, "
                "counted from 1) but its logs hold no val_* key"
            )
        else:
            why = "this fit has no validation data (validation_data=None, validation_split=0)"
        self._warned_no_validation = True
        warnings.warn(
            f"lrkit.keras.ReduceOnPlateau: monitor {self.monitor!r} is not in the logs of epoch {epoch}: "
            f"{why}, so no metric reaches the plateau and the learning rate is not cut. Give fit "
            "validation_data=... or validation_split=... (with a validation_freq that falls within the "
            "epochs), or monitor a training metric ('loss'). The fit raises KeyError at its end if no "
            "epoch logs the monitor. (Warned once per fit.)",
            UserWarning,
            stacklevel=2,
        )

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self._skipped and not self._seen_monitor:
            n = len(self._skipped)
            raise KeyError(
                f"ReduceOnPlateau: monitor {self.monitor!r} was in the logs of none of this fit's {n} "
                f"epoch(s); they held {self._keys} but no val_* key: validation did not run, so no metric "
                "reached the plateau. Give fit validation data (validation_data=... or "
                "validation_split=...) with a validation_freq that falls within the epochs (it validates "
                "after epoch e when (e + 1) % validation_freq == 0), or monitor a training metric ('loss')"
            )

    def _warn_idle(self, epoch: int) -> None:
        self._warned_idle = True
        if self.schedule is not None:
            what = "no optimizer has called the schedule given as schedule= yet"
            fix = (
                "give that schedule to the optimizer that trains "
                "(keras.optimizers.Adam(learning_rate=schedule))"
            )
        else:
            opt = self.model.optimizer
            what = f"model.optimizer ({type(opt).__name__}), whose learning rate it cuts, has not stepped"
            fix = (
                "If the model trains with optimizers of its own (a custom train_step, a GAN's "
                "compile(d_optimizer, g_optimizer)), pass the lrkit schedule to cut: "
                "ReduceOnPlateau(..., schedule=the_schedule_of_that_optimizer); a LossScaleOptimizer that "
                "skipped every step of the epoch for overflowing gradients also leaves the count at 0"
            )
        warnings.warn(
            f"lrkit.keras.ReduceOnPlateau: after epoch {epoch} the step count is 0: {what}, so its cuts "
            f"change nothing that trains. {fix}. (Warned once.)",
            UserWarning,
            stacklevel=3,
        )

    def _retrace_if_stale(self, target: KerasSchedule) -> None:
        """The jax backend traces the train step once and bakes the variables it does not own (the
        multiplier, the floor) into it: rebuild it when they changed (one retrace per cut)."""
        if target._stale():
            if getattr(self.model, "train_function", None) is not None:
                self.model.make_train_function(force=True)
            target._traced_with = None


# the range test on a compiled model (see lrkit.finder.keras_driver), imported after the rest of this module
from ..finder.keras_driver import find_lr  # noqa: E402
