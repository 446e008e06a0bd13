"""Optimizers by name, for the lab, tuning and the finder's built-in tasks.

=========================  =================================================================
name                       optimizer (``lr`` from the schedule; ``params`` override defaults)
=========================  =================================================================
``sgd``                    ``torch.optim.SGD`` (no momentum)
``momentum``               ``torch.optim.SGD(momentum=0.9)``
``nesterov``               ``torch.optim.SGD(momentum=0.9, nesterov=True)``
``adagrad``                ``torch.optim.Adagrad``: ``lr_decay=0``, ``initial_accumulator_value=0``,
                           ``eps=1e-10`` (Keras: accumulator 0.1, eps 1e-7 under the root)
``rmsprop``                ``torch.optim.RMSprop``: ``alpha=0.99``, ``eps=1e-8`` (Keras, TensorFlow and
                           Tieleman & Hinton's lecture: ``rho=0.9``; pass ``{"alpha": 0.9}``)
``adam``                   ``torch.optim.Adam``: ``betas=(0.9, 0.999)``, ``eps=1e-8`` (Keras: 1e-7)
``adamw``                  ``torch.optim.AdamW``: as Adam, ``weight_decay=0.01`` (torch's default;
                           Keras' is 0.004), decoupled: ``w -= lr * weight_decay * w`` each step
``nadam``                  ``torch.optim.NAdam`` (Adam with Nesterov momentum; Dozat 2016)
``radam``                  ``torch.optim.RAdam`` (Adam with a rectified variance; Liu et al. 2020)
``adamax``                 ``torch.optim.Adamax`` (Adam's infinity-norm variant; Kingma & Ba 2015)
``schedulefree_adamw``     ``schedulefree.AdamWScheduleFree`` (Defazio et al. 2024): needs
                           ``optimizer.train()`` / ``optimizer.eval()`` around evaluation;
                           untuned default lr 0.0025
``prodigy``                ``prodigyopt.Prodigy`` (Mishchenko & Defazio 2023): learning-rate-free,
                           the schedule multiplies its estimate, so ``lr=1.0`` is its default
=========================  =================================================================

Every other setting is the library's default. ``lr`` is the schedule's, so it is not a hyper-parameter
here (``params`` and ``lr`` in ``hyper_parameters`` are refused by name), and a name the class does not
take is refused with the list of those it does (and torch's name for Keras' ``rho``, ``epsilon``,
``beta_1``, ``beta_2``).

:func:`train_mode` / :func:`eval_mode` call ``optimizer.train()`` / ``optimizer.eval()`` when the
optimizer has them (Schedule-Free keeps two weight sequences and must be told which one to use).
"""

from __future__ import annotations

import importlib
import inspect
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._checks import plain_number
from .._text import did_you_mean

if TYPE_CHECKING:
    import torch

__all__ = ["DEFAULT_LR", "OPTIMIZERS", "eval_mode", "make_optimizer", "train_mode"]


@dataclass(frozen=True, eq=False)
class _Factory:
    """``module.cls(params, lr=lr, **defaults, **hyper_parameters)``; the module is imported when used."""

    module: str
    cls: str
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def target(self) -> Any:
        return getattr(importlib.import_module(self.module), self.cls)

    def __call__(self, params: Iterable[Any], lr: float, **kw: Any) -> torch.optim.Optimizer:
        return self.target()(params, lr=lr, **{**self.defaults, **kw})  # type: ignore[no-any-return]

    def hyper_parameters(self) -> list[str] | None:
        """The class's keyword arguments but ``params`` and ``lr`` (None: it takes any, ``**kwargs``)."""
        args = inspect.signature(self.target()).parameters.values()
        if any(a.kind is inspect.Parameter.VAR_KEYWORD for a in args):
            return None
        named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        return [a.name for a in args if a.kind in named and a.name not in ("self", "params", "lr")]


#: name -> factory(params, lr, **hyper_parameters)
OPTIMIZERS: dict[str, _Factory] = {
    "sgd": _Factory("torch.optim", "SGD"),
    "momentum": _Factory("torch.optim", "SGD", {"momentum": 0.9}),
    "nesterov": _Factory("torch.optim", "SGD", {"momentum": 0.9, "nesterov": True}),
    "adagrad": _Factory("torch.optim", "Adagrad"),
    "rmsprop": _Factory("torch.optim", "RMSprop"),
    "adam": _Factory("torch.optim", "Adam"),
    "adamw": _Factory("torch.optim", "AdamW", {"weight_decay": 0.01}),
    "nadam": _Factory("torch.optim", "NAdam"),
    "radam": _Factory("torch.optim", "RAdam"),
    "adamax": _Factory("torch.optim", "Adamax"),
    "schedulefree_adamw": _Factory("schedulefree", "AdamWScheduleFree"),
    "prodigy": _Factory("prodigyopt", "Prodigy"),
}

#: the LR each optimizer is usually run at untuned: its library's default, except RMSprop's 1e-3 (Keras'
#: and TensorFlow's default; torch's 1e-2 is the outlier) and SGD's, which has no meaningful default
#: (torch's 1e-3 is a placeholder): 0.1 plain, 0.01 with momentum 0.9 (the same step, lr / (1 - 0.9))
DEFAULT_LR: dict[str, float] = {
    "sgd": 0.1,
    "momentum": 0.01,
    "nesterov": 0.01,
    "adagrad": 0.01,
    "rmsprop": 0.001,
    "adam": 0.001,
    "adamw": 0.001,
    "nadam": 0.002,
    "radam": 0.001,
    "adamax": 0.002,
    "schedulefree_adamw": 0.0025,
    "prodigy": 1.0,
}


def check_optimizer_name(name: object, what: str = "optimizer") -> str:
    """``name`` if it names an optimizer in :data:`OPTIMIZERS`, else a ValueError listing them (and the
    closest name, for a differently spelled one: ``'AdamW'`` -> ``'adamw'``)."""
    if not isinstance(name, str) or name not in OPTIMIZERS:
        hint = ""
        if isinstance(name, str):
            key = name.strip().lower().replace("-", "_")
            hint = did_you_mean(key, OPTIMIZERS)  # an exact match is the closest: 'AdamW' -> 'adamw'
        raise ValueError(f"{what} must be one of {', '.join(OPTIMIZERS)}, got {name!r}{hint}")
    return name


#: arguments of every factory, refused in hyper-parameters (Python would say "got multiple values")
_NOT_HYPER_PARAMETERS = {
    "lr": "the schedule sets the learning rate (constant(3e-4), cosine(lr=3e-4), ...)",
    "params": "the optimizer is built over the model's parameters",
}


def check_params(params: Mapping[str, Any] | None, what: str = "optimizer_params") -> dict[str, Any]:
    """Optimizer hyper-parameters: a mapping of names to finite numbers, booleans or lists of numbers.

    Numeric strings (YAML 1.1 reads ``3e-4`` as a string) are converted to floats.
    """
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise TypeError(f"{what} must be a mapping of names to numbers, got {type(params).__name__}")
    out: dict[str, Any] = {}
    for key, value in params.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise ValueError(f"{what}: keys must be identifiers, got {key!r}")
        if key in _NOT_HYPER_PARAMETERS:
            raise ValueError(f"{what}: {key!r} is not a hyper-parameter here: {_NOT_HYPER_PARAMETERS[key]}")
        out[key] = _number(value, f"{what}.{key}")
    return out


def _number(value: Any, what: str) -> Any:
    """A hyper-parameter's value as Python's bool, int or float (numpy's numbers and 0-d arrays or
    tensors as the Python number they hold: :mod:`lrkit._checks`), a list or tuple of them as a tuple."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (list, tuple)):
        return tuple(_number(v, what) for v in value)
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"{what} must be a number, got {value!r}") from None
    x = plain_number(value)
    if not isinstance(x, (int, float)) or not math.isfinite(x):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return x


def make_optimizer(
    name: str, params: Iterable[Any], lr: float, hyper_parameters: Mapping[str, Any] | None = None
) -> torch.optim.Optimizer:
    """A new optimizer ``name`` (see :data:`OPTIMIZERS`) over ``params`` at ``lr``."""
    check_optimizer_name(name)
    kw = check_params(hyper_parameters)
    factory = OPTIMIZERS[name]
    known = factory.hyper_parameters()
    if known is not None and (unknown := [k for k in kw if k not in known]):
        raise ValueError(
            f"optimizer {name!r} ({factory.module}.{factory.cls}) has no hyper-parameter "
            + ", ".join(_unknown(k, known) for k in unknown)
            + f"; it takes {', '.join(known)}"
        )
    try:
        return factory(params, lr, **kw)
    except TypeError as exc:  # a value of the wrong kind
        raise ValueError(f"optimizer {name!r}: {exc}") from None


#: Keras' names for torch's hyper-parameters (RMSprop's rho is torch's alpha)
_KERAS_NAMES = {"rho": "alpha", "epsilon": "eps", "beta_1": "betas", "beta_2": "betas"}


def _unknown(key: str, known: list[str]) -> str:
    """``key`` quoted, with the name it likely means: Keras' spelling or the closest known name."""
    if _KERAS_NAMES.get(key) in known:
        return f"{key!r} (Keras' name; torch's is {_KERAS_NAMES[key]!r})"
    return repr(key) + did_you_mean(key, known)


def train_mode(optimizer: Any) -> None:
    """``optimizer.train()`` where the optimizer has one (Schedule-Free), before training steps."""
    if callable(getattr(optimizer, "train", None)):
        optimizer.train()


def eval_mode(optimizer: Any) -> None:
    """``optimizer.eval()`` where the optimizer has one (Schedule-Free), before evaluation."""
    if callable(getattr(optimizer, "eval", None)):
        optimizer.eval()
