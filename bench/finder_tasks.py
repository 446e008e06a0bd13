"""The finder's public benchmark: small, real tasks it was not tuned on, and their stored LR grids.

Every task is a factory ``f(seed) -> lrkit.tasks.TaskParts`` (the task protocol of :mod:`lrkit.tasks`),
so each one also works as ``lrkit find --task bench.finder_tasks:digits_mlp_sgd`` from the repository
root. Each task is sized to train in about a second on one CPU core. (``--builtin`` runs the same
grid and auto comparison on lrkit's own four built-in tasks, which no rule or factor was chosen on;
``--schedule-free`` on Schedule-Free AdamW versions of four of these tasks and of the built-in tinylm,
``--sf-peak`` sweeps a Schedule-Free peak factor on them; ``--peak [--kind wsd]`` and ``--inrun-kind
[--keep]`` sweep auto's schedule and peak factor after each search; ``--clip`` checks three tasks that
clip their gradients, :data:`CLIP_TASKS`; ``--fresh`` four tasks written after everything was chosen,
:data:`FRESH_TASKS`.)

=========================  ===============================================  ==========  ======  ====  ====
name                       data and model                                   optimizer   metric  st/ep  ep
=========================  ===============================================  ==========  ======  ====  ====
``digits-cnn-adagrad``     sklearn digits as 8x8 images, 2-conv CNN         adagrad     acc       12    30
``digits-mlp-rmsprop``     sklearn digits, MLP                              rmsprop     acc       23    12
``digits-mlp-sgd``         sklearn digits, MLP 64-64-10                     sgd         acc       45     8
``diabetes-mlp-nesterov``  sklearn diabetes regression (353 train), MLP     nesterov    loss      12    50
``friedman-mlp-momentum``  Friedman #1 regression (2000 train), MLP         momentum    loss      50     8
``cancer-mlp-adam``        sklearn breast cancer (455 train), MLP 30-64-2   adam        loss      15    30
``mnist1d-cnn-adamw``      MNIST-1D, 1-D CNN (2 conv layers)                adamw       acc       63     6
``mnist1d-gru-rmsprop``    MNIST-1D as a sequence (length 20), GRU 32       rmsprop     acc       32     6
``text-lstm-adam``         stdlib source, character LSTM 48                 adam        loss      38     6
``text-transformer-adamw`` stdlib source, 1-layer causal transformer d=32   adamw       loss      38     6
=========================  ===============================================  ==========  ======  ====  ====

(st/ep: optimizer steps per epoch; ep: the epoch budget.) ``loss`` tasks are scored lower-is-better
(the mean validation loss); the regression targets are standardised.

The LR grid (3 training seeds, 3 points per decade over 5 decades chosen per optimizer family: 16 LRs)
is computed once with::

    nohup python bench/finder_tasks.py --grid > bench/results/finder_grid.log 2>&1 &

and stored in ``bench/results/finder_grid.json`` (resumable: finished runs are kept).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from lrkit.tasks import Task, TaskParts  # noqa: E402

RESULTS = ROOT / "bench" / "results"
GRID_FILE = RESULTS / "finder_grid.json"
SEEDS = (0, 1, 2)
PER_DECADE = 3

#: grid range (log10 of the lowest and highest LR) per optimizer family
GRID_RANGE: dict[str, tuple[int, int]] = {
    "sgd": (-3, 2),
    "momentum": (-4, 1),
    "nesterov": (-4, 1),
    "adagrad": (-4, 1),
    "rmsprop": (-5, 0),
    "adam": (-5, 0),
    "adamw": (-5, 0),
    "schedulefree_adamw": (-5, 0),
}


def grid_lrs(optimizer: str) -> list[float]:
    """The 16 grid LRs of a task trained with ``optimizer``: ``10**(k/3)``, 5 decades."""
    lo, hi = GRID_RANGE[optimizer]
    return [float(10.0 ** (k / PER_DECADE)) for k in range(lo * PER_DECADE, hi * PER_DECADE + 1)]


class FastLoader:
    """Shuffled mini-batches of in-memory tensors (a DataLoader without per-sample indexing).

    ``generator`` is a ``torch.Generator`` (the finder finds and restores it); ``len()`` is the number
    of batches per epoch.
    """

    def __init__(self, x: Any, y: Any, batch_size: int, seed: int, drop_last: bool = False) -> None:
        import torch

        self.x, self.y, self.batch_size, self.drop_last = x, y, batch_size, drop_last
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        n = len(self.x)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        import torch

        perm = torch.randperm(len(self.x), generator=self.generator)
        for i in range(len(self)):
            idx = perm[i * self.batch_size : (i + 1) * self.batch_size]
            yield self.x[idx], self.y[idx]


def _tensors(*arrays: Any) -> list[Any]:
    import torch

    return [torch.as_tensor(a) for a in arrays]


def _batches(x: Any, y: Any, size: int = 1024) -> list[tuple[Any, Any]]:
    return [(x[i : i + size], y[i : i + size]) for i in range(0, len(x), size)]


def _standardise(xtr: Any, xva: Any) -> tuple[Any, Any]:
    mu, sd = xtr.mean(axis=0), xtr.std(axis=0) + 1e-8
    return ((xtr - mu) / sd).astype(np.float32), ((xva - mu) / sd).astype(np.float32)


@cache
def _sk(name: str) -> tuple[Any, Any, Any, Any]:
    """A bundled scikit-learn data set, split 80/20 (stratified for classes), features standardised."""
    from sklearn import datasets
    from sklearn.model_selection import train_test_split

    if name == "friedman":
        x, y = datasets.make_friedman1(n_samples=2500, n_features=10, noise=1.0, random_state=0)
    else:
        x, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    regression = name in ("diabetes", "friedman")
    xtr, xva, ytr, yva = train_test_split(
        x, y, test_size=0.2, random_state=0, stratify=None if regression else y
    )
    if name == "digits":
        xtr, xva = (xtr / 16.0).astype(np.float32), (xva / 16.0).astype(np.float32)
    else:
        xtr, xva = _standardise(xtr, xva)
    if regression:
        mu, sd = ytr.mean(), ytr.std()
        ytr, yva = (
            ((ytr - mu) / sd).astype(np.float32)[:, None],
            ((yva - mu) / sd).astype(np.float32)[:, None],
        )
    else:
        ytr, yva = ytr.astype(np.int64), yva.astype(np.int64)
    return xtr, ytr, xva, yva


def _mlp(sizes: list[int]) -> Any:
    from torch import nn

    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def _ce() -> Callable[..., Any]:
    import torch.nn.functional as F

    return F.cross_entropy


def _mse() -> Callable[..., Any]:
    import torch.nn.functional as F

    return F.mse_loss


# --------------------------------------------------------------------------------------------------
# the tasks
# --------------------------------------------------------------------------------------------------
def digits_cnn_adagrad(seed: int) -> TaskParts:
    """AdaGrad CNN (8 and 16 channels) on 8x8 digits, batch 128: 12 steps per epoch, 30 epochs."""
    import torch
    from torch import nn

    xtr, ytr, xva, yva = _tensors(*_sk("digits"))
    xtr, xva = xtr.reshape(-1, 1, 8, 8), xva.reshape(-1, 1, 8, 8)
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 4, 10),
    )  # fmt: skip
    return TaskParts(
        model, FastLoader(xtr, ytr, 128, seed), _batches(xva, yva), _ce(), epochs=30, optimizer="adagrad"
    )


def digits_mlp_rmsprop(seed: int) -> TaskParts:
    """RMSprop MLP on digits, batch 64: 23 steps per epoch, 12 epochs."""
    import torch

    xtr, ytr, xva, yva = _tensors(*_sk("digits"))
    torch.manual_seed(seed)
    return TaskParts(
        _mlp([64, 128, 128, 10]), FastLoader(xtr, ytr, 64, seed), _batches(xva, yva), _ce(),
        epochs=12, optimizer="rmsprop",
    )  # fmt: skip


def digits_mlp_sgd(seed: int) -> TaskParts:
    """Plain SGD MLP 64-64-10 on digits, batch 32: 45 steps per epoch, 8 epochs."""
    import torch

    xtr, ytr, xva, yva = _tensors(*_sk("digits"))
    torch.manual_seed(seed)
    return TaskParts(
        _mlp([64, 64, 10]), FastLoader(xtr, ytr, 32, seed), _batches(xva, yva), _ce(),
        epochs=8, optimizer="sgd",
    )  # fmt: skip


def diabetes_mlp_nesterov(seed: int) -> TaskParts:
    """Nesterov-SGD regression MLP on diabetes (353 train), batch 32: 12 steps per epoch, 50 epochs."""
    import torch

    xtr, ytr, xva, yva = _tensors(*_sk("diabetes"))
    torch.manual_seed(seed)
    return TaskParts(
        _mlp([10, 64, 64, 1]), FastLoader(xtr, ytr, 32, seed), _batches(xva, yva), _mse(),
        metric="loss", epochs=50, optimizer="nesterov",
    )  # fmt: skip


def friedman_mlp_momentum(seed: int) -> TaskParts:
    """Momentum-SGD regression MLP on Friedman #1 (2000 train), batch 40: 50 steps per epoch, 8 epochs."""
    import torch

    xtr, ytr, xva, yva = _tensors(*_sk("friedman"))
    torch.manual_seed(seed)
    return TaskParts(
        _mlp([10, 64, 64, 1]), FastLoader(xtr, ytr, 40, seed), _batches(xva, yva), _mse(),
        metric="loss", epochs=8, optimizer="momentum",
    )  # fmt: skip


def cancer_mlp_adam(seed: int) -> TaskParts:
    """Adam MLP on breast cancer (455 train), batch 32: 15 steps per epoch, 30 epochs; val loss."""
    import torch

    xtr, ytr, xva, yva = _tensors(*_sk("breast_cancer"))
    torch.manual_seed(seed)
    return TaskParts(
        _mlp([30, 64, 2]), FastLoader(xtr, ytr, 32, seed), _batches(xva, yva), _ce(),
        metric="loss", epochs=30, optimizer="adam",
    )  # fmt: skip


@lru_cache(maxsize=1)
def _mnist1d() -> tuple[Any, Any, Any, Any]:
    from lrkit.tasks import mnist1d_data

    return mnist1d_data()


def mnist1d_cnn_adamw(seed: int) -> TaskParts:
    """AdamW 1-D CNN on MNIST-1D (4000 train), batch 64: 63 steps per epoch, 6 epochs."""
    import torch
    from torch import nn

    xtr, ytr, xva, yva = _tensors(*_mnist1d())
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Unflatten(1, (1, 40)),
        nn.Conv1d(1, 16, 5, stride=2, padding=2), nn.ReLU(),
        nn.Conv1d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(32 * 10, 10),
    )  # fmt: skip
    return TaskParts(
        model, FastLoader(xtr, ytr, 64, seed), _batches(xva, yva), _ce(), epochs=6, optimizer="adamw"
    )


def digits_mlp_sfadamw(seed: int) -> TaskParts:
    """Schedule-Free AdamW MLP on digits, batch 64: 23 steps per epoch, 12 epochs (held out)."""
    return dataclasses.replace(digits_mlp_rmsprop(seed), optimizer="schedulefree_adamw")


def mnist1d_cnn_sfadamw(seed: int) -> TaskParts:
    """Schedule-Free AdamW 1-D CNN on MNIST-1D, batch 64: 63 steps per epoch, 6 epochs (held out)."""
    return dataclasses.replace(mnist1d_cnn_adamw(seed), optimizer="schedulefree_adamw")


def mnist1d_gru_rmsprop(seed: int) -> TaskParts:
    """RMSprop GRU (hidden 32) over MNIST-1D as 20 steps of 2 values, batch 128: 32 steps/epoch, 6 epochs."""
    import torch
    from torch import nn

    class GRU(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.GRU(2, 32, batch_first=True)
            self.head = nn.Linear(32, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            _, h = self.rnn(x.reshape(x.shape[0], 20, 2))
            return self.head(h[-1])  # type: ignore[no-any-return]

    xtr, ytr, xva, yva = _tensors(*_mnist1d())
    torch.manual_seed(seed)
    return TaskParts(
        GRU(), FastLoader(xtr, ytr, 128, seed), _batches(xva, yva), _ce(), epochs=6, optimizer="rmsprop"
    )


_CTX = 32


@lru_cache(maxsize=1)
def _text() -> tuple[Any, Any, Any, Any]:
    from lrkit.tasks import stdlib_text

    codes = np.frombuffer(stdlib_text(("textwrap", "heapq")).encode("ascii", "replace"), dtype=np.uint8)
    data = np.minimum(codes.astype(np.int64), 127)
    n_val = data.size // 10
    train, val = data[:-n_val], data[-n_val:]

    def windows(a: Any) -> tuple[Any, Any]:
        n = (a.size - 1) // _CTX
        idx = np.arange(n)[:, None] * _CTX + np.arange(_CTX)[None, :]
        return a[idx], a[idx + 1]

    xtr, ytr = windows(train)
    xva, yva = windows(val)
    return xtr[:2560], ytr[:2560], xva[:512], yva[:512]


def _seq_ce(logits: Any, target: Any) -> Any:
    import torch.nn.functional as F

    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))


def text_lstm_adam(seed: int) -> TaskParts:
    """Adam character LSTM (embed 32, hidden 48) on stdlib source, batch 32: 38 steps/epoch, 6 epochs."""
    import torch
    from torch import nn

    class LSTM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(128, 32)
            self.rnn = nn.LSTM(32, 48, batch_first=True)
            self.head = nn.Linear(48, 128)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h, _ = self.rnn(self.embed(x))
            return self.head(h)  # type: ignore[no-any-return]

    xtr, ytr, xva, yva = _tensors(*_text())
    torch.manual_seed(seed)
    return TaskParts(
        LSTM(), FastLoader(xtr, ytr, 32, seed), _batches(xva, yva), _seq_ce,
        metric="loss", epochs=6, optimizer="adam",
    )  # fmt: skip


def text_transformer_adamw(seed: int) -> TaskParts:
    """AdamW 1-layer causal transformer (d=32, 2 heads) on stdlib source, batch 32: 38 steps/epoch,
    6 epochs."""
    import torch
    from torch import nn

    class LM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            d = 32
            self.embed = nn.Embedding(128, d)
            self.pos = nn.Parameter(torch.randn(1, _CTX, d) * 0.02)
            layer = nn.TransformerEncoderLayer(
                d, 2, dim_feedforward=4 * d, dropout=0.0, batch_first=True, norm_first=True
            )
            self.blocks = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(d)
            self.head = nn.Linear(d, 128)
            self.register_buffer(
                "mask", nn.Transformer.generate_square_subsequent_mask(_CTX), persistent=False
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.embed(x) + self.pos[:, : x.shape[1]]
            h = self.blocks(h, mask=self.get_buffer("mask"), is_causal=True)
            return self.head(self.norm(h))  # type: ignore[no-any-return]

    xtr, ytr, xva, yva = _tensors(*_text())
    torch.manual_seed(seed)
    return TaskParts(
        LM(), FastLoader(xtr, ytr, 32, seed), _batches(xva, yva), _seq_ce,
        metric="loss", epochs=6, optimizer="adamw",
    )  # fmt: skip


TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("digits-cnn-adagrad", digits_cnn_adagrad),
        Task("digits-mlp-rmsprop", digits_mlp_rmsprop),
        Task("digits-mlp-sgd", digits_mlp_sgd),
        Task("diabetes-mlp-nesterov", diabetes_mlp_nesterov),
        Task("friedman-mlp-momentum", friedman_mlp_momentum),
        Task("cancer-mlp-adam", cancer_mlp_adam),
        Task("mnist1d-cnn-adamw", mnist1d_cnn_adamw),
        Task("mnist1d-gru-rmsprop", mnist1d_gru_rmsprop),
        Task("text-lstm-adam", text_lstm_adam),
        Task("text-transformer-adamw", text_transformer_adamw),
    )
}


def text_lstm_sfadamw(seed: int) -> TaskParts:
    """Schedule-Free AdamW on text-lstm-adam's model and data."""
    return dataclasses.replace(text_lstm_adam(seed), optimizer="schedulefree_adamw")


def text_transformer_sfadamw(seed: int) -> TaskParts:
    """Schedule-Free AdamW on text-transformer-adamw's model and data."""
    return dataclasses.replace(text_transformer_adamw(seed), optimizer="schedulefree_adamw")


def tinylm_transformer_sfadamw(seed: int) -> TaskParts:
    """Schedule-Free AdamW on lrkit's built-in tinylm-transformer (held out of the SF factor's choice)."""
    from lrkit.tasks import TASKS as BUILTIN

    return dataclasses.replace(BUILTIN["tinylm-transformer"].factory(seed), optimizer="schedulefree_adamw")


#: Schedule-Free AdamW on four of the public tasks' models (``--schedule-free``), with their own grid;
#: auto's Schedule-Free peak factor is chosen on them by leave-one-task-out (``--sf-peak``), and
#: SF_HELD_OUT is never used to choose anything
SF_TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("digits-mlp-sfadamw", digits_mlp_sfadamw),
        Task("mnist1d-cnn-sfadamw", mnist1d_cnn_sfadamw),
        Task("text-lstm-sfadamw", text_lstm_sfadamw),
        Task("text-transformer-sfadamw", text_transformer_sfadamw),
        Task("tinylm-transformer-sfadamw", tinylm_transformer_sfadamw),
    )
}
SF_HELD_OUT = ("tinylm-transformer-sfadamw",)


def text_lstm_sgd_clip(seed: int) -> TaskParts:
    """text-lstm-adam's model and data, trained as AWD-LSTM trains its LSTMs: plain SGD with the
    gradient norm clipped to 0.25 (held out: ``--clip``)."""
    return dataclasses.replace(text_lstm_adam(seed), optimizer="sgd", max_grad_norm=0.25)


def mnist1d_gru_momentum_clip(seed: int) -> TaskParts:
    """mnist1d-gru-rmsprop's model and data with SGD momentum 0.9 and the gradient norm clipped to 1
    (held out: ``--clip``)."""
    return dataclasses.replace(mnist1d_gru_rmsprop(seed), optimizer="momentum", max_grad_norm=1.0)


def text_transformer_adamw_clip(seed: int) -> TaskParts:
    """text-transformer-adamw with the gradient norm clipped to 1, as language models are trained
    (held out: ``--clip``)."""
    return dataclasses.replace(text_transformer_adamw(seed), max_grad_norm=1.0)


#: tasks that clip their gradients (``--clip``): their own grid (clip_grid.json), the finder with and
#: without the task's max_grad_norm (clip_finder.json) and auto (clip_auto.json); nothing is chosen on them
CLIP_TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("text-lstm-sgd-clip", text_lstm_sgd_clip),
        Task("mnist1d-gru-momentum-clip", mnist1d_gru_momentum_clip),
        Task("text-transformer-adamw-clip", text_transformer_adamw_clip),
    )
}


def _digits_cnn_bn(seed: int, optimizer: str) -> TaskParts:
    """A CNN with BatchNorm (16 and 32 channels, global average pooling) on 8x8 digits, batch 64: 23
    steps per epoch, 10 epochs."""
    import torch
    from torch import nn

    xtr, ytr, xva, yva = _tensors(*_sk("digits"))
    xtr, xva = xtr.reshape(-1, 1, 8, 8), xva.reshape(-1, 1, 8, 8)
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    )  # fmt: skip
    return TaskParts(
        model, FastLoader(xtr, ytr, 64, seed), _batches(xva, yva), _ce(), epochs=10, optimizer=optimizer
    )


def digits_cnn_bn_momentum(seed: int) -> TaskParts:
    """:func:`_digits_cnn_bn` with SGD momentum 0.9 (held out: ``--fresh``)."""
    return _digits_cnn_bn(seed, "momentum")


def digits_cnn_bn_adamw(seed: int) -> TaskParts:
    """:func:`_digits_cnn_bn` with AdamW (held out: ``--fresh``)."""
    return _digits_cnn_bn(seed, "adamw")


def digits_logreg_sgd(seed: int) -> TaskParts:
    """Multinomial logistic regression (one linear layer) on digits with plain SGD, batch 64: 23 steps
    per epoch, 15 epochs: a convex problem (held out: ``--fresh``)."""
    import torch
    from torch import nn

    xtr, ytr, xva, yva = _tensors(*_sk("digits"))
    torch.manual_seed(seed)
    return TaskParts(
        nn.Linear(64, 10),
        FastLoader(xtr, ytr, 64, seed),
        _batches(xva, yva),
        _ce(),
        epochs=15,
        optimizer="sgd",
    )


def wine_mlp_adam(seed: int) -> TaskParts:
    """Adam MLP on scikit-learn's wine (142 train), batch 16: 9 steps per epoch, 40 epochs; accuracy on
    36 held-out samples (held out: ``--fresh``)."""
    import torch

    xtr, ytr, xva, yva = _tensors(*_sk("wine"))
    torch.manual_seed(seed)
    return TaskParts(
        _mlp([13, 32, 3]),
        FastLoader(xtr, ytr, 16, seed),
        _batches(xva, yva),
        _ce(),
        epochs=40,
        optimizer="adam",
    )


#: four tasks written on 2026-12-06, after every rule, threshold and factor had been chosen, to see auto
#: on tasks it has never met (``--fresh``): their own grid (fresh_grid.json) and auto (fresh_auto.json)
FRESH_TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("digits-cnn-bn-momentum", digits_cnn_bn_momentum),
        Task("digits-cnn-bn-adamw", digits_cnn_bn_adamw),
        Task("digits-logreg-sgd", digits_logreg_sgd),
        Task("wine-mlp-adam", wine_mlp_adam),
    )
}


def _long(factory: Callable[[int], TaskParts], epochs: int) -> Callable[[int], TaskParts]:
    def build(seed: int) -> TaskParts:
        return dataclasses.replace(factory(seed), epochs=epochs)

    return build


#: four public tasks trained for ~3,000 steps instead of 200-600 (``--long``): long enough that
#: lrkit.auto's default search picks the separate test (its ~300 steps fit in 10% of the run); their own
#: grid (long_grid.json) and auto (long_auto.json); nothing is chosen on them
LONG_TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("text-lstm-adam-long", _long(text_lstm_adam, 80)),  # 3,040 steps
        Task("text-transformer-adamw-long", _long(text_transformer_adamw, 80)),  # 3,040
        Task("mnist1d-cnn-adamw-long", _long(mnist1d_cnn_adamw, 48)),  # 3,024
        Task("digits-mlp-rmsprop-long", _long(digits_mlp_rmsprop, 131)),  # 3,013
        # added after the four above had been measured, to check a choice made on them
        Task("digits-mlp-sgd-long", _long(digits_mlp_sgd, 67)),  # 3,015
        Task("friedman-mlp-momentum-long", _long(friedman_mlp_momentum, 60)),  # 3,000
        Task("cancer-mlp-adam-long", _long(cancer_mlp_adam, 200)),  # 3,000
    )
}


def merge_into(path: Path, update: dict[str, Any]) -> None:
    """Write ``update`` into the JSON object at ``path`` under an exclusive lock, keeping the entries
    that another process running the same benchmark on other tasks stored meanwhile."""
    import fcntl

    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stored = json.loads(path.read_text()) if path.exists() else {}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({**stored, **update}, indent=0))
        tmp.replace(path)


def score(metric: float, best: float, higher_is_better: bool) -> float:
    """metric / best (higher is better) or best / metric (lower is better); 0 for a failed run."""
    if (
        not math.isfinite(metric)
        or (higher_is_better and metric <= 0)
        or (not higher_is_better and metric <= 0)
    ):
        return 0.0
    return metric / best if higher_is_better else best / metric


# --------------------------------------------------------------------------------------------------
# the grid, computed once
# --------------------------------------------------------------------------------------------------
def load_grid(path: Path | None = None) -> dict[str, Any]:
    path = GRID_FILE if path is None else path
    return json.loads(path.read_text()) if path.exists() else {}


def compute_grid(
    names: list[str],
    tasks: dict[str, Task] | None = None,
    path: Path = GRID_FILE,
    seeds: tuple[int, ...] = SEEDS,
    reuse: Path | None = None,
) -> None:
    """Train every (LR, seed) of the grid not yet stored in ``path``. ``seeds`` other than SEEDS are
    stored in the entry (``grid_means`` averages over them); runs already in the grid file ``reuse``
    (the same task, LR and seed) are copied rather than trained again."""
    import torch

    torch.set_num_threads(1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = load_grid(path)
    for name in names:
        task = (TASKS if tasks is None else tasks)[name]
        parts = task.build(0)
        entry = data.setdefault(
            name,
            {
                "optimizer": parts.optimizer,
                "epochs": parts.epochs,
                "steps_per_epoch": parts.epoch_steps,
                "higher_is_better": bool(parts.higher_is_better),
                "metric": parts.metric_name,
                "lrs": grid_lrs(parts.optimizer),
                "runs": {},
                "seconds": {},
            },
        )
        if seeds != SEEDS:
            entry["seeds"] = list(seeds)
        old = load_grid(reuse).get(name, {}) if reuse is not None else {}
        for lr in entry["lrs"]:
            for seed in seeds:
                key = f"{lr:.6e}|{seed}"
                if key not in entry["runs"] and key in old.get("runs", {}):
                    entry["runs"][key] = old["runs"][key]
                    entry["seconds"][key] = old["seconds"][key]
                if key in entry["runs"]:
                    continue
                t0 = time.perf_counter()
                m = task.train(lr, seed=seed)
                entry["runs"][key] = m
                entry["seconds"][key] = time.perf_counter() - t0
                print(f"{name} lr={lr:.3g} seed={seed}: {m:.4f} ({entry['seconds'][key]:.2f} s)", flush=True)
            merge_into(path, {name: entry})
        _summary(name, entry)


def grid_means(entry: dict[str, Any]) -> tuple[list[float], list[float]]:
    """(lrs, mean metric over the seeds) of one task's grid (its ``seeds``, SEEDS if not stored)."""
    lrs = entry["lrs"]
    seeds = entry.get("seeds", SEEDS)
    means = [float(np.mean([entry["runs"][f"{lr:.6e}|{s}"] for s in seeds])) for lr in lrs]
    return lrs, means


def _summary(name: str, entry: dict[str, Any]) -> None:
    lrs, means = grid_means(entry)
    best, hib = grid_best(entry)
    scores = [score(m, best, hib) for m in means]
    good = [lr for lr, s in zip(lrs, scores, strict=True) if s >= 0.98]
    width = math.log10(max(good) / min(good)) if good else 0.0
    print(
        f"[{name}] best {lrs[scores.index(1.0)]:.3g} -> {best:.4f}; "
        f"0.98-plateau {min(good):.3g}..{max(good):.3g} ({width:.2f} decades); "
        + ", ".join(f"{lr:.2g}:{s:.3f}" for lr, s in zip(lrs, scores, strict=True)),
        flush=True,
    )


# --------------------------------------------------------------------------------------------------
# the finder on every task, 3 finder seeds, with escalation; rules chosen by leave-one-task-out
# --------------------------------------------------------------------------------------------------
FINDER_FILE = RESULTS / "finder_runs.json"
FINDER_SEEDS = (0, 1, 2)


def candidate_rules() -> dict[str, Callable[[Any, Any], float]]:
    """The rules (and divisors) leave-one-task-out chooses among: pure functions of one curve."""
    from lrkit.finder import rules

    out: dict[str, Callable[[Any, Any], float]] = {}
    for d in (3.0, 5.0, 10.0, 20.0, 30.0):
        out[f"lrkit/{d:g}"] = lambda x, y, d=d: rules.lrkit_rule(x, y, divisor=d)
        out[f"minimum/{d:g}"] = lambda x, y, d=d: rules.minimum(x, y, divisor=d)
    out["steepest"] = rules.steepest
    out["valley"] = rules.valley
    return out


def _log_median(values: list[float]) -> float:
    v = sorted(x for x in values if math.isfinite(x) and x > 0)
    if not v:
        return math.nan
    n = len(v)
    return v[n // 2] if n % 2 else math.sqrt(v[n // 2 - 1] * v[n // 2])


def _find(task: Task, fs: int, repeats: int = 3, **options: Any) -> tuple[TaskParts, Any, float]:
    """:func:`lrkit.finder.find_lr` on a fresh build of ``task`` (finder seed ``fs``, the planned
    training as its budget's base): the parts, the result and the seconds it took."""
    from lrkit.finder import find_lr

    parts = task.build(fs)
    opt = parts.make_optimizer(1e-3)
    t0 = time.perf_counter()
    res = find_lr(
        parts.model, opt, parts.train_loader, parts.loss_fn, repeats=repeats, seed=fs,
        planned_steps=parts.epochs * parts.epoch_steps, **options,
    )  # fmt: skip
    return parts, res, time.perf_counter() - t0


def run_finder(
    names: list[str],
    repeats: int = 3,
    path: Path = FINDER_FILE,
    budget: float | None = None,
    tasks: dict[str, Task] | None = None,
) -> None:
    """The finder at its defaults (3 repeats x 100 rungs, budget from the planned training unless
    ``budget`` is given) on every task, finder seeds 0, 1, 2; stored in ``path`` (resumable)."""
    import torch

    torch.set_num_threads(1)
    data = json.loads(path.read_text()) if path.exists() else {}
    for name in names:
        for fs in FINDER_SEEDS:
            key = f"{name}|{fs}"
            if key in data:
                continue
            parts, res, seconds = _find((tasks or TASKS)[name], fs, repeats=repeats, budget=budget)
            rules = {
                rname: _log_median(
                    [
                        fn(c.lrs, c.smoothed) if np.isfinite(c.smoothed[:2]).all() else math.nan
                        for c in res.curves
                    ]
                )
                for rname, fn in candidate_rules().items()
            }
            data[key] = {
                "rules": rules,
                "suggestion": res.suggestion,
                "candidate": res.candidate,
                "trusted": res.trusted,
                "problems": list(res.problem_kinds),
                "reason": res.reason,
                "escalation": list(res.escalation),
                "steps": res.steps,
                "first_steps": res.first_steps,
                "budget": res.budget,
                "planned_steps": parts.epochs * parts.epoch_steps,
                "seconds": seconds,
                "curves": [
                    {"lrs": c.lrs.tolist(), "losses": c.losses.tolist(), "stopped_at": c.stopped_at}
                    for c in res.curves
                ],
            }
            print(f"{key}: {res}", flush=True)
            path.write_text(json.dumps(data, indent=0))


CLIP_GRID_FILE = RESULTS / "clip_grid.json"
CLIP_FINDER_FILE = RESULTS / "clip_finder.json"
CLIP_AUTO_FILE = RESULTS / "clip_auto_v2.json"


def run_clip_finder(names: list[str], path: Path = CLIP_FINDER_FILE) -> None:
    """The finder at its defaults on each clipping task, finder seeds 0, 1, 2, twice: clipping as the
    task trains (``"clip"``, what ``Task.find_lr`` does) and without (``"none"``, what a finder that
    ignores clipping measures); stored in ``path`` (resumable, merged under a lock)."""
    import torch

    torch.set_num_threads(1)
    data = json.loads(path.read_text()) if path.exists() else {}
    for name in names:
        for fs in FINDER_SEEDS:
            for variant in ("clip", "none"):
                key = f"{name}|{fs}|{variant}"
                if key in data:
                    continue
                clip = CLIP_TASKS[name].build(0).max_grad_norm if variant == "clip" else None
                _, res, seconds = _find(CLIP_TASKS[name], fs, max_grad_norm=clip)
                data[key] = {
                    "suggestion": res.suggestion,
                    "candidate": res.candidate,
                    "trusted": res.trusted,
                    "reason": res.reason,
                    "steps": res.steps,
                    "seconds": seconds,
                }
                print(f"{key}: {res}", flush=True)
                merge_into(path, {key: data[key]})


# --------------------------------------------------------------------------------------------------
# lrkit.auto vs the best constant LR of the grid vs Schedule-Free AdamW and Prodigy at their defaults
# --------------------------------------------------------------------------------------------------
AUTO_FILE = RESULTS / "auto_runs_v4.json"
BUILTIN_GRID_FILE = RESULTS / "builtin_grid.json"
BUILTIN_AUTO_FILE = RESULTS / "builtin_auto_v3.json"
SF_GRID_FILE = RESULTS / "sf_grid.json"
SF_AUTO_FILE = RESULTS / "sf_auto.json"
#: "auto": lrkit.auto's default (the in-run ramp); "auto_separate": search="separate" (the finder's
#: 3 x 100-rung test, restored, then the schedule over the whole run)
AUTO_METHODS = ("auto", "auto_separate", "schedulefree_adamw", "prodigy")
FRESH_GRID_FILE = RESULTS / "fresh_grid.json"
FRESH_AUTO_FILE = RESULTS / "fresh_auto.json"
BUILTIN_FINDER_FILE = RESULTS / "builtin_finder.json"
FRESH_FINDER_FILE = RESULTS / "fresh_finder.json"
LONG_GRID_FILE = RESULTS / "long_grid.json"
LONG_AUTO_FILE = RESULTS / "long_auto_v2.json"
#: on the long runs: "auto_default" is lrkit.auto with search="auto" (it picks the separate test there),
#: "auto" the in-run ramp as above
LONG_METHODS = ("auto_default", "auto", "schedulefree_adamw", "prodigy")


def run_auto(
    names: list[str],
    path: Path = AUTO_FILE,
    tasks: dict[str, Task] | None = None,
    methods: tuple[str, ...] = AUTO_METHODS,
) -> None:
    """Train every task with :func:`lrkit.auto.train_task` (the finder at its defaults, then warmup +
    cosine or one-cycle with the guard) and with Schedule-Free AdamW / Prodigy at their default LRs,
    seeds 0, 1, 2; stored in ``path`` (resumable). A run where the finder gives no suggestion is
    stored with ``metric`` None."""
    import torch

    from lrkit.auto import train_task
    from lrkit.control.guard import DivergenceError
    from lrkit.finder import NoSuggestionError
    from lrkit.tasks import DEFAULT_LR

    torch.set_num_threads(1)
    data = json.loads(path.read_text()) if path.exists() else {}
    for name in names:
        for seed in SEEDS:
            for method in methods:
                key = f"{name}|{seed}|{method}"
                if key in data:
                    continue
                t0 = time.perf_counter()
                task = (TASKS if tasks is None else tasks)[name]
                if method.startswith("auto"):
                    parts = task.build(seed)
                    torch.manual_seed(seed)
                    search = {"auto_separate": "separate", "auto_default": "auto"}.get(method, "in_run")
                    try:
                        out = train_task(parts, seed=seed, search=search)
                    except NoSuggestionError as exc:
                        out = {"metric": None, "summary": str(exc)}
                    except DivergenceError as exc:  # the guard gave up: score the model it left
                        out = {"metric": parts.evaluate(), "summary": f"guard gave up: {exc}"}
                else:
                    out = {"metric": task.train(DEFAULT_LR[method], seed=seed, optimizer=method)}
                out["seconds"] = time.perf_counter() - t0
                data[key] = out
                summary = out.get("summary", "")
                print(f"{key}: {out.get('metric')} ({out['seconds']:.1f} s) {summary}", flush=True)
                merge_into(path, {key: out})


PEAK_FILE = RESULTS / "auto_peak.json"
PEAK_FACTORS = (1.0, 1.5, 2.0, 3.0, 5.0)


def auto_schedule(
    optimizer: str, peak: float, total: int, steps_per_epoch: int, kind: str | None = None
) -> Any:
    """The schedule :func:`lrkit.auto.auto` builds after the separate test for ``optimizer`` (``kind``
    None: one-cycle for torch.optim.SGD, else cosine)."""
    from lrkit.auto import separate_schedule

    if kind is None:
        kind = "one_cycle" if optimizer in ("sgd", "momentum", "nesterov") else "cosine"
    return separate_schedule(kind, peak).resolve(total_steps=total, steps_per_epoch=steps_per_epoch)


def run_peak(names: list[str], runs_file: Path, path: Path = PEAK_FILE, kind: str | None = None) -> None:
    """Train auto's schedule (:func:`auto_schedule`) at ``c x`` the stored finder candidate (finder
    seed = training seed) for each factor in PEAK_FACTORS, without the guard; stored in ``path``
    (resumable)."""
    import torch

    torch.set_num_threads(1)
    finder = json.loads(runs_file.read_text())
    data = json.loads(path.read_text()) if path.exists() else {}
    for name in names:
        for seed in SEEDS:
            cand = finder[f"{name}|{seed}"]["candidate"]
            if cand is None or not math.isfinite(cand):
                continue
            parts = TASKS[name].build(seed)
            total = parts.epochs * parts.epoch_steps
            for c in PEAK_FACTORS:
                key = f"{name}|{seed}|{c:g}"
                if key in data:
                    continue
                sched = auto_schedule(parts.optimizer, c * cand, total, parts.epoch_steps, kind)
                m = TASKS[name].train(schedule=lambda step, sched=sched: float(sched(step)), seed=seed)
                data[key] = {"metric": m, "peak": c * cand, "trusted": finder[f"{name}|{seed}"]["trusted"]}
                print(f"{key}: peak {c * cand:.3g} -> {m:.4f}", flush=True)
                merge_into(path, {key: data[key]})  # --tasks A,B in two processes: one file


def _train_cosine(
    parts: TaskParts, opt: Any, steps: int, peak: float, rewarm: float = 0.0, kind: str = "cosine"
) -> float:
    """Train ``steps`` more optimizer steps with what :func:`lrkit.auto.auto` runs after a kept in-run
    ramp (:func:`lrkit.auto.in_run_schedule`: a linear re-warm over the fraction ``rewarm`` of the
    steps, then ``kind``'s tail: cosine from ``peak`` to 1% of it, the constant peak, or WSD); the
    validation metric (a Schedule-Free optimizer trains in train mode and is evaluated in eval mode)."""
    from lrkit.auto import in_run_schedule
    from lrkit.tasks import eval_mode, train_mode

    sched = in_run_schedule(peak, rewarm, kind).resolve(total_steps=steps, steps_per_epoch=parts.epoch_steps)
    step = 0
    train_mode(opt)
    parts.model.train()
    while step < steps:
        for x, y in parts.train_loader:
            if step >= steps:
                break
            for g in opt.param_groups:
                g["lr"] = float(sched(step))
            opt.zero_grad(set_to_none=True)
            parts.loss_fn(parts.model(x), y).backward()
            opt.step()
            step += 1
    eval_mode(opt)
    return float(parts.evaluate())


def _inrun_seeds(
    name: str,
    rewarm: float = 0.0,
    tasks: dict[str, Task] | None = None,
    kind: str = "cosine",
    schedule_factor: float | None = None,
    reset: bool = False,
    **ramp_kw: Any,
) -> tuple[float, float] | None:
    """The in-run path on ``name`` for each of SEEDS: the ramp (``ramp_in_run(**ramp_kw)``), then
    :func:`_train_cosine` over the steps left. The mean metric and the worst compute ((spent - kept +
    total) / total); None when some seed's ramp kept nothing (untrusted or too late)."""
    import torch

    from lrkit.finder.in_run import ramp_in_run

    metrics, compute = [], 0.0
    for seed in SEEDS:
        parts = (TASKS if tasks is None else tasks)[name].build(seed)
        torch.manual_seed(seed)
        opt = parts.make_optimizer(1e-3)
        ramp = ramp_in_run(parts.model, opt, parts.train_loader, parts.loss_fn, **ramp_kw)
        if not ramp.kept or ramp.peak is None:
            return None
        total = parts.epochs * parts.epoch_steps
        compute = max(compute, (ramp.spent - ramp.kept + total) / total)
        peak = ramp.peak * schedule_factor / ramp_kw["peak_factor"] if schedule_factor else ramp.peak
        if reset:  # the optimizer's statistics start afresh with the re-warm (weights kept)
            opt.state.clear()
        metrics.append(_train_cosine(parts, opt, total - ramp.kept, peak, rewarm, kind))
    return float(np.mean(metrics)), compute


INRUN_PEAK_FILE = RESULTS / "auto_inrun_peak.json"
INRUN_PEAK_FACTORS = (1.0, 1.5, 2.0, 3.0, 4.0)


def run_inrun_peak(
    names: list[str],
    path: Path = INRUN_PEAK_FILE,
    start_lr: float | None = None,
    per_decade: float | None = None,
) -> None:
    """The in-run ramp (lrkit.finder.in_run.ramp_in_run) at peak factor c, then cosine from the peak to
    1% of it over the steps left (no guard), seeds 0-2; stored as {task: {c: mean metric / grid best}}
    for the tasks whose ramp is trusted on every seed."""
    import torch

    torch.set_num_threads(1)
    grid = load_grid()
    out: dict[str, dict[str, float]] = {}
    for name in names:
        best, hib = grid_best(grid[name])
        row: dict[str, float] = {}
        for c in INRUN_PEAK_FACTORS:
            kw: dict[str, Any] = {} if start_lr is None else {"start_lr": start_lr}
            if per_decade is not None:  # rungs over start_lr .. 10
                kw["num_steps"] = round(per_decade * math.log10(10 / kw.get("start_lr", 1e-5))) + 1
            # measured with a snapshot every rung (before SNAPSHOT_EVERY = 4)
            got = _inrun_seeds(name, peak_factor=c, snapshot_every=1, **kw)
            if got is not None:
                row[f"{c:g}"] = score(got[0], best, hib)
        if row:
            out[name] = row
            print(name, row, flush=True)
    path.write_text(json.dumps(out, indent=1))


INRUN_REWARM_FILE = RESULTS / "auto_inrun_rewarm.json"
REWARM_FACTORS = (2.0, 3.0, 4.0)
REWARM_FRACTIONS = (0.0, 0.1, 0.2, 0.3)


def run_inrun_rewarm(names: list[str], path: Path = INRUN_REWARM_FILE) -> None:
    """The in-run ramp at peak factor c, then a linear re-warm from peak/10 over a fraction w of the
    steps left, then cosine (no guard), seeds 0-2; stored as {task: {"c|w": mean metric / grid best,
    "compute": worst (spent - kept + total) / total}} for the tasks whose ramp is trusted on every seed
    (resumable per task)."""
    import torch

    torch.set_num_threads(1)
    grid = load_grid()
    out: dict[str, dict[str, float]] = json.loads(path.read_text()) if path.exists() else {}
    for name in names:
        if name in out:
            continue
        best, hib = grid_best(grid[name])
        row: dict[str, float] = {}
        compute = 0.0
        for c, w in itertools.product(REWARM_FACTORS, REWARM_FRACTIONS):
            # measured with a snapshot every rung (before SNAPSHOT_EVERY = 4)
            got = _inrun_seeds(name, rewarm=w, peak_factor=c, snapshot_every=1)
            if got is not None:
                row[f"{c:g}|{w:g}"] = score(got[0], best, hib)
                compute = max(compute, got[1])
        out[name] = {**row, "compute": compute} if row else {}
        print(name, out[name], flush=True)
        merge_into(path, {name: out[name]})


SF_PEAK_FILE = RESULTS / "sf_peak.json"
SF_PEAK_FACTORS = (2.0, 3.0, 5.0, 10.0, 20.0)


def _inrun_sweep(
    names: list[str],
    path: Path,
    grid: dict[str, Any],
    variants: dict[str, dict[str, Any]],
    tasks: dict[str, Task] | None = None,
    kind: str = "cosine",
) -> None:
    """Per task (resumable per task), :func:`_inrun_seeds` with the shipped re-warm under each variant's
    ramp options (and ``"kind"``, the tail after the re-warm, default ``kind``; ``"rewarm"``, its
    fraction, default REWARM; ``"schedule_factor"``, the peak apart from the kept rung), stored as
    {task: {key: mean metric / grid best, "compute key": worst compute}}; a variant where some seed's
    ramp kept nothing is left out."""
    import torch

    from lrkit.auto import REWARM

    torch.set_num_threads(1)
    done = json.loads(path.read_text()) if path.exists() else {}
    for name in names:
        if name in done:
            continue
        best, hib = grid_best(grid[name])
        row: dict[str, float] = {}
        for key, options in variants.items():
            skip = ("kind", "schedule_factor", "rewarm", "reset")
            ramp_kw = {k: v for k, v in options.items() if k not in skip}
            rewarm = options.get("rewarm", REWARM)
            got = _inrun_seeds(
                name,
                rewarm,
                tasks,
                options.get("kind", kind),
                options.get("schedule_factor"),
                options.get("reset", False),
                **ramp_kw,
            )
            if got is not None:
                row[key] = score(got[0], best, hib)
                row[f"compute {key}"] = got[1]
        print(name, row, flush=True)
        merge_into(path, {name: row})


def run_sf_peak(names: list[str], path: Path = SF_PEAK_FILE) -> None:
    """What lrkit.auto runs on a Schedule-Free optimizer after the in-run search (the ramp at peak
    factor c, the 10% re-warm, then the constant peak; no guard) for c in SF_PEAK_FACTORS, seeds 0-2;
    stored as {task: {c: mean metric / grid best, "compute c": worst compute}} (resumable per task)."""
    variants = {f"{c:g}": {"peak_factor": c} for c in SF_PEAK_FACTORS}
    _inrun_sweep(names, path, load_grid(SF_GRID_FILE), variants, SF_TASKS, kind="constant")


INRUN_STRIDE_FILE = RESULTS / "auto_inrun_stride.json"
STRIDES = (1, 2, 4)


def run_inrun_stride(names: list[str], path: Path = INRUN_STRIDE_FILE) -> None:
    """The shipped in-run path (ramp, peak factor and re-warm of lrkit.auto) with a ring snapshot every
    s rungs, s in STRIDES, seeds 0-2; stored as {task: {s: mean metric / grid best, "compute s": worst
    compute}} for the tasks whose ramp is trusted on every seed (resumable per task)."""
    from lrkit.auto import PEAK_FACTOR

    variants = {str(s): {"peak_factor": PEAK_FACTOR["in_run"], "snapshot_every": s} for s in STRIDES}
    _inrun_sweep(names, path, load_grid(), variants)


INRUN_KINDS = ("cosine", "wsd")
INRUN_KIND_FACTORS = (1.5, 2.0, 3.0, 4.0)


KEEP_VARIANTS = ((1.5, 3.0), (2.0, 3.0), (2.5, 3.0), (2.0, 4.0), (3.0, 4.0))
WSD_REWARMS = (0.0, 0.05, 0.1, 0.2)


def run_inrun_kind(names: list[str], builtin: bool = False, sweep: str = "kind") -> None:
    """The shipped in-run path under variants of what follows the ramp, seeds 0-2; stored as
    {task: {variant: mean metric / grid best, "compute variant": worst compute}} (resumable per task)
    in ``auto_inrun_{sweep}.json``, or for lrkit's built-in tasks (``builtin``, held out) in
    ``builtin_inrun_{sweep}.json``. ``sweep``:

    * ``"kind"``: the tail after the 10% re-warm in INRUN_KINDS (cosine to 1%, or WSD: the peak held,
      a 1-sqrt cool-down to 0 over the last 20%) at peak factor c in INRUN_KIND_FACTORS ("kind|c");
    * ``"keep"``: WSD with the kept rung (the ramp's factor K) apart from the peak (c x the
      suggestion), (c, K) in KEEP_VARIANTS ("wsd|c|keepK");
    * ``"wsd_rewarm"``: WSD, the rung kept at 3x, the peak factor c and the re-warm fraction w in
      WSD_REWARMS together ("wsd|c|ww");
    * ``"reset"``: WSD with the shipped re-warm (0.05), c in 1.5, 2.5, with the optimizer's state
      cleared after the ramp ("wsd|c|w0.05|reset") beside the shipped path ("wsd|2.5|w0.05");
    * ``"reset_cosine"``: the same for cosine at c=3 ("cosine|3|w0.1[|reset]")."""
    variants: dict[str, dict[str, Any]] = {
        "kind": {
            f"{k}|{c:g}": {"kind": k, "peak_factor": c} for k in INRUN_KINDS for c in INRUN_KIND_FACTORS
        },
        "keep": {
            f"wsd|{c:g}|keep{k:g}": {"kind": "wsd", "peak_factor": k, "schedule_factor": c}
            for c, k in KEEP_VARIANTS
        },
        "wsd_rewarm": {
            f"wsd|{c:g}|w{w:g}": {"kind": "wsd", "peak_factor": 3.0, "schedule_factor": c, "rewarm": w}
            for c in (1.5, 2.0, 2.5)
            for w in WSD_REWARMS
        },
        "reset": {
            f"wsd|{c:g}|w0.05{'|reset' if r else ''}": {
                "kind": "wsd",
                "peak_factor": 3.0,
                "schedule_factor": c,
                "rewarm": 0.05,
                "reset": r,
            }
            for c, r in ((2.5, False), (1.5, True), (2.5, True))
        },
        "reset_cosine": {
            f"cosine|3|w0.1{'|reset' if r else ''}": {
                "kind": "cosine",
                "peak_factor": 3.0,
                "rewarm": 0.1,
                "reset": r,
            }
            for r in (False, True)
        },
    }[sweep]
    if builtin:
        from lrkit.tasks import TASKS as BUILTIN

        path = RESULTS / f"builtin_inrun_{sweep}.json"
        _inrun_sweep(names, path, load_grid(BUILTIN_GRID_FILE), variants, BUILTIN)
    else:
        _inrun_sweep(names, RESULTS / f"auto_inrun_{sweep}.json", load_grid(), variants)


def grid_best(entry: dict[str, Any]) -> tuple[float, bool]:
    """The best 3-seed mean metric of a task's stored grid, and whether higher is better."""
    _, means = grid_means(entry)
    hib = bool(entry["higher_is_better"])
    return (max(means) if hib else min(means)), hib


def grid_score(entry: dict[str, Any], lr: float) -> float:
    """Score of a constant LR from the stored grid: the mean metric interpolated on log(LR) between the
    two nearest grid points (0 outside the grid), divided by the best grid mean."""
    lrs, means = grid_means(entry)
    best, hib = grid_best(entry)
    if not (math.isfinite(lr) and lrs[0] <= lr <= lrs[-1]):
        return 0.0
    s = [score(m, best, hib) for m in means]
    return float(np.interp(math.log(lr), np.log(lrs), s))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grid", action="store_true", help="compute (or complete) the stored grid")
    ap.add_argument("--time", action="store_true", help="time one training run of each task")
    ap.add_argument("--finder", action="store_true", help="run the finder (3 seeds) on every task, stored")
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--runs", type=Path, default=FINDER_FILE, help="where --finder stores its runs")
    ap.add_argument("--budget", type=float, default=None, help="--finder's budget (fraction of the plan)")
    ap.add_argument("--repeats", type=int, default=3, help="--finder's repeats (default 3)")
    ap.add_argument(
        "--heldout-finder",
        action="store_true",
        help="the finder at its defaults on the held-out built-in and fresh tasks (builtin_finder.json, "
        "fresh_finder.json)",
    )
    ap.add_argument("--auto", action="store_true", help="lrkit.auto vs Schedule-Free/Prodigy, stored")
    ap.add_argument("--peak", action="store_true", help="auto's schedule at c x the finder's LR, stored")
    ap.add_argument("--kind", default=None, help="--peak's schedule kind (default: auto's defaults)")
    ap.add_argument("--inrun-peak", action="store_true", help="the in-run ramp at peak factor c, stored")
    ap.add_argument("--start-lr", type=float, default=None, help="--inrun-peak's ramp start (default 1e-5)")
    ap.add_argument("--inrun-rewarm", action="store_true", help="the in-run ramp + a linear re-warm")
    ap.add_argument("--inrun-stride", action="store_true", help="the shipped in-run path, sparser ring")
    ap.add_argument("--keep", action="store_true", help="--inrun-kind: the kept rung apart from the peak")
    ap.add_argument("--wsd-rewarm", action="store_true", help="--inrun-kind: WSD's peak and re-warm together")
    ap.add_argument(
        "--reset", action="store_true", help="--inrun-kind: the optimizer's state cleared after the ramp"
    )
    ap.add_argument("--reset-cosine", action="store_true", help="--inrun-kind: --reset, cosine at c=3")
    ap.add_argument(
        "--inrun-kind",
        action="store_true",
        help="the in-run path: cosine or WSD tail x c (--tasks builtin/NAME: lrkit's own task NAME)",
    )
    held_out = (
        ("--builtin", "lrkit's 4 built-in tasks (never used to choose a rule or factor): their grid "
         "(builtin_grid.json) and auto vs Schedule-Free/Prodigy (builtin_auto.json)"),
        ("--schedule-free", "Schedule-Free AdamW tasks: their grid (sf_grid.json) and auto vs "
         "Schedule-Free at its default LR / Prodigy (sf_auto.json)"),
        ("--long", "~3,000-step runs of four public tasks: their grid (long_grid.json), auto's default "
         "search (the separate test there) and in-run vs Schedule-Free/Prodigy (long_auto.json)"),
        ("--clip", "tasks that clip their gradients: their grid (clip_grid.json), the finder with and "
         "without the clip (clip_finder.json), auto (clip_auto.json)"),
        ("--fresh", "four tasks written after everything was chosen: their grid (fresh_grid.json), auto "
         "vs Schedule-Free/Prodigy (fresh_auto.json)"),
    )  # fmt: skip
    for flag, text in held_out:
        ap.add_argument(flag, action="store_true", help=f"held-out check on {text}")
    ap.add_argument("--sf-peak", action="store_true", help="auto's Schedule-Free peak factor, stored")
    ap.add_argument(
        "--grid-seeds",
        type=int,
        default=None,
        help="train the grids of --tasks (public, fresh or lrkit's built-in names) with seeds 0..N-1 into "
        "*_grid{N}.json, reusing the stored 3-seed runs: how much of a score is the grid's own seed noise",
    )
    ap.add_argument("--per-decade", type=float, default=None, help="--inrun-peak's rungs per decade")
    args = ap.parse_args(argv)
    names = args.tasks.split(",")
    if args.time:
        import torch

        torch.set_num_threads(1)
        for name in names:
            task = TASKS[name]
            parts = task.build(0)
            lr = grid_lrs(parts.optimizer)[8]
            t0 = time.perf_counter()
            m = task.train(lr)
            print(f"{name:24} {parts.epoch_steps:3d} st/ep x {parts.epochs:3d} ep at lr {lr:.3g}: "
                  f"{m:.4f} in {time.perf_counter() - t0:.2f} s", flush=True)  # fmt: skip
    if args.grid:
        compute_grid(names)
    if args.grid_seeds:
        from lrkit.tasks import TASKS as BUILTIN

        seeds = tuple(range(args.grid_seeds))
        BUILTIN_NAMED = dict(BUILTIN)
        for tasks, three in (
            (TASKS, GRID_FILE),
            (FRESH_TASKS, FRESH_GRID_FILE),
            (BUILTIN_NAMED, BUILTIN_GRID_FILE),
        ):
            chosen = [n for n in names if n in tasks and tasks is not BUILTIN_NAMED]
            if tasks is BUILTIN_NAMED:  # lrkit's own tasks as "builtin/NAME" (two share a public name)
                chosen = [n[8:] for n in names if n.startswith("builtin/") and n[8:] in tasks]
            if chosen:
                more = three.with_name(three.stem + f"{args.grid_seeds}.json")
                compute_grid(chosen, tasks, more, seeds=seeds, reuse=three)
    if args.finder:
        run_finder(names, repeats=args.repeats, path=args.runs, budget=args.budget)
    if args.heldout_finder:
        from lrkit.tasks import TASKS as BUILTIN

        run_finder(list(BUILTIN), path=BUILTIN_FINDER_FILE, tasks=dict(BUILTIN))
        run_finder(list(FRESH_TASKS), path=FRESH_FINDER_FILE, tasks=FRESH_TASKS)
    if args.auto:
        run_auto(names)
    if args.peak:
        if args.kind is None:
            run_peak(names, args.runs)
        else:
            run_peak(names, args.runs, RESULTS / f"auto_peak_{args.kind}.json", args.kind)
    if args.inrun_peak:
        suffix = "" if args.start_lr is None else f"_start{args.start_lr:g}"
        suffix += "" if args.per_decade is None else f"_pd{args.per_decade:g}"
        run_inrun_peak(names, RESULTS / f"auto_inrun_peak{suffix}.json", args.start_lr, args.per_decade)
    if args.inrun_rewarm:
        run_inrun_rewarm(names)
    if args.inrun_stride:
        run_inrun_stride(names)
    if args.inrun_kind:
        from lrkit.tasks import TASKS as BUILTIN

        flags = {
            "keep": args.keep,
            "wsd_rewarm": args.wsd_rewarm,
            "reset": args.reset,
            "reset_cosine": args.reset_cosine,
        }
        sweep = next((k for k, on in flags.items() if on), "kind")
        run_inrun_kind([n for n in names if n in TASKS], sweep=sweep)  # "builtin/NAME": lrkit's NAME
        builtin = [n[8:] for n in names if n.startswith("builtin/") and n[8:] in BUILTIN]
        run_inrun_kind(builtin, builtin=True, sweep=sweep)
    if args.builtin:
        from lrkit.tasks import TASKS as BUILTIN

        chosen = [n for n in args.tasks.split(",") if n in BUILTIN] if args.tasks != ",".join(TASKS) else []
        compute_grid(chosen or list(BUILTIN), BUILTIN, BUILTIN_GRID_FILE)
        run_auto(chosen or list(BUILTIN), BUILTIN_AUTO_FILE, BUILTIN)
    if args.schedule_free or args.sf_peak:
        chosen = [n for n in names if n in SF_TASKS] or list(SF_TASKS)
        compute_grid(chosen, SF_TASKS, SF_GRID_FILE)
        if args.sf_peak:
            run_sf_peak(chosen)
        if args.schedule_free:
            run_auto(chosen, SF_AUTO_FILE, SF_TASKS)
    if args.long:
        chosen = [n for n in names if n in LONG_TASKS] or list(LONG_TASKS)
        compute_grid(chosen, LONG_TASKS, LONG_GRID_FILE)
        run_auto(chosen, LONG_AUTO_FILE, LONG_TASKS, LONG_METHODS)
    if args.clip:
        chosen = [n for n in names if n in CLIP_TASKS] or list(CLIP_TASKS)
        compute_grid(chosen, CLIP_TASKS, CLIP_GRID_FILE)
        run_clip_finder(chosen)
        run_auto(chosen, CLIP_AUTO_FILE, CLIP_TASKS)
    if args.fresh:
        chosen = [n for n in names if n in FRESH_TASKS] or list(FRESH_TASKS)
        compute_grid(chosen, FRESH_TASKS, FRESH_GRID_FILE)
        run_auto(chosen, FRESH_AUTO_FILE, FRESH_TASKS)
    modes = ("grid", "grid_seeds", "time", "finder", "auto", "peak", "inrun_peak", "inrun_rewarm",
             "inrun_stride", "inrun_kind", "builtin", "schedule_free", "sf_peak", "clip", "long", "fresh",
             "heldout_finder")  # fmt: skip
    if not any(getattr(args, m) for m in modes):
        for name, entry in load_grid().items():
            _summary(name, entry)
    return 0


if __name__ == "__main__":
    sys.exit(main())
