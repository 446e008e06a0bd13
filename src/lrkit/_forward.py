"""One batch through a model: the rules shared by the LR finder (``find_lr``, ``lrkit.auto``) and tasks
(training, evaluation, ``Task.check``), so that every part of lrkit takes the same batches.

* ``(x, y, ...)`` tuple or list: ``loss_fn(model(x), y)``; the elements after ``y`` (sample weights, ids)
  are not used; a 1-tuple is treated as its tensor.
* tensor ``x``: ``loss_fn(model(x), x)`` (reconstruction: the target is the input); without ``loss_fn``,
  ``model(x)`` must return the loss.
* dict: with ``loss_fn``, the first of the keys :data:`TARGET_KEYS` is the target and the other entries
  are passed as keyword arguments: ``loss_fn(model(**rest), batch[key])``; without ``loss_fn``,
  ``model(**batch)`` must return the loss, a dict with ``"loss"`` or an object with ``.loss`` (Hugging
  Face style), and the target (for accuracy) is the batch's entry under the first of :data:`TARGET_KEYS`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = [
    "TARGET_KEYS",
    "BatchError",
    "BatchTypeError",
    "BatchValueError",
    "batch_size",
    "default_forward",
    "output_pick",
    "run_batch",
]

#: a dict batch's target: the first of these keys it holds (Hugging Face's ``labels`` first)
TARGET_KEYS = ("labels", "label", "targets", "target", "y")


class BatchError(Exception):
    """lrkit's refusal of a batch, or of the model's output on it (not an error raised in the user's code)."""


class BatchTypeError(BatchError, TypeError):
    """A batch or model output of a kind the rules do not take."""


class BatchValueError(BatchError, ValueError):
    """A batch or model output that lacks what the rules need (a target key, a loss)."""


def _fix(expr: str, task: bool) -> str:
    """How to compute a batch's loss otherwise: the finder's ``forward=``; a task, which has none, a model
    whose forward takes the batch as lrkit passes it."""
    if task:
        return (
            "wrap the model in a torch.nn.Module whose forward takes the batch as lrkit passes it and calls "
            "the model your way (a task has no forward=)"
        )
    return f"pass forward=lambda model, batch: {expr}"


def output_pick(out: Any) -> tuple[str, str, str]:
    """A model output that is not a tensor, for an error: (what it is, how a ``forward`` picks the loss's
    input out of it, e.g. ``[0]`` or ``['logits']``, and the words after the hint); the pick is ""
    when there is nothing to suggest."""
    import torch

    what = type(out).__name__
    if isinstance(out, (tuple, list)):
        return f"a {what} of {len(out)}", "[0]", " (or whichever output the loss takes)"
    if isinstance(out, Mapping):  # a dict, or a Hugging Face ModelOutput (an OrderedDict)
        keys = list(out)
        tensors = [k for k in keys if isinstance(out[k], torch.Tensor)]
        key = "logits" if "logits" in tensors else (tensors or [None])[0]
        return (
            f"a {what} with keys {keys}",
            "" if key is None else f"[{key!r}]",
            " (or whichever entry the loss takes)",
        )
    if isinstance(getattr(out, "logits", None), torch.Tensor):
        return what, ".logits", ""
    return what, "", ""


def _loss_of_output(
    loss_fn: Callable[..., torch.Tensor],
    out: Any,
    target: Any,
    call: str,
    exprs: tuple[str, str],
    task: bool,
) -> torch.Tensor:
    """``loss_fn(out, target)``, ``out`` the output of ``call`` (``model(x)``); ``exprs``: how a
    ``forward`` writes that output and the target (``model(batch[0])``, ``batch[1]``). When that raises
    TypeError on an output that is not a tensor (a model returning ``(logits, aux)`` or ``{"logits":
    ...}``), the error says so and how to pick the output (a loss_fn that takes such outputs is called
    as it is)."""
    import torch

    try:
        return loss_fn(out, target)
    except TypeError as e:
        if isinstance(out, torch.Tensor):
            raise
        what, pick, which = output_pick(out)
        if task:
            hint = (
                f"give loss_fn=lambda out, y: your_loss(out{pick}, y){which}"
                if pick
                else "give a loss_fn that takes the model's output"
            )
        elif pick:
            hint = f"pass forward=lambda model, batch: loss_fn({exprs[0]}{pick}, {exprs[1]}){which}"
        else:
            hint = "pass forward=lambda model, batch: loss"
        raise BatchTypeError(
            f"{call} returned {what}, not a tensor, and loss_fn(output, target) raised: {e}; {hint}"
        ) from e


def _call_with_inputs(model: torch.nn.Module, batch: Sequence[Any], task: bool) -> Any:
    """``model(batch[0])`` for a batch ``(x, y, ...)``; when the model's signature refuses that one
    argument (it takes several inputs), its TypeError gets a note on how to pass them."""
    try:
        return model(batch[0])
    except TypeError as e:
        try:
            inspect.signature(model.forward).bind(batch[0])
        except TypeError:  # the signature refuses it: not an error raised inside the model
            x = batch[0]
            if isinstance(x, (tuple, list)):
                hint = f"loss_fn(model(*batch[0]), batch[1]) (batch[0] is a {type(x).__name__} of {len(x)})"
            elif len(batch) > 2:
                hint = "loss_fn(model(*batch[:-1]), batch[-1]) for (x1, x2, ..., y) batches"
            else:
                hint = "loss (however your model takes the batch)"
            e.add_note(
                f"lrkit's default forward computed loss_fn(model(batch[0]), batch[1]) on a batch of "
                f"{len(batch)} (the elements after the first two are not used); if your model takes "
                f"several inputs, {_fix(hint, task)}"
            )
        except ValueError:  # no signature to read
            pass
        raise


def _call_with_keys(model: torch.nn.Module, inputs: dict[str, Any], task: bool) -> Any:
    """``model(**inputs)``; when the model's signature refuses them (an unexpected keyword, a missing
    positional argument), its TypeError gets a note on how to pass them."""
    try:
        return model(**inputs)
    except TypeError as e:
        if "keyword argument" in str(e) or "positional argument" in str(e):
            e.add_note(
                f"lrkit passed the dict batch's entries {sorted(inputs)} to the model as keyword "
                f"arguments; if your model takes them otherwise, {_fix('loss', task)}"
            )
        raise


def _own_loss(out: Any, keys: list[str], task: bool) -> Any:
    """The loss a model computed itself (``loss_fn=None``): ``out`` (a tensor), ``out["loss"]`` or
    ``out.loss``; else a clear error naming the batch's keys and what was expected."""
    import torch

    if isinstance(out, torch.Tensor):
        return out
    loss = out.get("loss") if isinstance(out, Mapping) else None
    if loss is None:  # a Hugging Face ModelOutput (a dict) leaves a None loss out of its keys
        loss = getattr(out, "loss", None)
    has = (isinstance(out, Mapping) and "loss" in out) or hasattr(out, "loss")
    if loss is None and has:  # a Hugging Face-style output without labels: loss None
        raise BatchValueError(
            f"model(**batch) returned a loss of None for a batch with keys {keys}: a Hugging Face-style "
            f"model computes its loss only when the batch holds its labels (one of {list(TARGET_KEYS)}, "
            f"as the model names them); add them to the batch, or give loss_fn"
            + ("" if task else " or forward")
        )
    if loss is None:
        what = f"a {type(out).__name__} with keys {list(out)}" if isinstance(out, Mapping) else _kind(out)
        raise BatchTypeError(
            f"loss_fn is None, so the model must compute the loss, but model(**batch) (batch keys {keys}) "
            f"returned {what}; expected the loss (a 1-element tensor), a dict with 'loss' or an object with "
            f".loss (a Hugging Face model given its labels); or give loss_fn, with the target under one of "
            f"{list(TARGET_KEYS)}" + ("" if task else ", or forward")
        )
    return loss


def _kind(obj: Any) -> str:
    return f"a {type(obj).__name__} of {len(obj)}" if isinstance(obj, (tuple, list)) else type(obj).__name__


def run_batch(
    model: torch.nn.Module,
    batch: Any,
    loss_fn: Callable[..., torch.Tensor] | None,
    *,
    loss: bool = True,
    task: bool = False,
) -> tuple[Any, Any, Any]:
    """``(output, target, loss)`` of one batch by the rules of this module: the model's output as it
    returned it, the target (None for a dict batch without one of :data:`TARGET_KEYS`, given to a model
    that computes its own loss) and the loss (None when ``loss`` is False: the output alone, for a
    metric). ``task``: the errors' advice is a task's (which has no ``forward=``)."""
    import torch

    if isinstance(batch, (tuple, list)):
        if len(batch) == 1:
            batch = batch[0]
        elif len(batch) >= 2:
            if task and len(batch) > 2:  # a task trains on it: weights left out would change the result
                raise BatchTypeError(
                    f"the batch is {_kind(batch)}; a task takes (input, target) pairs: the elements after "
                    "the target (sample weights, ids) would not be used. Yield (input, target) pairs (a "
                    "collate_fn that drops them), or fold the weights into the input and loss_fn"
                )
            if loss_fn is None:
                raise BatchTypeError(
                    f"loss_fn is None but the batch is {_kind(batch)} (x, y, ...); give loss_fn"
                    + ("" if task else " or forward")
                    + " (loss_fn=None is for a model that computes its own loss from a dict batch)"
                )
            out = _call_with_inputs(model, batch, task)
            value = (
                _loss_of_output(loss_fn, out, batch[1], "model(x)", ("model(batch[0])", "batch[1]"), task)
                if loss
                else None
            )
            return out, batch[1], value
        else:
            raise BatchValueError("the loader yielded an empty tuple as a batch; expected (input, target)")
    if isinstance(batch, torch.Tensor):
        out = model(batch)
        if loss_fn is None or not loss:
            return out, batch, out if loss else None
        return out, batch, _loss_of_output(loss_fn, out, batch, "model(x)", ("model(batch)", "batch"), task)
    if isinstance(batch, Mapping):  # a dict, or a Hugging Face BatchEncoding (a UserDict) from a collator
        batch = dict(batch)
        key = next((k for k in TARGET_KEYS if k in batch), None)
        target = None if key is None else batch[key]
        if loss_fn is None:
            out = _call_with_keys(model, batch, task)
            return out, target, _own_loss(out, sorted(batch), task) if loss else None
        if key is None:
            raise BatchValueError(
                f"a dict batch needs a target under one of {list(TARGET_KEYS)} when loss_fn is given, "
                f"got keys {sorted(batch)}; or give loss_fn=None for a model that computes its own loss"
                + ("" if task else ", or pass forward=...")
            )
        rest = {k: v for k, v in batch.items() if k != key}
        out = _call_with_keys(model, rest, task)
        if not loss:
            return out, target, None
        if not isinstance(out, torch.Tensor) and hasattr(out, "logits"):
            raise BatchTypeError(
                f"model(**batch) returned {type(out).__name__}, not a tensor, so loss_fn cannot take it; for "
                f"a Hugging Face-style model give no loss_fn (loss_fn=None: its .loss is used, with {key!r} "
                "in the batch)"
                + ("" if task else " or forward=lambda model, batch: loss_fn(model(**inputs).logits, ...)")
            )
        return out, target, loss_fn(out, target)
    raise BatchTypeError(
        f"cannot compute the loss of a batch of type {type(batch).__name__}; expected an (input, target) "
        f"tuple, a tensor or a dict; {_fix('loss', task)}"
    )


def default_forward(
    model: torch.nn.Module, batch: Any, loss_fn: Callable[..., torch.Tensor] | None
) -> torch.Tensor:
    """The loss of one batch (see this module's rules); anything else: pass ``forward=lambda model,
    batch: loss`` to :func:`lrkit.find_lr`."""
    return run_batch(model, batch, loss_fn)[2]  # type: ignore[no-any-return]


def batch_size(batch: Any, target: Any) -> int:
    """The samples of one batch, to weight its mean loss: ``len(target)``, else the first dimension of the
    batch's first tensor (a dict batch without a target), else 1."""
    import torch

    if target is not None:
        try:
            return len(target)
        except TypeError:
            pass
    if isinstance(batch, Mapping):
        values = list(batch.values())
    else:
        values = list(batch) if isinstance(batch, (tuple, list)) else [batch]
    for v in values:
        if isinstance(v, torch.Tensor) and v.ndim > 0:
            return int(v.shape[0])
    return 1
