"""``lrkit.auto``'s divergence guard on runs that do not look like the benchmark's: long epochs (a
streamed data set), a user's subclass of a torch optimizer, a run resumed from a checkpoint."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from .auto_loops import blobs, guarded_steps, mlp  # noqa: E402  (after the importorskip)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_a_long_epoch_is_snapshotted_every_100_steps_not_once() -> None:
    """One epoch of 600 steps (a streamed data set): the guard snapshotted once an epoch, so a NaN at
    step 450 rolled the run back to step 0 (450 steps lost); now at most 100 are."""
    import lrkit

    model, loader = mlp(), blobs(512)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    run = lrkit.auto(
        model, opt, loader, torch.nn.functional.cross_entropy, epochs=1, steps_per_epoch=600, verbose=False
    )
    assert run.guard is not None and run.remaining_steps > 460
    guarded_steps(run, model, opt, loader, 460, {450})
    (event,) = run.guard.events
    assert event.step == 450 and 350 <= event.snapshot_step < 450, event


@pytest.mark.parametrize(("per_epoch", "every"), [(1, 10), (10, 10), (32, 32), (100, 100), (3000, 100)])
def test_the_guard_snapshots_once_an_epoch_within_10_and_100_steps(per_epoch: int, every: int) -> None:
    from lrkit.auto import guard_snapshot_every

    assert guard_snapshot_every(per_epoch) == every


class MyAdamW(torch.optim.AdamW):
    """A user's subclass (one that logs, say): the same lazily built state as AdamW's."""


class HeavyBall(torch.optim.Optimizer):
    """An optimizer from outside torch.optim with a momentum buffer: its state is left alone."""

    def __init__(self, params: Any, lr: float = 1e-3) -> None:
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                buf = self.state[p].setdefault("buf", torch.zeros_like(p))
                buf.mul_(0.9).add_(p.grad)
                p.add_(buf, alpha=-group["lr"])


def test_a_subclass_of_a_torch_optimizer_restarts_its_statistics_and_another_is_said_to_keep_them() -> None:
    """``class MyAdamW(torch.optim.AdamW)`` kept the ramp's statistics (only classes defined in
    torch.optim were restarted), and the summary said nothing of it."""
    import lrkit

    for cls, restarted in ((torch.optim.AdamW, True), (MyAdamW, True), (HeavyBall, False)):
        model = mlp()
        opt = cls(model.parameters(), lr=1e-3)
        run = lrkit.auto(
            model,
            opt,
            blobs(512),
            torch.nn.functional.cross_entropy,
            epochs=10,
            search="in_run",
            verbose=False,
        )
        assert run.search == "in_run" and run.trained_steps > 0
        assert (len(opt.state) == 0) == restarted, cls
        assert ("running statistics restart with the re-warm" in run.summary) == restarted, run.summary
        kept = (
            "are kept: lrkit restarts those of torch.optim's optimizers and their subclasses only, "
            f"and {cls.__name__} is not"
        )
        assert (kept in run.summary) != restarted, run.summary


@pytest.mark.parametrize(
    "counts",
    [
        {"epochs": np.int64(3)},
        {"epochs": 3, "steps_per_epoch": np.int64(32)},
        {"epochs": torch.tensor(3), "steps_per_epoch": torch.tensor(32)},
    ],
    ids=["np-epochs", "np-steps", "tensors"],
)
def test_numpy_and_tensor_integers_count_as_lrkit_torch_scheduler_counts_them(counts: dict[str, Any]) -> None:
    """``epochs=np.int64(10)`` gave "epochs must be an integer >= 1, got np.int64(10)"."""
    import lrkit

    model = mlp()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    run = lrkit.auto(model, opt, blobs(512), torch.nn.functional.cross_entropy, verbose=False, **counts)
    assert run.total_steps == 3 * 32 and type(run.total_steps) is int


@pytest.mark.parametrize("bad", [2.0, torch.tensor(2.0), torch.tensor([2]), True, 0])
def test_other_counts_are_still_refused(bad: Any) -> None:
    import lrkit

    model = mlp()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    with pytest.raises((TypeError, ValueError), match="epochs must be an integer >= 1"):
        lrkit.auto(model, opt, blobs(512), torch.nn.functional.cross_entropy, epochs=bad, verbose=False)
