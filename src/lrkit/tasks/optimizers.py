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
``beta_1``, ``beta_2``). A value must be of its default's kind: true or false for a flag (``nesterov``),
a number for a number (text, even ``'0.1'``, is refused, as a schedule spec refuses it), as many numbers
as the default holds for a tuple (``betas``).

On the command line an optimizer is a name, or a name with keyword arguments in a schedule spec's call
syntax (:func:`parse_optimizer`, never ``eval``): ``adamw(weight_decay=0.1, betas=(0.9, 0.99))``.

:func:`train_mode` / :func:`eval_mode` call ``optimizer.train()`` / ``optimizer.eval()`` when the
optimizer has them (Schedule-Free keeps two weight sequences and must be told which one to use).
"""

from __future__ import annotations

import importlib
import inspect
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._checks import plain_number
from .._text import did_you_mean
from ..spec import _NAME, SpecError, _Parser, _show, _unquote

if TYPE_CHECKING:
    import torch

__all__ = [
    "DEFAULT_LR",
    "OPTIMIZERS",
    "check_optimizer",
    "eval_mode",
    "format_optimizer",
    "make_optimizer",
    "parse_optimizer",
    "train_mode",
]


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

    def default_values(self) -> dict[str, Any]:
        """Each hyper-parameter's default as built here: the name's own setting (``momentum``'s 0.9), else
        the class's default; those without a default are left out."""
        args = inspect.signature(self.target()).parameters
        named = self.hyper_parameters() or [n for n in args if n not in ("self", "params", "lr")]
        empty = inspect.Parameter.empty
        out = {n: args[n].default for n in named if n in args and args[n].default is not empty}
        return {**out, **self.defaults}


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


def check_params(
    params: Mapping[str, Any] | None, what: str = "optimizer_params", optimizer: str | None = None
) -> dict[str, Any]:
    """Optimizer hyper-parameters: a mapping of names to finite numbers, booleans or lists of numbers
    (lists as tuples). Text is refused, a quoted number too (lrkit reads YAML by YAML 1.2's rules, so
    ``3e-4`` unquoted is a number, as in a schedule spec). Given the ``optimizer`` (a name of
    :data:`OPTIMIZERS` whose class imports), a name the class does not take is refused naming the close
    one, and each value must be of its default's kind (:func:`_check_kind`)."""
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
    factory = OPTIMIZERS.get(optimizer) if isinstance(optimizer, str) else None
    if factory is None or not out:
        return out
    try:
        known, defaults = factory.hyper_parameters(), factory.default_values()
    except ImportError:  # schedulefree or prodigyopt missing: building it says so
        return out
    if known is not None and (unknown := [k for k in out if k not in known]):
        raise ValueError(
            f"optimizer {optimizer!r} ({factory.module}.{factory.cls}) has no hyper-parameter "
            + ", ".join(_unknown(k, known) for k in unknown)
            + f"; it takes {', '.join(known)}"
        )
    for key, value in out.items():
        if key in defaults:
            _check_kind(value, defaults[key], f"{what}.{key}")
    return out


def _check_kind(value: Any, default: Any, what: str) -> None:
    """``value`` (checked by :func:`_number`) is of ``default``'s kind: a bool for a bool, a number (not a
    bool) for a number, a tuple of as many numbers for a tuple or list of numbers; a default of another
    kind (None: torch picks) takes any. None (``foreach=none``) is taken only where the default is None."""
    shown = f"(its default is {_literal(default)})"
    if value is None and default is not None:
        raise ValueError(f"{what} must not be none {shown}; none is for a setting whose default is none")
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{what} must be true or false {shown}, got {_literal(value)}")
    elif isinstance(default, (int, float)):
        if isinstance(value, (bool, tuple)):
            raise ValueError(f"{what} must be a number {shown}, got {_literal(value)}")
    elif isinstance(default, (tuple, list)) and all(
        isinstance(d, (int, float)) and not isinstance(d, bool) for d in default
    ):
        ok = isinstance(value, tuple) and len(value) == len(default)
        if not ok or any(isinstance(v, (bool, tuple)) for v in value):
            raise ValueError(f"{what} must be {len(default)} numbers {shown}, got {_literal(value)}")


def _number(value: Any, what: str) -> Any:
    """A hyper-parameter's value as Python's bool, int or float (numpy's numbers and 0-d arrays or
    tensors as the Python number they hold: :mod:`lrkit._checks`), a list or tuple of them as a tuple;
    None as it is (taken where the default is None, ``foreach``: :func:`_check_kind`), not in a tuple."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        if any(v is None for v in value):
            raise ValueError(f"{what} must hold numbers, got {_literal(tuple(value))}")
        return tuple(_number(v, what) for v in value)
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            raise ValueError(f"{what} must be a number, got the text {value!r}") from None
        raise ValueError(
            f"{what} must be a number, got the text {value!r}: write it unquoted (quoted, it is text; "
            "yaml.safe_load also reads 1e-3 as text under YAML 1.1: write 1.0e-3, or read the file with "
            "lrkit's experiment loader, which reads 1e-3 as a number)"
        )
    x = plain_number(value)
    if not isinstance(x, (int, float)) or not math.isfinite(x):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return x


def make_optimizer(
    name: str, params: Iterable[Any], lr: float, hyper_parameters: Mapping[str, Any] | None = None
) -> torch.optim.Optimizer:
    """A new optimizer ``name`` (see :data:`OPTIMIZERS`) over ``params`` at ``lr``."""
    check_optimizer_name(name)
    kw = check_params(hyper_parameters, optimizer=name)
    factory = OPTIMIZERS[name]
    try:
        return factory(params, lr, **kw)
    except TypeError as exc:  # a value of the wrong kind
        raise ValueError(f"optimizer {name!r}: {exc}") from None


#: optimizer flags that hold for the model's device, not for CPU stand-ins: an optimizer with one of them
#: set is built but not stepped on stand-ins whose device is not the model's
_DEVICE_FLAGS = ("capturable", "fused")


def step_once(optimizer: Any, on_device: bool = False) -> None:
    """One ``step()`` of ``optimizer`` (built on stand-in tensors) with zero gradients: a value torch takes
    at construction but not in a step (Adam's ``betas: [0.9, 0.99, 0.5]``) fails here, when a command or
    the lab is set up, not at the first step of its first run. ``on_device``: the stand-ins are on the
    model's device, so ``capturable`` and ``fused`` are stepped too (else they are only built).
    ``differentiable=True`` is refused: its step is for a graph through the update, and a training
    step's in-place update of the parameters fails under it."""
    import torch

    if any(group.get("differentiable") for group in optimizer.param_groups):
        raise ValueError(
            "differentiable must be false for training (got true): it is for differentiating through the "
            "optimizer's step, and lrkit's training step updates the parameters in place, which torch "
            "refuses under it"
        )
    if not on_device and any(group.get(flag) for group in optimizer.param_groups for flag in _DEVICE_FLAGS):
        return  # a setting for the model's device (capturable on CUDA): no step on CPU stand-ins
    for group in optimizer.param_groups:
        for p in group["params"]:
            p.grad = torch.zeros_like(p)
    if callable(getattr(optimizer, "train", None)):  # Schedule-Free steps in train mode only
        optimizer.train()
    optimizer.step()


def check_optimizer(
    name: str,
    params: Mapping[str, Any] | None = None,
    what: str = "optimizer_params",
    device: Any = None,
) -> dict[str, Any]:
    """``params`` checked for optimizer ``name`` as the lab checks a strategy's: :func:`check_params`
    (``what`` names them), then the optimizer built over a stand-in parameter and stepped once
    (:func:`step_once`), so that torch's own refusal (``weight_decay=-1``) comes now, a ValueError.
    ``device``: the model's (its parameters'); the stand-in lies there and settings for a device are
    stepped too (``capturable=True`` is refused for a model on the CPU). None: a CPU stand-in, on which
    ``capturable`` and ``fused`` are only built."""
    import torch

    kw = check_params(params, what, optimizer=check_optimizer_name(name))
    try:
        stand_in = torch.nn.Parameter(torch.zeros(1, device=device))
        step_once(make_optimizer(name, [stand_in], 1e-3, kw), on_device=device is not None)
    except (TypeError, IndexError) as exc:
        raise ValueError(f"optimizer {name!r}: {exc}") from None
    except (AssertionError, RuntimeError) as exc:  # torch's refusal in a step (on the device)
        on = "" if device is None else f" on the model's device ({device})"
        raise ValueError(f"optimizer {format_optimizer(name, kw)!r} fails a step{on}: {exc}") from None
    return kw


# -- the command line's form: NAME or NAME(KEY=VALUE, ...) --------------------------------------------
_FORM = "NAME or NAME(KEY=VALUE, ...) such as 'adamw(weight_decay=0.1, betas=(0.9, 0.99))'"


def parse_optimizer(text: str) -> tuple[str, dict[str, Any]]:
    """``'adamw'`` -> ``('adamw', {})``; ``'adamw(weight_decay=0.1, betas=(0.9, 0.99))'`` -> ``('adamw',
    {'weight_decay': 0.1, 'betas': (0.9, 0.99)})``. Read by the schedule specs' parser
    (:mod:`lrkit.spec`; never ``eval``): keyword arguments only, each a literal (a number, ``true`` or
    ``false``, a tuple or list of them). Only the form is checked here (a ValueError saying where it
    breaks); the name and the values by :func:`check_optimizer`. Inverse of :func:`format_optimizer`."""
    if not isinstance(text, str):
        raise ValueError(f"expected {_FORM}, got {type(text).__name__} {text!r}")
    try:
        return _CallParser(text).optimizer()
    except SpecError as exc:
        raise ValueError(str(exc)) from None
    except RecursionError:
        raise ValueError(f"nested too deeply: {text[:40]!r}...") from None


def format_optimizer(name: str, params: Mapping[str, Any] | None = None) -> str:
    """The command line's form of optimizer ``name`` with ``params``: ``adamw(weight_decay=0.1)``, or the
    name alone; :func:`parse_optimizer` reads it back."""
    if not params:
        return name
    return f"{name}({', '.join(f'{k}={_literal(v)}' for k, v in params.items())})"


def _literal(value: Any) -> str:
    """``value`` as the call syntax writes it: ``true``, ``0.1``, ``(0.9, 0.999)``, ``(0.5,)``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, (tuple, list)):
        inner = ", ".join(_literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, str):
        return repr(value)
    return repr(plain_number(value))


class _CallParser(_Parser):
    """:mod:`lrkit.spec`'s tokens and literals, read as ``NAME[(KEY=VALUE, ...)]``."""

    def optimizer(self) -> tuple[str, dict[str, Any]]:
        kind, name, pos = self.peek()
        if kind != "atom" or not _NAME.match(name):
            self.fail(pos, f"expected {_FORM}, got {_show(self.peek())}")
        self.i += 1
        params: dict[str, Any] = {}
        if self.peek()[0] != "end":
            self.take("(", f"'(' or the end after {name!r}")
            while not self.at(")"):
                self.keyword(name, params)
                if self.at(","):
                    self.i += 1
                elif not self.at(")"):
                    self.fail(self.peek()[2], f"expected ',' or ')' in {name}(...), got {_show(self.peek())}")
            self.i += 1
            if self.peek()[0] != "end":
                self.fail(self.peek()[2], f"expected the end after {name}(...), got {_show(self.peek())}")
        return name, params

    def at(self, punct: str) -> bool:
        return self.peek()[1] == punct and self.peek()[0] == "punct"

    def keyword(self, name: str, params: dict[str, Any]) -> None:
        """One ``KEY=VALUE`` of ``name(...)`` into ``params``."""
        tok = self.peek()
        nxt = self.toks[self.i + 1] if self.i + 1 < len(self.toks) else ("end", "", len(self.text))
        if tok[0] == "end":
            self.fail(tok[2], f"expected KEY=VALUE or ')' to close {name}(...), got the end")
        if not (tok[0] == "atom" and _NAME.match(tok[1]) and nxt[1] == "=" and nxt[0] == "punct"):
            self.fail(tok[2], f"{name}: expected KEY=VALUE (keyword arguments only), got {_show(tok)}")
        if tok[1] in params:
            self.fail(tok[2], f"{name}: {tok[1]!r} given twice")
        self.i += 2
        if self.peek()[0] == "end":
            self.fail(self.peek()[2], f"expected a value for {name}'s {tok[1]!r}, got the end")
        params[tok[1]] = self.value()

    def value(self) -> Any:
        kind, text, pos = self.peek()
        literal = "a literal (a number, true, false, or a tuple of them)"
        if kind == "punct" and text in "([":
            items, comma = self.items(")" if text == "(" else "]")
            return items[0] if text == "(" and len(items) == 1 and not comma else items  # (v) is v
        if kind == "str":
            self.i += 1
            return _unquote(text)  # text: refused by check_params, naming the parameter
        if kind == "atom":
            nxt = self.toks[self.i + 1] if self.i + 1 < len(self.toks) else ("end", "", 0)
            if nxt[1] == "(" and nxt[0] == "punct":
                self.fail(pos, f"expected {literal}, got the call {text}(...)")
            v = self.number(text, pos)
            if isinstance(v, str) and re.fullmatch(r"[+-]?(nan|inf|infinity)", text, re.IGNORECASE):
                self.fail(pos, f"expected a finite number, got {text!r}")
            if isinstance(v, str):
                self.fail(pos, f"expected {literal}, got {text!r}")
            self.i += 1
            return v
        self.fail(pos, f"expected {literal}, got {_show(self.peek())}")


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
