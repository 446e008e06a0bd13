"""Tasks: the protocol (TaskParts, your own module:function), the built-in tasks, optimizers by name."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from lrkit.tasks import (
    OPTIMIZERS,
    TASKS,
    Task,
    TaskParts,
    get_task,
    make_optimizer,
    mnist1d_data,
    stdlib_text,
)

torch = pytest.importorskip("torch")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_registry_names_and_unknown_task_lists_known_names() -> None:
    assert set(TASKS) == {"digits-mlp-sgd", "digits-mlp-adam", "mnist1d-cnn", "tinylm-transformer"}
    assert all(isinstance(t, Task) and TASKS[name] is t and t.name == name for name, t in TASKS.items())
    with pytest.raises(ValueError, match=r"digits-mlp-sgd.*tinylm-transformer.*module:function.*got 'nope'"):
        get_task("nope")


def test_mnist1d_is_the_mnist1d_package_data_and_leaves_global_rngs_alone() -> None:
    """The data is exactly what the mnist1d package builds with its defaults (4000/1000, length 40),
    and building it does not reseed numpy's global generator (the package calls np.random.seed(42))."""
    from mnist1d.data import get_dataset_args, make_dataset

    np.random.seed(123)
    expected_next = np.random.RandomState(123).rand()
    mnist1d_data.cache_clear()
    xtr, ytr, xte, yte = mnist1d_data()
    assert np.random.rand() == expected_next
    ref = make_dataset(get_dataset_args())
    np.testing.assert_array_equal(xtr, ref["x"].astype(np.float32))
    np.testing.assert_array_equal(yte, ref["y_test"])
    assert xtr.shape == (4000, 40) and xte.shape == (1000, 40) and xtr.dtype == np.float32
    assert sorted(set(ytr.tolist())) == list(range(10))


def test_stdlib_text_is_python_source() -> None:
    text = stdlib_text()
    assert len(text) > 100_000 and "def " in text and "import " in text
    with pytest.raises(ValueError, match="modules"):
        stdlib_text(("sys",))  # built in, no .py source


@pytest.mark.parametrize("name", sorted(TASKS))
def test_build_gives_consistent_parts(name: str) -> None:
    task = get_task(name)
    a, b = task.build(0), task.build(0)
    assert a.epoch_steps == len(a.train_loader) > 10 and a.steps_per_epoch is None
    for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(p, q)  # same seed, same initial weights
    x, y = next(iter(a.train_loader))
    loss = a.loss_fn(a.model(x), y)
    assert loss.ndim == 0 and 0.5 < float(loss.detach()) < 10.0
    m = a.evaluate()
    assert a.higher_is_better and 0.0 < m < 0.3  # untrained: near chance (accuracy) or near 1/128 (exp(-CE))
    opt = a.make_optimizer(0.01)
    assert opt.param_groups[0]["lr"] == 0.01
    with pytest.raises(ValueError, match="seed"):
        task.build(-1)


def test_training_learns_and_is_reproducible() -> None:
    task = get_task("digits-mlp-adam")
    run = task.train_run(3e-3, epochs=2, seed=1)
    assert run.steps == 2 * task.build(0).epoch_steps and not run.diverged
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
        logp = [torch.log_softmax(parts.model(x), dim=-1) for x, _ in parts.val_loader]
        ys = [y for _, y in parts.val_loader]
        nll = torch.cat([-lp.gather(-1, y[..., None]).flatten() for lp, y in zip(logp, ys, strict=True)])
        m0 = parts.evaluate()
    assert m0 == pytest.approx(float(torch.exp(-nll.double().mean())), rel=1e-5)
    assert 1 / 128 / 3 < m0 < 3 / 128  # untrained: about uniform over the 128 ASCII codes
    opt = parts.make_optimizer(3e-3)
    parts.model.train()
    for _, (x, y) in zip(range(25), parts.train_loader, strict=False):
        opt.zero_grad()
        parts.loss_fn(parts.model(x), y).backward()
        opt.step()
    parts.model.eval()
    assert parts.evaluate() > 2 * m0


def test_find_lr_on_a_task() -> None:
    res = get_task("digits-mlp-adam").find_lr(seed=0, num_steps=40, repeats=2)
    assert res.repeats == 2 and 1e-5 < res.suggestion < 1.0


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_by_name_builds_and_takes_a_step(name: str) -> None:
    model = torch.nn.Linear(3, 1)
    opt = make_optimizer(name, model.parameters(), 0.01)
    assert opt.param_groups[0]["lr"] == 0.01
    if hasattr(opt, "train"):
        opt.train()
    model(torch.ones(2, 3)).sum().backward()
    before = model.weight.detach().clone()
    opt.step()
    assert not torch.equal(before, model.weight.detach())


def test_optimizer_errors_name_the_argument() -> None:
    model = torch.nn.Linear(3, 1)
    with pytest.raises(ValueError, match=r"optimizer must be one of .*prodigy.*got 'lion'"):
        make_optimizer("lion", model.parameters(), 0.1)
    with pytest.raises(ValueError, match=r"optimizer 'adam'.*betaz"):
        make_optimizer("adam", model.parameters(), 0.1, {"betaz": 0.9})
    with pytest.raises(ValueError, match=r"weight_decay must be a finite number"):
        make_optimizer("adamw", model.parameters(), 0.1, {"weight_decay": float("nan")})
    # text is refused as a spec's number is (it was converted); yaml.safe_load's YAML 1.1 text named
    with pytest.raises(ValueError, match=r"weight_decay must be a number, got the text '1e-2'.*safe_load"):
        make_optimizer("adamw", model.parameters(), 0.1, {"weight_decay": "1e-2"})


def _tiny(seed: int) -> TaskParts:
    x = torch.randn(64, 4)
    y = (x[:, 0] > 0).long()
    data = torch.utils.data.TensorDataset(x, y)
    loader = torch.utils.data.DataLoader(data, batch_size=16)
    return TaskParts(torch.nn.Linear(4, 2), loader, loader, torch.nn.functional.cross_entropy, epochs=2)


def test_taskparts_validation_names_the_field() -> None:
    good = _tiny(0)
    cases = {
        "model": dict(model="not a model"),
        "train_loader": dict(train_loader=3),
        "val_loader": dict(val_loader="abc"),
        "loss_fn": dict(loss_fn=1.5),
        "metric": dict(metric="f1"),
        "epochs": dict(epochs=0),
        "optimizer": dict(optimizer="lion"),
        "higher_is_better": dict(higher_is_better="yes"),
        "steps_per_epoch": dict(steps_per_epoch=-1),
    }
    import dataclasses

    for field, change in cases.items():
        kw = {f.name: getattr(good, f.name) for f in dataclasses.fields(good) if f.init}
        kw.update(change)
        kw["higher_is_better"] = change.get("higher_is_better")
        kw["metric_name"] = None
        with pytest.raises((ValueError, TypeError), match=field):
            TaskParts(**kw)


def test_a_loss_metric_is_lower_is_better_and_diverged_scores_worst() -> None:
    parts = _tiny(0)
    parts2 = TaskParts(parts.model, parts.train_loader, parts.val_loader, parts.loss_fn, metric="loss")
    assert (
        parts2.higher_is_better is False and parts2.metric_name == "val loss" and parts2.worst() == math.inf
    )
    with torch.no_grad():
        by_hand = np.mean([float(parts.loss_fn(parts.model(x), y)) for x, y in parts.val_loader])
    assert parts2.evaluate() == pytest.approx(by_hand, rel=1e-6)


def test_your_own_task_by_module_and_function(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mytasks_lrkit.py").write_text(
        "import torch, lrkit.tasks\n"
        "def small(seed):\n"
        "    x = torch.randn(64, 4); y = (x[:, 0] > 0).long()\n"
        "    dl = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)\n"
        "    return lrkit.tasks.TaskParts(torch.nn.Linear(4, 2), dl, dl, torch.nn.functional.cross_entropy,"
        " epochs=3, optimizer='momentum')\n"
        "def wrong(seed):\n    return 42\n"
        "NOT_CALLABLE = 3\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    task = get_task("mytasks_lrkit:small")
    assert task.epochs == 3 and task.optimizer == "momentum"
    a, b = task.build(5), task.build(5)
    assert torch.equal(a.model.weight, b.model.weight)  # seeded by build, though the factory ignores seed
    assert task.train(0.1, seed=0) > 0.5
    with pytest.raises(TypeError, match=r"must return lrkit\.tasks\.TaskParts, got int"):
        get_task("mytasks_lrkit:wrong").build(0)
    for bad, msg in [
        ("mytasks_lrkit:nope", "has no attribute 'nope'"),
        ("mytasks_lrkit:NOT_CALLABLE", "is not callable"),
        ("no_such_module_lrkit:f", "no module named 'no_such_module_lrkit'"),
        ("a:b:c", "module:function"),
        (":f", "module:function"),
    ]:
        with pytest.raises(ValueError, match=msg):
            get_task(bad)


@pytest.mark.parametrize("name", ["adagrad", "adam", "adamw", "nadam", "radam", "adamax"])
def test_an_untuned_lr_is_the_torch_optimizer_s_own_default(name: str) -> None:
    """DEFAULT_LR holds each library's own default (its comment says so; RMSprop's 1e-3 is Keras'):
    checked against torch's."""
    from lrkit.tasks.optimizers import DEFAULT_LR

    cls = {"adamw": "AdamW", "nadam": "NAdam", "radam": "RAdam", "adagrad": "Adagrad", "rmsprop": "RMSprop"}
    torch_cls = getattr(torch.optim, cls.get(name, name.capitalize()))
    assert DEFAULT_LR[name] == torch_cls(torch.nn.Linear(2, 1).parameters()).defaults["lr"]


def test_accuracy_refuses_targets_it_cannot_compare_with_the_argmax() -> None:
    """metric='accuracy' counts argmax(out) == y. Targets of shape (batch, 1) broadcast that into a
    (batch, batch) count, an accuracy above 1; float targets (a regression) never equal a class index,
    an accuracy of 0. Both are refused by the task's check, naming the shapes, before anything trains."""
    import dataclasses

    import lrkit.tasks as T

    x = torch.randn(64, 4)
    labels = (x[:, 0] > 0).long()

    def parts(y: torch.Tensor, loss: object, out: int = 2) -> TaskParts:
        dl = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)
        return TaskParts(torch.nn.Linear(4, out), dl, dl, loss, metric="accuracy", epochs=1)  # type: ignore[arg-type]

    good = parts(labels, torch.nn.functional.cross_entropy)
    with torch.no_grad():
        by_hand = float((good.model(x).argmax(-1) == labels).float().mean())
    assert good.evaluate() == pytest.approx(by_hand)
    column = parts(labels[:, None], lambda o, y: torch.nn.functional.cross_entropy(o, y[:, 0]))
    regression = parts(torch.randn(64, 1), torch.nn.functional.mse_loss, out=1)
    for bad, got in (
        (column, "compares the argmax .* got " + re.escape("torch.int64 targets of shape (32, 1)")),
        (regression, r"on one score per sample .* needs 0/1 targets, got torch\.float32 targets"),
    ):
        with pytest.raises(TypeError, match=r"metric 'accuracy' " + got):
            bad.evaluate()
        task = T.Task("bad", lambda seed, p=bad: dataclasses.replace(p), "a task with unusable targets")
        with pytest.raises(TypeError, match=r"^task 'bad': TaskParts: metric 'accuracy'"):
            task.check(0)
