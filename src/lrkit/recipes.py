"""Named recipes from the literature, each a function that returns a schedule.

>>> s = resnet_imagenet(batch=1024).resolve(steps_per_epoch=1251)  # 0.1 x 4, warmup 5 epochs from 0.1
>>> s(0), round(s(5 * 1251), 6), round(s(30 * 1251), 6)
(0.1, 0.4, 0.04)
>>> print(bert_finetune())
warmup(steps=10%, start=0.0) >> linear(lr=5e-05)
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from ._checks import check_int
from .scaling import WARMUP_EPOCHS
from .schedules import (
    WSD,
    Cosine,
    CosineRestarts,
    InverseSqrt,
    Linear,
    MultiStep,
    OneCycle,
    Schedule,
    Warmup,
    epochs,
)
from .schedules.base import check_number
from .schedules.duration import Duration, DurationLike

__all__ = [
    "RECIPES",
    "Recipe",
    "bert_finetune",
    "fastai_one_cycle",
    "get_recipe",
    "gpt_cosine",
    "llm_wsd",
    "resnet_imagenet",
    "sgdr_cifar",
    "transformer_noam",
]


def _decimal(x: float) -> Decimal:
    return Decimal(repr(float(x)))


def _times(a: float, *factors: float, per: float = 1.0) -> float:
    """``a * factors... / per`` computed on the decimals as written, then rounded once to a float, so
    that ``6e-4 * 0.1`` is 6e-05 (not 5.9999999999999995e-05) and prints as people write it."""
    out = _decimal(a)
    for f in factors:
        out *= _decimal(f)
    return float(out / _decimal(per))


def resnet_imagenet(
    batch: int = 256, warmup: DurationLike | None = None, milestones: tuple[int, ...] = (30, 60, 90)
) -> Schedule:
    """ResNet on ImageNet (He et al. 2016; Goyal et al. 2017): SGD+momentum 0.9, lr 0.1 per 256 images
    (the linear rule), x0.1 at epochs 30, 60 and 90 (``milestones``, in epochs: the common recipe, for
    runs of up to ~120 epochs; Goyal et al.'s 90-epoch run cuts at 30, 60 and 80, ``milestones=(30, 60,
    80)``, since a cut at 90 never acts there). ``batch`` is the effective batch: per device x
    accumulation steps x devices.

    ``warmup=None`` (the default) is Goyal et al.'s: above batch 256, linear from 0.1 over the first 5
    epochs (section 5.3, used for every batch > 256); none at 256 and below. ``warmup=0`` is no warmup. A
    length of your own (``"5ep"``, steps) always ramps linearly up to the scaled lr: from 0.1 above batch
    256 (as Goyal et al.), else as lrkit's default warmup, from near 0 (``(t + 1) / (n + 1)``). The paper's
    rule as written, where :func:`lrkit.scaling.scale_lr` advises the warmup only from 2x the base (batch
    257 to 511: a warmup here, none there); their raised batches, 512 and up, get it from both."""
    check_int(batch, "batch", 1, where="resnet_imagenet: ", why=" (the effective batch)")
    if isinstance(milestones, (str, bytes)) or not isinstance(milestones, (tuple, list)) or not milestones:
        raise TypeError(
            f"resnet_imagenet: milestones must be a non-empty tuple of epochs, got {milestones!r}"
        )
    for m in milestones:
        check_number("resnet_imagenet", "milestones", m, low=1)
        if not isinstance(m, numbers.Integral):
            raise ValueError(f"resnet_imagenet: milestones must be whole epochs, got {milestones!r}")
    body = MultiStep(
        lr=_times(0.1, batch, per=256), milestones=[epochs(int(m)) for m in milestones], gamma=0.1
    )
    if warmup is None:
        warmup = epochs(WARMUP_EPOCHS) if batch > 256 else 0
    if _zero(warmup, "resnet_imagenet"):
        return body
    # Goyal et al.'s gradual warmup: from 0.1 up to the scaled lr, on the same clock as the milestones;
    # at 256 and below 0.1 is not below the peak, so the ramp is lrkit's default one
    return body * Warmup(steps=warmup, start=256 / batch if batch > 256 else None)


def _zero(warmup: DurationLike, where: str) -> bool:
    """True for a warmup of length 0 in any unit (``0``, ``"0%"``, ``"0ep"``): no warmup piece, as
    transformers' ``num_warmup_steps=0``."""
    d = Duration.parse(warmup, name=f"{where}: warmup")
    return d.unit != "rest" and d.value == 0


def bert_finetune(lr: float = 5e-5, warmup: DurationLike | None = "10%") -> Schedule:
    """BERT fine-tuning (Devlin et al. 2019; transformers' ``get_linear_schedule_with_warmup``): linear
    warmup from 0 over the first 10% of steps (rounded up, as transformers) to ``lr`` (the paper's grid:
    5e-5, 3e-5, 2e-5; the 10% is BERT's ``warmup_proportion``), then linear decay to 0. As in
    transformers, step 0 has lr 0; ``warmup=0`` (or None) is no warmup (``num_warmup_steps=0``)."""
    check_number("bert_finetune", "lr", lr, low=0, low_open=True)
    decay = Linear(lr=lr, end_lr=0.0)
    return (
        decay
        if warmup is None or _zero(warmup, "bert_finetune")
        else Warmup(steps=warmup, start=0.0) >> decay
    )


def transformer_noam(d_model: int = 512, warmup: int = 4000) -> Schedule:
    """The Transformer schedule (Vaswani et al. 2017; tensor2tensor's ``noam``): ``d_model**-0.5 *
    min(n**-0.5, n * warmup**-1.5)`` with Adam(0.9, 0.98, eps=1e-9), where ``n = step + 1`` is the
    paper's 1-based step number: the first update (lrkit's step 0) already has ``d_model**-0.5 *
    warmup**-1.5``, the peak ``(d_model * warmup)**-0.5`` comes at step ``warmup - 1``, then
    ``1/sqrt(n)``. It is lrkit's default warmup, ``(t + 1) / (warmup - 1 + 1)``, then inverse_sqrt."""
    for name, v in (("d_model", d_model), ("warmup", warmup)):
        check_number("transformer_noam", name, v, low=1)
        if not isinstance(v, numbers.Integral):
            raise ValueError(f"transformer_noam: {name} must be a whole number, got {v!r}")
    peak = (int(d_model) * int(warmup)) ** -0.5
    decay = InverseSqrt(lr=peak, timescale=int(warmup))
    return decay if warmup == 1 else Warmup(steps=int(warmup) - 1) >> decay


def gpt_cosine(lr: float = 6e-4, warmup: DurationLike | None = "1%", final_fraction: float = 0.1) -> Schedule:
    """GPT-3 / LLaMA pre-training (Brown et al. 2020; Touvron et al. 2023): linear warmup, then cosine
    decay to 10% of the peak over the rest of the run; ``warmup=0`` (or None) is no warmup."""
    check_number("gpt_cosine", "lr", lr, low=0, low_open=True)
    check_number("gpt_cosine", "final_fraction", final_fraction, low=0, high=1)
    decay = Cosine(lr=lr, min_lr=_times(lr, final_fraction))
    return decay if warmup is None or _zero(warmup, "gpt_cosine") else Warmup(steps=warmup) >> decay


def llm_wsd(lr: float = 3e-4, warmup: DurationLike = "1%", decay: DurationLike = "20%") -> Schedule:
    """Warmup-stable-decay (Hu et al. 2024, MiniCPM; Hägele et al. 2024): constant after warmup, then a
    1-sqrt cool-down to 0 over the last 20%: matches cosine at a fraction of the cost of re-runs."""
    return WSD(lr=lr, warmup=warmup, decay=decay, cooldown="1-sqrt")


def fastai_one_cycle(max_lr: float = 1e-3) -> Schedule:
    """fastai's ``fit_one_cycle`` (Smith 2018; Howard & Gugger 2020): cosine up for 25% of the run from
    max_lr/25 (``div=25``), then cosine down to max_lr/1e5 (``div_final=1e5`` divides max_lr itself:
    torch's ``final_div_factor`` divides the start, hence 1e5/25). On torch's OneCycleLR clock: the
    peak is at step 0.25n - 1 and the end at n - 1, one step before fastai's ``pct = step / n``."""
    return OneCycle(max_lr=max_lr, pct_start=0.25, div_factor=25.0, final_div_factor=4e3)


def sgdr_cifar(lr: float = 0.05, period: DurationLike = "10ep", mult: float = 2.0) -> Schedule:
    """SGDR on CIFAR (Loshchilov & Hutter 2017): cosine with warm restarts, T_0 = 10 epochs, T_mult = 2."""
    return CosineRestarts(lr=lr, period=period, mult=mult)


@dataclass(frozen=True)
class Recipe:
    """A named recipe: its builder and a one-line ``template`` naming its parameters in braces
    (``x0.1 at epochs {milestones}``), filled in by :meth:`describe`."""

    name: str
    build: Callable[..., Schedule]
    template: str
    #: the description when ``warmup`` is none (0 in any unit, or None), where the recipe allows it
    bare: str = ""

    @property
    def summary(self) -> str:
        """The one-line description with the defaults."""
        return self.describe()

    def describe(self, **params: object) -> str:
        """The one-line description with ``params`` in place of the defaults (a tuple as ``30/60/90``)."""

        def show(v: object) -> str:
            if isinstance(v, (tuple, list)):
                return "/".join(show(x) for x in v)
            return f"{v:g}" if isinstance(v, float) else str(v)

        values = {**self.parameters(), **params}
        warmup = values.get("warmup", "")
        template = self.template
        if self.bare and (warmup is None or _zero(warmup, self.name)):  # type: ignore[arg-type]
            template = self.bare
        return template.format(**{k: show(v) for k, v in values.items()})

    def parameters(self) -> dict[str, object]:
        """The builder's parameters and their defaults (``{"batch": 256, ...}``)."""
        return {n: p.default for n, p in inspect.signature(self.build).parameters.items()}

    def __call__(self, **params: object) -> Schedule:
        """The recipe with ``params`` in place of the defaults; an unknown name is a ValueError listing
        the recipe's parameters."""
        known = self.parameters()
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise ValueError(
                f"recipe {self.name}: unknown parameter(s) {', '.join(unknown)}; it takes "
                + ", ".join(f"{n} (default {d!r})" for n, d in known.items())
            )
        return self.build(**params)

    @property
    def reference(self) -> str:
        """The references in the first parentheses of the builder's docstring, as plain text."""
        doc = self.build.__doc__ or ""
        return doc.split("(", 1)[1].split(")", 1)[0].replace("``", "") if "(" in doc else ""


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe("resnet_imagenet", resnet_imagenet, "SGD 0.1 per 256, x0.1 at epochs {milestones}"),
        Recipe(
            "bert_finetune",
            bert_finetune,
            "warmup over the first {warmup} to {lr}, then linear decay to 0",
            "no warmup: linear decay from {lr} to 0",
        ),
        Recipe("transformer_noam", transformer_noam, "warmup {warmup} steps, then 1/sqrt(step), 1-based"),
        Recipe(
            "gpt_cosine",
            gpt_cosine,
            "warmup over {warmup} to {lr}, then cosine to {final_fraction} x the peak",
            "no warmup: cosine from {lr} to {final_fraction} x the peak",
        ),
        Recipe(
            "llm_wsd", llm_wsd, "warmup-stable-decay to {lr} with a 1-sqrt cool-down over the last {decay}"
        ),
        Recipe("fastai_one_cycle", fastai_one_cycle, "one-cycle to {max_lr} with fastai's defaults"),
        Recipe(
            "sgdr_cifar",
            sgdr_cifar,
            "cosine with warm restarts from {lr}, the first period {period}, each next x{mult}",
        ),
    )
}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"recipe: unknown recipe {name!r}; known: {', '.join(RECIPES)}")
    return RECIPES[name]
