"""The last stop's "noticed but left alone" items: the lab checks a run's optimizer with
:func:`lrkit.tasks.optimizers.check_optimizer` (one mechanism, on the task's device); an experiment file
refuses numbers written as text for ``epochs``, ``seeds``, ``workers`` and ``diverge_factor`` as it does
for optimizer parameters; ``lrkit tune``'s SQLite storage refuses a path longer than SQLite opens, with
the lab's check; ``lrkit.auto``'s summary says no warmup when its schedule has none (Schedule-Free's own
``warmup_steps`` set to 0 beside it); :class:`lrkit.AutoResult`'s repr is one short line."""

from __future__ import annotations

import os
import sqlite3
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

import lrkit.tasks.optimizers as optimizers
from lrkit.lab.experiment import load_experiment
from lrkit.lab.runner import Strategy, check_runs
from lrkit.lab.store import check_db_path
from lrkit.tasks.optimizers import check_optimizer
from lrkit.tune.storage import storage_url

TASK = "digits-mlp-sgd"
CPU = torch.device("cpu")


# --- 1. the lab checks a run's optimizer with check_optimizer, on the task's device -------------------


def _torch_refuses_a_step(flag: str) -> bool:
    """Whether torch's own Adam, built with ``flag=True`` over a CPU parameter, refuses a step."""
    p = torch.nn.Parameter(torch.zeros(1))
    p.grad = torch.zeros(1)
    try:
        torch.optim.Adam([p], lr=1e-3, **{flag: True}).step()
    except (RuntimeError, AssertionError, ValueError):
        return True
    return False


@pytest.mark.parametrize("flag", ["capturable", "fused"])
def test_check_optimizer_on_a_device_refuses_what_torch_refuses_in_a_step_there(flag: str) -> None:
    refused = _torch_refuses_a_step(flag)
    if refused:
        shown = rf"^optimizer 'adam\({flag}=true\)' fails a step on .*\(cpu\): "
        with pytest.raises(ValueError, match=shown):
            check_optimizer("adam", {flag: True}, device=CPU)
    else:
        assert check_optimizer("adam", {flag: True}, device=CPU) == {flag: True}
    # without a device the stand-in is no model's: a setting for a device is built, not stepped
    assert check_optimizer("adam", {flag: True}) == {flag: True}


def test_capturable_on_the_cpu_is_refused_by_torch_so_the_test_above_can_fail() -> None:
    assert _torch_refuses_a_step("capturable")


def test_check_runs_checks_each_runs_optimizer_with_check_optimizer_on_the_device(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[str, dict[str, Any], Any]] = []
    real = optimizers.check_optimizer

    def recording(name: str, params: Any = None, what: str = "optimizer_params", device: Any = None) -> Any:
        calls.append((name, dict(params or {}), device))
        return real(name, params, what, device=device)

    strategies = [
        Strategy("a", "cosine(lr=0.1)"),
        Strategy("b", "cosine(lr=0.2)", "adamw", {"weight_decay": 0.1}),
    ]
    monkeypatch.setattr(optimizers, "check_optimizer", recording)  # the strategies checked their own
    check_runs(strategies, TASK, 2, "sgd", {"momentum": 0.9}, device=CPU)
    assert calls == [("sgd", {"momentum": 0.9}, CPU), ("adamw", {"weight_decay": 0.1}, CPU)]


@pytest.mark.parametrize(
    "params",
    [{"capturable": True}, {"weight_decay": -1.0}, {"betas": (0.9, 1.5)}, {"amsgrad": 1}, {"lr_decay": 0.1}],
)
def test_check_runs_refuses_with_check_optimizers_reason_naming_the_strategy(params: dict[str, Any]) -> None:
    with pytest.raises(ValueError) as own:
        check_optimizer("adam", params, device=CPU)
    with pytest.raises(ValueError) as lab:
        check_runs([Strategy("a", "cosine(lr=0.1)")], TASK, 2, "adam", params, device=CPU)
    assert str(lab.value) == f"strategies: strategy 'a': {own.value}"


# --- 2. an experiment file refuses numbers written as text ------------------------------------------


def _error(tmp_path: Path, text: str, suffix: str = ".yaml") -> str:
    path = tmp_path / ("e" + suffix)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError) as info:
        load_experiment(path)
    return str(info.value)


@pytest.mark.parametrize(
    ("line", "key", "text", "expected"),
    [
        ("epochs: '5'", "epochs", "5", "an integer >= 1"),
        ("workers: '2'", "workers", "2", "an integer >= 1"),
        ("seeds: '3'", "seeds", "3", "an integer >= 1 or a list"),
        ("seeds: [0, '7']", "seeds[1]", "7", "an integer >= 0"),
        ("diverge_factor: '20'", "diverge_factor", "20", "a number"),
        ("diverge_factor: '1e1'", "diverge_factor", "1e1", "a number"),
    ],
)
def test_a_quoted_number_is_refused_naming_the_key_and_the_text(
    tmp_path: Path, line: str, key: str, text: str, expected: str
) -> None:
    msg = _error(tmp_path, f"task: {TASK}\n{line}\nstrategies: [constant(0.1)]\n")
    assert msg.startswith(f"experiment: {key} must be {expected}, got the text {text!r}: write it unquoted")
    assert "\n" not in msg
    # TOML's strings are refused alike
    toml_line = line.replace("'", '"').replace(": ", " = ")
    toml = _error(tmp_path, f'task = "{TASK}"\n{toml_line}\nstrategies = ["constant(0.1)"]\n', ".toml")
    assert toml.startswith(f"experiment: {key} must be {expected}, got the text {text!r}")


@pytest.mark.parametrize("text", ["nan", "inf", "-Infinity"])
def test_text_that_is_no_finite_number_is_not_told_to_be_unquoted(tmp_path: Path, text: str) -> None:
    msg = _error(tmp_path, f"task: {TASK}\ndiverge_factor: '{text}'\nstrategies: [constant(0.1)]\n")
    assert msg == f"experiment: diverge_factor must be a finite number, got the text {text!r}"


def test_text_yaml11_misreads_names_the_spelling_it_reads_as_a_number(tmp_path: Path) -> None:
    """``yaml.safe_load`` (YAML 1.1) reads ``1e1`` as text, ``1.0e+1`` as a number: the hint's spelling
    must be a number under YAML 1.1 too."""
    import yaml

    msg = _error(tmp_path, f"task: {TASK}\ndiverge_factor: '1e1'\nstrategies: [constant(0.1)]\n")
    assert "yaml.safe_load" in msg and "write 1.0e+1" in msg
    assert yaml.safe_load("x: 1.0e+1") == {"x": 10.0} and yaml.safe_load("x: 1e1") == {"x": "1e1"}


def test_unquoted_numbers_are_still_numbers(tmp_path: Path) -> None:
    path = tmp_path / "e.yaml"
    path.write_text(f"task: {TASK}\nepochs: 5\ndiverge_factor: 1e1\nseeds: 2\nstrategies: [constant(0.1)]\n")
    e = load_experiment(path)
    assert (e.epochs, e.diverge_factor, e.seeds) == (5, 10.0, [0, 1])


# --- 3. tune's SQLite storage refuses a path longer than SQLite opens, with the lab's check ----------

MAX = 504


def _path_of(tmp_path: Path, n: int) -> Path:
    """A path of exactly ``n`` bytes under ``tmp_path`` (resolved), its folders made."""
    base = os.path.realpath(tmp_path)
    left = n - len(base) - 1
    path = Path(base, "a" * 200, "b" * 200, "c" * (left - 402))
    path.parent.mkdir(parents=True, exist_ok=True)
    assert len(os.fsencode(str(path))) == n
    return path


@pytest.mark.skipif(os.name != "posix", reason="SQLite's unix VFS limit")
def test_sqlite_itself_refuses_a_path_one_byte_longer_than_the_limit(tmp_path: Path) -> None:
    ok = _path_of(tmp_path, MAX)
    sqlite3.connect(ok).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(sqlite3.OperationalError, match="unable to open"):
        sqlite3.connect(_path_of(tmp_path / "x", MAX + 1)).execute("CREATE TABLE t (x)")


@pytest.mark.skipif(os.name != "posix", reason="SQLite's unix VFS limit")
@pytest.mark.parametrize("as_url", [True, False])
def test_tune_storage_refuses_a_path_longer_than_sqlite_opens_as_the_lab_does(
    tmp_path: Path, as_url: bool
) -> None:
    long = _path_of(tmp_path, MAX + 1)
    storage = f"sqlite:///{long}" if as_url else str(long)
    with pytest.raises(ValueError) as tune:
        storage_url(storage)
    with pytest.raises(ValueError) as lab:
        check_db_path(long, "storage")
    assert str(tune.value) == str(lab.value)
    assert f"longer than {MAX} bytes" in str(tune.value) and f"this one is {MAX + 1}" in str(tune.value)
    assert str(tune.value).startswith("storage: ") and not long.exists()


@pytest.mark.skipif(os.name != "posix", reason="SQLite's unix VFS limit")
def test_tune_storage_takes_a_path_as_long_as_sqlite_opens(tmp_path: Path) -> None:
    path = _path_of(tmp_path, MAX)
    assert storage_url(f"sqlite:///{path}") == f"sqlite:///{path}"
    assert storage_url(str(path)) == f"sqlite:///{path}"


# --- 4 and 5. lrkit.auto with a Schedule-Free optimizer: the summary's warmup; AutoResult's repr -----


def _auto(warmup: float) -> Any:
    schedulefree = pytest.importorskip("schedulefree")
    import lrkit

    torch.manual_seed(0)
    x = torch.randn(2048, 8)
    y = x @ torch.randn(8, 1) + 0.1 * torch.randn(2048, 1)
    data = torch.utils.data.TensorDataset(x, y)
    loader = torch.utils.data.DataLoader(data, batch_size=64, shuffle=True)
    model = torch.nn.Linear(8, 1)
    opt = schedulefree.AdamWScheduleFree(model.parameters(), lr=1e-3, warmup_steps=50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = lrkit.auto(
            model, opt, loader, torch.nn.functional.mse_loss, epochs=5, warmup=warmup, kind="constant",
            search="separate", verbose=False,
        )  # fmt: skip
    assert [g["warmup_steps"] for g in opt.param_groups] == [0]
    return result


@pytest.fixture(scope="module")
def without_warmup() -> Any:
    return _auto(0.0)


def test_auto_without_warmup_does_not_say_its_schedule_warms_up(without_warmup: Any) -> None:
    r = without_warmup
    lrs = r.lrs()
    assert lrs[0] == pytest.approx(r.peak_lr)  # the run starts at the peak: no warmup
    assert "warms up" not in r.summary and "0% linear warmup" not in r.summary
    assert "no warmup (warmup=0)" in r.summary
    assert "its own warmup_steps=50 set to 0, and this schedule has no warmup either" in r.summary


def test_auto_with_warmup_says_its_schedule_warms_up() -> None:
    r = _auto(0.05)
    assert r.lrs()[0] < r.peak_lr / 2  # the run starts well below the peak
    assert "5% linear warmup to the peak" in r.summary
    assert "its own warmup_steps=50 set to 0, this schedule warms up" in r.summary


def test_auto_results_repr_is_one_short_line_of_what_was_chosen(without_warmup: Any) -> None:
    r = without_warmup
    text = repr(r)
    assert "\n" not in text and len(text) < 200, text
    assert text.startswith("AutoResult(kind='constant', ") and f"peak_lr={r.peak_lr:.4g}" in text
    assert "search='separate'" in text and f"search_steps={r.search_steps}" in text
    assert r.summary not in text and str(r) == r.summary
