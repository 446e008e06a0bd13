"""``AutoResult.lrs`` / ``AutoResult.plot`` and ``lrkit auto --plot``: the LR at every step of the run,
checked against the LR the optimizer actually stepped with, and the figure drawn from it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("matplotlib")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

from .test_auto import _loader, _model  # noqa: E402  (after the importorskip)


def _auto_and_train(search: str) -> tuple[Any, list[float], list[float], list[float]]:
    """lrkit.auto then the training loop; returns the run, the LR of group 0 at every optimizer step
    inside auto and after it (a step pre-hook: what the optimizer really used), and the loop's losses."""
    import lrkit

    model, loader = _model(), _loader()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    during: list[float] = []
    hook = opt.register_step_pre_hook(lambda o, a, k: during.append(float(o.param_groups[0]["lr"])))
    run = lrkit.auto(model, opt, loader, torch.nn.functional.cross_entropy, epochs=6, search=search,
                     verbose=False)  # fmt: skip
    hook.remove()
    after: list[float] = []
    opt.register_step_pre_hook(lambda o, a, k: after.append(float(o.param_groups[0]["lr"])))
    losses: list[float] = []
    step = 0
    while step < run.remaining_steps:
        for x, y in loader:
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            run.scheduler.step()
            losses.append(float(loss.detach()))
            step += 1
            if step >= run.remaining_steps:
                break
    return run, during, after, losses


@pytest.mark.parametrize("search", ["in_run", "separate"])
def test_lrs_are_the_lrs_the_optimizer_stepped_with(search: str) -> None:
    """run.lrs() has one LR per planned step: the in-run ramp's kept rungs are the first optimizer
    steps auto took, and the rest are the steps of the training loop after it."""
    run, during, after, _ = _auto_and_train(search)
    lrs = run.lrs()
    assert run.search == search and lrs.shape == (run.total_steps,)
    if search == "in_run":
        assert 0 < run.trained_steps < len(during)  # the ramp ran past the rung it kept
        np.testing.assert_allclose(lrs[: run.trained_steps], during[: run.trained_steps], rtol=1e-12)
    else:
        assert run.trained_steps == 0
    np.testing.assert_allclose(lrs[run.trained_steps :], after, rtol=1e-9)
    assert lrs.max() == pytest.approx(max(run.peak_lr, float(lrs[: run.trained_steps].max(initial=0))))


def _line(ax: Any, label: str) -> Any:
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == label]
    return line


@pytest.mark.parametrize("search", ["in_run", "separate"])
def test_plot_draws_the_search_the_lrs_and_the_losses(search: str, tmp_path: Any) -> None:
    run, _, _, losses = _auto_and_train(search)
    path = tmp_path / "deep" / "er" / "auto.png"  # missing folders are made
    fig = run.plot(path, losses=losses)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    left, right, *twin = fig.axes
    peak = _line(left, f"peak LR of the schedule: {run.peak_lr:.3g}")
    assert peak.get_xdata()[0] == pytest.approx(run.peak_lr)
    lr_line = _line(right, "learning rate (group 0)")
    np.testing.assert_allclose(lr_line.get_ydata(), run.lrs())
    (loss_axis,) = twin
    raw = _line(loss_axis, "training loss").get_ydata()
    kept = run.finder.curves[0].losses[: run.trained_steps]
    np.testing.assert_allclose(raw, np.concatenate([kept, losses]))
    assert len(raw) == run.total_steps


def test_the_loss_ema_remembers_a_tenth_of_the_curve_at_most() -> None:
    """On a short run the 0.98 EMA (a memory of ~50 steps) lagged half the run behind the raw loss."""
    from lrkit.auto_plot import LOSS_SMOOTHING, smoothing_for

    for steps in (1, 5, 10, 11, 50, 135, 499, 500, 501, 10**6):
        beta = smoothing_for(steps)
        assert 0.0 <= beta <= LOSS_SMOOTHING
        assert beta == LOSS_SMOOTHING or 1.0 / (1.0 - beta) <= max(1.0, steps / 10) + 1e-9
    assert smoothing_for(135) == pytest.approx(1 - 10 / 135) and smoothing_for(10**6) == LOSS_SMOOTHING
    run, _, _, losses = _auto_and_train("in_run")
    fig = run.plot(losses=losses)
    beta = smoothing_for(run.trained_steps + len(losses))
    assert beta < LOSS_SMOOTHING  # this short run
    _line(fig.axes[2], f"training loss (EMA {beta:.3g})")


@pytest.mark.parametrize("name", ["auto.txt", "auto", "folder"])
def test_plot_refuses_a_path_that_is_no_image_before_drawing(name: str, tmp_path: Any) -> None:
    run, _, _, losses = _auto_and_train("in_run")
    (tmp_path / "folder").mkdir()
    with pytest.raises((ValueError, IsADirectoryError), match="path"):
        run.plot(tmp_path / name, losses=losses)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]  # nothing written


def test_plot_without_losses_has_no_loss_axis_after_the_separate_search() -> None:
    run, _, _, _ = _auto_and_train("separate")
    fig = run.plot()
    assert len(fig.axes) == 2


@pytest.mark.parametrize(
    ("bad", "err", "match"),
    [
        ("1.0, 2.0", TypeError, "losses must be a sequence of numbers"),
        (3.0, TypeError, "losses must be a sequence of numbers"),
        ([1.0, "x"], TypeError, "losses must be a sequence of numbers"),
        ([1.0, None], TypeError, "losses must be a sequence of numbers"),
        (None, None, ""),
    ],
)
def test_plot_names_bad_losses(bad: Any, err: Any, match: str) -> None:
    run, _, _, _ = _auto_and_train("in_run")
    if err is None:
        run.plot(losses=bad)
        return
    with pytest.raises(err, match=match):
        run.plot(losses=bad)


def test_plot_refuses_more_losses_than_steps_left() -> None:
    run, _, _, losses = _auto_and_train("in_run")
    with pytest.raises(ValueError, match=rf"losses has {len(losses) + 1} values.*{run.remaining_steps}"):
        run.plot(losses=[*losses, 1.0])
    run.plot(losses=[*losses[:-1], float("nan")])  # a NaN loss (a blow-up) is left out, not an error


def test_cli_auto_plot_writes_the_figure(tmp_path: Any) -> None:
    from lrkit.cli import main

    out = tmp_path / "new" / "auto.svg"
    assert main(["auto", "--task", "digits-mlp-adam", "--epochs", "2", "--plot", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("<?xml") and "learning rate" in text
