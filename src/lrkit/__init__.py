"""lrkit: learning-rate schedules in closed form, an LR finder you can trust, and a lab.

A schedule is an immutable function of the step::

    >>> import lrkit
    >>> s = lrkit.parse("warmup(steps=100) >> cosine(lr=0.1, steps=900)")
    >>> round(s(100), 6), round(s(550), 6), s(10**9)
    (0.1, 0.05, 0.0)

``import lrkit`` needs numpy alone; the framework adapters (``lrkit.torch``, ``lrkit.keras``,
``lrkit.optax``) and the finder's PyTorch driver import their framework only when used.
"""

from __future__ import annotations

import importlib
from typing import Any

from .schedules import (
    REGISTRY,
    REST,
    WSD,
    Chain,
    Clamp,
    Constant,
    Cosine,
    CosineRestarts,
    Cyclic,
    Duration,
    ExpDecay,
    Exponential,
    InverseSqrt,
    InverseTime,
    Linear,
    MultiStep,
    OneCycle,
    Piecewise,
    Polynomial,
    Product,
    Repeat,
    Scale,
    Schedule,
    StepDecay,
    Warmup,
    chain,
    epochs,
    fraction,
    steps,
    with_warmup,
)
from .spec import SpecError, dumps, from_dict, load, loads, parse, to_dict, to_string

__version__ = "0.1.0"

# lower-case spellings, as in specs: lrkit.cosine(lr=0.1) is lrkit.Cosine(lr=0.1)
constant = Constant
step_decay = StepDecay
multistep = MultiStep
exponential = Exponential
exp_decay = ExpDecay
inverse_time = InverseTime
inverse_sqrt = InverseSqrt
polynomial = Polynomial
linear = Linear
cosine = Cosine
cosine_restarts = CosineRestarts
cyclic = Cyclic
one_cycle = OneCycle
warmup = Warmup
wsd = WSD
piecewise = Piecewise

# framework adapters and heavier parts, imported on first use
_LAZY = {
    "torch": "lrkit.adapters.torch",
    "keras": "lrkit.adapters.keras",
    "optax": "lrkit.adapters.optax",
    "transformers": "lrkit.adapters.transformers",
    "timm": "lrkit.adapters.timm",
    "control": "lrkit.control",
    "finder": "lrkit.finder",
    "lab": "lrkit.lab",
    "recipes": "lrkit.recipes",
    "scaling": "lrkit.scaling",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        try:
            return importlib.import_module(_LAZY[name])
        except ModuleNotFoundError as exc:
            if exc.name != _LAZY[name]:
                raise
            raise AttributeError(f"module 'lrkit' has no attribute {name!r} ({exc})") from None
    if name == "find_lr":
        return importlib.import_module("lrkit.finder").find_lr
    if name == "auto":
        return importlib.import_module("lrkit.auto").auto
    raise AttributeError(f"module 'lrkit' has no attribute {name!r}")


__all__ = [
    "REGISTRY",
    "REST",
    "WSD",
    "Chain",
    "Clamp",
    "Constant",
    "Cosine",
    "CosineRestarts",
    "Cyclic",
    "Duration",
    "ExpDecay",
    "Exponential",
    "InverseSqrt",
    "InverseTime",
    "Linear",
    "MultiStep",
    "OneCycle",
    "Piecewise",
    "Polynomial",
    "Product",
    "Repeat",
    "Scale",
    "Schedule",
    "SpecError",
    "StepDecay",
    "Warmup",
    "__version__",
    "chain",
    "constant",
    "cosine",
    "cosine_restarts",
    "cyclic",
    "dumps",
    "epochs",
    "exp_decay",
    "exponential",
    "fraction",
    "from_dict",
    "inverse_sqrt",
    "inverse_time",
    "linear",
    "load",
    "loads",
    "multistep",
    "one_cycle",
    "parse",
    "piecewise",
    "polynomial",
    "step_decay",
    "steps",
    "to_dict",
    "to_string",
    "warmup",
    "with_warmup",
    "wsd",
]
