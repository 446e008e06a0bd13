"""lrkit.scaling and ``lrkit scale`` against Malladi et al. 2022 and Goyal et al. 2017, where they part:
RMSprop's own average (torch's ``alpha``, no beta1), the betas and eps only with the square-root LR, and
Goyal et al.'s warmup as advice for SGD raised 2x and more."""

from __future__ import annotations

import math

import pytest

from lrkit.scaling import scale_lr

from .test_cli_inputs import invoke


@pytest.mark.parametrize(("batch", "alpha"), [(48, 0.985), (64, 0.98), (512, 0.84), (3168, 0.01)])
def test_rmsprop_moves_its_alpha_and_eps(batch: int, alpha: float) -> None:
    """Malladi et al.: alpha -> 1 - k(1 - alpha), eps -> eps / sqrt(k); torch's alpha is 0.99, so the rule
    holds up to k < 100 (k = 16: alpha 0.84, eps 2.5e-9), where Adam's beta1 = 0.9 stops at k < 10."""
    s = scale_lr(1e-3, base_batch=32, batch=batch, optimizer="rmsprop")
    k = batch / 32
    assert s.lr == pytest.approx(1e-3 * math.sqrt(k), rel=1e-12)
    a, eps = s.rmsprop_hparams()
    assert a == pytest.approx(alpha, rel=1e-12) and eps == pytest.approx(1e-8 / math.sqrt(k), rel=1e-12)
    if k < 10:  # Keras' rho = 0.9, eps = 1e-7
        assert s.rmsprop_hparams(0.9, 1e-7) == pytest.approx((1 - k * 0.1, 1e-7 / math.sqrt(k)), rel=1e-12)
    note = next(n for n in s.notes if "Malladi" in n)
    assert f"alpha {alpha:g}, eps {1e-8 / math.sqrt(k):.3g}" in note and "beta" not in note, note


def test_rmsprop_past_the_rules_range() -> None:
    s = scale_lr(1e-3, base_batch=32, batch=3200, optimizer="rmsprop")  # k = 100: alpha = 1 - 100 x 0.01
    with pytest.raises(ValueError, match=r"rmsprop_hparams: .*alpha = 1 - k\(1 - 0.99\) <= 0.*k < 100"):
        s.rmsprop_hparams()
    assert any("alpha = 0.99 would fall to 0 or below (k >= 100)" in n for n in s.notes)


def test_cli_scale_rmsprop_gives_alpha_not_adams_betas(capsys: pytest.CaptureFixture[str]) -> None:
    for batch, want in ((48, "alpha 0.985, eps 8.16e-09"), (512, "alpha 0.84, eps 2.5e-09")):
        argv = [
            "scale",
            "--lr",
            "1e-3",
            "--base-batch",
            "32",
            "--batch",
            str(batch),
            "--optimizer",
            "rmsprop",
        ]
        code, out, err = invoke(capsys, argv)
        assert code == 0, err
        assert want in out and "beta" not in out and "Adam" not in out, out


@pytest.mark.parametrize(
    ("kw", "method", "words"),
    [
        ({"optimizer": "rmsprop"}, "adam_hparams", "optimizer 'rmsprop': use rmsprop_hparams()"),
        ({"optimizer": "adam"}, "rmsprop_hparams", "optimizer 'adam': use adam_hparams()"),
        ({"optimizer": "sgd"}, "adam_hparams", "for adam, adamw"),
        ({"optimizer": "adam", "rule": "linear"}, "adam_hparams", "scaled by the linear rule (x4)"),
        ({"optimizer": "rmsprop", "rule": "linear"}, "rmsprop_hparams", "scaled by the linear rule (x4)"),
    ],
)
def test_malladis_averages_only_go_with_the_sqrt_lr_of_their_optimizer(
    kw: dict[str, str], method: str, words: str
) -> None:
    """The betas (Adam) or alpha (RMSprop) and eps of Malladi et al. belong to their square-root LR: not
    to an LR scaled by the linear rule, to plain SGD, or to the other optimizer."""
    s = scale_lr(1e-3, base_batch=256, batch=1024, **kw)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=f"^{method}: .*" + words.replace("(", r"\(").replace(")", r"\)")):
        getattr(s, method)()


@pytest.mark.parametrize(
    ("optimizer", "batch", "warm"),
    [
        ("sgd", 257, False),  # x1.004: no 5-epoch warmup to a barely higher LR
        ("sgd", 500, False),
        ("sgd", 512, True),  # Goyal et al.'s smallest step up, 256 -> 512
        ("momentum", 8192, True),
        ("adam", 1024, False),  # Goyal et al.'s warmup is SGD's
        ("adamw", 65536, False),
        ("adagrad", 4096, False),
    ],
)
def test_goyal_warmup_advice_is_for_sgd_raised_2x_and_more(
    optimizer: str, batch: int, warm: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    s = scale_lr(0.1, base_batch=256, batch=batch, optimizer=optimizer)
    assert s.warmup_epochs == (5.0 if warm else 0.0)
    assert any("Goyal" in n and "warm up" in n for n in s.notes) == warm, s.notes
    argv = ["scale", "--lr", "0.1", "--base-batch", "256", "--batch", str(batch), "--optimizer", optimizer]
    code, out, err = invoke(capsys, argv)
    assert code == 0, err
    assert ("warm up over about 5 epochs" in out) == warm, out
