"""PastTheRunWarning lives in lrkit._warnings, which needs no framework, so that every adapter (and code
that filters the warning) has one class whether torch is installed or not; lrkit.torch re-exports it."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("torch")

import lrkit
import lrkit._warnings
import lrkit.adapters.torch


def test_torch_re_exports_the_one_class() -> None:
    cls = lrkit._warnings.PastTheRunWarning
    assert lrkit.torch.PastTheRunWarning is cls
    assert lrkit.adapters.torch.PastTheRunWarning is cls
    from lrkit.auto import PastTheRunWarning

    assert PastTheRunWarning is cls
    assert issubclass(cls, UserWarning)
    assert "PastTheRunWarning" in lrkit.adapters.torch.__all__


def test_importable_without_torch() -> None:
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'keras', 'jax', 'tensorflow'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from lrkit._warnings import PastTheRunWarning\n"
        "assert issubclass(PastTheRunWarning, UserWarning)\n"
        "assert not any(m.split('.')[0] == 'torch' for m in sys.modules)\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
