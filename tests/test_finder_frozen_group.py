"""A param group frozen at LR 0 (discriminative fine-tuning's backbone, often group 0): the range test
and the in-run ramp drive the first group with LR > 0, keep the frozen group at exactly 0 and the
others at their ratio, and the suggestion is the reference group's LR."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from lrkit.finder import find_lr  # noqa: E402
from lrkit.finder.in_run import ramp_in_run  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_loader() -> Any:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 6, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    ds = torch.utils.data.TensorDataset(x, y)
    return torch.utils.data.DataLoader(
        ds, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(1)
    )


def make_model(layers: int = 2) -> Any:
    """Linear layers with ReLU and dropout between them (dropout: the repeats draw random numbers)."""
    torch.manual_seed(0)
    widths = [6] + [24] * (layers - 1) + [3]
    mods: list[Any] = []
    for i in range(layers):
        mods.append(nn.Linear(widths[i], widths[i + 1]))
        if i < layers - 1:
            mods += [nn.ReLU(), nn.Dropout(0.1)]
    return nn.Sequential(*mods)


def linears(model: Any) -> list[Any]:
    return [m for m in model if isinstance(m, nn.Linear)]


def groups(model: Any, lrs: list[float]) -> list[dict[str, Any]]:
    """One param group per Linear layer, with these LRs."""
    return [{"params": list(m.parameters()), "lr": lr} for m, lr in zip(linears(model), lrs, strict=True)]


def record(opt: Any, frozen: list[Any]) -> list[tuple[list[float], bool]]:
    """At every optimizer.step(), after it: every group's LR and whether ``frozen`` still hold their
    values from before the test, bit for bit."""
    originals = [p.detach().clone() for p in frozen]
    seen: list[tuple[list[float], bool]] = []

    def hook(o: Any, args: Any, kwargs: Any) -> None:
        same = all(torch.equal(p, q) for p, q in zip(frozen, originals, strict=True))
        seen.append(([float(g["lr"]) for g in o.param_groups], same))

    opt.register_step_post_hook(hook)
    return seen


OPTIMIZERS = {
    "sgd-momentum-wd": lambda gs: torch.optim.SGD(gs, momentum=0.9, weight_decay=1e-2),
    "adam-l2": lambda gs: torch.optim.Adam(gs, weight_decay=1e-2),
    "adamw": lambda gs: torch.optim.AdamW(gs, weight_decay=0.1),  # decoupled decay: p *= 1 - lr * wd
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_a_frozen_first_group_gives_the_suggestion_of_the_other_group_alone(name: str) -> None:
    """Group 0 at LR 0, group 1 at 1e-3: the ramp drives group 1, group 0 stays at 0 and its weights do
    not move at any step. Then the run is the run of an optimizer holding group 1 alone, bit for bit:
    torch's updates are scaled by the LR (SGD ``p -= lr * (g + wd p)``, Adam ``p -= lr / bc1 * m /
    (sqrt(v) + eps)``, AdamW's decoupled decay ``p *= 1 - lr * wd``, all exact at lr 0), the frozen
    weights require grad in both runs (the same autograd graph), and the optimizer draws no random
    numbers. So the curves and the suggestion are equal exactly, not to a tolerance."""
    make = OPTIMIZERS[name]
    loader = make_loader()
    kw: dict[str, Any] = {"num_steps": 80, "repeats": 2, "seed": 3}

    model = make_model()
    frozen = list(linears(model)[0].parameters())
    before = [p.detach().clone() for p in model.parameters()]
    opt = make(groups(model, [0.0, 1e-3]))
    seen = record(opt, frozen)
    res = find_lr(model, opt, loader, F.cross_entropy, **kw)

    alone_model = make_model()
    alone_opt = make(groups(alone_model, [0.0, 1e-3])[1:])
    alone = find_lr(alone_model, alone_opt, loader, F.cross_entropy, **kw)

    assert len(seen) == res.steps == sum(c.lrs.size for c in res.curves)
    assert all(lrs[0] == 0.0 and same for lrs, same in seen)  # every step, every repeat
    ramp = np.concatenate([c.lrs for c in res.curves])
    np.testing.assert_array_equal([lrs[1] for lrs, _ in seen], ramp)
    assert res.suggestion is not None and res.suggestion == alone.suggestion
    for a, b in zip(res.curves, alone.curves, strict=True):
        np.testing.assert_array_equal(a.losses, b.losses)
    assert res.group_ratios == (0.0, 1.0) and res.reference_group == 1
    assert res.group_lrs(0.1) == [0.0, 0.1]
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before, strict=True))
    assert [g["lr"] for g in opt.param_groups] == [0.0, 1e-3]


def test_ratios_hold_through_every_repeat_and_retry_with_the_frozen_group_at_zero() -> None:
    """Three groups at 0, 1e-3, 2.5e-4; a first test that ends at 1e-2, where SGD's loss has hardly
    moved (flat), is retried (2 batches per rung, loss on fixed batches, 4 repeats): at every optimizer
    step of every repeat of both, group 0 is 0 and group 2 is a quarter of group 1."""
    model = make_model(layers=3)
    frozen = list(linears(model)[0].parameters())
    opt = torch.optim.SGD(groups(model, [0.0, 1e-3, 2.5e-4]), momentum=0.9)
    seen = record(opt, frozen)
    res = find_lr(
        model, opt, make_loader(), F.cross_entropy, num_steps=30, end_lr=1e-2, repeats=2, budget=400
    )
    assert res.escalation and res.steps > 60 and len(seen) >= 60 + 30  # the retry's steps were seen
    lrs = np.asarray([lrs for lrs, _ in seen])
    assert np.all(lrs[:, 0] == 0.0) and all(same for _, same in seen)
    np.testing.assert_allclose(lrs[:, 2] / lrs[:, 1], 0.25, rtol=1e-12)
    assert res.escalation[0].startswith("2 batches per rung") and "4 repeats" in res.escalation[0]
    assert len(seen) == 2 * 30 + 4 * 30 * 2  # the first test's steps, then the retry's: 2 a rung
    assert res.group_ratios == (0.0, 1.0, 0.25) and res.reference_group == 1


def test_the_in_run_ramp_keeps_the_frozen_group_frozen() -> None:
    """The in-run ramp keeps its steps as training: the frozen group's weights are still bit-identical
    after it, its LR is 0 at every rung and after, and the others are at the peak and ratio x it."""
    model = make_model(layers=3)
    frozen = list(linears(model)[0].parameters())
    before = [p.detach().clone() for p in frozen]
    opt = torch.optim.AdamW(groups(model, [0.0, 1e-3, 2.5e-4]), weight_decay=0.1)
    seen = record(opt, frozen)
    ramp = ramp_in_run(model, opt, make_loader(), F.cross_entropy)
    assert ramp.kept > 0 and ramp.peak is not None  # the kept path: training steps on the model
    lrs = np.asarray([lrs for lrs, _ in seen])
    assert len(seen) == ramp.spent and np.all(lrs[:, 0] == 0.0) and all(same for _, same in seen)
    np.testing.assert_array_equal(lrs[:, 1], ramp.result.lrs)
    np.testing.assert_allclose(lrs[:, 2] / lrs[:, 1], 0.25, rtol=1e-12)
    assert all(torch.equal(p, q) for p, q in zip(frozen, before, strict=True))
    assert [g["lr"] for g in opt.param_groups] == [0.0, ramp.peak, ramp.peak * 0.25]
    assert ramp.result.reference_group == 1


@pytest.mark.parametrize("lrs", [[0.0, 7e-4, 1e-4], [7e-4, 1e-4]])
def test_a_restored_in_run_ramp_puts_every_group_lr_back_exactly(lrs: list[float]) -> None:
    """A ramp whose peak comes too late (max_kept=1) is undone: every group's LR is the user's, bit for
    bit: the frozen group's 0 (it used to be set to group 0's LR x ratio, which with group 0 at 0 is 0
    for all), and 1e-4 (set back as 7e-4 x its ratio it was 1e-4 / 7e-4 x 7e-4 = 1.0000000000000002e-4)."""
    assert 1e-4 / 7e-4 * 7e-4 != 1e-4
    model = make_model(layers=len(lrs))
    opt = torch.optim.Adam(groups(model, lrs))
    ramp = ramp_in_run(model, opt, make_loader(), F.cross_entropy, max_kept=1)
    assert ramp.kept == 0 and ramp.spent > 1
    assert [g["lr"] for g in opt.param_groups] == lrs


@pytest.mark.parametrize("run", ["find_lr", "ramp_in_run"])
def test_all_groups_at_lr_0_are_refused_naming_the_values(run: str) -> None:
    model = make_model()
    opt = torch.optim.SGD(groups(model, [0.0, 0.0]))
    fn = find_lr if run == "find_lr" else ramp_in_run
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(
        ValueError, match=r"every param group's lr is 0 \(optimizer\.param_groups' lr: \[0\.0, 0\.0\]\)"
    ):
        fn(model, opt, make_loader(), F.cross_entropy)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before, strict=True))


@pytest.mark.parametrize("bad", [-1e-3, float("nan"), float("inf")])
def test_a_negative_or_non_finite_group_lr_is_refused_naming_the_group(bad: float) -> None:
    """torch's constructors refuse a negative lr, but one set afterwards would have ramped the wrong
    way (a ratio below 0: gradient ascent)."""
    model = make_model()
    opt = torch.optim.SGD(groups(model, [1e-3, 1e-3]))
    opt.param_groups[1]["lr"] = bad
    with pytest.raises(
        ValueError, match=rf"optimizer\.param_groups\[1\]\['lr'\] must be a finite number >= 0, got {bad!r}"
    ):
        find_lr(model, opt, make_loader(), F.cross_entropy, num_steps=5)


def test_the_result_names_the_reference_group_and_the_frozen_ones() -> None:
    model = make_model(layers=3)
    opt = torch.optim.SGD(groups(model, [0.0, 1e-3, 2.5e-4]), momentum=0.9)
    res = find_lr(model, opt, make_loader(), F.cross_entropy, num_steps=40)
    text = str(res)
    assert (
        "LRs for param group 1, the first with LR > 0; the 3 param groups keep their LR ratios to it "
        "(0, 1, 0.25); param group 0 at LR 0 stays frozen"
    ) in text
    assert res.to_dict()["reference_group"] == 1 and res.to_dict()["group_ratios"] == [0.0, 1.0, 0.25]


def test_a_frozen_group_after_the_first_is_named_too() -> None:
    """Group 0 trains and is the reference; group 2 at LR 0 stays frozen and is named."""
    model = make_model(layers=3)
    opt = torch.optim.SGD(groups(model, [1e-3, 2e-3, 0.0]), momentum=0.9)
    seen = record(opt, list(linears(model)[2].parameters()))
    res = find_lr(model, opt, make_loader(), F.cross_entropy, num_steps=20, repeats=1)
    assert all(lrs[2] == 0.0 and same for lrs, same in seen)
    assert res.reference_group == 0
    assert (
        "LRs for param group 0; the 3 param groups keep their LR ratios to it (1, 2, 0); "
        "param group 2 at LR 0 stays frozen" in str(res)
    )
