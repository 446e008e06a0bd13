"""The lab's set-up checks of a strategy's optimizer and label (tester P, s30).

- Two strategies that are one run however their optimizer is spelled (``a@adamw`` beside ``adamw`` with
  ``{weight_decay: 0.01}``, ``momentum`` beside ``sgd`` with ``{momentum: 0.9}``, ``adam`` beside its
  own default betas and eps) are refused before anything is written: they all ran, and were ranked as
  different strategies. The stored run key still hashes the optimizer as spelled (old databases keep
  their runs).
- A ``betas`` torch cannot use (``[0.9]``: an IndexError traceback; ``[0.9, 0.99, 0.5]``: taken, then
  the first step failed, blaming the built-in task, after lab.db existed) is refused naming the strategy.
- A label that holds ``=`` or ``@`` (``Adam lr=1e-3@adam=constant(1e-3)``) parses: the spec follows the
  last ``=`` outside brackets, the optimizer the last ``@`` before it.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrkit.cli import main
from lrkit.lab.runner import Strategy, check_runs, run_config
from lrkit.lab.store import run_key
from lrkit.tasks import OPTIMIZERS

TASK = "digits-mlp-sgd"  # trained with momentum
TORCH_NAMES = [n for n, f in OPTIMIZERS.items() if f.module == "torch.optim"]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def _check(*strategies: Strategy) -> None:
    check_runs(list(strategies), TASK, 1, "momentum", {})


# ---------------------------------------------------------------------------------------------- one run
@pytest.mark.parametrize(
    ("a", "b", "call"),
    [
        (("adamw", {}), ("adamw", {"weight_decay": 0.01}), "torch.optim.AdamW(weight_decay=0.01)"),
        (("momentum", {}), ("sgd", {"momentum": 0.9}), "torch.optim.SGD(momentum=0.9)"),
        (("adam", {"betas": [0.9, 0.999], "eps": 1e-8}), ("adam", {}), "torch.optim.Adam with"),
        (("nesterov", {}), ("sgd", {"momentum": 0.9, "nesterov": True}), "torch.optim.SGD(momentum=0.9, "),
        (("sgd", {"momentum": 1}), ("sgd", {"momentum": 1.0}), "torch.optim.SGD(momentum=1"),
    ],
)
def test_two_spellings_of_one_optimizer_are_one_run(
    a: tuple[str, dict[str, object]], b: tuple[str, dict[str, object]], call: str
) -> None:
    with pytest.raises(ValueError) as info:
        _check(Strategy("A", "constant(1e-3)", *a), Strategy("B", "constant(1e-3)", *b))
    msg = str(info.value)
    assert msg.startswith("strategies: strategies 'A' and 'B' are the same run (spec 'constant(lr=0.001)', ")
    assert f"optimizer {a[0]!r}" in msg and f"optimizer {b[0]!r}" in msg and call in msg, msg


def test_the_task_optimizer_spelled_out_is_the_same_run() -> None:
    with pytest.raises(ValueError, match=r"strategies 'A' and 'B' are the same run .*torch.optim.SGD\(mom"):
        _check(Strategy("A", "constant(1e-2)"), Strategy("B", "constant(1e-2)", "sgd", {"momentum": 0.9}))


@pytest.mark.parametrize(
    "b",
    [
        ("adamw", {"weight_decay": 0.02}),
        ("adam", {"weight_decay": 0.01}),  # Adam's L2, not AdamW's decay
        ("sgd", {"momentum": 0.9, "nesterov": True}),
        ("momentum", {"dampening": 0.1}),
    ],
)
def test_optimizers_that_differ_are_not_one_run(b: tuple[str, dict[str, object]]) -> None:
    _check(Strategy("A", "constant(1e-3)", "adamw"), Strategy("M", "constant(1e-3)", "momentum"))
    _check(Strategy("A", "constant(1e-3)", "adamw"), Strategy("B", "constant(1e-3)", *b))
    _check(Strategy("M", "constant(1e-3)", "momentum"), Strategy("B", "constant(1e-3)", *b))


def _hyper_defaults(name: str) -> dict[str, object]:
    """The numeric and boolean defaults of optimizer ``name``'s class, with the name's own settings."""
    target = OPTIMIZERS[name].target()
    out = {
        a.name: a.default
        for a in inspect.signature(target).parameters.values()
        if a.name not in ("self", "params", "lr") and isinstance(a.default, (bool, int, float, tuple))
    }
    return {**out, **OPTIMIZERS[name].defaults}


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(TORCH_NAMES), data=st.data())
def test_any_defaults_written_out_are_the_bare_name(name: str, data: st.DataObject) -> None:
    """Any subset of an optimizer's defaults (its class's and its name's own), given as they are or as
    lists and ints where they are tuples and whole floats, is the run of the bare name."""
    defaults = _hyper_defaults(name)
    keys = data.draw(st.lists(st.sampled_from(sorted(defaults)), min_size=1, unique=True))

    def spelled(v: object) -> object:
        if isinstance(v, tuple):
            return [spelled(x) for x in v]
        if isinstance(v, float) and not isinstance(v, bool) and v.is_integer():
            return data.draw(st.sampled_from([v, int(v)]))
        return v

    params = {k: spelled(defaults[k]) for k in keys}
    with pytest.raises(ValueError, match="are the same run"):
        _check(Strategy("bare", "constant(1e-3)", name), Strategy("spelled", "constant(1e-3)", name, params))


def test_the_stored_run_key_keeps_the_optimizer_as_spelled() -> None:
    """A database's runs keep their keys: the run key hashes the name and the params as given."""
    cfg = run_config(TASK, Strategy("A", "constant(1e-3)", "adamw"), 0, 1, "momentum", 10.0, {})
    assert cfg["optimizer"] == "adamw" and cfg["optimizer_params"] == {}
    spelled = run_config(
        TASK, Strategy("B", "constant(1e-3)", "adamw", {"weight_decay": 0.01}), 0, 1, "momentum", 10.0, {}
    )
    assert spelled["optimizer_params"] == {"weight_decay": 0.01}
    assert run_key(cfg) != run_key(spelled)


def test_the_testers_dup_experiment_is_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for first, second in [
        (
            '"a@adamw=constant(1e-3)"',
            "{label: b, spec: constant(1e-3), optimizer: adamw, optimizer_params: {weight_decay: 0.01}}",
        ),
        (
            '"c@momentum=constant(1e-2)"',
            "{label: d, spec: constant(1e-2), optimizer: sgd, optimizer_params: {momentum: 0.9}}",
        ),
        (
            "{label: e, spec: constant(1e-3), optimizer: adam, optimizer_params: {betas: [0.9, 0.999], "
            "eps: 1e-8}}",
            '"f@adam=constant(1e-3)"',
        ),
    ]:
        path = tmp_path / "dup.yaml"
        path.write_text(
            f"task: {TASK}\nepochs: 1\nworkers: 1\noutput: dup-out/\nstrategies:\n"
            f"  - {first}\n  - {second}\n",
            encoding="utf-8",
        )
        rc = main(["lab", str(path)])
        out, err = capsys.readouterr()
        assert rc == 2 and out == "", (out, err)
        assert "are the same run" in err and "with torch's defaults" in err, err
        assert not (tmp_path / "dup-out").exists()


# ---------------------------------------------------------------------------------------------- betas
@pytest.mark.parametrize("betas", [[0.9], [0.9, 0.99, 0.5], []])
@pytest.mark.parametrize("name", ["adam", "adamw", "nadam", "radam", "adamax"])
def test_a_betas_torch_cannot_use_is_refused_naming_the_strategy(name: str, betas: list[float]) -> None:
    with pytest.raises(ValueError) as info:
        Strategy("x", "constant(1e-3)", name, {"betas": betas})
    assert str(info.value).startswith(
        f"strategy 'x': optimizer_params {{'betas': {tuple(betas)}}} for {name!r}"
    )


def test_good_betas_pass_and_the_stand_in_step_leaves_the_strategy_as_given() -> None:
    s = Strategy("x", "constant(1e-3)", "adam", {"betas": [0.9, 0.99]})
    assert s.optimizer_params == {"betas": (0.9, 0.99)}


@pytest.mark.parametrize("betas", ["[0.9]", "[0.9, 0.99, 0.5]"])
def test_the_lab_refuses_a_bad_betas_before_lab_db_exists(
    betas: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "b.yaml"
    path.write_text(
        f"task: {TASK}\nepochs: 1\nworkers: 1\noutput: b-out/\nstrategies:\n  - label: b3\n"
        f"    spec: constant(0.001)\n    optimizer: adam\n    optimizer_params: {{betas: {betas}}}\n",
        encoding="utf-8",
    )
    rc = main(["lab", str(path)])
    out, err = capsys.readouterr()
    assert rc == 2 and out == "" and "Traceback" not in err
    assert err.startswith("lrkit lab: error: experiment: strategies[0]: strategy 'b3': optimizer_params "), (
        err
    )
    assert not (tmp_path / "b-out").exists()


def test_a_bad_betas_on_top_of_the_tasks_optimizer_is_refused_by_check_runs() -> None:
    with pytest.raises(ValueError, match=r"^strategies: strategy 'x': .*betas must be 2 numbers"):
        check_runs([Strategy("x", "constant(1e-3)", None, {"betas": [0.9, 0.99, 0.5]})], TASK, 1, "adam", {})


# ---------------------------------------------------------------------------------------------- labels
_LABEL_CHARS = st.sampled_from([*"ab Z09.-_=@,:%", "λ", "학"])
_label = st.text(_LABEL_CHARS, min_size=1, max_size=20).filter(lambda s: s.strip() == s and s.strip())
_SPECS = ["constant(1e-3)", "cosine(lr=0.1)", "warmup(5%) >> cosine(lr=0.1)", "step(lr=0.1, step_size=2)"]


@settings(max_examples=150, deadline=None)
@given(label=_label, opt=st.sampled_from(list(OPTIMIZERS)), spec=st.sampled_from(_SPECS))
def test_a_label_with_equals_and_at_signs_parses_with_an_optimizer(label: str, opt: str, spec: str) -> None:
    s = Strategy.parse(f"{label}@{opt}={spec}", "--strategy")
    assert (s.label, s.optimizer) == (label, opt)
    assert s.spec == Strategy.parse(spec).spec


@settings(max_examples=150, deadline=None)
@given(label=_label.filter(lambda s: "@" not in s), spec=st.sampled_from(_SPECS))
def test_a_label_with_equals_signs_parses_without_an_optimizer(label: str, spec: str) -> None:
    s = Strategy.parse(f"{label}={spec}", "--strategy", default_optimizer="adam")
    assert (s.label, s.optimizer) == (label, "adam")
    assert s.spec == Strategy.parse(spec).spec


def test_the_testers_label() -> None:
    s = Strategy.parse("Adam lr=1e-3@adam=constant(1e-3)", "--strategy")
    assert (s.label, s.optimizer, s.spec) == ("Adam lr=1e-3", "adam", "constant(lr=0.001)")


def test_a_label_with_an_at_sign_but_no_optimizer_is_told_how_to_name_one() -> None:
    """A misspelled optimizer ('a@AdamW=', tests/test_optimizers_adaptive.py) gets the closest name
    instead."""
    with pytest.raises(ValueError) as info:
        Strategy.parse("me@home=constant(1)", "--strategy")
    msg = str(info.value)
    assert msg.startswith("--strategy 'me@home=constant(1)': OPT must be one of sgd, ")
    assert msg.endswith(
        "got 'home'; the text after the last '@' before '=' is OPT: a label that holds '@' names its "
        "optimizer after one more, 'me@home@OPT=constant(1)'"
    )


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("@adam=constant(1)", "the LABEL before the last '@' is empty"),
        ("a@=constant(1)", "no optimizer name after the last '@'"),
        ("a@adam=", "the SPEC after the last '=' is empty"),
        ("=constant(1)", "the LABEL before '=' is empty"),
    ],
)
def test_empty_parts_are_refused_saying_how_a_strategy_is_read(text: str, error: str) -> None:
    with pytest.raises(ValueError) as info:
        Strategy.parse(text, "--strategy")
    assert str(info.value).startswith(
        f"--strategy {text!r}: {error}; expected [LABEL[@OPT]=]SPEC, where SPEC "
        "follows the last '=' outside brackets and OPT the last '@' before it"
    )
