"""Recipes against the formulas in their papers and libraries; batch-size scaling rules."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from lrkit.recipes import (
    RECIPES,
    bert_finetune,
    fastai_one_cycle,
    get_recipe,
    gpt_cosine,
    llm_wsd,
    resnet_imagenet,
    sgdr_cifar,
    transformer_noam,
)
from lrkit.scaling import scale_lr


def test_bert_matches_transformers_linear_schedule_with_warmup() -> None:
    """transformers' get_linear_schedule_with_warmup lambda, transcribed from its source."""
    total, warm, lr = 1000, 100, 5e-5

    def hf(step: int) -> float:
        if step < warm:
            return lr * step / max(1, warm)
        return lr * max(0.0, (total - step) / max(1, total - warm))

    s = bert_finetune(lr=lr).resolve(total_steps=total)
    for step in range(total + 1):
        assert s(step) == pytest.approx(hf(step), rel=1e-12, abs=1e-20)


@pytest.mark.parametrize("total", [37, 999, 1001, 1005])
def test_bert_warmup_is_the_trainers_ceil_of_10_percent(total: int) -> None:
    """transformers' Trainer with warmup_ratio=0.1 warms up for math.ceil(0.1 * total) steps."""
    warm, lr = math.ceil(0.1 * total), 5e-5

    def hf(step: int) -> float:
        if step < warm:
            return lr * step / max(1, warm)
        return lr * max(0.0, (total - step) / max(1, total - warm))

    s = bert_finetune(lr=lr).resolve(total_steps=total)
    assert s(np.arange(total + 1)) == pytest.approx([hf(t) for t in range(total + 1)], rel=1e-12, abs=1e-20)


def _t2t_noam(step: int, d: int, w: int) -> float:
    """tensor2tensor's ``noam`` without its 5000 x constant, transcribed: ``step`` is the 0-based global
    step, ``step + 1`` the paper's ``step_num``."""
    return d**-0.5 * min((step + 1) * w**-1.5, (step + 1) ** -0.5)


@pytest.mark.parametrize(("d", "w"), [(512, 4000), (1024, 10), (64, 2), (512, 1)])
def test_noam_is_the_paper_formula_at_step_number_step_plus_one(d: int, w: int) -> None:
    """Vaswani et al.'s step_num counts from 1 (tensor2tensor: global_step + 1): the first update, lrkit's
    step 0, has d**-0.5 * w**-1.5, not 0; the peak (d * w)**-0.5 is at step w - 1."""
    s = transformer_noam(d_model=d, warmup=w)
    steps = np.arange(3 * w + 50)
    assert s(steps) == pytest.approx([_t2t_noam(int(t), d, w) for t in steps], rel=1e-12)
    assert s(0) == pytest.approx(d**-0.5 * w**-1.5, rel=1e-12) and s(0) > 0
    assert s(w - 1) == pytest.approx((d * w) ** -0.5, rel=1e-12) == max(s(steps))
    for step in (10_000, 100_000, 10**7):
        assert s(step) == pytest.approx(_t2t_noam(step, d, w), rel=1e-12)


def test_noam_through_the_torch_adapter_matches_torch_lambda_lr() -> None:
    """The LR each optimizer.step() uses, from lrkit.torch.scheduler and from torch's own LambdaLR with
    the tensor2tensor lambda (the usual PyTorch port of the paper's schedule)."""
    torch = pytest.importorskip("torch")
    import lrkit.adapters.torch as lt

    d, w = 512, 40

    def used_lrs(make: Any) -> list[float]:
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.Adam([p], lr=1.0, betas=(0.9, 0.98), eps=1e-9)
        sched = make(opt)
        out = []
        for _ in range(3 * w):
            out.append(opt.param_groups[0]["lr"])
            p.grad = torch.ones(1)
            opt.step()
            sched.step()
        return out

    ours = used_lrs(lambda opt: lt.scheduler(opt, transformer_noam(d_model=d, warmup=w)))
    ref = used_lrs(lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lambda k: _t2t_noam(k, d, w)))
    assert ours == pytest.approx(ref, rel=1e-12)
    assert ours[0] > 0


@pytest.mark.parametrize(("kw", "msg"), [({"d_model": 512.5}, "d_model"), ({"warmup": 4000.5}, "warmup")])
def test_noam_takes_whole_numbers(kw: dict[str, float], msg: str) -> None:
    with pytest.raises(ValueError, match=f"transformer_noam: {msg} must be a whole number"):
        transformer_noam(**kw)  # type: ignore[arg-type]
    assert transformer_noam(d_model=np.int64(512), warmup=np.int32(4000)) == transformer_noam()  # type: ignore[arg-type]


@pytest.mark.parametrize("milestones", [(30, 60, 90), (30, 60, 80), (10,)])
def test_resnet_step_decay_is_torch_multisteplr_per_epoch(milestones: tuple[int, ...]) -> None:
    """0.1 x kn/256, x0.1 at the milestones (default 30, 60, 90; Goyal et al.'s 90-epoch run: 30, 60, 80),
    per epoch as torch's MultiStepLR."""
    torch = pytest.importorskip("torch")
    spe = 10
    s = resnet_imagenet(milestones=milestones).resolve(steps_per_epoch=spe)
    if milestones == (30, 60, 90):
        assert resnet_imagenet() == resnet_imagenet(milestones=milestones)  # the default
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    ref = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(milestones), gamma=0.1)
    for epoch in range(120):
        for k in range(spe):
            assert s(epoch * spe + k) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12), epoch
        opt.step()
        ref.step()


@pytest.mark.parametrize("bad", [(), "30,60", (30.5, 60), (0, 30), (30, None)])
def test_resnet_milestones_must_be_whole_epochs(bad: object) -> None:
    with pytest.raises((TypeError, ValueError), match="resnet_imagenet: milestones"):
        resnet_imagenet(milestones=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("batch", [512, 300, 1024, 8192])
def test_resnet_warms_up_from_0_1_for_every_batch_above_256(batch: int) -> None:
    """Goyal et al. 5.3: "For models with kn > 256, we used the gradual warmup strategy always starting
    with 0.1 and increasing linearly to the reference learning rate after 5 epochs"."""
    spe = 100
    s = resnet_imagenet(batch=batch).resolve(steps_per_epoch=spe)
    peak = 0.1 * batch / 256
    for t in (0, 1, 137, 250, 499, 500, 1000):
        want = 0.1 + (peak - 0.1) * min(t, 5 * spe) / (5 * spe)
        assert s(t) == pytest.approx(want, rel=1e-12), t
    assert s(30 * spe) == pytest.approx(peak / 10) and s(90 * spe) == pytest.approx(peak / 1000)
    small = resnet_imagenet(batch=128).resolve(steps_per_epoch=spe)
    assert small(0) == pytest.approx(0.05) == small(5 * spe)  # the LR shrinks: no warmup


def test_resnet_step_decay_and_large_batch_warmup() -> None:
    spe = 100
    s = resnet_imagenet().resolve(steps_per_epoch=spe)
    assert [s(e * spe) for e in (0, 29, 30, 60, 89, 90)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.001, 0.001, 1e-4]
    )
    big = resnet_imagenet(batch=8192).resolve(steps_per_epoch=spe)  # Goyal et al.: 3.2, warmup from 0.1
    assert big(0) == pytest.approx(0.1) and big(5 * spe) == pytest.approx(3.2)
    assert big(30 * spe) == pytest.approx(0.32) and big(90 * spe) == pytest.approx(0.0032)


def _nanogpt_lr(it: int, lr: float, warmup_iters: int, lr_decay_iters: int, min_lr: float) -> float:
    """nanoGPT's get_lr (train.py), transcribed."""
    if it < warmup_iters:
        return lr * (it + 1) / (warmup_iters + 1)
    if it > lr_decay_iters:
        return min_lr
    ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


def test_gpt_cosine_is_nanogpt_get_lr() -> None:
    total, lr = 5000, 6e-4
    s = gpt_cosine(lr=lr).resolve(total_steps=total)  # warmup 1% = 50 steps, cosine to 6e-5
    for it in range(total + 1):
        assert s(it) == pytest.approx(_nanogpt_lr(it, lr, 50, total, lr / 10), rel=1e-12), it


def test_wsd_is_haegele_1_sqrt_cooldown() -> None:
    """Hägele et al. 2024: constant, then lr * (1 - sqrt((t - (n - d)) / d)) over the last d steps."""
    total = 1000
    s = llm_wsd(lr=3e-4).resolve(total_steps=total)  # warmup 1%: 10 steps, cool-down 20%: 200 steps
    for t in range(10, total + 1):
        want = 3e-4 * (1 - math.sqrt(max(0.0, t - 800) / 200))
        assert s(t) == pytest.approx(want, rel=1e-12, abs=1e-18), t


def _fastai_one_cycle(step: int, total: int, lr_max: float) -> float:
    """fastai's fit_one_cycle defaults, transcribed: combined_cos(0.25, lr_max/25, lr_max, lr_max/1e5) at
    pct = step / total, SchedCos(a, b)(p) = a + (1 + cos(pi * (1 - p))) * (b - a) / 2."""

    def cos(a: float, b: float, p: float) -> float:
        return a + (1 + math.cos(math.pi * (1 - p))) * (b - a) / 2

    pct = step / total
    if pct < 0.25:
        return cos(lr_max / 25, lr_max, pct / 0.25)
    return cos(lr_max, lr_max / 1e5, (pct - 0.25) / 0.75)


def test_fastai_one_cycle_ends_at_max_lr_over_div_final() -> None:
    """fastai's div_final=1e5 divides lr_max (its final lr is lr_max/1e5); torch's final_div_factor divides
    the start, lr_max/25. The recipe ended 25 times too low (lr_max/2.5e6)."""
    torch = pytest.importorskip("torch")
    total, lr_max = 1000, 1e-2
    s = fastai_one_cycle(max_lr=lr_max).resolve(total_steps=total)
    v = s(np.arange(total))
    assert v[-1] == pytest.approx(lr_max / 1e5, rel=1e-9)
    fa = np.array([_fastai_one_cycle(t, total, lr_max) for t in range(total)])
    assert v[0] == pytest.approx(fa[0]) and v.max() == pytest.approx(fa.max())
    # the one-step clock difference (torch's OneCycleLR vs fastai's pct = step / total) is all that is left
    slope = np.abs(np.diff(fa)).max()
    assert np.abs(v - fa).max() <= 1.2 * slope
    # and on torch's clock it is OneCycleLR itself
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr_max)
    ref = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr_max, total_steps=total, pct_start=0.25, div_factor=25, final_div_factor=4e3,
        cycle_momentum=False,
    )  # fmt: skip
    for t in range(total):
        assert v[t] == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9), t
        opt.step()
        ref.step()


def test_sgdr_is_torch_cosine_annealing_warm_restarts() -> None:
    """Loshchilov & Hutter 2017 on CIFAR: T_0 = 10 epochs, T_mult = 2, eta_max 0.05, eta_min 0, stepped
    per batch as torch's CosineAnnealingWarmRestarts."""
    torch = pytest.importorskip("torch")
    spe = 20
    s = sgdr_cifar().resolve(steps_per_epoch=spe)
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.05)
    ref = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=10 * spe, T_mult=2)
    for t in range(150 * spe):
        assert s(t) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9, abs=1e-15), t
        opt.step()
        ref.step()


def test_gpt_cosine_and_fastai_one_cycle() -> None:
    s = gpt_cosine(lr=6e-4).resolve(total_steps=10_000)
    assert s(100) == pytest.approx(6e-4) and s(10_000) == pytest.approx(6e-5)
    oc = fastai_one_cycle(max_lr=1e-2).resolve(total_steps=1000)
    assert oc(0) == pytest.approx(1e-2 / 25) and max(oc(np.arange(1000))) == pytest.approx(1e-2)


def test_every_recipe_builds_and_resolves() -> None:
    for name, r in RECIPES.items():
        s = r.build().resolve(total_steps=10_000, steps_per_epoch=100)
        v = s(np.arange(10_001))
        assert np.all(np.isfinite(v)) and np.all(v >= 0) and v.max() > 0, name
        assert r.reference and "`" not in r.reference, name  # printed by lrkit recipes: plain text
    with pytest.raises(ValueError, match="unknown recipe 'bert'; known: resnet_imagenet, bert_finetune"):
        get_recipe("bert")


def test_scaling_rules() -> None:
    assert scale_lr(0.1, 256, 8192).lr == pytest.approx(3.2)
    assert scale_lr(0.1, 256, 8192).warmup_epochs == 5
    adam = scale_lr(1e-3, 64, 1024, optimizer="AdamW")
    assert adam.rule == "sqrt" and adam.lr == pytest.approx(4e-3)
    assert scale_lr(0.1, 256, 128).warmup_epochs == 0 and scale_lr(0.1, 256, 128).lr == pytest.approx(0.05)
    assert any("sqrt" in n for n in scale_lr(1e-3, 64, 1024, rule="linear", optimizer="adam").notes)
    assert any("8k" in n for n in scale_lr(0.1, 256, 16384).notes)
    assert math.isclose(scale_lr(0.1, 100, 400, rule="sqrt").factor, 2.0)
    with pytest.raises(ValueError, match="scale_lr: batch must be an integer >= 1, got 0"):
        scale_lr(0.1, 256, 0)
    with pytest.raises(ValueError, match="scale_lr: rule must be one of 'linear', 'sqrt', got 'cubic'"):
        scale_lr(0.1, 256, 512, rule="cubic")


@pytest.mark.parametrize("name", ["lion", "Sophia", "my_opt"])
def test_scale_lr_takes_any_optimizer_name_with_an_explicit_rule_but_not_an_lr_free_one(name: str) -> None:
    """The optimizer only picks the default rule: with a rule given, an optimizer lrkit does not know is
    fine (and gets that rule), without one it is refused; Prodigy (its own step size) never scales."""
    from lrkit.scaling import scale_lr

    assert scale_lr(1e-3, 256, 1024, rule="sqrt", optimizer=name).lr == pytest.approx(2e-3)
    with pytest.raises(ValueError, match=f"optimizer must be one of .*got '{name}'"):
        scale_lr(1e-3, 256, 1024, optimizer=name)
    for rule in ("linear", "sqrt", None):
        with pytest.raises(ValueError, match="estimates its own step size"):
            scale_lr(1e-3, 256, 1024, optimizer="prodigy", rule=rule)
