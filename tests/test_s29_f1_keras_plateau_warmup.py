"""``lrkit.keras.ReduceOnPlateau(start=...)`` counts metrics as ``lrkit.torch``'s scheduler with the same
:class:`Plateau` does: ``start="warmup"`` skips the metrics of epochs that end inside the schedule's leading
warmup, ``start=k`` those before step ``k`` (Keras counted every metric: a flat metric during the warmup cut
the LR there). Reference: the torch scheduler, fed the same metrics at the same steps."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")  # before the first `import keras` in this process

import warnings

import numpy as np
import pytest

keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")

import lrkit  # noqa: E402
from lrkit.adapters.keras import ReduceOnPlateau  # noqa: E402
from lrkit.control import Plateau  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

STEPS_PER_EPOCH = 2  # 8 rows, batch 4
TOTAL = 40


def _keras(spec: str, metrics: list[float], **kw: object) -> tuple[list[int], Plateau, float]:
    s = lrkit.keras.schedule(spec, total_steps=TOTAL)
    model = keras.Sequential(
        [keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")]
    )
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=s), loss=lambda t, p: keras.ops.mean(p))

    class Metric(keras.callbacks.Callback):  # type: ignore[misc]
        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            assert logs is not None
            logs["m"] = metrics[epoch]

    cb = ReduceOnPlateau(monitor="m", mode="min", factor=0.5, **kw)  # type: ignore[arg-type]
    x, y = np.ones((8, 1), "float32"), np.zeros((8, 1), "float32")
    model.fit(x, y, batch_size=4, epochs=len(metrics), verbose=0, callbacks=[Metric(), cb])
    return [c.epoch for c in cb.cuts], cb.plateau, s.multiplier


def _torch(spec: str, metrics: list[float], **kw: object) -> tuple[list[int], Plateau, float]:
    o = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    plateau = Plateau(mode="min", factor=0.5, **kw)  # type: ignore[arg-type]
    s = lrkit.torch.scheduler(o, spec, total_steps=TOTAL, plateau=plateau)
    cuts = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for epoch, m in enumerate(metrics):
            for _ in range(STEPS_PER_EPOCH):
                o.step()
                s.step()
            if s.report(m):
                cuts.append(epoch)
    return cuts, plateau, s.plateau_cuts[0]


@pytest.mark.parametrize(
    ("spec", "kw"),
    [
        ("warmup(6) >> constant(lr=0.1)", {"patience": 1, "start": "warmup"}),
        ("warmup(7) >> cosine(lr=0.1)", {"patience": 0, "start": "warmup"}),  # ends mid-epoch 3
        ("(warmup(4) >> constant(lr=0.1, steps=4)) >> cosine(lr=0.1)", {"patience": 1, "start": "warmup"}),
        ("cosine(lr=0.1)", {"patience": 1, "start": "warmup"}),  # no warmup: every metric counts
        ("constant(lr=0.1)", {"patience": 1, "start": 6}),
        ("warmup(6) >> constant(lr=0.1)", {"patience": 1, "start": 0}),
        ("warmup(6) >> constant(lr=0.1)", {"patience": 2, "cooldown": 1, "start": "warmup"}),
    ],
)
def test_keras_counts_the_metrics_torch_counts(spec: str, kw: dict[str, object]) -> None:
    rng = np.random.default_rng(len(spec))
    for metrics in ([1.0] * 12, [float(v) for v in rng.integers(0, 4, size=12)]):
        k_cuts, k_plateau, k_mult = _keras(spec, metrics, **kw)
        t_cuts, t_plateau, t_mult = _torch(spec, metrics, **kw)
        assert k_cuts == t_cuts, (metrics, k_cuts, t_cuts)
        assert k_plateau.state_dict() == t_plateau.state_dict(), metrics
        assert k_mult == t_mult and k_plateau.skipped == 12 - k_plateau.last_epoch


def test_a_flat_metric_in_the_warmup_no_longer_cuts() -> None:
    """warmup(6) over epochs of 2 steps: the metrics of epochs 0 and 1 (steps 2 and 4) are the warmup's;
    epoch 2 sets the best, 3 is bad, 4 cuts (counting every metric, the first cut is at epoch 2, the
    epoch in which the warmup ends)."""
    flat = [1.0] * 6
    assert _keras("warmup(6) >> constant(lr=0.1)", flat, patience=1, start="warmup")[0] == [4]
    assert _keras("warmup(6) >> constant(lr=0.1)", flat, patience=1)[0] == [4]  # the default, as torch's
    assert _keras("warmup(6) >> constant(lr=0.1)", flat, patience=1, start=0)[0] == [2, 4]


def test_offer_holds_back_and_counts_the_metrics_before_start() -> None:
    p = Plateau(patience=0)
    assert [p.offer(1.0, at, warmup=3) for at in range(6)] == [False, False, False, False, True, True]
    assert (p.skipped, p.last_epoch) == (3, 3)
    q = Plateau(patience=0, start=2)
    assert [q.offer(1.0, at, warmup=100) for at in range(4)] == [False, False, False, True]
    assert q.skipped == 2
