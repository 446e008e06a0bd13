"""A practitioner's first hour with the Python API: the mistakes and set-ups that come first (a generator
as the loader, a loss class instead of an instance, an optimizer built for another model, a Hugging
Face-style model, gradient accumulation under ``lrkit.auto``) give one clear error or the right result."""

from __future__ import annotations

import copy
import math
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

import lrkit  # noqa: E402
from lrkit.finder import find_lr  # noqa: E402


def _data(n: int = 256, seed: int = 0) -> tuple[Any, Any]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = (x @ torch.randn(8, 3, generator=g)).argmax(1)
    return x, y


def _batches(n: int = 256, bs: int = 32) -> list[tuple[Any, Any]]:
    x, y = _data(n)
    return [(x[i : i + bs], y[i : i + bs]) for i in range(0, n, bs)]


def _model() -> Any:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))


# --- loaders -----------------------------------------------------------------------------------------
def test_a_one_shot_generator_says_it_ran_out_and_why() -> None:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    batches = _batches()
    with pytest.raises(ValueError, match=r"ran out after 8 batches.*iterated only once"):
        find_lr(model, opt, (b for b in batches), F.cross_entropy, num_steps=20)
    with pytest.raises(ValueError, match=r"ran out after 8 batches"):
        lrkit.auto(model, opt, iter(batches), F.cross_entropy, epochs=3, steps_per_epoch=8, verbose=False)
    with pytest.raises(ValueError, match="train_loader yielded no batches"):  # empty from the start
        find_lr(model, opt, [], F.cross_entropy)


def test_an_endless_generator_runs_like_the_list_it_draws_from() -> None:
    batches = _batches()

    def endless() -> Any:
        while True:
            yield from batches

    ref_model, model = _model(), _model()
    ref = find_lr(ref_model, torch.optim.SGD(ref_model.parameters(), lr=0.1), batches, F.cross_entropy)
    got = find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), endless(), F.cross_entropy)
    np.testing.assert_array_equal(got.losses, ref.losses)


def test_a_dataset_given_as_the_loader_warns_that_it_yields_single_samples() -> None:
    x, y = _data(64)
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.warns(UserWarning, match=r"TensorDataset.*single samples.*DataLoader"):
        find_lr(model, opt, TensorDataset(x, y), F.cross_entropy, num_steps=5)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a DataLoader over it does not warn
        find_lr(
            model,
            opt,
            DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True),
            F.cross_entropy,
            num_steps=5,
        )


# --- arguments ---------------------------------------------------------------------------------------
def test_a_loss_class_instead_of_an_instance_names_loss_fn() -> None:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match=r"loss_fn .*class CrossEntropyLoss.*CrossEntropyLoss\(\)"):
        find_lr(model, opt, _batches(), nn.CrossEntropyLoss)
    with pytest.raises(TypeError, match=r"loss_fn .*class CrossEntropyLoss"):
        lrkit.auto(model, opt, _batches(), nn.CrossEntropyLoss, epochs=2, verbose=False)
    res = find_lr(model, opt, _batches(), nn.CrossEntropyLoss(), num_steps=5)  # the instance is fine
    assert len(res.losses) == 5


def test_amp_dtype_must_be_a_floating_dtype() -> None:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for bad in ("bf16", torch.int8):
        with pytest.raises(TypeError, match=rf"amp_dtype .*got {bad!r}".replace("(", r"\(")):
            find_lr(model, opt, _batches(), F.cross_entropy, amp_dtype=bad)
        with pytest.raises(TypeError, match="amp_dtype"):
            lrkit.auto(model, opt, _batches(), F.cross_entropy, epochs=2, amp_dtype=bad, verbose=False)


def test_an_optimizer_of_another_model_or_of_frozen_parameters_is_refused() -> None:
    model, other = _model(), _model()
    stale = torch.optim.SGD(other.parameters(), lr=0.1)  # the model was created again after it
    with pytest.raises(ValueError, match=r"optimizer SGD holds none of model's parameters"):
        find_lr(model, stale, _batches(), F.cross_entropy)
    with pytest.raises(ValueError, match=r"none of model's parameters"):
        lrkit.auto(model, stale, _batches(), F.cross_entropy, epochs=2, verbose=False)
    model.requires_grad_(False)
    frozen = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"optimizer SGD has no parameter that requires grad"):
        find_lr(model, frozen, _batches(), F.cross_entropy)
    # partly frozen is fine: the trainable part is stepped, the frozen part is left alone
    model[0].requires_grad_(True)
    before = copy.deepcopy(model[2].state_dict())
    find_lr(model, frozen, _batches(), F.cross_entropy, num_steps=5)
    assert all(torch.equal(v, model[2].state_dict()[k]) for k, v in before.items())


class _NeedsClosure(torch.optim.SGD):
    """A user's optimizer whose step, like LBFGS', re-evaluates the loss through a required closure."""

    def step(self, closure: Any) -> Any:  # type: ignore[override]
        return super().step(closure)


@pytest.mark.parametrize("make", [torch.optim.LBFGS, lambda p: _NeedsClosure(p, lr=0.1)])
def test_an_optimizer_that_steps_with_a_closure_is_refused_before_any_step(make: Any) -> None:
    from lrkit.finder.in_run import ramp_in_run

    model = _model()
    opt = make(model.parameters())
    before = copy.deepcopy(model.state_dict())
    name = type(opt).__name__
    for search in (
        lambda: find_lr(model, opt, _batches(), F.cross_entropy),
        lambda: ramp_in_run(model, opt, _batches(), F.cross_entropy),
        lambda: lrkit.auto(model, opt, _batches(), F.cross_entropy, epochs=2, verbose=False),
    ):
        with pytest.raises(TypeError, match=rf"optimizer {name}'s step\(\) requires a closure"):
            search()
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items()) and not opt.state


class _TwoOutputs(nn.Module):
    """Returns ``(logits, features)``, as many research models do."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Linear(8, 3)

    def forward(self, x: Any) -> Any:
        out = self.body(x)
        return out, out.detach()


def test_a_model_with_two_outputs_gets_an_error_naming_them_unless_the_loss_takes_them() -> None:
    model = _TwoOutputs()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match=r"model\(x\) returned a tuple of 2, not a tensor.*forward=lambda"):
        find_lr(model, opt, _batches(), F.cross_entropy, num_steps=5)
    with pytest.raises(TypeError, match=r"returned a tuple of 2"):
        lrkit.auto(model, opt, _batches(), F.cross_entropy, epochs=2, verbose=False)

    def both(out: Any, y: Any) -> Any:  # a loss that takes the pair is called as it is
        return F.cross_entropy(out[0], y)

    assert find_lr(model, opt, _batches(), both, num_steps=5).lrs.size == 5


# --- Hugging Face-style models -----------------------------------------------------------------------
@dataclass
class _Output:
    loss: Any
    logits: Any


class _HFStyle(nn.Module):
    """Takes keyword tensors, returns an object with ``.loss`` (None without labels) and ``.logits``."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(32, 8)
        self.head = nn.Linear(8, 2)

    def forward(self, input_ids: Any, attention_mask: Any = None, labels: Any = None) -> _Output:
        logits = self.head(self.emb(input_ids).mean(1))
        return _Output(None if labels is None else F.cross_entropy(logits, labels), logits)


def _hf_batches(with_labels: bool = True) -> list[dict[str, Any]]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 32, (128, 6), generator=g)
    out = []
    for i in range(0, 128, 16):
        b = {"input_ids": ids[i : i + 16], "attention_mask": torch.ones(16, 6)}
        if with_labels:
            b["labels"] = (ids[i : i + 16, 0] >= 16).long()
        out.append(b)
    return out


def test_a_hugging_face_style_model_needs_no_loss_fn_and_matches_forward() -> None:
    ref_model, model = _HFStyle(), _HFStyle()
    ref = find_lr(
        ref_model,
        torch.optim.AdamW(ref_model.parameters(), lr=1e-3),
        _hf_batches(),
        forward=lambda m, b: m(**b).loss,
        num_steps=30,
    )
    got = find_lr(model, torch.optim.AdamW(model.parameters(), lr=1e-3), _hf_batches(), num_steps=30)
    np.testing.assert_array_equal(got.losses, ref.losses)


def test_hugging_face_style_mistakes_say_what_to_do() -> None:
    model = _HFStyle()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    with pytest.raises(ValueError, match=r"loss of None.*'attention_mask', 'input_ids'.*labels"):
        find_lr(model, opt, _hf_batches(with_labels=False))
    with pytest.raises(TypeError, match=r"returned _Output, not a tensor.*no loss_fn"):
        find_lr(model, opt, _hf_batches(), F.cross_entropy)
    with pytest.raises(TypeError, match=r"got _Output \(it has a \.loss: return output\.loss"):
        find_lr(model, opt, _hf_batches(), forward=lambda m, b: m(**b))
    with pytest.raises(TypeError, match=r"got dict \(it has a 'loss' key"):
        find_lr(model, opt, _hf_batches(), forward=lambda m, b: {"loss": m(**b).loss})


# --- lrkit.auto with gradient accumulation -----------------------------------------------------------
@pytest.mark.parametrize("k", [1, 2, 3])
def test_auto_counts_optimizer_steps_under_gradient_accumulation(k: int) -> None:
    """The scheduler steps once per optimizer step: with ``accumulation_steps=k`` an epoch of
    ``n`` batches is ``ceil(n / k)`` of them, or the schedule would outlast the run k times over."""
    batches = _batches(320, 32)  # 10 batches an epoch
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    run = lrkit.auto(
        model, opt, batches, F.cross_entropy, epochs=20, accumulation_steps=k, search="separate",
        verbose=False, repeats=1,
    )  # fmt: skip
    assert run.total_steps == 20 * math.ceil(10 / k)
    assert f"20 epochs x {math.ceil(10 / k)} steps planned" in run.summary
    # the schedule ends (WSD cools down to 0) at the last optimizer step of the run
    assert run.lrs()[-1] < 0.05 * run.peak_lr
    assert len(run.lrs()) == run.total_steps


# --- exact restore of a model in the state a practitioner hands over ---------------------------------
def test_an_eval_mode_partly_frozen_model_with_batchnorm_dropout_and_grads_comes_back_exactly() -> None:
    x, y = _data(256)
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))
    model[0].weight.requires_grad_(False)
    opt = torch.optim.AdamW(
        [{"params": [model[0].bias, *model[1].parameters()], "lr": 1e-4}, {"params": model[4].parameters()}],
        lr=1e-3,
    )
    model.train()
    F.cross_entropy(model(x[:32]), y[:32]).backward()
    opt.step()  # optimizer state, BatchNorm statistics and gradients to restore
    model.eval()
    model[3].train()  # a mix of modes
    state = copy.deepcopy(model.state_dict())
    opt_state = copy.deepcopy(opt.state_dict())
    modes = [m.training for m in model.modules()]
    grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    rng = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state().clone())

    find_lr(model, opt, loader, F.cross_entropy, repeats=2, num_steps=30)

    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert repr(opt.state_dict()) == repr(opt_state)
    assert [m.training for m in model.modules()] == modes
    assert [p.requires_grad for p in model.parameters()] == [False, True, True, True, True, True]
    for p, g in zip(model.parameters(), grads, strict=True):
        assert (p.grad is None) == (g is None) and (g is None or torch.equal(p.grad, g))
    assert random.getstate() == rng[0]
    np.testing.assert_array_equal(np.random.get_state()[1], rng[1])
    assert torch.equal(torch.get_rng_state(), rng[2])


# --- the finder's figure -----------------------------------------------------------------------------
def test_the_figure_of_an_untrusted_result_shows_no_suggestion_and_says_why(tmp_path: Any) -> None:
    pytest.importorskip("matplotlib")
    from lrkit.finder import range_test

    def bowl(lr: float) -> float:  # a clear minimum near lr=0.1
        return float((np.log10(lr) + 1.0) ** 2 + 1.0)

    def flat(lr: float) -> float:  # no signal: the loss does not move
        return 1.0

    for step, trusted in ((bowl, True), (flat, False)):
        res = range_test(step, num_steps=60)
        assert res.trusted is trusted
        ax = res.plot(tmp_path / "lr.png")
        rules = [
            ln for ln in ax.get_lines() if ln.get_label().split(":")[0] in ("lrkit", "steepest", "valley")
        ]
        assert rules, [ln.get_label() for ln in ax.get_lines()]
        bold = [ln.get_label() for ln in rules if ln.get_linewidth() >= 2.0]
        if trusted:
            assert bold == [f"lrkit: {res.suggestion:.3g}"]
            assert "NOT TRUSTED" not in ax.get_title()
        else:  # no line reads as the suggestion; the title says why there is none
            assert bold == []
            assert all(ln.get_label().endswith("(not used)") for ln in rules)
            assert "no suggestion (NOT TRUSTED)" in ax.get_title()
            assert res.reason.split(";")[0][:40] in ax.get_title()
