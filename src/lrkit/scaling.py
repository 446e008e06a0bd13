"""Batch-size scaling rules for the learning rate, with warmup advice.

- **linear** (Krizhevsky 2014; Goyal et al. 2017, "Accurate, Large Minibatch SGD"): ``lr = base_lr *
  batch / base_batch`` for SGD, with a gradual warmup from ``base_lr`` over the first 5 epochs whenever
  the batch grows (Goyal et al.: 0.1 x kn/256 for every kn > 256); it held for ResNet-50 on ImageNet up
  to about 8k images per batch and broke down beyond.
- **sqrt** (Malladi et al. 2022, "On the SDEs and Scaling Rules for Adaptive Gradient Algorithms"):
  ``lr = base_lr * sqrt(batch / base_batch)`` for Adam and RMSprop. Their rule, with ``k = batch /
  base_batch``, also moves the averages and epsilon: ``1 - beta -> k (1 - beta)``, ``eps -> eps /
  sqrt(k)`` (:meth:`Scaled.adam_hparams`). For SGD the square root (Krizhevsky 2014; Hoffer et al.
  2017) did worse than linear in Goyal et al.'s Table 2a.

``batch`` is what one optimizer step sees: per-device batch x ``accumulation_steps`` x ``devices``.
Schedules keep their length in epochs (samples), so a length in steps shrinks by ``base_batch / batch``
(:meth:`Scaled.rescale_steps`).

>>> scale_lr(0.1, base_batch=256, batch=1024).lr
0.4
>>> round(scale_lr(1e-3, base_batch=32, batch=512, rule="sqrt").lr, 6)
0.004
>>> scale_lr(0.1, base_batch=256, batch=32, accumulation_steps=4, devices=8).batch
1024
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from ._checks import check_int
from ._text import plural
from .schedules.base import check_choice, check_number
from .schedules.duration import _short

__all__ = ["LR_FREE", "OPTIMIZERS", "RULES", "Scaled", "check_optimizer", "scale_lr"]

RULES = ("linear", "sqrt")
#: SGD and its momentum variants: the linear rule
_SGD = ("sgd", "momentum", "nesterov")
#: adaptive optimizers (Schedule-Free AdamW is an AdamW): the sqrt rule
_ADAPTIVE = (
    "adam", "adamw", "nadam", "radam", "adamax", "schedulefree_adamw", "rmsprop", "adagrad", "lamb",
    "adafactor",
)  # fmt: skip
#: the Adam family and RMSprop: Malladi et al.'s rule also moves their betas and eps
_SDE = ("adam", "adamw", "nadam", "radam", "adamax", "schedulefree_adamw", "rmsprop")
#: optimizers that estimate their own step size (``lr`` only multiplies it): there is no LR to scale
LR_FREE = ("prodigy",)
#: the names :func:`scale_lr` knows (case does not matter)
OPTIMIZERS = _SGD + _ADAPTIVE
#: Goyal et al.'s gradual warmup, in epochs
WARMUP_EPOCHS = 5.0


@dataclass(frozen=True)
class Scaled:
    """A scaled learning rate and the advice that goes with it.

    ``batch`` is the effective batch (per device x accumulation steps x devices), ``factor`` the LR's
    multiplier (``batch / base_batch`` or its square root); ``warmup_epochs`` is Goyal et al.'s gradual
    warmup, linear from ``base_lr`` to ``lr`` (0 when the LR does not grow).
    """

    lr: float
    rule: str
    factor: float
    warmup_epochs: float
    notes: tuple[str, ...]
    base_lr: float
    base_batch: int
    batch: int

    @property
    def ratio(self) -> float:
        """``k = batch / base_batch``."""
        try:
            return self.batch / self.base_batch
        except OverflowError:  # an integer ratio beyond the float range
            return math.inf

    def rescale_steps(self, steps: float) -> int:
        """A length in steps tuned at ``base_batch`` (a warmup, a decay, the whole run) at ``batch``, for
        the same number of samples: ``ceil(steps * base_batch / batch)``, at least 1.

        >>> scale_lr(1e-3, base_batch=256, batch=1024, optimizer="adam").rescale_steps(4000)
        1000
        """
        n = check_number("rescale_steps", "steps", steps, low=0, low_open=True)
        return max(1, math.ceil(n * self.base_batch / self.batch - 1e-9))

    def adam_hparams(
        self, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8
    ) -> tuple[float, float, float]:
        """Malladi et al.'s square-root rule for the rest of Adam (RMSprop: ``beta2`` is its ``alpha``):
        with ``k = batch / base_batch``, ``beta -> 1 - k (1 - beta)`` and ``eps -> eps / sqrt(k)``.
        A ``k`` with ``k (1 - beta) >= 1`` leaves no valid beta: the rule does not reach that far.

        >>> scale_lr(1e-3, base_batch=256, batch=1024, optimizer="adam").adam_hparams()
        (0.6, 0.996, 5e-09)
        """
        k = self.ratio
        b1 = check_number("adam_hparams", "beta1", beta1, low=0, high=1, high_open=True)
        b2 = check_number("adam_hparams", "beta2", beta2, low=0, high=1, high_open=True)
        e = check_number("adam_hparams", "eps", eps, low=0)
        out = []
        for name, b in (("beta1", b1), ("beta2", b2)):
            if (
                _one_minus(k, b) <= 0.0
            ):  # on the decimals as written: 10 x (1 - 0.9) is 1, not 0.9999999999999998
                raise ValueError(
                    f"adam_hparams: batch ratio k = {k:.6g} gives {name} = 1 - k(1 - {b:g}) <= 0; "
                    f"the square-root rule holds only for k < {1.0 / (1.0 - b):.6g} with this {name}"
                )
            out.append(_one_minus(k, b))
        return out[0], out[1], e / math.sqrt(k)

    def __str__(self) -> str:
        lines = [f"lr = {self.lr:.6g} ({self.rule} rule, x{self.factor:.4g})"]
        if self.warmup_epochs:
            unit = "epoch" if self.warmup_epochs == 1 else "epochs"
            lines.append(f"warm up over about {self.warmup_epochs:g} {unit}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def check_optimizer(name: str, what: str = "optimizer") -> str:
    """``name`` in lower case if :func:`scale_lr` knows it; a ValueError naming ``what`` (a flag, a
    parameter) otherwise, and for an optimizer that sets its own step size (Prodigy)."""
    opt = name.lower()
    if opt in LR_FREE:
        raise ValueError(
            f"{what} {name!r} estimates its own step size (its lr only multiplies it, 1.0 by default): "
            "there is no learning rate to scale with the batch size"
        )
    if opt not in OPTIMIZERS:
        raise ValueError(
            f"{what} must be one of {', '.join(OPTIMIZERS)} (linear rule for {', '.join(_SGD)}; sqrt for "
            f"the others), got {name!r}"
        )
    return opt


def _count(name: str, v: object) -> int:
    """``v`` as a Python int >= 1 (Python and numpy integers), or an error naming ``name``."""
    return check_int(v, name, 1, where="scale_lr: ", show=_short)


def scale_lr(
    base_lr: float,
    base_batch: int,
    batch: int,
    *,
    rule: str | None = None,
    optimizer: str = "sgd",
    accumulation_steps: int = 1,
    devices: int = 1,
) -> Scaled:
    """Scale ``base_lr`` (tuned at the effective batch ``base_batch``) to the effective batch
    ``batch * accumulation_steps * devices`` (``batch``: one forward pass on one device).

    ``rule`` defaults to ``linear`` for SGD (``sgd``, ``momentum``, ``nesterov``) and ``sqrt`` for
    adaptive optimizers (Adam, AdamW, Schedule-Free AdamW, RMSprop, AdaGrad, LAMB, Adafactor); without a
    ``rule``, another name is a ValueError, and one that sets its own step size (Prodigy) always is.
    Warmup advice follows Goyal et al.: 5 epochs, linear from ``base_lr``, whenever the LR grows.
    """
    check_number("scale_lr", "base_lr", base_lr, low=0, low_open=True)
    base_batch = _count("base_batch", base_batch)
    per_device = _count("batch", batch)
    accumulation_steps = _count("accumulation_steps", accumulation_steps)
    devices = _count("devices", devices)
    batch = per_device * accumulation_steps * devices
    if not isinstance(optimizer, str):
        raise TypeError(f"scale_lr: optimizer must be a name like 'sgd' or 'adam', got {optimizer!r}")
    opt = optimizer.lower()
    if rule is None or opt in LR_FREE:  # without a rule the optimizer picks it: it must be one we know
        check_optimizer(optimizer, "scale_lr: optimizer")
    if rule is None:
        rule = "sqrt" if opt in _ADAPTIVE else "linear"
    check_choice("scale_lr", "rule", rule, RULES)
    try:
        ratio = batch / base_batch  # correctly rounded, also for huge integers
    except OverflowError:
        ratio = math.inf
    factor = ratio if rule == "linear" else math.sqrt(ratio)
    lr = float(base_lr) * factor
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(
            f"scale_lr: base_lr={base_lr!r} x {factor:.6g} ({rule} rule, batch {_short(base_batch)} -> "
            f"{_short(batch)}) gives lr = {lr!r}; expected a finite lr > 0 (the float range is about "
            "1e-308 to 1e308)"
        )
    notes: list[str] = []
    if batch != per_device:
        notes.append(
            f"effective batch {batch} = {per_device} x {plural(accumulation_steps, 'accumulation step')} x "
            f"{plural(devices, 'device')} (tuned at {base_batch})"
        )
    if rule == "linear" and opt in _ADAPTIVE:
        notes.append(f"the linear rule is meant for SGD; for {optimizer} the sqrt rule is usually safer")
    if rule == "linear" and batch > 8192:
        notes.append(
            "beyond ~8k per batch the linear rule stops holding (Goyal et al. 2017); check with lrkit find"
        )
    if ratio > 1 and opt in _SGD and factor > 32:
        notes.append("very large scale-up: consider LARS/LAMB (You et al. 2017, 2019)")
    warmup = WARMUP_EPOCHS if factor > 1 else 0.0
    if warmup:
        notes.append(f"warm up linearly from the base lr {base_lr:.6g} to {lr:.6g} (Goyal et al. 2017)")
    if rule == "sqrt" and opt in _SDE and ratio != 1:
        notes.append(_adam_note(ratio))
    if ratio != 1:
        notes.append(
            f"lengths in steps tuned at batch {_short(base_batch)} (warmup, decay, run) are x{1 / ratio:.4g}"
            " here: keep them in epochs"
        )
    return Scaled(
        lr=lr,
        rule=rule,
        factor=factor,
        warmup_epochs=warmup,
        notes=tuple(notes),
        base_lr=float(base_lr),
        base_batch=base_batch,
        batch=batch,
    )


def _adam_note(k: float) -> str:
    """Malladi et al.'s betas and eps at batch ratio ``k``, for Adam's defaults (0.9, 0.999, 1e-8)."""
    rule = f"Malladi et al. 2022 also set beta = 1 - k(1 - beta), eps = eps / sqrt(k), k = {k:.4g}"
    if k * 0.1 >= 1.0:
        return f"{rule}: beta1 = 0.9 would fall below 0 (k >= 10), past the rule's range; use lrkit find"
    b1, b2 = _one_minus(k, 0.9), _one_minus(k, 0.999)
    return f"{rule} (Adam's defaults: betas ({b1:.6g}, {b2:.6g}), eps {1e-8 / math.sqrt(k):.3g})"


def _one_minus(k: float, beta: float) -> float:
    """``1 - k (1 - beta)`` on the decimals as written, rounded once: 1 - 4 x (1 - 0.9) is 0.6."""
    one = Decimal(1)
    return float(one - Decimal(repr(float(k))) * (one - Decimal(repr(float(beta)))))
