"""Tuning that scales out: search a task's learning-rate schedule with Optuna (TPE + pruning), in one
process or across many workers and machines sharing an SQLite file or a PostgreSQL database.

>>> from lrkit.tune import tune                                            # doctest: +SKIP
>>> result = tune("digits-mlp-sgd", trials=20)                             # doctest: +SKIP
>>> result.best_spec                                                       # doctest: +SKIP
'warmup(steps=4.2%) >> cosine(lr=0.08123, min_lr=0.0003418)'

From the shell, on as many machines as you like (each runs trials until the study has 100)::

    lrkit tune --task mypkg.tasks:cifar_small --trials 100 \\
        --storage postgresql://user:password@db-host:5432/lrkit --study cifar-lr

Importing this package imports neither torch nor Optuna.
"""

from __future__ import annotations

from .core import META, PRUNERS, TuneResult, tune
from .space import DEFAULT_LR_RANGE, KINDS, SearchSpace, build_spec
from .storage import DEFAULT_STORAGE, check_sqlite_path, open_storage, storage_url

__all__ = [
    "DEFAULT_LR_RANGE",
    "DEFAULT_STORAGE",
    "KINDS",
    "META",
    "PRUNERS",
    "SearchSpace",
    "TuneResult",
    "build_spec",
    "check_sqlite_path",
    "open_storage",
    "storage_url",
    "tune",
]
