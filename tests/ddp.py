"""Two gloo processes on the CPU for the DDP tests: join the process group, spawn a worker."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

WORLD = 2


def torch_with_gloo() -> tuple[Any, Any]:
    """``torch`` and ``torch.distributed`` for a DDP test module; skip the module where they or gloo
    are missing (call it at import time)."""
    torch = pytest.importorskip("torch")
    dist = pytest.importorskip("torch.distributed")
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)
    return torch, dist


def recording_forward(local: list[float]) -> Callable[[Any, Any], Any]:
    """A finder ``forward``: the cross-entropy of ``model(batch[0])`` on ``batch[1]``, each loss also
    appended to ``local`` (this rank's own losses, before any all-reduce)."""
    import torch.nn.functional as F

    def forward(m: Any, batch: Any) -> Any:
        loss = F.cross_entropy(m(batch[0]), batch[1])
        local.append(float(loss.detach()))
        return loss

    return forward


def join(rank: int, store: str, timeout: float = 120) -> None:
    """Join the ``WORLD``-process gloo group through the file ``store``. Ranks that part (one stops, the
    other steps on) would wait on each other forever: the ``timeout`` (seconds) turns that into an error."""
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD, timeout=timedelta(seconds=timeout)
    )


def spawn(worker: Callable[[int, str, str], None], tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    """Run ``worker(rank, store, out)`` in ``WORLD`` processes, each saving ``out/rank{rank}.pt``; their
    contents by rank.

    A gloo rank was seen to abort (SIGABRT, "terminate called without an active exception", before any
    result) once, under the full suite's load in CI; it never did alone. Such a crash of the process
    group is retried, at most 3 times; an exception or a wrong result in the worker is not.
    """
    import torch
    import torch.multiprocessing as mp

    for attempt in range(3):
        tmp = tmp_path_factory.mktemp("ddp")
        try:
            mp.spawn(worker, args=(str(tmp / "store"), str(tmp)), nprocs=WORLD, join=True)
            break
        except mp.ProcessExitedException:
            if attempt == 2:
                raise
    return [torch.load(tmp / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
