"""Tune the learning-rate schedule of your own task (``my_task.py``'s wine MLP) with :func:`lrkit.tune.tune`,
then train with the best spec through the torch adapter.

    cd examples && python tune_my_task.py                  # about 10 seconds on 2 cores
    lrkit tune --task my_task:wine_mlp --trials 20         # the same from the shell, plus the HTML report

The study lives in ``tune_my_task.db`` (SQLite); rerunning continues it (a finished study trains nothing).
On several machines, point them all at one PostgreSQL database and study name:

    lrkit tune --task my_task:wine_mlp --trials 200 --study wine \\
        --storage postgresql://USER:PASSWORD@HOST:5432/DB --worker-id K --no-report
"""

from __future__ import annotations

import optuna
import torch
from my_task import wine_mlp

import lrkit
from lrkit.tasks import Task
from lrkit.tune import tune

if __name__ == "__main__":
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    task = Task("my_task:wine_mlp", wine_mlp)
    result = tune(task, trials=12, storage="tune_my_task.db", epochs=15, progress=print)
    print(result)

    # the best spec is an ordinary lrkit schedule: train with it in your own loop
    assert result.best_spec is not None
    parts = task.build(seed=1)
    epochs = 15
    assert parts.loss_fn is not None  # wine_mlp gives its loss (a task without one trains on model(**batch))
    loss_fn = parts.loss_fn
    optimizer = parts.make_optimizer(lr=1.0)  # the scheduler sets the LR from the schedule
    scheduler = lrkit.torch.scheduler(optimizer, result.best_spec, total_steps=epochs * parts.epoch_steps)
    for _ in range(epochs):
        for x, y in parts.epoch_batches():  # one epoch: epoch_steps batches
            loss = loss_fn(parts.model(x), y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            scheduler.step()
    print(f"seed 1 with {result.best_spec}: {parts.metric_name} {parts.evaluate():.4f}")
