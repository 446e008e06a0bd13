"""Recipes where their parameters leave the defaults: an explicit warmup of resnet_imagenet ramps,
``warmup=0`` is no warmup (transformers' ``num_warmup_steps=0``, nanoGPT's ``warmup_iters=0``), and
``lrkit recipes --set`` describes the recipe with those settings."""

from __future__ import annotations

import pytest

from lrkit.cli import main
from lrkit.recipes import bert_finetune, gpt_cosine, resnet_imagenet

from .test_recipes_scaling import _nanogpt_lr

SPE = 100


@pytest.mark.parametrize("batch", [64, 128, 256])
def test_resnet_explicit_warmup_ramps_at_256_and_below(batch: int) -> None:
    """warmup='5ep' asked for at batch <= 256 was start=min(1, 256/batch) = 1: a flat line. It is lrkit's
    default warmup, (t + 1) / (n + 1) of the peak, over those 5 epochs."""
    peak = 0.1 * batch / 256
    s = resnet_imagenet(batch=batch, warmup="5ep").resolve(steps_per_epoch=SPE)
    n = 5 * SPE
    for t in (0, 1, 250, 499):
        assert s(t) == pytest.approx(peak * (t + 1) / (n + 1), rel=1e-12), t
    assert s(n) == pytest.approx(peak, rel=1e-12) and s(30 * SPE) == pytest.approx(peak / 10, rel=1e-12)
    assert s(0) < peak / 100


@pytest.mark.parametrize("batch", [300, 512, 8192])
def test_resnet_explicit_warmup_above_256_is_goyals_from_0_1(batch: int) -> None:
    """Above 256 a warmup length of your own keeps Goyal et al.'s start, 0.1 (the LR tuned at 256)."""
    peak = 0.1 * batch / 256
    s = resnet_imagenet(batch=batch, warmup="2ep").resolve(steps_per_epoch=SPE)
    for t in (0, 100, 199, 200):
        assert s(t) == pytest.approx(0.1 + (peak - 0.1) * min(t, 200) / 200, rel=1e-12), t


@pytest.mark.parametrize("zero", [0, 0.0, "0", "0%", "0ep"])
def test_warmup_0_is_no_warmup(zero: object) -> None:
    """bert_finetune, gpt_cosine and resnet_imagenet refused warmup=0 ('warmup: steps must be > 0')."""
    total = 1000
    bert = bert_finetune(warmup=zero).resolve(total_steps=total)  # type: ignore[arg-type]
    gpt = gpt_cosine(warmup=zero).resolve(total_steps=total)  # type: ignore[arg-type]
    resnet = resnet_imagenet(batch=1024, warmup=zero).resolve(steps_per_epoch=SPE)  # type: ignore[arg-type]
    for t in range(total + 1):
        # transformers' get_linear_schedule_with_warmup with num_warmup_steps=0, transcribed
        assert bert(t) == pytest.approx(5e-5 * max(0.0, (total - t) / max(1, total)), rel=1e-12, abs=0), t
        assert gpt(t) == pytest.approx(_nanogpt_lr(t, 6e-4, 0, total, 6e-5), rel=1e-12), t
    assert resnet(0) == pytest.approx(0.4) == resnet(30 * SPE - 1) and resnet(30 * SPE) == pytest.approx(0.04)
    assert bert_finetune(warmup=None) == bert_finetune(warmup=zero)  # type: ignore[arg-type]
    assert gpt_cosine(warmup=None) == gpt_cosine(warmup=zero)  # type: ignore[arg-type]


def test_bert_warmup_0_is_transformers_own() -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    total = 50
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=5e-5)
    ref = transformers.get_linear_schedule_with_warmup(opt, num_warmup_steps=0, num_training_steps=total)
    s = bert_finetune(warmup=0).resolve(total_steps=total)
    for t in range(total):
        assert s(t) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12, abs=1e-20), t
        opt.step()
        ref.step()


def test_recipes_set_describes_the_settings(capsys: pytest.CaptureFixture[str]) -> None:
    """`--set milestones=30,60,80` printed 'x0.1 at epochs 30/60/90' above the schedule cutting at 80."""
    assert main(["recipes", "resnet_imagenet", "--set", "milestones=30,60,80"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert "x0.1 at epochs 30/60/80" in first and "90" not in first, first
    assert main(["recipes", "bert_finetune", "--set", "lr=3e-5", "warmup=6%"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert "the first 6% to 3e-05" in first, first
    assert main(["recipes", "resnet_imagenet"]) == 0
    assert "x0.1 at epochs 30/60/90" in capsys.readouterr().out.splitlines()[0]
