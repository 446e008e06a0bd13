"""lrkit.scaling and ``lrkit scale`` against the papers: Goyal et al. 2017 (linear rule, gradual warmup
from the base LR for every batch above the base), Malladi et al. 2022 (square-root rule for Adam with its
betas and eps), the effective batch (per device x accumulation steps x devices)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lrkit.scaling import scale_lr

from .test_cli_inputs import assert_one_error, invoke


@pytest.mark.parametrize(
    ("batch", "warm"), [(257, False), (300, False), (511, False), (512, True), (8192, True), (128, False)]
)
def test_goyal_warmup_for_every_batch_above_the_base(batch: int, warm: bool) -> None:
    """Goyal et al. 5.3: gradual warmup for every kn > 256 (each 2x and more), starting from 0.1 (the
    base lr); a small increase (256 -> 257) gets no such advice."""
    s = scale_lr(0.1, 256, batch)
    assert s.lr == pytest.approx(0.1 * batch / 256, rel=1e-15)
    assert s.warmup_epochs == (5.0 if warm else 0.0)
    assert any("from the base lr 0.1 " in n for n in s.notes) == warm


def test_effective_batch_is_batch_x_accumulation_x_devices() -> None:
    s = scale_lr(0.1, 256, 32, accumulation_steps=4, devices=8)
    assert s.batch == 1024 and s.lr == pytest.approx(0.4) and s.factor == 4.0
    assert any("1024 = 32 x 4 accumulation steps x 8 devices" in n for n in s.notes)
    adam = scale_lr(1e-3, 64, 16, optimizer="adamw", accumulation_steps=2, devices=8)
    assert adam.batch == 256 and adam.lr == pytest.approx(2e-3)
    for name in ("accumulation_steps", "devices"):
        for bad in (0, -1, 2.0, True, "4", None):
            with pytest.raises(ValueError, match=f"scale_lr: {name} must be an integer >= 1, got"):
                scale_lr(0.1, 256, 32, **{name: bad})  # type: ignore[arg-type]


def test_numpy_integers_are_batch_sizes() -> None:
    """A batch computed with numpy (np.int64) is an integer, as everywhere else in lrkit."""
    s = scale_lr(np.float32(0.1), np.int64(256), np.int32(1024), devices=np.int64(2))  # type: ignore[arg-type]
    assert s.lr == pytest.approx(0.8, rel=1e-7) and s.batch == 2048 and type(s.batch) is int
    for bad in (np.float64(256.0), 256.0, float("nan"), np.bool_(True)):
        with pytest.raises(ValueError, match="scale_lr: batch must be an integer >= 1, got"):
            scale_lr(0.1, 256, bad)  # type: ignore[arg-type]


def test_huge_batches_are_named_briefly() -> None:
    with pytest.raises(ValueError, match=r"batch 256 -> an integer of 401 digits\) gives lr = inf") as e:
        scale_lr(0.1, 256, 10**400)
    assert len(str(e.value)) < 300


@pytest.mark.parametrize("k", [0.25, 0.5, 2, 4, 8, 9.5])
def test_adam_hparams_are_malladi_square_root_rule(k: float) -> None:
    """Malladi et al. 2022: batch x k -> lr x sqrt(k), 1 - beta -> k (1 - beta), eps -> eps / sqrt(k)."""
    base = 1024
    s = scale_lr(1e-3, base, int(base * k), optimizer="adam")
    assert s.lr == pytest.approx(1e-3 * math.sqrt(k), rel=1e-12)
    b1, b2, eps = s.adam_hparams(0.9, 0.999, 1e-8)
    assert (b1, b2, eps) == pytest.approx((1 - k * 0.1, 1 - k * 0.001, 1e-8 / math.sqrt(k)), rel=1e-12)
    assert any(f"betas ({1 - k * 0.1:.6g}, {1 - k * 0.001:.6g})" in n for n in s.notes)


def test_adam_hparams_past_the_rules_range_say_so() -> None:
    s = scale_lr(1e-3, 32, 512, optimizer="adam")  # k = 16: beta1 = 1 - 16 x 0.1 < 0
    with pytest.raises(ValueError, match=r"beta1 = 1 - k\(1 - 0.9\) <= 0.*k < 10"):
        s.adam_hparams()
    assert s.adam_hparams(beta1=0.95) == pytest.approx((0.2, 0.984, 2.5e-9))
    assert any("past the rule's range" in n for n in s.notes)
    assert not any("Malladi" in n for n in scale_lr(0.1, 32, 512).notes)  # SGD: no betas to move


def test_rescale_steps_keeps_the_samples() -> None:
    """A warmup of 4000 steps at batch 256 is the same 1,024,000 samples as 1000 steps at 1024."""
    s = scale_lr(1e-3, 256, 1024, optimizer="adam")
    assert s.rescale_steps(4000) == 1000 and s.rescale_steps(4001) == 1001 and s.rescale_steps(1) == 1
    assert scale_lr(0.1, 256, 128).rescale_steps(500) == 1000
    assert scale_lr(0.1, 256, 768).rescale_steps(1000) == 334  # ceil(333.33)
    with pytest.raises(ValueError, match="rescale_steps: steps must be > 0, got 0"):
        s.rescale_steps(0)


def test_cli_scale_effective_batch(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["scale", "--lr", "0.1", "--base-batch", "256", "--batch", "32", "--accumulation-steps", "4"]
    code, out, err = invoke(capsys, [*argv, "--devices", "8"])
    assert code == 0, err
    assert out.splitlines()[:2] == ["lr = 0.4 (linear rule, x4)", "warm up over about 5 epochs"]
    assert "effective batch 1024 = 32 x 4 accumulation steps x 8 devices (tuned at 256)" in out
    code, out, err = invoke(capsys, [*argv, "--devices", "0"])
    assert_one_error(code, out, err, "--devices")


def test_cli_scale_takes_any_optimizer_with_a_rule(capsys: pytest.CaptureFixture[str]) -> None:
    """As scale_lr: with --rule, the optimizer only picks the notes; Prodigy is still refused."""
    base = ["scale", "--lr", "1e-3", "--base-batch", "256", "--batch", "1024"]
    code, out, err = invoke(capsys, [*base, "--optimizer", "lion", "--rule", "sqrt"])
    assert code == 0 and out.startswith("lr = 0.002 (sqrt rule, x2)"), err
    code, out, err = invoke(capsys, [*base, "--optimizer", "prodigy", "--rule", "sqrt"])
    assert_one_error(code, out, err, "--optimizer")


def test_cli_scale_help_names_every_optimizer(capsys: pytest.CaptureFixture[str]) -> None:
    from lrkit.scaling import OPTIMIZERS

    code, out, _ = invoke(capsys, ["scale", "--help"])
    text = " ".join(out.split())
    assert code == 0
    for name in OPTIMIZERS:
        assert name in text, name
    assert "--accumulation-steps" in text and "--devices" in text


@pytest.mark.parametrize(
    ("batch", "beta1", "beta2"), [(2560, 0.9, 0.999), (256_000, 0.9999, 0.999), (512, 0.5, 0.999)]
)
def test_adam_hparams_refuse_a_ratio_at_the_rules_edge(batch: int, beta1: float, beta2: float) -> None:
    """k (1 - beta) = 1 exactly leaves beta = 0, outside the rule (the guide: it stops at k < 10 for 0.9);
    in floats 10 x (1 - 0.9) is 0.9999999999999998, and k = 10 gave beta1 = 0.0."""
    from lrkit.scaling import scale_lr

    s = scale_lr(1e-3, base_batch=256, batch=batch, optimizer="adam")
    with pytest.raises(ValueError, match=r"gives beta[12] = 1 - k\(1 - "):
        s.adam_hparams(beta1=beta1, beta2=beta2)
    b1, _, _ = scale_lr(1e-3, base_batch=256, batch=batch - 1, optimizer="adam").adam_hparams(beta1, beta2)
    assert 0.0 < b1 < beta1  # one example less: still inside the rule
