"""lrkit as a user installs it: the wheel's contents and metadata, pyproject.toml's floors against the
APIs the code calls, the extras against the install hints, and ``python -m lrkit``."""

from __future__ import annotations

import email
import functools
import importlib.metadata
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

import lrkit

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "lrkit"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]
EXTRAS = {k: v for k, v in PROJECT["optional-dependencies"].items() if k != "all"}

requirements = pytest.importorskip("packaging.requirements")
version = pytest.importorskip("packaging.version")
canonicalize_name = pytest.importorskip("packaging.utils").canonicalize_name


def _floor(spec: str, name: str) -> version.Version:
    """The lowest version ``spec`` (a requirement such as ``torch>=2.3``) admits for ``name``."""
    req = requirements.Requirement(spec)
    assert req.name == name, spec
    floors = [version.Version(s.version) for s in req.specifier if s.operator in (">=", "==", "~=")]
    assert floors, f"{spec!r} has no lower bound"
    return max(floors)


def _requirements() -> list[str]:
    """Every requirement pyproject.toml declares: the build's, the core's, the extras' and the dev group's."""
    extras = [r for reqs in EXTRAS.values() for r in reqs]
    dev = [r for r in PYPROJECT["dependency-groups"]["dev"] if isinstance(r, str)]
    return [*PYPROJECT["build-system"]["requires"], *PROJECT["dependencies"], *extras, *dev]


def _sources() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(SRC.rglob("*.py")))


# --- the wheel -----------------------------------------------------------------------------------


def _build(kind: str, tmp: Path, extra: tuple[str, ...] = ()) -> Path:
    """The ``kind`` ("wheel" or "sdist") setuptools builds from a copy of the project in ``tmp`` (the
    working tree gets no build/ folder): pyproject, README, LICENSE, the package and ``extra`` paths."""
    pytest.importorskip("setuptools", minversion="77")
    project = tmp / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", *extra):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, project / name, ignore=_CACHES)
        else:
            shutil.copy(ROOT / name, project / name)
    shutil.copytree(SRC, project / "src" / "lrkit", ignore=_CACHES)
    out = tmp / "dist"
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from setuptools import build_meta as b; print(b.build_{kind}({str(out)!r}))",
        ],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out / done.stdout.strip().splitlines()[-1]


_CACHES = shutil.ignore_patterns("__pycache__", "*.pyc")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build("wheel", tmp_path_factory.mktemp("build"))


def test_the_wheel_holds_every_module_and_nothing_else(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    # the .pyi: the alias modules' stubs (lrkit/torch.pyi, ...), for type checkers
    modules = {f"lrkit/{p.relative_to(SRC).as_posix()}" for p in (*SRC.rglob("*.py"), *SRC.rglob("*.pyi"))}
    package = {n for n in names if n.startswith("lrkit/")}
    assert package == modules | {"lrkit/py.typed"}, package ^ (modules | {"lrkit/py.typed"})
    assert "lrkit/__main__.py" in package  # `python -m lrkit`
    info = {n for n in names if not n.startswith("lrkit/")}
    assert all(n.startswith(f"lrkit-{lrkit.__version__}.dist-info/") for n in info), info
    assert wheel.stat().st_size < 1_000_000, wheel.stat().st_size


def test_the_sdist_holds_the_package_and_no_part_of_the_tests(tmp_path: Path) -> None:
    # setuptools' default shipped tests/test_*.py without tests/__init__.py, conftest.py or strategies.py,
    # so the tests of an sdist could not even be imported
    sdist = _build("sdist", tmp_path, ("MANIFEST.in", "conftest.py", "tests"))
    import tarfile

    with tarfile.open(sdist) as t:
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    modules = {f"src/lrkit/{p.relative_to(SRC).as_posix()}" for p in SRC.rglob("*.py")}
    assert modules <= names, modules - names
    assert not {n for n in names if n.startswith("tests/") or n.endswith("conftest.py")}


def test_the_wheels_metadata(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        info = f"lrkit-{lrkit.__version__}.dist-info"
        meta = email.message_from_bytes(z.read(f"{info}/METADATA"))
        entry_points = z.read(f"{info}/entry_points.txt").decode()
    assert meta["Version"] == lrkit.__version__
    assert (
        meta["License-Expression"] == "Apache-2.0" and meta["Requires-Python"] == PROJECT["requires-python"]
    )
    plain = [r for r in meta.get_all("Requires-Dist") if "extra ==" not in r]
    assert [requirements.Requirement(r).name for r in plain] == ["numpy"]  # the core: numpy alone
    assert set(meta.get_all("Provides-Extra")) == set(PROJECT["optional-dependencies"])
    assert re.search(r"^lrkit = lrkit\.cli:main$", entry_points, re.M), entry_points


# --- pyproject.toml's floors ---------------------------------------------------------------------


def test_the_build_needs_a_setuptools_that_reads_a_license_expression() -> None:
    """``license = "Apache-2.0"`` (PEP 639) is read from setuptools 77 on; older ones refuse the string."""
    assert isinstance(PROJECT["license"], str)
    (setuptools,) = [r for r in PYPROJECT["build-system"]["requires"] if r.startswith("setuptools")]
    assert _floor(setuptools, "setuptools") >= version.Version("77"), setuptools


def test_requires_python_is_the_python_the_code_is_checked_against() -> None:
    """A lower floor promises a Python nothing checks (``mypy --python-version 3.10`` finds spec.py's
    ``import tomllib``, a 3.11 module, missing)."""
    floor = re.fullmatch(r">=\s*(\d+\.\d+)", PROJECT["requires-python"])
    assert floor, PROJECT["requires-python"]
    assert version.Version(floor[1]) >= version.Version(PYPROJECT["tool"]["mypy"]["python_version"])


#: APIs the code calls, with the first release of their library that has them
NEWER_APIS = [
    # numpy 2.0 brought the array API's own names into numpy's namespace (NumPy 2.0 release notes)
    ("numpy", r"\b(?:xp|np)\.(?:astype|concat|permute_dims|isdtype|pow|acos|asin|atan2?)\(", "2.0"),
    ("torch", r"\btorch\.compiler\.is_compiling\(", "2.3"),  # torch 2.2 has torch._dynamo's only
    # optuna 4.0-4.2 have no such exception: the `except` naming it raised AttributeError in place of
    # lrkit's message when a trial's code raised (tests/test_tune_inputs.py under optuna 4.0)
    ("optuna", r"\boptuna\.exceptions\.UpdateFinishedTrialError\b", "4.3"),
    # keras 3.0-3.6: keras.Variable is a class of its own, not the backends' variable's base, so a float
    # LR was refused (tests/test_keras.py's plateau tests under keras 3.6.0)
    ("keras", r"isinstance\([^)]*\bkeras\.Variable\)", "3.7"),
    # called with (args, dataloader): in 4.57 and 5.0-5.2 it takes a third argument, total_train_batch_size,
    # and lrkit.transformers.Trainer raised TypeError on a schedule in epochs (tests/test_transformers.py)
    ("transformers", r"\bset_initial_training_values\b", "5.3"),
]


@pytest.mark.parametrize(("name", "pattern", "first"), NEWER_APIS)
def test_every_floor_admits_only_releases_with_the_apis_the_code_calls(
    name: str, pattern: str, first: str
) -> None:
    calls = re.findall(pattern, _sources())
    assert calls, f"no call matches {pattern!r}: drop this row"
    specs = [r for r in _requirements() if requirements.Requirement(r).name == name]
    assert specs, name
    for spec in specs:
        assert _floor(spec, name) >= version.Version(first), f"{spec!r}, but the code calls {calls[0]}"


#: The first release of each compiled library that was built against numpy 2 (ABI 2): an older one
#: either fails to import under numpy>=2.0 or declares numpy<2, so with lrkit's numpy>=2.0 a resolver
#: picks a broken release or finds none. Verified in a fresh venv with numpy 2.0.0 (the old floors are
#: what `uv pip compile --resolution lowest-direct` picked): the old floor installed and imported (the
#: error below), the releases between read from their metadata, the new floor installed and the part of
#: lrkit that uses it run (`lrkit plot`, `gallery`, `find`, `lab` on digits, tests/test_report.py).
NUMPY2_BUILDS = {
    # 3.7.0-3.7.4: "ImportError: numpy.core.multiarray failed to import"; 3.7.5-3.8.3: numpy<2
    "matplotlib": "3.8.4",
    # 1.3.x: "cannot import name 'ComplexWarning' from 'numpy.core.numeric'"; 1.4.0, 1.4.1.post1: numpy<2.0
    "scikit-learn": "1.4.2",
    # 2.0.0: "ValueError: numpy.dtype size changed, may indicate binary incompatibility"; 2.2.1: numpy<2
    "pandas": "2.2.2",
}


@pytest.mark.parametrize(("name", "first"), sorted(NUMPY2_BUILDS.items()))
def test_every_floor_of_a_compiled_numpy_library_is_a_numpy_2_build(name: str, first: str) -> None:
    specs = [r for r in _requirements() if canonicalize_name(requirements.Requirement(r).name) == name]
    assert specs, f"nothing requires {name}: drop its row"
    for spec in specs:
        assert _floor(spec, requirements.Requirement(spec).name) >= version.Version(first), (
            f"{spec!r} admits releases built against numpy 1, which do not import under numpy>=2.0"
        )


def _compiled_against_numpy(dist: importlib.metadata.Distribution) -> bool:
    """Whether ``dist`` requires numpy (outside an extra) and ships extension modules."""
    needs = [requirements.Requirement(r) for r in dist.requires or ()]
    if not any(r.name == "numpy" and (r.marker is None or "extra" not in str(r.marker)) for r in needs):
        return False
    return any(f.suffix in (".so", ".pyd") for f in dist.files or ())


def test_every_installed_compiled_numpy_library_lrkit_requires_has_a_verified_floor() -> None:
    """A new dependency with C extensions built against numpy needs its numpy-2 floor found (and a row
    in NUMPY2_BUILDS): a floor copied from before numpy 2 is an ImportError for its user."""
    checked, missing = [], []
    for spec in _requirements():
        name = canonicalize_name(requirements.Requirement(spec).name)
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        if name != "numpy" and _compiled_against_numpy(dist):
            checked.append(name)
            if name not in NUMPY2_BUILDS:
                missing.append(name)
    if not checked:
        pytest.skip("no compiled numpy library lrkit requires is installed here")
    assert not missing, f"{missing}: find the first release built against numpy 2, add it to NUMPY2_BUILDS"


def test_no_requirement_caps_a_version() -> None:
    """lrkit runs on what comes next until shown otherwise: an upper bound (``<``, ``<=``, ``==``, ``~=``)
    would keep a user from a fixed release and make lrkit uninstallable beside a newer library."""
    capped = [
        spec
        for spec in _requirements()
        if any(s.operator in ("<", "<=", "==", "===", "~=") for s in requirements.Requirement(spec).specifier)
    ]
    assert not capped, capped


def test_every_user_facing_requirement_has_a_floor() -> None:
    for spec in [*PROJECT["dependencies"], *(r for reqs in EXTRAS.values() for r in reqs)]:
        _floor(spec, requirements.Requirement(spec).name)


# --- the extras and the hints that name them -----------------------------------------------------


@functools.cache
def _installed_modules() -> dict[str, set[str]]:
    """Each installed distribution (canonical name) with the top-level modules it provides."""
    out: dict[str, set[str]] = {}
    for module, dists in importlib.metadata.packages_distributions().items():
        for d in dists:
            out.setdefault(canonicalize_name(d), set()).add(module)
    return out


@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_the_modules_lrkit_names_for_each_extra_are_what_it_installs(extra: str) -> None:
    """``lrkit._EXTRA_MODULES`` (behind the hint on a missing module) agrees with pyproject.toml."""
    named = set(lrkit._EXTRA_MODULES[extra])
    for spec in EXTRAS[extra]:
        dist = canonicalize_name(requirements.Requirement(spec).name)
        mods = _installed_modules().get(dist)
        if mods is None:
            pytest.skip(f"{dist} is not installed here")
        assert mods & named, f"lrkit[{extra}] installs {dist} ({sorted(mods)}), not in {sorted(named)}"
        named -= mods
    assert not named, f"lrkit[{extra}] installs none of {sorted(named)}"


def test_all_is_every_extra() -> None:
    (everything,) = PROJECT["optional-dependencies"]["all"]
    assert set(requirements.Requirement(everything).extras) == set(EXTRAS)


def test_every_extra_a_message_names_exists() -> None:
    named = set(re.findall(r"lrkit\[(\w+)\]", _sources()))
    assert named and named <= set(PROJECT["optional-dependencies"]), named


def test_the_clis_missing_module_table_names_the_extra_that_installs_it() -> None:
    from lrkit.cli import EXTRAS as CLI_EXTRAS

    for module, extra in CLI_EXTRAS.items():
        assert module in lrkit._EXTRA_MODULES[extra], f"lrkit[{extra}] does not install {module}"


# --- the command ---------------------------------------------------------------------------------


def _lrkit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lrkit", *args], capture_output=True, text=True, timeout=120, cwd=ROOT
    )


def test_python_dash_m_lrkit_is_the_command_and_every_version_agrees() -> None:
    done = _lrkit("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"lrkit {lrkit.__version__}", done.stderr
    assert importlib.metadata.version("lrkit") == lrkit.__version__
    assert str(version.Version(lrkit.__version__)) == lrkit.__version__  # PEP 440, normalised
    shown = _lrkit("show", "cosine(lr=0.1, steps=100)", "--at", "50")
    assert shown.returncode == 0 and re.search(r"^\s*50\s+0\.05$", shown.stdout, re.M), shown
    bad = _lrkit("show", "cosine(lr=")
    assert bad.returncode == 2 and bad.stderr.startswith("lrkit show: error:"), bad.stderr


def test_a_core_only_install_says_which_extra_each_command_needs(tmp_path: Path) -> None:
    """With every extra's modules missing, each command that needs one fails with one line naming it."""
    blocked = sorted({m for mods in lrkit._EXTRA_MODULES.values() for m in mods})
    (tmp_path / "s.yaml").write_text("type: constant\nlr: 0.1\n")
    (tmp_path / "e.yaml").write_text("task: digits-mlp-adam\n")
    cases = [
        (["gallery", "--out", "g.png"], "lab"),
        (["plot", "cosine(lr=1)", "--total", "10", "--out", "p.png"], "lab"),
        (["show", "s.yaml"], "spec"),
        (["lab", "e.yaml"], "spec"),
        (["find", "--task", "digits-mlp-adam", "--out", "none"], "lab"),
        (["lab", "--strategy", "cosine(lr=0.1)", "--task", "digits-mlp-adam"], "lab"),
        (["auto", "--task", "digits-mlp-adam"], "lab"),
        (["tune", "--task", "digits-mlp-adam", "--trials", "1"], "lab"),
        (
            ["tune", "--task", "digits-mlp-adam", "--trials", "1", "--storage", "postgresql://h/db"],
            "postgres",
        ),
        (["demo", "--out", "d"], "lab"),
    ]
    script = (
        f"import sys\nfor m in {blocked!r}: sys.modules[m] = None\n"
        "from lrkit.cli import main\n"
        f"for args, _ in {cases!r}:\n"
        "    print(main(args), file=sys.stderr)\n"
        "    print('--', file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    outputs = done.stderr.split("--\n")[:-1]
    assert len(outputs) == len(cases), done.stderr
    for (args, extra), out in zip(cases, outputs):
        *lines, code = out.strip().splitlines()
        assert code == "2" and len(lines) == 1, (args, out)
        assert lines[0].startswith(f"lrkit {args[0]}: error:") and f"pip install 'lrkit[{extra}]'" in lines[0]
    assert not list(tmp_path.glob("*.png")) and not (tmp_path / "d").exists()  # failed before writing
