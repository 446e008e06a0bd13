"""Review findings on the session's new code: lrkit tune failed a live worker's trial at once when that
worker ran in another PID namespace with this host's name (docker --network=host); keras ReduceOnPlateau
mode='auto' raised after a full epoch for a loss tracker of a custom train_step (g_loss) or a per-output
loss (val_a_loss); a torch ReduceLROnPlateau's min_lrs were loaded with no word when they differ from the
plateau's min_lr. Each test fails on the old code."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

# 1. a trial of another PID namespace ------------------------------------------------------------------


def _running_trial(tmp_path: Path, space: str | None) -> tuple[object, int]:
    optuna = pytest.importorskip("optuna")
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 't.db'}", study_name="s")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid of this namespace that no process has now
    trial = study.ask()
    trial.set_user_attr("worker", f"{socket.gethostname()}:{gone.pid}:dead")
    if space is not None:
        trial.set_user_attr("worker_pid_space", space)
    return study, trial.number


@pytest.mark.skipif(not os.path.exists("/proc/self/ns/pid"), reason="needs Linux's /proc/self/ns/pid")
@pytest.mark.parametrize("which", ["same", "other namespace", "other boot", "earlier lrkit"])
def test_only_a_trial_of_this_pid_namespace_and_boot_is_failed_at_once(tmp_path: Path, which: str) -> None:
    from lrkit.tune.core import PID_SPACE, _fail_killed, _pid_space

    here = _pid_space()
    assert here is not None and PID_SPACE == "worker_pid_space"
    inode, _, boot = here.partition(":")
    assert int(inode) == os.stat("/proc/self/ns/pid").st_ino
    assert boot == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    space = {
        "same": here,
        "other namespace": f"{int(inode) + 1}:{boot}",  # a container with this host's name
        "other boot": f"{inode}:00000000-0000-0000-0000-000000000000",
        "earlier lrkit": None,  # a trial written before the namespace was stored: its heartbeat says
    }[which]
    study, number = _running_trial(tmp_path, space)
    said: list[str] = []
    _fail_killed(study, study.get_trials(deepcopy=False), said.append)  # type: ignore[attr-defined]
    state = study.trials[number].state.name  # type: ignore[attr-defined]
    if which == "same":
        assert state == "FAIL" and len(said) == 1 and "it was a killed run's trial" in said[0]
    else:
        assert state == "RUNNING" and said == []


def test_without_proc_no_trial_is_failed_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lrkit.tune import core

    study, number = _running_trial(tmp_path, core._pid_space())
    real_stat = os.stat

    def no_proc(path: object, *args: object, **kwargs: object) -> os.stat_result:
        if str(path).startswith("/proc/"):
            raise FileNotFoundError(path)
        return real_stat(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(core.os, "stat", no_proc)
    assert core._pid_space() is None
    said: list[str] = []
    core._fail_killed(study, study.get_trials(deepcopy=False), said.append)  # type: ignore[attr-defined]
    assert study.trials[number].state.name == "RUNNING" and said == []  # type: ignore[attr-defined]


# 4. keras ReduceOnPlateau mode='auto' on a loss tracker -------------------------------------------------


def _keras() -> object:
    os.environ.setdefault("KERAS_BACKEND", "jax")
    return pytest.importorskip("keras")


def test_keras_auto_mode_reads_a_custom_train_step_loss_tracker_as_min() -> None:
    """A GAN-style model logs its own Mean tracker ``g_loss``: it has no direction and is no compiled
    loss; lrkit read it as min (a loss) and trained; then it raised after the first epoch."""
    keras: Any = _keras()
    import numpy as np

    import lrkit.keras as lk

    class Model(keras.Model):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.d = keras.layers.Dense(1)
            self.g_loss = keras.metrics.Mean(name="g_loss")

        @property
        def metrics(self) -> list[Any]:
            return [self.g_loss]

        def call(self, x: Any) -> Any:
            return self.d(x)

        def compute_loss(self, x: Any = None, y: Any = None, y_pred: Any = None, *a: Any, **k: Any) -> Any:
            loss = keras.ops.mean((y_pred - y) ** 2)
            self.g_loss.update_state(loss)
            return loss

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = x[:, :1] * 2.0
    model = Model()
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    cb = lk.ReduceOnPlateau(monitor="g_loss", patience=0, start=0)
    h = model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[cb])
    assert cb.plateau.mode == "min"
    assert cb.plateau.best == min(h.history["g_loss"])  # the best is the lowest: min


def test_keras_auto_mode_reads_a_per_output_loss_as_min() -> None:
    keras: Any = _keras()
    import numpy as np

    import lrkit.keras as lk

    keras.utils.set_random_seed(0)
    inp = keras.Input((4,))
    outs = {"a": keras.layers.Dense(1, name="a")(inp), "b": keras.layers.Dense(1, name="b")(inp)}
    model = keras.Model(inp, outs)
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss={"a": "mse", "b": "mse"})
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = {"a": x[:, :1].copy(), "b": x[:, 1:2].copy()}
    cb = lk.ReduceOnPlateau(monitor="val_a_loss", start=0)
    h = model.fit(x, y, epochs=2, batch_size=16, validation_split=0.25, verbose=0, callbacks=[cb])
    assert cb.plateau.mode == "min" and cb.plateau.best == min(h.history["val_a_loss"])


def test_keras_auto_mode_on_a_directionless_metric_raises_before_training() -> None:
    """A plain-function metric exists when the fit starts and will never say its direction: the error
    comes before the first batch, not after a whole epoch of training."""
    keras: Any = _keras()
    import numpy as np

    import lrkit.keras as lk

    def my_score(yt: Any, yp: Any) -> Any:
        return keras.ops.mean(keras.ops.abs(yt - yp))

    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="binary_crossentropy", metrics=[my_score])
    batches: list[int] = []
    count = keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: batches.append(b))
    cb = lk.ReduceOnPlateau(monitor="val_my_score")
    with pytest.raises(ValueError, match=r"metric 'my_score' has no direction.*pass mode='min'"):
        model.fit(x, y, validation_split=0.25, epochs=2, batch_size=32, verbose=0, callbacks=[count, cb])
    assert batches == []


# 5. a torch ReduceLROnPlateau state's min_lrs ---------------------------------------------------------


def _torch_run(min_lr: float | list[float], metrics: list[float]) -> tuple[Any, Any, Any]:
    torch = pytest.importorskip("torch")
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.1} for _ in range(2)]
    opt = torch.optim.SGD(groups)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=1, min_lr=min_lr)
    for m in metrics:
        opt.step()
        ref.step(m)
    return torch, opt, ref


@pytest.mark.parametrize(
    ("torch_min", "ours", "warned"),
    [
        ([0.02, 0.02], 0.0, True),  # the reviewer's run: the LR went on below torch's floor, unsaid
        ([0.02, 0.001], [0.02, 0.002], True),
        ([0.02, 0.001], [0.02, 0.001], False),
        ([0.02, 0.02], 0.02, False),
    ],
)
def test_a_torch_plateau_state_whose_min_lrs_differ_is_warned_about(
    torch_min: list[float], ours: float | list[float], warned: bool
) -> None:
    import warnings

    import lrkit
    import lrkit.torch
    from lrkit.control import Plateau

    head, tail = [1.0] * 6, [0.5] * 6
    torch, opt, ref = _torch_run(torch_min, head)
    state = ref.state_dict()
    assert state["min_lrs"] == torch_min
    opt2 = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.1} for _ in range(2)])
    sched = lrkit.torch.scheduler(
        opt2, ["constant(lr=0.1)"] * 2, plateau=Plateau(patience=1, min_lr=ours, start=0), total_steps=100
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sched.load_state_dict(state)
    said = [str(w.message) for w in caught if "ReduceLROnPlateau ran with" in str(w.message)]
    if warned:
        assert said == [
            f"load_state_dict: the torch ReduceLROnPlateau ran with min_lrs={torch_min!r} (this plateau's "
            f"min_lr: {ours!r}); its counters go on under this plateau's settings"
        ]
        return
    assert said == []
    want, got = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a scheduler given metrics but never stepped
        for m in tail:  # the same floor: the LRs go on as torch's own
            ref.step(m)
            sched.report(m)
            want.append([g["lr"] for g in opt.param_groups])
            got.append([g["lr"] for g in opt2.param_groups])
    for w, g in zip(want, got, strict=True):
        assert g == pytest.approx(w, rel=1e-12, abs=0)
