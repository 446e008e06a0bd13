"""Batch-size scaling rules for the learning rate, with warmup advice.

- **linear** (Krizhevsky 2014; Goyal et al. 2017, "Accurate, Large Minibatch SGD"): ``lr = base_lr *
  batch / base_batch`` for SGD, with a gradual warmup from ``base_lr`` over the first 5 epochs (Goyal et
  al.: 0.1 x kn/256 for every kn > 256, batches they raised 2x and more); it held for ResNet-50 on
  ImageNet up to about 8k images per batch and broke down beyond.
- **sqrt** (Malladi et al. 2022, "On the SDEs and Scaling Rules for Adaptive Gradient Algorithms"):
  ``lr = base_lr * sqrt(batch / base_batch)`` for Adam and RMSprop. Their rule, with ``k = batch /
  base_batch``, also moves the averages and epsilon: ``1 - beta -> k (1 - beta)``, ``eps -> eps /
  sqrt(k)`` (:meth:`Scaled.adam_hparams`; RMSprop's ``alpha``: :meth:`Scaled.rmsprop_hparams`). For SGD
  the square root (Krizhevsky 2014; Hoffer et al. 2017) did worse than linear in Goyal et al.'s Table 2a.

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
#: the Adam family: Malladi et al.'s rule also moves their betas and eps (:meth:`Scaled.adam_hparams`)
_ADAM = ("adam", "adamw", "nadam", "radam", "adamax", "schedulefree_adamw")
#: ... and RMSprop's alpha and eps (:meth:`Scaled.rmsprop_hparams`)
_SDE = (*_ADAM, "rmsprop")
#: optimizers that estimate their own step size (``lr`` only multiplies it): there is no LR to scale
LR_FREE = ("prodigy",)
#: the names :func:`scale_lr` knows (case does not matter)
OPTIMIZERS = _SGD + _ADAPTIVE
#: Goyal et al.'s gradual warmup, in epochs
WARMUP_EPOCHS = 5.0
#: the least growth of the LR that gets Goyal et al.'s warmup advice: the smallest step up they made was
#: 2x (256 -> 512); below that the tuned LR is not far off and a warmup from it changes little (the recipe
#: ``resnet_imagenet`` keeps their rule as written, every batch above 256; the two agree from 2x)
WARMUP_FROM = 2.0


@dataclass(frozen=True)
class Scaled:
    """A scaled learning rate and the advice that goes with it.

    ``batch`` is the effective batch (per device x accumulation steps x devices), ``factor`` the LR's
    multiplier (``batch / base_batch`` or its square root); ``warmup_epochs`` is Goyal et al.'s gradual
    warmup for SGD, linear from ``base_lr`` to ``lr``, when the LR grows 2x or more (0 otherwise, and for
    other optimizers: keep their own warmup, in epochs); ``optimizer`` is the name in lower case.
    """

    lr: float
    rule: str
    factor: float
    warmup_epochs: float
    notes: tuple[str, ...]
    base_lr: float
    base_batch: int
    batch: int
    optimizer: str

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
        """Malladi et al.'s square-root rule for the rest of Adam (the Adam family, with the sqrt rule):
        with ``k = batch / base_batch``, ``beta -> 1 - k (1 - beta)`` and ``eps -> eps / sqrt(k)``.
        A ``k`` with ``k (1 - beta) >= 1`` leaves no valid beta: the rule does not reach that far.
        ``beta1 = 0`` stays 0 at every ``k``: Adam without momentum is RMSprop (``alpha = beta2``, plus
        bias correction), whose rule moves only its one average and eps (:meth:`rmsprop_hparams`).

        >>> scale_lr(1e-3, base_batch=256, batch=1024, optimizer="adam").adam_hparams()
        (0.6, 0.996, 5e-09)
        """
        self._check_sde("adam_hparams", "betas", _ADAM)
        b1 = check_number("adam_hparams", "beta1", beta1, low=0, high=1, high_open=True)
        b2 = check_number("adam_hparams", "beta2", beta2, low=0, high=1, high_open=True)
        e = check_number("adam_hparams", "eps", eps, low=0)
        k = self.ratio
        return (
            0.0 if b1 == 0.0 else _moved("adam_hparams", k, "beta1", b1),  # no momentum: none to move
            _moved("adam_hparams", k, "beta2", b2),
            e / math.sqrt(k),
        )

    def rmsprop_hparams(self, alpha: float = 0.99, eps: float = 1e-8) -> tuple[float, float]:
        """Malladi et al.'s square-root rule for the rest of RMSprop (with the sqrt rule): its average
        ``alpha`` (torch's, 0.99 by default; Keras' ``rho``) ``-> 1 - k (1 - alpha)`` and ``eps -> eps /
        sqrt(k)``, ``k = batch / base_batch``; for ``k (1 - alpha) >= 1`` the rule does not reach.

        >>> scale_lr(1e-3, base_batch=32, batch=512, optimizer="rmsprop").rmsprop_hparams()
        (0.84, 2.5e-09)
        """
        self._check_sde("rmsprop_hparams", "alpha", ("rmsprop",))
        a = check_number("rmsprop_hparams", "alpha", alpha, low=0, high=1, high_open=True)
        e = check_number("rmsprop_hparams", "eps", eps, low=0)
        return _moved("rmsprop_hparams", self.ratio, "alpha", a), e / math.sqrt(self.ratio)

    def _check_sde(self, where: str, what: str, family: tuple[str, ...]) -> None:
        """Malladi et al.'s averages and eps go with their square-root LR, for the optimizers they cover."""
        if self.optimizer not in family:
            hint = (
                ": use rmsprop_hparams()"
                if self.optimizer == "rmsprop"
                else ": use adam_hparams()"
                if self.optimizer in _ADAM
                else ""
            )
            raise ValueError(
                f"{where}: Malladi et al.'s {what} and eps are for {', '.join(family)}; this lr was scaled "
                f"for optimizer {self.optimizer!r}{hint}"
            )
        if self.rule != "sqrt":
            raise ValueError(
                f"{where}: this lr was scaled by the {self.rule} rule (x{self.factor:.4g}); Malladi et al.'s "
                f"{what} and eps go with their square-root rule: scale with rule='sqrt' to use them"
            )

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
    Warmup advice is Goyal et al.'s, for SGD: 5 epochs, linear from ``base_lr``, when the LR grows 2x or
    more (they raised the batch 2x and more).
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
    warmup = WARMUP_EPOCHS if opt in _SGD and factor >= WARMUP_FROM else 0.0
    if warmup:
        notes.append(
            f"warm up linearly from the base lr {base_lr:.6g} to {lr:.6g} over {WARMUP_EPOCHS:g} epochs "
            "(Goyal et al. 2017, for SGD: every batch they raised, 2x and more)"
        )
    if rule == "sqrt" and opt in _SDE and ratio != 1:
        notes.append(_sde_note(opt, ratio))
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
        optimizer=opt,
    )


def _sde_note(opt: str, k: float) -> str:
    """Malladi et al.'s averages and eps at batch ratio ``k``: for the Adam family from Adam's defaults
    (betas 0.9, 0.999), for RMSprop from torch's (alpha 0.99); eps from 1e-8."""
    if opt == "rmsprop":
        avg, defaults, whose = "alpha", {"alpha": 0.99}, "torch's RMSprop defaults: alpha"
    else:
        avg, defaults, whose = "beta", {"beta1": 0.9, "beta2": 0.999}, "Adam's defaults: betas"
    head = f"Malladi et al. 2022 also set {avg} = 1 - k(1 - {avg}), eps = eps / sqrt(k), k = {k:.4g}"
    for name, b in defaults.items():
        if _one_minus(k, b) <= 0.0:
            return (
                f"{head}: {name} = {b:g} would fall to 0 or below (k >= {1 / (1 - b):.4g}), past the "
                "rule's range; use lrkit find"
            )
    moved = [f"{_one_minus(k, b):.6g}" for b in defaults.values()]
    shown = f"({', '.join(moved)})" if len(moved) > 1 else moved[0]
    return f"{head} ({whose} {shown}, eps {1e-8 / math.sqrt(k):.3g})"


def _moved(where: str, k: float, name: str, beta: float) -> float:
    """``1 - k (1 - beta)``, or a ValueError when it is <= 0: the rule does not reach ``k``."""
    out = _one_minus(k, beta)
    if out <= 0.0:  # on the decimals as written: 10 x (1 - 0.9) is 1, not 0.9999999999999998
        raise ValueError(
            f"{where}: batch ratio k = {k:.6g} gives {name} = 1 - k(1 - {beta:g}) <= 0; the square-root "
            f"rule holds only for k < {1.0 / (1.0 - beta):.6g} with this {name}"
        )
    return out


def _one_minus(k: float, beta: float) -> float:
    """``1 - k (1 - beta)`` on the decimals as written, rounded once: 1 - 4 x (1 - 0.9) is 0.6."""
    one = Decimal(1)
    return float(one - Decimal(repr(float(k))) * (one - Decimal(repr(float(beta)))))
