"""Built-in training tasks: small, real, offline and deterministic given a seed.

=======================  =====================================================  ==========  =======
name                     data and model                                         optimizer   metric
=======================  =====================================================  ==========  =======
``digits-mlp-sgd``       scikit-learn digits (1437 train / 360 val), MLP         momentum    accuracy
                         64-128-128-10, batch 32, 10 epochs
``digits-mlp-adam``      same                                                   adam        accuracy
``mnist1d-cnn``          MNIST-1D (the ``mnist1d`` package, 4000 / 1000), 1-D    momentum    accuracy
                         CNN (3 conv + BatchNorm layers, 32 channels),
                         batch 64, 15 epochs
``tinylm-transformer``   characters of a few stdlib modules' source, 2-layer      adamw       exp(-CE)
                         causal transformer (d=64, 4 heads, context 48),
                         batch 32, 4 epochs
=======================  =====================================================  ==========  =======

The language model's metric is ``exp(-mean validation cross-entropy in nats per character)``: the
geometric-mean probability given to the true next character (1 / perplexity), in (0, 1], higher is
better; a ratio of 0.98 between two runs means 0.02 nats/char worse.

torch, scikit-learn and mnist1d are imported when a task is built, not when this module is imported.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from .base import Task, TaskParts

if TYPE_CHECKING:
    import torch

__all__ = ["TASKS", "mnist1d_data", "stdlib_text"]


# --------------------------------------------------------------------------------------------------
# shared pieces
# --------------------------------------------------------------------------------------------------
def _loader(x: NDArray[Any], y: NDArray[Any], batch_size: int, seed: int) -> Any:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    ds = TensorDataset(torch.as_tensor(x), torch.as_tensor(y))
    g = torch.Generator().manual_seed(seed)
    return DataLoader(ds, batch_size=batch_size, shuffle=True, generator=g, drop_last=False)


def _batches(x: NDArray[Any], y: NDArray[Any], batch_size: int) -> list[Any]:
    import torch

    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    return [(xt[i : i + batch_size], yt[i : i + batch_size]) for i in range(0, len(xt), batch_size)]


def _cross_entropy() -> Callable[..., torch.Tensor]:
    import torch.nn.functional as F

    return F.cross_entropy


# --------------------------------------------------------------------------------------------------
# digits
# --------------------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _digits() -> tuple[NDArray[np.float32], NDArray[np.int64], NDArray[np.float32], NDArray[np.int64]]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    y = y.astype(np.int64)
    xtr, xva, ytr, yva = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    return xtr, ytr, xva, yva


def _digits_builder(optimizer: str) -> Callable[[int], TaskParts]:
    def build(seed: int) -> TaskParts:
        import torch
        from torch import nn

        xtr, ytr, xva, yva = _digits()
        torch.manual_seed(seed)
        model = nn.Sequential(
            nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10)
        )
        return TaskParts(
            model,
            _loader(xtr, ytr, 32, seed),
            _batches(xva, yva, 512),
            _cross_entropy(),
            metric="accuracy",
            epochs=10,
            optimizer=optimizer,
        )

    return build


# --------------------------------------------------------------------------------------------------
# MNIST-1D
# --------------------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def mnist1d_data() -> tuple[NDArray[np.float32], NDArray[np.int64], NDArray[np.float32], NDArray[np.int64]]:
    """MNIST-1D (Greydanus & Kobak 2024) as the ``mnist1d`` package builds it offline with its default
    arguments: 4000 train / 1000 test signals of length 40, 10 classes; ``(x_train, y_train, x_test,
    y_test)``. The package seeds numpy's and ``random``'s global generators; their states are restored."""
    import random

    from mnist1d.data import get_dataset_args, make_dataset

    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        d = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return (
        d["x"].astype(np.float32),
        d["y"].astype(np.int64),
        d["x_test"].astype(np.float32),
        d["y_test"].astype(np.int64),
    )


def _mnist1d_build(seed: int) -> TaskParts:
    import torch
    from torch import nn

    xtr, ytr, xva, yva = mnist1d_data()
    torch.manual_seed(seed)
    width = 32

    def block(c_in: int, kernel: int) -> list[nn.Module]:
        return [nn.Conv1d(c_in, width, kernel, stride=2, padding=1), nn.BatchNorm1d(width), nn.ReLU()]

    # length 40 -> 19 -> 10 -> 5
    model = nn.Sequential(
        nn.Unflatten(1, (1, 40)),
        *block(1, 5),
        *block(width, 3),
        *block(width, 3),
        nn.Flatten(),
        nn.Linear(width * 5, 10),
    )

    return TaskParts(
        model,
        _loader(xtr, ytr, 64, seed),
        _batches(xva, yva, 500),
        _cross_entropy(),
        metric="accuracy",
        epochs=15,
        optimizer="momentum",
    )


# --------------------------------------------------------------------------------------------------
# tiny character-level transformer language model
# --------------------------------------------------------------------------------------------------
STDLIB_MODULES = ("textwrap", "heapq", "fractions", "statistics")


@lru_cache(maxsize=4)
def stdlib_text(modules: tuple[str, ...] = STDLIB_MODULES) -> str:
    """The source code of some standard-library modules, read from disk and concatenated.

    The text depends on the Python version (the modules change a little between releases).
    """
    parts = []
    for name in modules:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
            raise ValueError(f"modules must name pure-Python stdlib modules, got {name!r}")
        with open(spec.origin, encoding="utf-8") as f:
            parts.append(f.read())
    return "\n".join(parts)


def _encode(text: str) -> NDArray[np.int64]:
    codes = np.frombuffer(text.encode("ascii", errors="replace"), dtype=np.uint8).astype(np.int64)
    return np.minimum(codes, 127)


_CTX = 48


def _tinylm_build(seed: int) -> TaskParts:
    import torch
    from torch import nn

    data = _encode(stdlib_text())
    n_val = data.size // 10
    train, val = data[:-n_val], data[-n_val:]

    def windows(a: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        n = (a.size - 1) // _CTX
        idx = np.arange(n)[:, None] * _CTX + np.arange(_CTX)[None, :]
        return a[idx], a[idx + 1]

    class TinyLM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            d = 64
            self.embed = nn.Embedding(128, d)
            self.pos = nn.Parameter(torch.zeros(1, _CTX, d))
            nn.init.normal_(self.pos, std=0.02)
            layer = nn.TransformerEncoderLayer(
                d, 4, dim_feedforward=4 * d, dropout=0.0, batch_first=True, norm_first=True
            )
            self.blocks = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(d)
            self.head = nn.Linear(d, 128)
            self.register_buffer(
                "mask", nn.Transformer.generate_square_subsequent_mask(_CTX), persistent=False
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            n = x.shape[1]
            h = self.embed(x) + self.pos[:, :n]
            mask = self.get_buffer("mask")
            h = self.blocks(h, mask=mask[:n, :n], is_causal=True)
            return self.head(self.norm(h))  # type: ignore[no-any-return]

    def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))

    torch.manual_seed(seed)
    model = TinyLM()

    xtr, ytr = windows(train)
    xva, yva = windows(val)
    loader = _loader(xtr, ytr, 32, seed)
    val_batches = _batches(xva, yva, 128)

    def metric(m: torch.nn.Module) -> float:
        total = count = 0.0
        for x, y in val_batches:
            total += float(loss_fn(m(x), y)) * len(y)
            count += len(y)
        return math.exp(-total / count)

    return TaskParts(
        model,
        loader,
        val_batches,
        loss_fn,
        metric=metric,
        higher_is_better=True,
        metric_name="exp(-val cross-entropy)",
        epochs=4,
        optimizer="adamw",
    )


# --------------------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------------------
TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task(
            "digits-mlp-sgd",
            _digits_builder("momentum"),
            "scikit-learn digits, MLP 64-128-128-10, SGD momentum 0.9, batch 32, 10 epochs",
        ),
        Task(
            "digits-mlp-adam",
            _digits_builder("adam"),
            "scikit-learn digits, MLP 64-128-128-10, Adam, batch 32, 10 epochs",
        ),
        Task(
            "mnist1d-cnn",
            _mnist1d_build,
            "MNIST-1D (4000 train / 1000 val), 3-layer 1-D CNN with BatchNorm, SGD momentum 0.9, batch 64, "
            "15 epochs",
        ),
        Task(
            "tinylm-transformer",
            _tinylm_build,
            "character LM on stdlib source, 2-layer causal transformer d=64, AdamW, batch 32, 4 epochs",
        ),
    )
}
