"""Your own task for ``lrkit find``, ``lrkit lab`` and ``lrkit tune``: a function ``f(seed) -> TaskParts``.

Run it (from this folder, or with it on PYTHONPATH):

    lrkit find --task my_task:wine_mlp
    lrkit lab --task my_task:wine_mlp --seeds 2 \\
        --strategy "cosine=warmup(5%) >> cosine(lr=0.05)" --strategy "adam@adam=constant(1e-3)"

The data is scikit-learn's wine data set (ships with scikit-learn, nothing is downloaded), standardised;
the model a small MLP. lrkit seeds torch with ``seed`` before calling the factory, so the initial weights
are reproducible; use ``seed`` for the shuffling too.
"""

from __future__ import annotations

from typing import Any

import torch
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch.utils.data import DataLoader, TensorDataset

from lrkit.tasks import TaskParts


def wine_mlp(seed: int) -> TaskParts:
    """Wine (178 samples, 13 features, 3 classes), MLP 13-32-3, SGD with momentum, 30 epochs."""
    x, y = load_wine(return_X_y=True)
    xtr, xva, ytr, yva = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    scaler = StandardScaler().fit(xtr)
    xtr, xva = scaler.transform(xtr), scaler.transform(xva)

    def loader(a: Any, b: Any, shuffle: bool) -> DataLoader[tuple[torch.Tensor, ...]]:
        ds = TensorDataset(torch.tensor(a, dtype=torch.float32), torch.tensor(b))
        return DataLoader(ds, batch_size=16, shuffle=shuffle, generator=torch.Generator().manual_seed(seed))

    model = torch.nn.Sequential(torch.nn.Linear(13, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
    return TaskParts(
        model,
        train_loader=loader(xtr, ytr, True),
        val_loader=loader(xva, yva, False),
        loss_fn=torch.nn.functional.cross_entropy,
        metric="accuracy",  # or "loss" (lower is better), or metric(model) -> float with higher_is_better=
        epochs=30,
        optimizer="momentum",  # the default optimizer: sgd, momentum, nesterov, adagrad, rmsprop, adam, ...
    )


if __name__ == "__main__":
    from lrkit.tasks import Task

    task = Task("wine-mlp", wine_mlp)
    print(task.find_lr(seed=0))
    print("accuracy after 30 epochs at 0.05:", task.train(0.05, seed=0))
