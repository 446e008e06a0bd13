"""The range test as the run's own warmup: its steps are kept as training, not thrown away.

A separate range test (:func:`lrkit.finder.find_lr`) trains ~300 optimizer steps and then restores the
model: 3% of a 10,000-step run, but half of a 600-step one. :func:`ramp_in_run` instead runs one ramp
on the real model and keeps it:

1. the reference param group's LR (the first group with LR > 0) grows exponentially from ``start_lr``
   towards ``end_lr``, one optimizer step per rung (the other groups keep their ratio to it: a group
   at LR 0 stays frozen at exactly 0), and the state after each rung is kept in a ring of the last
   ``window`` rungs;
2. the ramp stops as soon as the bottom of the loss curve is behind it: the smoothed loss has risen
   above its minimum by half the drop (:class:`lrkit.finder.core.StopRule`'s ``rise``), or the loss
   blew up or was not finite;
3. the rule (lrkit's: the centre of the curve's bottom / 10) gives the suggestion, the peak is
   ``peak_factor`` x it, and the model and optimizer are put back to their state after the last
   saved rung (one every :data:`SNAPSHOT_EVERY`) whose LR was at most the peak. Training goes on
   from there: the rungs up to that one were an exponential warmup to the peak; only the rungs after
   it (typically 10 to 25) are extra compute.

With one ramp there are no repeats to compare; a curve without a usable signal (flat, noisy, rising
from the first rung...) gives an untrusted result, and then everything is restored to the state before
the ramp (:attr:`InRunRamp.kept` is 0), so the caller can fall back to the separate, escalating test.
The ring costs ``window / snapshot_every`` copies of the parameters, buffers and optimizer state, on
the CPU when the model is on an accelerator.

Under ``torch.distributed`` (DDP) every rung's loss is averaged over the processes before the curve
sees it, so all of them stop at the same rung, keep the same one and get the same suggestion; their
replicas stay one model (gradient accumulation skips the all-reduce on all but the last micro-batch,
as the separate test does).
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lrkit._checks import as_real
from lrkit.finder import core
from lrkit.finder import rules as _rules
from lrkit.finder.result import FinderResult
from lrkit.finder.torch_driver import (
    _autocast,
    _check_callables,
    _check_grad_scaler,
    _check_loader,
    _check_max_grad_norm,
    _check_model_and_optimizer,
    _Cycle,
    _ddp,
    _group_ratios,
    _offload_to,
    _optimizer_step,
    _resolve_device,
    _rung_loss,
    _scalar_loss,
    _set_group_lrs,
    _Snapshot,
    _to_device,
    default_forward,
    training_modes,
)

__all__ = ["END_LR", "PER_DECADE", "RISE", "SNAPSHOT_EVERY", "START_LR", "WINDOW", "InRunRamp", "ramp_in_run"]

#: the ramp stops once the smoothed loss is this fraction of its drop above its minimum
RISE = 0.5
#: rungs of state kept to return to (the peak is at most ~25 rungs before the stop on the benchmark)
WINDOW = 40
#: where the kept ramp starts: the rungs below a hundredth of the peak teach the model next to nothing,
#: and in a kept ramp they are training steps lost; a loss that rises from this first rung gives an
#: untrusted curve, and the caller falls back to the separate test (which starts at 1e-7)
START_LR = 1e-5
#: where the ramp would end if the loss never rose: only a bound, since the ramp stops at the rise. It is
#: above the separate test's 10 because a loss whose gradient is clipped (max_grad_norm) may still fall
#: there: an SGD LSTM clipped at 0.25 trains best at LR 10 and its loss rises only past ~30
#: (bench/results/clip_grid.json). Ramps that stop below 10 are the same (checked on the 10 public tasks).
END_LR = 1e3
#: rungs per decade of LR, the separate test's density (100 rungs over 8 decades)
PER_DECADE = 12.5
#: a ring snapshot after every this many rungs (a third of a decade): the ring holds WINDOW / 4 = 10
#: copies instead of 40. The kept rung is then up to 3 rungs below the peak, which the re-warm after the
#: ramp (from a tenth of the peak) absorbs: on the benchmark (bench/results/auto_inrun_stride.json)
#: every task keeps its >= 0.99 status, the worst compute goes from 1.092x to 1.096x.
SNAPSHOT_EVERY = 4


@dataclass(frozen=True, eq=False)
class InRunRamp:
    """The outcome of :func:`ramp_in_run`.

    ``result``: the finder's verdict on the one curve; ``peak``: ``peak_factor`` x its suggestion (None
    when untrusted); ``kept``: rungs kept as training (the state is that after rung ``kept - 1``; 0 when
    everything was restored); ``spent``: rungs run in all (``spent - kept`` is the extra compute).
    :meth:`undo` puts back the state from before the ramp (this result holds that one copy).
    """

    result: FinderResult
    peak: float | None
    kept: int
    spent: int
    before: _Snapshot | None = field(default=None, repr=False)

    def undo(self) -> None:
        """Model, optimizer (and scaler), RNG and loader state as before the ramp, kept steps undone."""
        if self.before is None:
            raise RuntimeError("this InRunRamp holds no state from before its ramp")
        self.before.restore()


def ramp_in_run(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    train_loader: Iterable[Any],
    loss_fn: Callable[..., torch.Tensor] | None = None,
    *,
    peak_factor: float = 2.0,
    start_lr: float = START_LR,
    end_lr: float = END_LR,
    num_steps: int | None = None,
    smoothing: float = core.SMOOTHING,
    rise: float = RISE,
    window: int = WINDOW,
    forward: Callable[[torch.nn.Module, Any], torch.Tensor] | None = None,
    device: torch.device | str | None = None,
    rule: str = "lrkit",
    max_kept: int | None = None,
    snapshot_every: int = SNAPSHOT_EVERY,
    offload: bool | None = None,
    accumulation_steps: int = 1,
    grad_scaler: Any = None,
    amp_dtype: torch.dtype | None = None,
    max_skipped: int = 20,
    max_grad_norm: float | None = None,
) -> InRunRamp:
    """Run one LR ramp on ``model`` and keep its steps up to the peak LR; see the module docstring.

    ``num_steps`` rungs span ``start_lr .. end_lr`` (default: :data:`PER_DECADE` per decade); the ramp
    usually stops well before the end. With ``max_kept``, a peak more than that many rungs into the
    ramp is not kept (everything is restored: the ramp would have eaten the run).

    As in :func:`lrkit.finder.find_lr`: a rung is one optimizer step over ``accumulation_steps``
    micro-batches (each loss divided by it), the forward pass runs under ``torch.autocast`` with
    ``amp_dtype``, and with ``grad_scaler`` the backward pass is scaled; a step the scaler skips
    (inf/NaN gradients) is retried, up to ``max_skipped`` times (then the ramp ends at that rung, its
    real loss recorded, and the result says the scaler skipped). The
    scaler's state is part of every snapshot, so a kept or restored ramp leaves it consistent. With
    ``max_grad_norm`` every step clips the gradient's norm to it, as the training that follows should.
    A batch whose loss and data are not finite raises a ``ValueError`` naming it, as in ``find_lr``
    (everything restored).
    """
    _check_model_and_optimizer(model, optimizer)
    _check_callables(loss_fn, forward, amp_dtype)
    _check_loader(train_loader, "train_loader")
    k_acc = core._check_int("accumulation_steps", accumulation_steps, 1)
    k_skip = core._check_int("max_skipped", max_skipped, 1)
    _check_grad_scaler(grad_scaler)
    clip = _check_max_grad_norm(max_grad_norm)
    factor = as_real(peak_factor)  # numpy's and 0-d tensors too, as the Python float they hold
    if factor is None:
        raise TypeError(f"peak_factor must be a number > 0, got {peak_factor!r}")
    if not (0.0 < factor < math.inf):
        raise ValueError(f"peak_factor must be a finite number > 0, got {peak_factor!r}")
    peak_factor = factor
    window = core._check_int("window", window, 1)
    snapshot_every = core._check_int("snapshot_every", snapshot_every, 1)
    if max_kept is not None:
        max_kept = core._check_int("max_kept", max_kept, 1)
    if rule not in _rules.RULES:  # before any step, not after the ramp
        raise ValueError(f"rule must be one of {sorted(_rules.RULES)}, got {rule!r}")
    if offload is not None and not isinstance(offload, bool):
        raise TypeError(f"offload must be True, False or None, got {offload!r}")
    if num_steps is None:
        decades = math.log10(core._check_positive_float("end_lr", end_lr)) - math.log10(
            core._check_positive_float("start_lr", start_lr)
        )
        num_steps = max(2, round(PER_DECADE * decades) + 1)
    lrs = core.lr_ramp(start_lr, end_lr, num_steps)
    ratios = _group_ratios(optimizer)
    dev = _resolve_device(model, device)
    distributed, world = _ddp()
    no_sync = getattr(model, "no_sync", None) if distributed else None
    run_forward = forward or (lambda m, batch: default_forward(m, batch, loss_fn))
    train = _Cycle(train_loader, "train_loader")
    cpu = torch.device("cpu")
    store = _offload_to(model) if offload is None else (cpu if offload else None)
    train_modes = training_modes(model)  # before any step: the modes the user's loop trains in
    initial = _Snapshot(model, optimizer, grad_scaler, [train_loader], to=store)
    ring: collections.deque[tuple[int, _Snapshot]] = collections.deque(maxlen=-(-window // snapshot_every))
    rung = 0

    def loss_of(batch: Any) -> torch.Tensor:
        with _autocast(dev, amp_dtype):
            return _scalar_loss(run_forward(model, _to_device(batch, dev)))

    def step(lr: float) -> float:
        nonlocal rung
        _set_group_lrs(optimizer, ratios, lr)
        train_modes()
        for _attempt in range(k_skip):
            loss, skipped = _optimizer_step(optimizer, train, loss_of, k_acc, grad_scaler, no_sync, clip)
            if not skipped:
                break
        # one curve for all processes (DDP): each stops, keeps and suggests alike; data that is not
        # finite is named (a ValueError) rather than taken for a blow-up
        loss = _rung_loss(loss, train, dev, distributed, world)
        if rung % snapshot_every == snapshot_every - 1:
            ring.append((rung, _Snapshot(model, optimizer, grad_scaler, [], lean=True, to=store)))
        rung += 1
        if skipped:  # max_skipped in a row: the rung's real loss, and the ramp ends here
            raise core.RungSkipped(loss, k_skip)
        return loss

    stop = core.StopRule(rise=rise)
    restored = False
    try:
        curve = core.sweep(step, lrs, smoothing=smoothing, stop=stop)
        result = FinderResult.from_curves(
            [curve], smoothing=smoothing, rule=rule, group_ratios=ratios, steps=curve.lrs.size
        )
        suggestion = result.suggestion
        peak = None if suggestion is None else peak_factor * suggestion
        keep = -1 if peak is None else int(np.searchsorted(curve.lrs, peak, side="right")) - 1
        at, saved = next(((i, snap) for i, snap in reversed(ring) if i <= keep), (-1, None))
        if saved is None or (max_kept is not None and at + 1 > max_kept):
            # untrusted, or the peak is below the ramp / older than the ring / too late in the run
            initial.restore()
            restored = True
            kept = 0
        else:
            saved.restore_training_state()  # gradients None, as after zero_grad(set_to_none=True)
            kept = at + 1
        if kept and peak is not None:  # restored: the groups' LRs are the user's, exactly as they were
            _set_group_lrs(optimizer, ratios, peak)
    except BaseException:
        if not restored:
            initial.restore()
        raise
    finally:
        train.close()
        ring.clear()
    return InRunRamp(result=result, peak=peak, kept=kept, spent=curve.lrs.size, before=initial)
