"""``import lrkit.torch`` (and every other lazy part) works as ``lrkit.torch`` does, and a missing
framework says what to install. Each case runs in a fresh interpreter: imports are process state."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from lrkit import _LAZY

#: makes ``import NAME`` fail as if NAME were not installed (a meta path finder placed first)
BLOCK = textwrap.dedent(
    """
    import sys, importlib.abc
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname, path=None, target=None):
            if fullname.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
            return None
    sys.meta_path.insert(0, Block())
    """
)


def _run(code: str, blocked: tuple[str, ...] = (), **env: str) -> subprocess.CompletedProcess[str]:
    script = f"BLOCKED = {blocked!r}\n{BLOCK}\n{textwrap.dedent(code)}"
    environ = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"} | env
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=environ, timeout=300
    )


@pytest.mark.parametrize("name", sorted(_LAZY))
def test_import_lrkit_dot_part_is_the_part_itself(name: str) -> None:
    target = _LAZY[name]
    pytest.importorskip("keras" if name == "keras" else target)  # skips only where its framework is missing
    done = _run(
        f"""
        import importlib, sys
        import lrkit.{name} as via_import
        import lrkit
        real = importlib.import_module({target!r})
        assert via_import is real is lrkit.{name} is sys.modules["lrkit.{name}"], "not one module"
        assert real.__name__ == {target!r} and real.__spec__.name == {target!r}, real.__spec__
        importlib.reload(real)
        from lrkit.{name} import *  # noqa
        print("ok")
        """,
        KERAS_BACKEND="torch",
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_an_unknown_part_still_fails_as_usual() -> None:
    done = _run("import lrkit.no_such_part")
    assert done.returncode != 0 and "No module named 'lrkit.no_such_part'" in done.stderr


@pytest.mark.parametrize(
    ("name", "framework", "extra"),
    [("torch", "torch", "torch"), ("keras", "keras", "keras"), ("optax", "jax", "jax")],
)
@pytest.mark.parametrize(
    "how", ["import lrkit.{name}", "import lrkit; lrkit.{name}", "from lrkit import {name}"]
)
def test_a_missing_framework_says_what_to_install(name: str, framework: str, extra: str, how: str) -> None:
    done = _run(how.format(name=name), blocked=(framework,))
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ModuleNotFoundError: ") and f"pip install 'lrkit[{extra}]'" in last, done.stderr
    assert f"lrkit.{name} needs {framework!r}" in last
    assert ("pytorch.org" in last) == (framework == "torch"), last  # PyTorch's own install advice


@pytest.mark.parametrize(
    "how, name",
    [
        ("import lrkit; lrkit.find_lr", "lrkit.find_lr"),
        ("from lrkit import find_lr", "lrkit.find_lr"),
        ("from lrkit.finder import find_lr", "lrkit.finder.find_lr"),
    ],
)
def test_the_finder_without_torch_says_what_to_install(how: str, name: str) -> None:
    done = _run(how, blocked=("torch",))
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode != 0 and last.startswith(f"ModuleNotFoundError: {name} needs 'torch'"), last
    assert "pip install 'lrkit[torch]'" in last


def test_a_numpy_only_install_names_a_wrong_step_type_as_such() -> None:
    # without array-api-compat (a numpy-only install), a str or a list used to be "needs array-api-compat"
    done = _run(
        """
        import lrkit
        s = lrkit.Cosine(lr=1.0, steps=10)
        for bad in ("3", None, [1], {}):
            try:
                s(bad)
            except TypeError as exc:
                print(exc)
        """,
        blocked=("array_api_compat", "torch", "jax"),
    )
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0 and len(lines) == 4, done.stderr
    assert all(line.startswith("step: expected an int, a float or an array") for line in lines), lines


def test_the_transformers_adapter_without_transformers_says_to_install_it() -> None:
    pytest.importorskip("torch")
    done = _run("import lrkit.transformers", blocked=("transformers",))
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode != 0 and last == (
        "ModuleNotFoundError: lrkit.transformers needs 'transformers', which is not installed: "
        "pip install transformers"
    ), done.stderr


def test_a_module_no_extra_installs_keeps_its_own_error() -> None:
    """A package lrkit's extras do not install (numpy, a user's module) gets no pip hint for an extra."""
    from lrkit import _install_hint

    for missing in ("numpy", "numpy.linalg", "my_model", None):
        assert _install_hint("lrkit.torch", ModuleNotFoundError(name=missing), "torch") is None
    hint = _install_hint("lrkit.lab", ModuleNotFoundError(name="sklearn.datasets"), "lab")
    assert hint is not None and hint.name == "sklearn.datasets"
    assert str(hint) == (
        "lrkit.lab needs 'sklearn', which is not installed: pip install 'lrkit[lab]' (or sklearn itself)"
    )


def test_keras_without_its_tensorflow_backend_says_to_set_keras_backend() -> None:
    pytest.importorskip("keras")
    if importlib.util.find_spec("tensorflow") is not None:
        pytest.skip("tensorflow is installed: keras's default backend works")
    done = _run("from lrkit import keras")
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode != 0 and "KERAS_BACKEND=torch" in last and "pip install" not in last, done.stderr
    ok = _run("import lrkit.keras; print('ok')", KERAS_BACKEND="torch")
    assert ok.returncode == 0 and ok.stdout.strip() == "ok", ok.stderr


def test_import_lrkit_alone_imports_no_framework() -> None:
    done = _run(
        """
        import sys, lrkit
        heavy = sorted(m for m in ("torch", "keras", "jax", "matplotlib", "optuna") if m in sys.modules)
        print(heavy)
        """
    )
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


def test_a_broken_matplotlib_is_named_as_broken_not_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """matplotlib 3.7 under numpy 2 fails to import ("numpy.core.multiarray failed to import"): lrkit
    told the user to install matplotlib, which they had. A missing one still names the extra."""
    import builtins

    from lrkit import plot

    real = builtins.__import__

    def broken(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "matplotlib":
            raise ImportError("numpy.core.multiarray failed to import")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", broken)
    with pytest.raises(ImportError, match=r"^matplotlib is installed but cannot be imported: numpy.core"):
        plot.pyplot()

    def missing(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "matplotlib":
            raise ModuleNotFoundError("No module named 'matplotlib'", name="matplotlib")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", missing)
    with pytest.raises(ImportError, match=r"plotting needs matplotlib: pip install 'lrkit\[lab\]'"):
        plot.pyplot()
