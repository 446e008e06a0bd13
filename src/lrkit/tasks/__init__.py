"""Training tasks: the protocol (:class:`TaskParts`, :class:`Task`), the built-in tasks, and optimizers
by name. Used by ``lrkit find --task``, the lab and tuning; importing this package imports no torch.

Your own task is a function ``f(seed) -> TaskParts`` in an importable module, named
``"module:function"`` wherever a task is asked for::

    # mypkg/tasks.py
    import torch, lrkit.tasks

    def cifar_small(seed: int) -> lrkit.tasks.TaskParts:
        model = ...                               # built after torch.manual_seed(seed)
        return lrkit.tasks.TaskParts(model, train_loader, val_loader, torch.nn.functional.cross_entropy,
                                     metric="accuracy", epochs=20, optimizer="momentum")

    $ lrkit lab --task mypkg.tasks:cifar_small --strategy "warmup(5%) >> cosine(lr=0.1)"

See ``examples/my_task.py`` for a runnable one.
"""

from __future__ import annotations

from .base import Task, TaskParts, TrainRun, load_factory, train_loop
from .builtin import TASKS, mnist1d_data, stdlib_text
from .optimizers import DEFAULT_LR, OPTIMIZERS, eval_mode, make_optimizer, train_mode

__all__ = [
    "DEFAULT_LR",
    "OPTIMIZERS",
    "TASKS",
    "Task",
    "TaskParts",
    "TrainRun",
    "eval_mode",
    "get_task",
    "load_factory",
    "make_optimizer",
    "mnist1d_data",
    "stdlib_text",
    "train_loop",
    "train_mode",
]


def get_task(name: str | Task) -> Task:
    """A built-in task by name, or your own as ``"module:function"`` (a factory ``f(seed) -> TaskParts``).

    A ValueError lists the built-in names when ``name`` is neither.
    """
    if isinstance(name, Task):
        return name
    if isinstance(name, str) and name in TASKS:
        return TASKS[name]
    if isinstance(name, str) and ":" in name:
        return Task(name, load_factory(name), f"your task {name}")
    raise ValueError(
        f"task must be one of {', '.join(sorted(TASKS))} or 'module:function' (a factory f(seed) -> "
        f"TaskParts), got {name!r}"
    )
