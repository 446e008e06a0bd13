"""The divergence guard's reference while its history is short: it cannot rise.

A tester's digits MLP at SGD with momentum, LR 50: two jumps rolled back to the snapshot of step 0,
whose history is empty; the reference was then the median of 1-2 losses and climbed with a model that
got worse at less than 4x a step (2.3 -> 3.42 -> 4.54 -> 6.88 -> ... -> ~11), and the run trained 300
steps at a loss of 9-14, 4-6x its first, with no event. A fresh run at LR 12.5 did the same without any
rollback. Now, while the history holds fewer than ``window`` losses, the reference is the lowest median
it has had.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lrkit.control import DivergenceError, DivergenceGuard

from .ddp import join, spawn, torch_with_gloo

# a loss that climbs less than 4x the median of the losses before it at every step, then sits at ~5x
# its first value: each step is "good" against a median of a few losses
CLIMB = [2.3, 3.4, 5.0, 7.0, 9.0] + [11.0, 12.0, 10.5, 13.0, 11.5] * 20


def _guard(**kwargs: Any) -> DivergenceGuard:
    model = torch.nn.Linear(1, 1)
    return DivergenceGuard(model, torch.optim.SGD(model.parameters(), lr=0.1), **kwargs)


def test_a_short_history_cannot_drag_the_reference_up() -> None:
    guard = _guard()
    refs = []
    for step, loss in enumerate(CLIMB):
        refs.append(guard.reference)
        if not guard.check(loss, step):
            break
    # the medians of the history were 2.3, 2.85, 3.4, 4.2, 5.0: the reference stayed at 2.3
    assert refs[1:6] == [2.3] * 5
    (e,) = guard.events  # the old guard saw nothing in all 105 steps
    assert (e.step, e.reason, e.loss, e.reference, e.snapshot_step) == (9, "jump", 11.5, 2.3, 0)


def test_the_median_is_the_reference_again_once_the_window_is_full() -> None:
    guard = _guard(window=4)
    for step, loss in enumerate([2.3, 3.4, 5.0]):
        assert guard.check(loss, step)
    assert guard.reference == 2.3  # 3 losses, fewer than window: the lowest median
    assert guard.check(7.0, 3)
    assert guard.reference == 4.2  # 4: the median of the window, as before


def test_a_loss_that_rises_less_than_threshold_times_the_reference_is_not_flagged() -> None:
    # falls from 2.3 to 1.0, rises to 3.5x the lowest median (a warmup's bump) and stays for 100 steps
    early = [2.3, 2.0, 1.6, 1.3, 1.1] + [1.0] * 20 + [1.5, 2.0, 2.5, 3.0] + [3.5, 3.2, 3.4] * 33
    # then, the window full, a slow rise to 10x over 500 steps: the median of the window follows it
    late = [3.4 * 10 ** (k / 500) for k in range(500)]
    guard = _guard(snapshot_every=10)
    assert all(guard.check(v, k) for k, v in enumerate(early + late))
    assert guard.events == []


def test_a_rollback_restores_the_reference_of_the_snapshot_step() -> None:
    """The snapshot keeps the lowest median with the history: the reference after a rollback is the
    one the snapshot step was checked against (not the median of its history, nor a later lowest)."""
    guard = _guard(snapshot_every=3)
    ref_at: dict[int, float] = {}
    for step, loss in enumerate([1.0, 3.0, 3.0, 0.2, 0.2, 0.2, math.nan]):
        ref_at[step] = guard.reference
        if not guard.check(loss, step):
            break
    assert guard.resume_step == 3
    # the history of the snapshot of step 3 is [1, 3, 3] (median 3), its lowest median 1; the losses
    # after it took the lowest median to 0.6
    assert ref_at[3] == 1.0 and ref_at[6] == 0.6
    assert guard.reference == ref_at[3]


# -- the tester's case, on a real model ---------------------------------------------------------------
B = 32


def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    d = pytest.importorskip("sklearn.datasets").load_digits()
    return torch.tensor(d.data[:1400] / 16.0, dtype=torch.float32), torch.tensor(d.target[:1400])


def _train(lr: float, steps: int = 300, **kwargs: Any) -> tuple[list[float], DivergenceGuard]:
    """The tester's MLP and optimizer (SGD, momentum 0.9, no scheduler), with the guard; the batches
    are replayed from the snapshot after a rollback. Returns the losses of the final trajectory."""
    x_all, y_all = _digits()
    order = np.random.default_rng(0).permutation(len(x_all))  # the data order, by step
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    guard = DivergenceGuard(model, opt, **kwargs)
    losses: list[float] = []
    step = 0
    while step < steps:
        i = torch.as_tensor(order[(step * B) % (len(x_all) - B) :][:B])
        x, y = x_all[i], y_all[i]
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        if guard.check(loss, step):
            del losses[step:]
            losses.append(loss.item())
            opt.step()
            step += 1
        else:
            step = guard.resume_step  # type: ignore[assignment]
        opt.zero_grad()
    return losses, guard


def test_a_model_that_sits_at_several_times_its_first_loss_is_rolled_back_until_it_does_not() -> None:
    # LR 12.5 from the start: the old guard saw no event, and the last 50 losses were ~11, ~5x the first
    losses, guard = _train(12.5)
    assert guard.events and all(e.reason == "jump" and e.reference == losses[0] for e in guard.events)
    assert np.mean(losses[-50:]) < 1.5 * losses[0]


def test_the_testers_lr_is_cut_until_the_loss_is_back_near_its_first_or_stopped() -> None:
    # LR 50: after the recoveries the defaults allow (3 in a row, LR / 8) it still diverges: stopped,
    # saying so, the model left at the snapshot of step 0 (the old guard trained on at a loss of ~11)
    with pytest.raises(DivergenceError, match=r"lr=6\.25, after 3 recoveries in a row"):
        _train(50.0)
    losses, guard = _train(50.0, max_recoveries=5)
    assert all(e.reason == "jump" for e in guard.events)
    assert np.mean(losses[-50:]) < 1.5 * losses[0]


# -- DDP: the reference is the same on every rank -----------------------------------------------------
def _worker(rank: int, store: str, out: str) -> None:
    _, dist = torch_with_gloo()
    join(rank, store, timeout=30)
    try:
        torch.manual_seed(0)
        guard = _guard()
        refs = []
        for step, loss in enumerate(CLIMB):  # the ranks' mean loss is CLIMB's
            refs.append(guard.reference)
            if not guard.check(loss * (0.5 if rank == 0 else 1.5), step):
                break
        torch.save({"events": guard.events, "refs": refs}, os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_under_ddp_every_rank_has_the_same_reference_and_rolls_back_together(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    torch_with_gloo()
    r0, r1 = spawn(_worker, tmp_path_factory)
    assert r0["refs"][1:] == r1["refs"][1:] and r0["refs"][1:6] == pytest.approx([2.3] * 5, rel=1e-12)
    assert [repr(e) for e in r0["events"]] == [repr(e) for e in r1["events"]]
    (e,) = r0["events"]  # the old guard: no event on either rank
    assert (e.step, e.reason) == (9, "jump")
    assert (e.loss, e.reference) == pytest.approx((11.5, 2.3), rel=1e-12)
