"""Running a script on Keras' jax backend in a fresh process (a process holds one Keras backend, and the
in-process Keras tests use torch's): its last stdout line, read as JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import lrkit


def run_on_keras_jax(script: str) -> Any:
    """``script`` run by ``python -c`` with ``KERAS_BACKEND=jax`` on the CPU and this checkout's lrkit;
    the JSON of its last stdout line (an AssertionError with its stderr if it fails)."""
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    src = str(Path(lrkit.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])
