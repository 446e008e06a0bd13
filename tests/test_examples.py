"""Every script in examples/ runs as a user would run it (its own process, a fresh folder) and prints
what it is there to show."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

#: the line each example ends on, as a regular expression
SHOWN = {
    "find_lr.py": r"final training loss [\d.]+ after \d+ steps \(peak LR [\d.e-]+\)",
    "guard.py": r"with the guard: finished 300 steps, loss [\d.]+ \(data variance [\d.]+\), LR multiplier .+",
    "keras_fit.py": r"lr before saving (\S+), after loading \1",
    "lightning_plateau.py": r"plateau cuts: [1-9]\d*; last lr [\d.e-]+",
    "optax_loop.py": r"largest difference from optax.warmup_cosine_decay_schedule over \d+ steps: [\d.e-]+",
    "torch_loop.py": r"epoch 9\s+step\s+\d+\s+val [\d.]+\s+lr \[[\d.e-]+, [\d.e-]+\]",
    "transformers_trainer.py": r"step\s+\d+: lr [\d.e-]+\s+loss [\d.]+",
    "tune_my_task.py": r"seed 1 with .+: val accuracy [\d.]+",
}


def test_every_example_is_listed() -> None:
    scripts = {p.name for p in EXAMPLES.glob("*.py")} - {"my_task.py"}  # my_task: a task module, not a script
    assert scripts == set(SHOWN)


@pytest.mark.parametrize("name", sorted(SHOWN))
def test_an_example_runs_and_shows_what_it_is_for(name: str, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    if name == "keras_fit.py":
        pytest.importorskip("keras")
    if name == "optax_loop.py":
        pytest.importorskip("optax")
    if name == "lightning_plateau.py":
        pytest.importorskip("lightning")
    if name == "transformers_trainer.py":
        pytest.importorskip("transformers")
    if name == "tune_my_task.py":
        pytest.importorskip("optuna")
    env = {**os.environ, "KERAS_BACKEND": "torch", "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    cmd = [sys.executable, str(EXAMPLES / name)]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert re.fullmatch(SHOWN[name], last.strip()), last
