"""Recipes against the formulas in their papers and libraries; batch-size scaling rules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lrkit.recipes import (
    RECIPES,
    bert_finetune,
    fastai_one_cycle,
    get_recipe,
    gpt_cosine,
    resnet_imagenet,
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


def test_noam_matches_the_paper() -> None:
    d, w = 512, 4000
    s = transformer_noam(d_model=d, warmup=w)
    for step in (1, 10, 1000, 3999, 4000, 4001, 20_000, 100_000):
        assert s(step) == pytest.approx(d**-0.5 * min(step**-0.5, step * w**-1.5), rel=1e-12)


def test_resnet_step_decay_and_large_batch_warmup() -> None:
    spe = 100
    s = resnet_imagenet().resolve(steps_per_epoch=spe)
    assert [s(e * spe) for e in (0, 29, 30, 60, 90)] == pytest.approx([0.1, 0.1, 0.01, 0.001, 0.0001])
    big = resnet_imagenet(batch=8192).resolve(
        steps_per_epoch=spe
    )  # Goyal et al.: 3.2, 5-epoch warmup from 0.1
    assert big(0) == pytest.approx(0.1) and big(5 * spe) == pytest.approx(3.2)
    assert big(30 * spe) == pytest.approx(0.32) and big(90 * spe) == pytest.approx(0.0032)


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
