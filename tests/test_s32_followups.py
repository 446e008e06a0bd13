"""Follow-ups of session 32's fixes (re-run tester's report):

1. A float16 model whose Adam eps is 0 in float16: the guard's DivergenceError and the finder's verdict
   name the eps (no learning rate fixes it) instead of advising a lower LR / start_lr.
2. A tuner study created before the seed check (no stored seed) continued with a seed: a note says the
   study's seed is unknown and what the given seed does.
3. (in test_s32_typing.py) Plateau's mode / threshold_mode and scheduler's interval are Literal types.
4. lrkit.keras.ReduceOnPlateau(mode="auto") on a plain-function metric says that metric has no direction.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402

import lrkit  # noqa: E402
from lrkit._checks import eps_underflow  # noqa: E402
from lrkit.control import DivergenceError, DivergenceGuard  # noqa: E402


def _net(seed: int = 0) -> Any:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))


def _batch(step: int, dtype: Any = torch.float32) -> tuple[Any, Any]:
    """Input feature 0 is always 0: its weights' gradients are exactly 0, the 0/0 of an eps that is 0."""
    g = torch.Generator().manual_seed(step)
    x = torch.randn(32, 10, generator=g)
    x[:, 0] = 0.0
    y = x[:, 1:4].sum(dim=1, keepdim=True) + 0.1 * torch.randn(32, 1, generator=g)
    return x.to(dtype), y.to(dtype)


def _nan_after_one_step(eps: float) -> bool:
    """torch's own behaviour, the reference: one AdamW step at lr=1e-7 on the float16 model."""
    model = _net().half()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-7, eps=eps)
    x, y = _batch(0, torch.float16)
    F.mse_loss(model(x).float(), y.float()).backward()
    opt.step()
    return not all(torch.isfinite(p).all() for p in model.parameters())


# -- 1. the eps that is 0 in float16: the verdicts name it ----------------------------------------------
def test_the_finder_s_verdict_names_the_eps_not_start_lr() -> None:
    assert _nan_after_one_step(1e-8)  # torch: NaN at a tiny LR, so no LR advice can be right
    model = _net().half()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    data = [_batch(s, torch.float16) for s in range(8)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the eps warning, tested in test_s32_amp
        result = lrkit.find_lr(model, opt, data, F.mse_loss, num_steps=6, repeats=1)
    assert not result.trusted and result.suggestion is None
    assert result.problem_kinds == ("eps",), result.problems
    reason = result.reason
    assert "eps=1e-08 (param group 0) is 0 in torch.float16" in reason, reason
    assert "no learning rate fixes this" in reason and "eps >= 1e-4" in reason
    assert "float32 master weights" in reason
    assert "start_lr" not in reason and "check the loss" not in reason  # the old advice
    assert str(result).count("eps=1e-08") == 1  # the console's verdict says it too, once
    # the dict round trip keeps the problem
    assert type(result).from_dict(result.to_dict()).problems == result.problems


def test_escalation_stops_on_the_eps_instead_of_lowering_start_lr() -> None:
    model = _net().half()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    data = [_batch(s, torch.float16) for s in range(8)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = lrkit.find_lr(model, opt, data, F.mse_loss, num_steps=6, repeats=1, budget=200)
    assert result.problem_kinds == ("eps",)
    assert result.steps == result.first_steps  # no retry was run: a lower start_lr cannot help
    assert len(result.escalation) == 1 and result.escalation[0].startswith("stopped"), result.escalation
    assert "start_lr" not in result.escalation[0]


def test_an_eps_above_float16_s_smallest_value_keeps_the_old_verdicts() -> None:
    assert not _nan_after_one_step(1e-4)  # the reference: not NaN
    model = _net().half()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, eps=1e-4)
    assert eps_underflow(opt) is None
    data = [_batch(s, torch.float16) for s in range(8)]
    result = lrkit.find_lr(model, opt, data, F.mse_loss, num_steps=6, repeats=1)
    assert "eps" not in result.problem_kinds


def _train_under_guard(model: Any, opt: Any, steps: int = 20) -> DivergenceGuard:
    guard = DivergenceGuard(model, opt, snapshot_every=2, max_recoveries=2)
    dtype = next(model.parameters()).dtype
    step = 0
    while step < steps:
        x, y = _batch(step, dtype)
        loss = F.mse_loss(model(x).float(), y.float())
        loss.backward()
        if guard.check(loss, step):
            opt.step()
            step += 1
        else:
            step = guard.resume_step
        opt.zero_grad()
    return guard


def test_the_guard_s_divergence_error_names_the_eps_not_the_lr() -> None:
    model = _net().half()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the constructor's eps warning
        with pytest.raises(DivergenceError) as caught:
            _train_under_guard(model, opt)
    err = caught.value
    text = str(err)
    underflow = eps_underflow(opt)
    assert underflow is not None
    assert f"{underflow.short}, and no learning rate fixes this" in err.finding, err.finding
    assert "Lower the learning rate" not in text and "max_recoveries" not in text, text
    assert text.endswith(
        "Keep float32 master weights (a float32 model under torch.autocast, with a GradScaler for "
        "float16) or set eps >= 1e-4 for float16"
    ), text
    assert err.remedies == underflow.fixes
    assert "learning rate" not in err.advice() and err.advice({"lr": "--lr"}) == err.advice()
    assert err.event is not None and err.event.action == "stop"


def test_the_guard_still_advises_a_lower_lr_without_the_eps() -> None:
    """A float32 model at a huge LR: the old advice, unchanged."""
    model = _net()
    opt = torch.optim.SGD(model.parameters(), lr=1e6)
    assert eps_underflow(opt) is None
    with pytest.raises(DivergenceError, match=r"Lower the learning rate or raise max_recoveries"):
        _train_under_guard(model, opt)


# -- 2. a study that predates the seed check ------------------------------------------------------------
def _linear_parts(seed: int, epochs: int = 2) -> Any:
    from torch.utils.data import DataLoader, TensorDataset

    from lrkit.tasks import TaskParts

    g = torch.Generator().manual_seed(123)
    x = torch.randn(128, 4, generator=g)
    y = x @ torch.randn(4, 1, generator=g)
    shuffle = torch.Generator().manual_seed(seed)
    train = DataLoader(TensorDataset(x[:96], y[:96]), batch_size=32, shuffle=True, generator=shuffle)
    val = DataLoader(TensorDataset(x[96:], y[96:]), batch_size=32)
    return TaskParts(
        torch.nn.Linear(4, 1), train, val, F.mse_loss, metric="loss", epochs=epochs, optimizer="sgd"
    )


def test_a_study_without_a_stored_seed_says_what_the_given_seed_does(tmp_path: Path) -> None:
    optuna = pytest.importorskip("optuna")
    from lrkit.tasks import Task
    from lrkit.tune import tune
    from lrkit.tune.core import META

    task = Task("lin", _linear_parts)
    db = tmp_path / "t.db"
    tune(task, trials=1, storage=db, finder=False, seed=0)
    url = f"sqlite:///{db}"
    (summary,) = optuna.get_all_study_summaries(url)
    study = optuna.load_study(study_name=summary.study_name, storage=url)
    meta = dict(study.user_attrs[META])
    said: list[str] = []
    tune(task, trials=2, storage=db, finder=False, seed=0, progress=said.append)
    assert not any("seed" in s for s in said), said  # a seed was stored: checked, no note
    # an older lrkit stored no seed: the study's seed is unknown
    del meta["seed"]
    study.set_user_attr(META, meta)
    said.clear()
    res = tune(task, trials=3, storage=db, finder=False, seed=5, progress=said.append)
    notes = [s for s in said if "seed" in s]
    assert len(notes) == 1, said
    assert "predates lrkit's seed check, so its seed is unknown" in notes[0]
    assert "seed 5 only seeds the sampler of the trials this run adds" in notes[0]
    assert "\n" not in notes[0]
    assert res.finished == 3  # accepted, as before


# -- 4. Keras: a metric without a direction -------------------------------------------------------------
def test_keras_auto_mode_on_a_plain_function_metric_says_it_has_no_direction() -> None:
    os.environ.setdefault("KERAS_BACKEND", "jax")
    keras = pytest.importorskip("keras")
    import numpy as np

    import lrkit.keras as lk

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")

    def my_score(yt: Any, yp: Any) -> Any:
        return keras.ops.mean(keras.ops.abs(yt - yp))

    def fit(cb: Any) -> str:
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
        model.compile(optimizer=keras.optimizers.SGD(0.05), loss="binary_crossentropy", metrics=[my_score])
        with pytest.raises(ValueError) as caught:
            model.fit(x, y, validation_split=0.25, epochs=2, batch_size=32, verbose=0, callbacks=[cb])
        return str(caught.value)

    # the reference: Keras' own callback cannot tell the metric's direction either
    theirs = fit(keras.callbacks.ReduceLROnPlateau(monitor="val_my_score", patience=0))
    assert "isn't able to automatically determine whether that metric should be maximized" in theirs
    text = fit(lk.ReduceOnPlateau(monitor="val_my_score", patience=0))
    assert "metric 'my_score' has no direction" in text, text
    assert "Keras cannot tell whether higher is better" in text
    assert "pass mode='min'" in text and "mode='max'" in text
    assert "has no metric named" not in text and "that says so" not in text  # it has one: no contradiction
