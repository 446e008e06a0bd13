"""Batch-size scaling rules for the learning rate, with warmup advice.

- **linear** (Goyal et al. 2017, "Accurate, Large Minibatch SGD"): ``lr = base_lr * batch / base_batch``,
  with a gradual warmup of about 5 epochs when the batch grows well beyond the base; the rule breaks
  down past roughly 8k images per batch for ResNet-50 on ImageNet.
- **sqrt** (Krizhevsky 2014; Hoffer et al. 2017; Malladi et al. 2022 for Adam):
  ``lr = base_lr * sqrt(batch / base_batch)``: the usual rule for Adam-type optimizers.

>>> scale_lr(0.1, base_batch=256, batch=1024).lr
0.4
>>> round(scale_lr(1e-3, base_batch=32, batch=512, rule="sqrt").lr, 6)
0.004
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .schedules.base import check_choice, check_number

__all__ = ["LR_FREE", "OPTIMIZERS", "RULES", "Scaled", "check_optimizer", "scale_lr"]

RULES = ("linear", "sqrt")
#: SGD and its momentum variants: the linear rule
_SGD = ("sgd", "momentum", "nesterov")
#: adaptive optimizers (Schedule-Free AdamW is an AdamW): the sqrt rule
_ADAPTIVE = (
    "adam", "adamw", "nadam", "radam", "adamax", "schedulefree_adamw", "rmsprop", "adagrad", "lamb",
    "adafactor",
)  # fmt: skip
#: optimizers that estimate their own step size (``lr`` only multiplies it): there is no LR to scale
LR_FREE = ("prodigy",)
#: the names :func:`scale_lr` knows (case does not matter)
OPTIMIZERS = _SGD + _ADAPTIVE


@dataclass(frozen=True)
class Scaled:
    """A scaled learning rate and the advice that goes with it."""

    lr: float
    rule: str
    factor: float
    warmup_epochs: float
    notes: tuple[str, ...]

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


def scale_lr(
    base_lr: float, base_batch: int, batch: int, *, rule: str | None = None, optimizer: str = "sgd"
) -> Scaled:
    """Scale ``base_lr`` (tuned at ``base_batch``) to ``batch``.

    ``rule`` defaults to ``linear`` for SGD (``sgd``, ``momentum``, ``nesterov``) and ``sqrt`` for
    adaptive optimizers (Adam, AdamW, Schedule-Free AdamW, RMSprop, AdaGrad, LAMB, Adafactor); without a
    ``rule``, another name is a ValueError, and one that sets its own step size (Prodigy) always is.
    Warmup advice follows Goyal et al.: 5 epochs when the LR grows by 2x or more, none when it shrinks.
    """
    check_number("scale_lr", "base_lr", base_lr, low=0, low_open=True)
    for name, v in (("base_batch", base_batch), ("batch", batch)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"scale_lr: {name} must be an integer >= 1, got {v!r}")
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
    lr = base_lr * factor
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(
            f"scale_lr: base_lr={base_lr!r} x {factor:.6g} ({rule} rule, batch {base_batch} -> {batch}) "
            f"gives lr = {lr!r}; expected a finite lr > 0 (the float range is about 1e-308 to 1e308)"
        )
    notes: list[str] = []
    if rule == "linear" and opt in _ADAPTIVE:
        notes.append(f"the linear rule is meant for SGD; for {optimizer} the sqrt rule is usually safer")
    if rule == "linear" and batch > 8192:
        notes.append(
            "beyond ~8k per batch the linear rule stops holding (Goyal et al. 2017); check with lrkit find"
        )
    if ratio > 1 and opt in _SGD and factor > 32:
        notes.append("very large scale-up: consider LARS/LAMB (You et al. 2017, 2019)")
    warmup = 5.0 if factor >= 2 else 0.0
    return Scaled(lr=lr, rule=rule, factor=factor, warmup_epochs=warmup, notes=tuple(notes))
