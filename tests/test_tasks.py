"""Built-in tasks: registry, the MNIST-1D generator, building, training and the finder on a task."""

from __future__ import annotations

import numpy as np
import pytest

from lrkit.lab.tasks import TASKS, Task, get_task, make_mnist1d, stdlib_text

torch = pytest.importorskip("torch")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_registry_names_and_unknown_task_lists_known_names() -> None:
    assert set(TASKS) == {"digits-mlp-sgd", "digits-mlp-adam", "mnist1d-cnn", "tinylm-transformer"}
    assert all(isinstance(t, Task) and TASKS[name] is t and t.name == name for name, t in TASKS.items())
    with pytest.raises(ValueError, match=r"digits-mlp-sgd.*tinylm-transformer.*got 'nope'"):
        get_task("nope")


def test_mnist1d_is_deterministic_balanced_and_seed_dependent() -> None:
    a = make_mnist1d(500, seed=3)
    b = make_mnist1d(500, seed=3)
    c = make_mnist1d(500, seed=4)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[0], c[0])
    xtr, ytr, xte, yte = a
    assert xtr.shape == (400, 40) and xte.shape == (100, 40) and xtr.dtype == np.float32
    counts = np.bincount(np.concatenate([ytr, yte]), minlength=10)
    assert counts.tolist() == [50] * 10  # labels cycle 0..9 before shuffling
    assert np.all(np.isfinite(xtr)) and 0.05 < float(xtr.std()) < 1.0


def test_mnist1d_classes_are_learnable_but_not_trivial() -> None:
    """Paper: linear models reach ~30-40 %, a CNN ~90+ %; chance is 10 %. Check a linear probe
    lands between chance and near-perfect (the noise and shifts make it hard without convolution)."""
    from sklearn.linear_model import LogisticRegression

    xtr, ytr, xte, yte = make_mnist1d(2000, seed=42)
    acc = LogisticRegression(max_iter=300).fit(xtr, ytr).score(xte, yte)
    assert 0.15 < acc < 0.8


def test_mnist1d_validation() -> None:
    with pytest.raises(ValueError, match="num_samples"):
        make_mnist1d(5)
    with pytest.raises(ValueError, match="train_split"):
        make_mnist1d(100, train_split=1.0)


def test_stdlib_text_is_python_source() -> None:
    text = stdlib_text()
    assert len(text) > 100_000 and "def " in text and "import " in text
    with pytest.raises(ValueError, match="modules"):
        stdlib_text(("sys",))  # built in, no .py source


@pytest.mark.parametrize("name", sorted(TASKS))
def test_build_gives_consistent_parts(name: str) -> None:
    task = get_task(name)
    a, b = task.build(0), task.build(0)
    assert a.steps_per_epoch == len(a.train_loader) > 10
    for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(p, q)  # same seed, same initial weights
    x, y = next(iter(a.train_loader))
    assert len(x) == task.batch_size
    loss = a.loss_fn(a.model(x), y)
    assert loss.ndim == 0 and 0.5 < float(loss.detach()) < 10.0
    a.model.eval()
    with torch.no_grad():
        m = a.metric(a.model)
    assert 0.0 < m < 0.3  # untrained: near chance (accuracy) or near 1/128 (exp(-CE))
    opt = a.make_optimizer(0.01)
    assert opt.param_groups[0]["lr"] == 0.01
    with pytest.raises(ValueError, match="seed"):
        task.build(-1)


def test_training_learns_and_is_reproducible() -> None:
    task = get_task("digits-mlp-adam")
    run = task.train_run(3e-3, epochs=2, seed=1)
    assert run.steps == 2 * task.build(0).steps_per_epoch and not run.diverged
    assert run.metric > 0.85
    assert task.train(3e-3, epochs=2, seed=1) == run.metric
    assert np.mean(run.losses[-10:]) < np.mean(run.losses[:10])


def test_schedule_training_equals_constant_lr_when_constant() -> None:
    task = get_task("digits-mlp-sgd")
    assert task.train(0.05, epochs=1, seed=0) == task.train(schedule=lambda step: 0.05, epochs=1, seed=0)


def test_divergence_is_reported_and_scored() -> None:
    nan_after_3 = lambda step: float("nan") if step >= 3 else 0.01  # noqa: E731
    run = get_task("digits-mlp-sgd").train_run(schedule=nan_after_3, epochs=1, seed=0)
    assert run.diverged and run.steps == 4 and len(run.losses) == 5 and np.isnan(run.losses[-1])
    assert run.metric <= 0.2  # NaN weights: chance accuracy at best


def test_train_validation() -> None:
    task = get_task("digits-mlp-sgd")
    with pytest.raises(ValueError, match="exactly one of lr and schedule"):
        task.train()
    with pytest.raises(ValueError, match="lr"):
        task.train(-1.0)
    with pytest.raises(ValueError, match="epochs"):
        task.train(0.1, epochs=-1)


def test_lm_trains_one_epoch_and_metric_is_exp_minus_ce() -> None:
    task = get_task("tinylm-transformer")
    parts = task.build(0)
    parts.model.eval()
    with torch.no_grad():
        # mean cross-entropy per character over all validation windows, by hand
        logp = [torch.log_softmax(parts.model(x), dim=-1) for x, _ in parts.val_batches]
        ys = [y for _, y in parts.val_batches]
        nll = torch.cat([-lp.gather(-1, y[..., None]).flatten() for lp, y in zip(logp, ys, strict=True)])
        m0 = parts.metric(parts.model)
    assert m0 == pytest.approx(float(torch.exp(-nll.double().mean())), rel=1e-5)
    assert 1 / 128 / 3 < m0 < 3 / 128  # untrained: about uniform over the 128 ASCII codes
    opt = parts.make_optimizer(3e-3)
    parts.model.train()
    for _, (x, y) in zip(range(25), parts.train_loader, strict=False):
        opt.zero_grad()
        parts.loss_fn(parts.model(x), y).backward()
        opt.step()
    parts.model.eval()
    with torch.no_grad():
        assert parts.metric(parts.model) > 2 * m0


def test_find_lr_on_a_task() -> None:
    res = get_task("digits-mlp-adam").find_lr(seed=0, num_steps=40, repeats=2)
    assert res.repeats == 2 and 1e-5 < res.suggestion < 1.0
