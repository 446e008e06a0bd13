"""Building a guard imported torch.distributed.optim (to look for a ZeroRedundancyOptimizer) for everyone:
0.2-0.7 s and dozens of torch DeprecationWarnings, errors under -W error (pytest's filterwarnings = error).
It looks only when that module is already imported (a ZeroRedundancyOptimizer was built from it)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("torch")

SCRIPT = """
import sys, torch, lrkit
from lrkit.control import DivergenceGuard
m = torch.nn.Linear(2, 1); o = torch.optim.SGD(m.parameters(), lr=0.1)
DivergenceGuard(m, o, lrkit.torch.scheduler(o, "constant(lr=0.1)", total_steps=10))
print("imported" if "torch.distributed.optim" in sys.modules else "not imported")
"""


def test_a_guard_under_deprecation_errors_builds_without_zero_redundancy_imports() -> None:
    run = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "not imported"
