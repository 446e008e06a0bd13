"""Tester S's own tasks (s30): metric 'accuracy' per token and without -100 targets, binary accuracy on one
score per sample, a callable metric's direction read from its name (no silent maximising), a model
returning a dict / Hugging Face-style output, a diverged run scored -inf (not 0) where higher is better,
and a refusal of 3-element batches that says how to adapt (dict batches and loss_fn=None are taken now:
tests/test_s31_task_batches.py)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrkit.tasks import Task, TaskParts

torch = pytest.importorskip("torch")
nn = torch.nn
F = nn.functional


class Fixed(nn.Module):
    """A model whose output is given per input index: ``outputs[x]`` (x a tensor of indices)."""

    def __init__(self, outputs: Any, wrap: Any = None) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.zeros(()))
        self.outputs = outputs
        self.wrap = wrap

    def forward(self, x: Any) -> Any:
        out = self.outputs[x] + self.p
        return out if self.wrap is None else self.wrap(out)


def _parts(model: nn.Module, x: Any, y: Any, **kw: Any) -> TaskParts:
    kw.setdefault("loss_fn", lambda o, t: o.sum() * 0)
    return TaskParts(model, [(x, y)], [(x, y)], **kw)


# ---- 1. accuracy per token, -100 not counted ------------------------------------------------------------


def test_sequence_accuracy_counts_tokens_not_sequences() -> None:
    x = torch.randint(0, 5, (2, 4), generator=torch.Generator().manual_seed(0))
    one_hot = torch.eye(5)

    class M(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.p = nn.Parameter(torch.zeros(()))

        def forward(self, x: Any) -> Any:
            return one_hot[x] + self.p  # predicts x exactly

    assert _parts(M(), x, x.clone()).evaluate() == 1.0  # was 4.0 (8 tokens right / 2 sequences)
    pads = x.clone()
    pads[:, 2:] = -100
    assert _parts(M(), x, pads).evaluate() == 1.0  # was 2.0: the -100 pads counted as wrong
    wrong = x.clone()
    wrong[0, 0] = (x[0, 0] + 1) % 5
    assert _parts(M(), x, wrong).evaluate() == 7 / 8


@settings(max_examples=60, deadline=None)
@given(
    batch=st.integers(1, 4),
    seq=st.integers(1, 5),
    classes=st.integers(2, 6),
    n_batches=st.integers(1, 3),
    seed=st.integers(0, 2**16),
    pad_share=st.sampled_from([0.0, 0.3, 0.9]),
)
def test_accuracy_is_correct_targets_over_counted_targets(
    batch: int, seq: int, classes: int, n_batches: int, seed: int, pad_share: float
) -> None:
    g = torch.Generator().manual_seed(seed)
    n = batch * n_batches
    scores = torch.randn(n, seq, classes, generator=g)
    targets = torch.randint(0, classes, (n, seq), generator=g)
    targets[torch.rand(n, seq, generator=g) < pad_share] = -100
    targets[0, 0] = int(scores[0, 0].argmax())  # one counted target at least
    idx = torch.arange(n)
    loader = [(idx[i : i + batch], targets[i : i + batch]) for i in range(0, n, batch)]
    parts = TaskParts(Fixed(scores), loader, loader, loss_fn=lambda o, t: o.sum() * 0)
    keep = targets != -100
    expected = int(((scores.argmax(-1) == targets) & keep).sum()) / int(keep.sum())
    got = parts.evaluate()
    assert 0.0 <= got <= 1.0
    assert got == pytest.approx(expected, abs=1e-12)


# ---- 2. binary accuracy on one score per sample ----------------------------------------------------------


def _binary(weight: float) -> tuple[nn.Module, Any, Any]:
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(1))
    y = (x[:, 0] > 0).long()
    model = nn.Linear(2, 1)
    with torch.no_grad():
        model.weight[:] = torch.tensor([[weight, 0.0]])
        model.bias.zero_()
    return model, x, y


@pytest.mark.parametrize("weight", [10.0, -10.0])
def test_one_logit_per_sample_is_binary_accuracy(weight: float) -> None:
    model, x, y = _binary(weight)  # weight 10: a perfect classifier, -10: always wrong
    want = 1.0 if weight > 0 else 0.0
    assert _parts(model, x, y).evaluate() == want  # was the share of class 0 for both
    assert _parts(model, x, y.float()).evaluate() == want  # float 0/1 targets (BCE's)
    assert _parts(model, x, y[:, None]).evaluate() == want  # (batch, 1) targets
    probs = nn.Sequential(model, nn.Sigmoid())  # probabilities: threshold 0.5, not 0
    assert _parts(probs, x, y).evaluate() == want


def test_binary_accuracy_follows_the_model() -> None:
    model, x, y = _binary(10.0)
    with torch.no_grad():
        model.bias.fill_(-1.0)  # predicts 1 only for x0 > 0.1
    expected = float(((x[:, 0] * 10 - 1 > 0).long() == y).float().mean())
    assert 0.5 < expected < 1.0
    assert _parts(model, x, y).evaluate() == pytest.approx(expected)


def test_binary_accuracy_refuses_targets_that_are_not_0_or_1() -> None:
    model, x, _ = _binary(1.0)
    with pytest.raises(TypeError, match=r"binary and needs 0/1 targets, got torch.int64 targets with values"):
        _parts(model, x, torch.randint(0, 3, (64,))).evaluate()


def test_squeezed_output_refusal_says_what_is_wrong() -> None:
    model, x, y = _binary(1.0)
    squeezed = nn.Sequential(model, nn.Flatten(0))
    with pytest.raises(TypeError, match=r"shape \(64,\) \(targets \(64,\)\): no class dimension.*unsqueeze"):
        _parts(squeezed, x, y).evaluate()


# ---- 3. a callable metric's direction --------------------------------------------------------------------


def _metric_parts(metric: Any, **kw: Any) -> TaskParts:
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    return TaskParts(nn.Linear(4, 3), [(x, y)], [(x, y)], loss_fn=F.cross_entropy, metric=metric, **kw)


def _named(name: str) -> Any:
    def fn(model: nn.Module) -> float:
        return 1.0

    fn.__name__ = name
    return fn


@pytest.mark.parametrize(
    ("name", "higher"),
    [
        ("perplexity", False),
        ("val_ppl", False),
        ("valLoss", False),
        ("word_error_rate", False),
        ("rmse", False),
        ("top1_err", False),
        ("val_acc", True),
        ("balancedAccuracy", True),
        ("macro_f1", True),
        ("r2", True),
        ("mean_iou", True),
        ("roc_auc", True),
    ],
)
def test_direction_is_read_from_the_name(name: str, higher: bool) -> None:
    assert _metric_parts(_named(name)).higher_is_better is higher
    assert _metric_parts(lambda m: 1.0, metric_name=f"val {name}").higher_is_better is higher


@pytest.mark.parametrize("name", ["<lambda>", "score", "neg_loss", "acc_loss", "mcc"])
def test_a_name_that_says_no_direction_is_refused(name: str) -> None:
    with pytest.raises(
        ValueError, match=rf"metric {name!r} \(a callable\) needs higher_is_better=True or False"
    ):
        _metric_parts(_named(name))
    assert _metric_parts(_named(name), higher_is_better=True).higher_is_better is True
    assert _metric_parts(_named(name), higher_is_better=False).higher_is_better is False


def test_a_given_direction_wins_over_the_name() -> None:
    assert _metric_parts(_named("perplexity"), higher_is_better=True).higher_is_better is True
    assert _metric_parts("loss").higher_is_better is False
    assert _metric_parts("accuracy").higher_is_better is True


# ---- 4. a model returning a dict, an HF-style output, a tuple --------------------------------------------


class Out:
    def __init__(self, logits: Any) -> None:
        self.logits = logits
        self.loss = None


@pytest.mark.parametrize("wrap", [lambda o: {"logits": o, "aux": o}, Out])
def test_accuracy_takes_the_logits_of_a_dict_or_hf_style_output(wrap: Any) -> None:
    scores = torch.randn(16, 3, generator=torch.Generator().manual_seed(2))
    y = scores.argmax(-1)
    y[:4] = (y[:4] + 1) % 3
    assert _parts(Fixed(scores, wrap), torch.arange(16), y).evaluate() == 12 / 16


def test_a_tuple_output_is_refused_naming_how_to_pick() -> None:
    scores = torch.randn(4, 3)
    parts = _parts(Fixed(scores, lambda o: (o, o)), torch.arange(4), torch.zeros(4, dtype=torch.long))
    with pytest.raises(TypeError, match=r"returned a tuple of 2, not a tensor.*output\[0\].*metric='loss'"):
        parts.evaluate()


def test_task_check_names_a_dict_output_without_logits() -> None:
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))

    class M(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.l = nn.Linear(4, 3)

        def forward(self, x: Any) -> Any:
            return {"scores": self.l(x)}

    def factory(seed: int) -> TaskParts:
        return TaskParts(M(), [(x, y)], [(x, y)], loss_fn=lambda o, t: F.cross_entropy(o["scores"], t))

    with pytest.raises(TypeError, match=r"task 'mine': TaskParts: metric 'accuracy'.*\['scores'\]"):
        Task("mine", factory).check()


# ---- 5. a diverged run scores the worst there is ---------------------------------------------------------


def test_a_diverged_run_never_beats_a_negative_metric() -> None:
    x = torch.randn(128, 4, generator=torch.Generator().manual_seed(3))
    y = torch.randint(0, 3, (128,), generator=torch.Generator().manual_seed(4))

    def neg_loss(model: nn.Module) -> float:
        return -float(F.cross_entropy(model(x), y))

    def factory(seed: int) -> TaskParts:
        train = [(x[i : i + 32], y[i : i + 32]) for i in range(0, 128, 32)]
        return TaskParts(nn.Linear(4, 3), train, [(x, y)], loss_fn=F.cross_entropy, metric=neg_loss,
                         higher_is_better=True, epochs=2, optimizer="sgd")  # fmt: skip

    task = Task("neg", factory)
    blown = task.train_run(1e38)
    assert blown.diverged and blown.metric == -math.inf  # was 0.0, above every finished run's -loss
    assert max((0.1, 1e38), key=task.train) == 0.1
    assert factory(0).worst() == -math.inf
    assert TaskParts(nn.Linear(4, 3), [(x, y)], [(x, y)], F.cross_entropy, metric="loss").worst() == math.inf


def test_a_nan_metric_scores_the_worst() -> None:
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))

    def factory(seed: int) -> TaskParts:
        return TaskParts(nn.Linear(4, 3), [(x, y)], [(x, y)], loss_fn=F.cross_entropy,
                         metric=lambda m: math.nan, metric_name="r2", epochs=1)  # fmt: skip

    assert Task("nan", factory).train(0.01) == -math.inf


# ---- 6. batches other than (input, target): how to adapt -------------------------------------------------


def _check(train: Any, loss_fn: Any = F.cross_entropy) -> None:
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    Task("mine", lambda seed: TaskParts(nn.Linear(4, 3), train, [(x, y)], loss_fn=loss_fn)).check()


def test_a_three_element_batch_is_refused_with_the_workaround() -> None:
    batch = (torch.randn(8, 4), torch.randint(0, 3, (8,)), torch.ones(8))
    with pytest.raises(
        TypeError,
        match=r"a tuple of 3; a task takes \(input, target\) pairs: the elements after the target .* not",
    ):
        _check([batch])


def test_the_workaround_trains_an_hf_style_model() -> None:
    """The adaptation the refusals give: (batch, batch['labels']) batches, a wrapper calling
    model(**batch), loss_fn=lambda out, y: out.loss; accuracy takes out.logits."""
    g = torch.Generator().manual_seed(5)
    x = torch.randn(64, 4, generator=g)
    y = (x[:, 0] > 0).long()

    class HF(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.l = nn.Linear(4, 2)

        def forward(self, input_ids: Any, labels: Any = None) -> Out:
            out = Out(self.l(input_ids))
            out.loss = None if labels is None else F.cross_entropy(out.logits, labels)
            return out

    class Wrap(nn.Module):
        def __init__(self, model: nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, batch: dict[str, Any]) -> Any:
            return self.model(**batch)

    dicts = [{"input_ids": x[i : i + 16], "labels": y[i : i + 16]} for i in range(0, 64, 16)]
    pairs = [(b, b["labels"]) for b in dicts]

    def factory(seed: int) -> TaskParts:
        return TaskParts(
            Wrap(HF()), pairs, pairs, loss_fn=lambda out, t: out.loss, epochs=20, optimizer="adam"
        )

    task = Task("hf", factory)
    task.check()
    assert task.train(0.05) > 0.9
