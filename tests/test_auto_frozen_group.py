"""``lrkit.auto`` with a param group frozen at LR 0 (the backbone of a discriminative fine-tuning, listed
first): the search, the kept ramp, the schedule and the guard's rollback all leave it at exactly 0 and
its weights bit for bit as they were; the peak and the summary are the first group with LR > 0's."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("matplotlib")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

from .test_auto import _loader, _model  # noqa: E402  (after the importorskip)

F = torch.nn.functional


def _frozen_first(model: Any, lr: float = 1e-3) -> Any:
    """AdamW with weight decay (decoupled: ``p *= 1 - lr * wd``, a no-op at lr 0): group 0, the first
    layer, at LR 0; group 1, the last, at ``lr``."""
    return torch.optim.AdamW(
        [{"params": model[0].parameters(), "lr": 0.0}, {"params": model[2].parameters(), "lr": lr}],
        weight_decay=0.1,
    )


@pytest.mark.parametrize("search", ["in_run", "separate"])
def test_auto_leaves_a_frozen_first_group_frozen_through_search_schedule_and_rollback(search: str) -> None:
    import lrkit

    model, loader = _model(), _loader()
    opt = _frozen_first(model)
    frozen = list(model[0].parameters())
    before = [p.detach().clone() for p in frozen]
    during: list[float] = []
    hook = opt.register_step_pre_hook(lambda o, a, k: during.append(float(o.param_groups[0]["lr"])))
    run = lrkit.auto(model, opt, loader, F.cross_entropy, epochs=10, search=search, verbose=False)
    hook.remove()
    assert run.search == search and during and all(lr == 0.0 for lr in during)
    if search == "in_run":
        assert run.trained_steps > 0  # the ramp's steps were kept as training: the frozen group too
    assert all(torch.equal(p, q) for p, q in zip(frozen, before, strict=True))
    assert run.finder.reference_group == 1 and run.finder.group_ratios == (0.0, 1.0)
    assert (
        "LRs for param group 1, the first with LR > 0; the 2 param groups keep their LR ratios to it "
        "(0, 1); param group 0 at LR 0 stays frozen"
    ) in run.summary
    # the schedule drives group 1 (peak_lr is its peak) and keeps group 0 at exactly 0
    lrs = run.lrs()
    step = 0
    for x, y in loader:
        assert opt.param_groups[0]["lr"] == 0.0
        assert opt.param_groups[1]["lr"] == pytest.approx(float(lrs[run.trained_steps + step]), rel=1e-9)
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        assert run.guard is not None and run.guard.check(loss, step)
        loss.backward()
        opt.step()
        run.scheduler.step()
        step += 1
    assert max(lrs) == pytest.approx(max(run.peak_lr, float(lrs[: run.trained_steps].max(initial=0))))
    # a blow-up: the guard rolls back and halves the LR; 0 x 0.5 is still 0
    lr1 = opt.param_groups[1]["lr"]
    assert not run.guard.check(torch.tensor(float("nan")), step)
    assert opt.param_groups[0]["lr"] == 0.0 and 0 < opt.param_groups[1]["lr"] < lr1
    assert all(torch.equal(p, q) for p, q in zip(frozen, before, strict=True))


def test_auto_refuses_all_groups_at_lr_0_before_any_step() -> None:
    import lrkit

    model = _model()
    opt = _frozen_first(model, lr=0.0)
    steps: list[int] = []
    opt.register_step_pre_hook(lambda *a: steps.append(1))
    with pytest.raises(
        ValueError, match=r"every param group's lr is 0 \(optimizer\.param_groups' lr: \[0\.0, 0\.0\]\)"
    ):
        lrkit.auto(model, opt, _loader(), F.cross_entropy, epochs=2, verbose=False)
    assert not steps and [g["lr"] for g in opt.param_groups] == [0.0, 0.0]


def test_auto_plot_labels_the_lr_of_the_reference_group() -> None:
    import lrkit

    model = _model()
    opt = _frozen_first(model)
    run = lrkit.auto(model, opt, _loader(), F.cross_entropy, epochs=6, verbose=False)
    fig = run.plot()
    labels = [ln.get_label() for ln in fig.axes[1].get_lines()]
    assert "learning rate (group 1)" in labels
