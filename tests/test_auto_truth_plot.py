"""``AutoResult.plot(losses=...)`` after the guard rolled back: the guide's recipe
(``losses.append(loss.item())`` after each step) gives the replays too, which the plot puts in place."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("matplotlib")

from .auto_loops import blobs, guarded_steps, mlp  # noqa: E402  (after the importorskip)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _event(step: int, snapshot: int, action: str = "rollback") -> Any:
    from lrkit.control import DivergenceEvent

    return DivergenceEvent(step, float("nan"), "nan", 1.0, (0.1,), (0.05,), snapshot, 1, action)


def test_replays_take_the_place_of_the_steps_they_replay() -> None:
    """Steps 0-4, a NaN at 5 back to 3, steps 3-6, a NaN at 7 back to 6 and at once at 6 back to 2
    (a failed recovery, one snapshot further back), steps 2-4."""
    from lrkit.auto_plot import by_step

    applied = [0, 1, 2, 3, 4, 30, 40, 50, 60, 200, 300, 400]
    events = [_event(5, 3), _event(7, 6), _event(6, 2)]
    assert by_step(applied, events) == [0, 1, 200, 300, 400]
    assert by_step(applied[:5], events[:1]) == [0, 1, 2]  # rolled back, nothing replayed yet
    assert by_step(applied, []) == applied


def test_the_guides_recipe_plots_after_a_rollback(tmp_path: Any) -> None:
    """It raised "losses has 276 values, more than the run's 272 steps" after one rollback."""
    import lrkit

    loader, model = blobs(), mlp()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    run = lrkit.auto(model, opt, loader, torch.nn.functional.cross_entropy, epochs=10, verbose=False)
    assert run.guard is not None
    losses: list[float] = []
    guarded_steps(run, model, opt, loader, run.remaining_steps, {60}, losses)
    (event,) = run.guard.events
    replayed = event.step - event.snapshot_step
    assert replayed > 0 and len(losses) == run.remaining_steps + replayed
    fig = run.plot(tmp_path / "run.png", losses=losses)
    twin = fig.axes[-1]  # the loss axis: its dots are the run's steps, each once
    xs = twin.lines[0].get_xdata()
    assert len(xs) == run.total_steps and list(xs) == sorted(set(xs))
    assert (
        list(twin.lines[0].get_ydata()[run.trained_steps :])
        == losses[: event.snapshot_step] + losses[event.step :]
    )
