"""The closed-form schedule core: every schedule is an immutable function of the step."""

from .base import REGISTRY, Schedule, ScheduleLongerThanRunWarning, ScheduleShorterThanRunWarning
from .basic import (
    Constant,
    Cosine,
    ExpDecay,
    Exponential,
    InverseSqrt,
    InverseTime,
    Linear,
    MultiStep,
    Piecewise,
    Polynomial,
    StepDecay,
)
from .compose import Chain, Clamp, Product, Repeat, Scale, chain, with_warmup
from .cyclic import CosineRestarts, Cyclic, OneCycle
from .duration import REST, Duration, epochs, fraction, steps
from .warmup import WSD, Warmup

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
    "ScheduleLongerThanRunWarning",
    "ScheduleShorterThanRunWarning",
    "StepDecay",
    "Warmup",
    "chain",
    "epochs",
    "fraction",
    "steps",
    "with_warmup",
]
