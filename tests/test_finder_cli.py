"""``lrkit find``: the subcommand registered on a bare argparse parser (and through lrkit.cli)."""

from __future__ import annotations

import argparse
import json
import math
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lrkit.finder import cli as finder_cli

pytest.importorskip("torch")
pytest.importorskip("matplotlib")


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="lrkit")
    finder_cli.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["find", *argv])


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_find_on_a_task_prints_the_suggestion_and_writes_plot_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png, js = tmp_path / "plots" / "lr.png", tmp_path / "json" / "lr.json"  # folders made as needed
    args = parse(
        "--task", "digits-mlp-adam", "--num-steps", "30", "--repeats", "2",
        "--out", str(png), "--json", str(js),
    )  # fmt: skip
    assert args.func(args) == 0
    out = capsys.readouterr().out
    data = json.loads(js.read_text())
    assert f"suggested LR {data['suggestion']:.3g}" in out
    assert png.stat().st_size > 1000
    assert len(data["curves"]) == 2 and len(data["curves"][0]["lrs"]) <= 30


SETUP = textwrap.dedent(
    """
    import torch

    def model():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))

    def no_parameters():
        return torch.nn.ReLU()

    def nothing():
        return iter([])

    def nan_loss(output, target):
        return torch.nn.functional.mse_loss(output, target) * float("nan")

    def data():
        g = torch.Generator().manual_seed(0)
        x = torch.randn(64, 3, generator=g)
        y = x.sum(dim=1, keepdim=True)
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    """
)


def setup_module_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str = "my_setup") -> None:
    (tmp_path / f"{name}.py").write_text(SETUP)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))


def test_find_with_model_and_data_factories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_module_in(tmp_path, monkeypatch)
    args = parse(
        "--model", "my_setup:model", "--data", "my_setup:data", "--loss", "mse", "--optimizer", "adam",
        "--num-steps", "25", "--repeats", "1", "--out", "none",
    )  # fmt: skip
    code = args.func(args)
    out = capsys.readouterr().out
    # 8 batches of a noisy regression: exit 0 with a suggestion, or 3 with the reason and no suggestion
    assert (code, out.startswith("suggested LR")) in ((0, True), (3, False)), out
    assert code == 0 or "NOT TRUSTED" in out
    assert not (tmp_path / "lr_find.png").exists()


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        ((), "either --task"),
        (("--task", "digits-mlp-adam", "--model", "a:b"), "either --task"),
        (("--task", "nope"), "--task must be a built-in task"),
        (("--model", "my_setup:model"), "--data"),
        (("--model", "nocolon", "--data", "x:y"), "MODULE:NAME"),
        (("--model", "no_such_module_xyz:f", "--data", "x:y"), "cannot import"),
        (("--task", "digits-mlp-adam", "--rule", "magic"), "--rule"),
        (("--task", "digits-mlp-adam", "--mode", "cos"), "--mode"),
        # matplotlib would add .png to a bare name (and the message would name another file), or
        # refuse an unknown suffix only after the whole test
        (("--task", "digits-mlp-adam", "--out", "lr_plot"), r"--out: expected a \.png, \.svg, \.pdf"),
        (("--task", "digits-mlp-adam", "--out", "lr.find"), r"--out: expected a \.png"),
        # the JSON silently replaced the plot lrkit had just written there
        (
            ("--task", "digits-mlp-adam", "--out", "same.png", "--json", "./same.png"),
            "--json .* its own name",
        ),
    ],
)
def test_bad_input_raises_value_error(argv: tuple[str, ...], words: str) -> None:
    args = parse(*argv)
    with pytest.raises(ValueError, match=words):
        args.func(args)


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (("--num-steps", "1"), "--num-steps: expected a whole number from 2 to 1,000,000, got '1'"),
        (("--batches-per-step", "0"), "--batches-per-step: expected a whole number from 1 to 2**53, got '0'"),
        (("--smoothing", "1"), "--smoothing: expected a number >= 0 and < 1, got '1'"),
        (
            ("--budget", "2.5"),
            "--budget: expected a fraction in (0, 1] or a whole number of steps up to 2**53",
        ),
    ],
)
def test_bad_numbers_are_refused_as_they_are_parsed(
    argv: tuple[str, ...], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        parse("--task", "digits-mlp-adam", *argv)
    assert info.value.code == 2 and words in capsys.readouterr().err


def test_a_nan_first_loss_of_model_and_data_is_bad_input_as_for_a_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--task names a NaN first loss before the test (status 2); --model with --data ran the whole test
    and ended with status 3, "no usable curve", as if a larger budget could help. One line, status 2."""
    from lrkit.cli import main

    setup_module_in(tmp_path, monkeypatch)
    argv = ["find", "--model", "my_setup:model", "--data", "my_setup:data", "--loss", "my_setup:nan_loss"]
    assert main([*argv, "--out", "none"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "lrkit find: error: --loss 'my_setup:nan_loss' gave nan on the first batch of --data 'my_setup:data' "
        "with the untrained --model 'my_setup:model'; expected a finite loss: check the data, the model and "
        "the loss (no learning rate fixes this)"
    )


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        # importlib took './my_setup.py' for a relative import and raised TypeError, which was then
        # reported as your code raising (status 1); a path is bad input, and the import name is given
        (
            ("--model", "./my_setup.py:model", "--data", "my_setup:data"),
            r"--model './my_setup\.py:model': './my_setup\.py' is a file path; expected the module's import "
            r"name, 'my_setup:model'",
        ),
        (("--model", "my_setup:model", "--data", "/tmp/my_setup.py:data"), r"--data .* 'my_setup:data'"),
        (("--model", "my_setup:model", "--data", "my_setup:data", "--loss", "my_setup.py:f"), "'my_setup:f'"),
        # a one-shot iterator with no batch: "train_loader yielded no batches" named no flag
        (
            ("--model", "my_setup:model", "--data", "my_setup:nothing"),
            r"--data 'my_setup:nothing' returned a list_iterator that yielded no batches",
        ),
        # torch's "optimizer got an empty parameter list" named neither the flag nor the model
        (
            ("--model", "my_setup:no_parameters", "--data", "my_setup:data"),
            r"--model 'my_setup:no_parameters' returned a ReLU with no trainable parameters",
        ),
    ],
)
def test_a_path_for_a_module_or_a_model_without_parameters_is_bad_input(
    argv: tuple[str, ...], words: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup_module_in(tmp_path, monkeypatch)
    args = parse(*argv, "--out", "none")
    with pytest.raises(ValueError, match=words):
        args.func(args)


def test_lrkit_cli_exposes_find() -> None:
    lrkit_cli = pytest.importorskip("lrkit.cli")
    parser = lrkit_cli.build_parser()
    args = parser.parse_args(["find", "--task", "digits-mlp-sgd"])
    assert args.func is finder_cli.run


def help_text() -> str:
    parser = argparse.ArgumentParser(prog="lrkit")
    find = finder_cli.register(parser.add_subparsers(dest="command"))
    return find.format_help()


def test_help_explains_every_flag_with_its_default() -> None:
    """Every flag has a help line, and one with a default shows it (a user should not read the source)."""
    parser = argparse.ArgumentParser(prog="lrkit")
    find = finder_cli.register(parser.add_subparsers(dest="command"))
    text = " ".join(find.format_help().split())
    for action in find._actions:
        if action.dest == "help":
            continue
        assert action.help, f"{action.option_strings} has no help"
        if action.default is not None:
            shown = f"{action.default:g}" if isinstance(action.default, float) else str(action.default)
            assert f"(default {shown}" in text, (
                action.option_strings,
                shown,
            )


def test_help_names_the_built_in_tasks_the_rules_and_the_exit_status() -> None:
    from lrkit.finder.rules import RULES
    from lrkit.tasks import TASKS

    text = " ".join(help_text().split())
    for name in [*TASKS, *RULES]:
        assert name in text, name
    for line in ("0 a learning rate is suggested", "1 your code", "2 bad input", "3 no suggestion"):
        assert line in text


def test_batches_per_step_runs_that_many_optimizer_steps_per_rung(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The finder's own advice for a noisy curve is "use more batches per step": the CLI must offer it."""
    setup_module_in(tmp_path, monkeypatch)
    counts = {}
    for n in (1, 3):
        js = tmp_path / f"n{n}.json"
        args = parse(
            "--model", "my_setup:model", "--data", "my_setup:data", "--loss", "mse", "--optimizer", "adam",
            "--num-steps", "12", "--repeats", "1", "--out", "none", "--json", str(js),
            "--batches-per-step", str(n),
        )  # fmt: skip
        args.func(args)
        data = json.loads(js.read_text())
        counts[n] = (data["first_steps"], len(data["curves"][0]["lrs"]))
    capsys.readouterr()
    for n, (steps, rungs) in counts.items():
        assert steps == n * rungs, counts


def test_json_is_strict_when_the_loss_blew_up() -> None:
    """A ramp that ends on an inf loss (and a result with no usable curve) writes JSON null, not NaN or
    Infinity, which jq, JavaScript and strict parsers refuse."""
    from lrkit.finder import Curve, FinderResult

    lrs = np.geomspace(1e-4, 1.0, 8)
    losses = np.array([2.0, 1.9, 1.5, 1.0, 0.6, 0.5, 3.0, np.inf])
    smoothed = np.array([2.0, 1.95, 1.8, 1.5, 1.2, 0.9, 1.5, np.nan])
    blew = FinderResult.from_curves([Curve(lrs, losses, smoothed, stopped_at=7)])
    none = FinderResult.from_curves([Curve(lrs[:1], np.array([np.nan]), np.array([np.nan]), stopped_at=0)])
    for res in (blew, none):
        text = json.dumps(res.to_dict(), allow_nan=False)  # raises on NaN / inf
        assert "NaN" not in text and "Infinity" not in text
    d = blew.to_dict()
    assert d["curves"][0]["losses"][-1] is None and d["curves"][0]["smoothed"][-1] is None
    assert d["curves"][0]["losses"][:7] == losses[:7].tolist()
    assert d["suggestion"] == blew.suggestion
    n = none.to_dict()
    assert n["candidate"] is None and n["interval"] == [None, None] and n["suggestion"] is None
    assert set(n["suggestions"].values()) == {None}


def test_a_budget_too_small_for_a_retry_is_not_called_an_escalation() -> None:
    """The summary said "escalated (80 optimizer steps: 80 in the first test, 0 extra of a budget of 2)"
    when the budget allowed no retry at all."""
    import dataclasses

    from lrkit.finder import range_test

    flat = range_test(lambda lr: 1.0, num_steps=40)
    note = "stopped: 2 steps of the budget left, too few for another try"
    none = dataclasses.replace(flat, escalation=(note,), steps=40, first_steps=40, budget=2)
    text = str(none)
    assert f"  not escalated (40 optimizer steps in the first test; budget 2): {note}" in text
    assert "escalated (" not in text.replace("not escalated (", "")
    retried = dataclasses.replace(flat, escalation=("more batches (20 rungs, still no signal)",), steps=100,
                                  first_steps=40, budget=60)  # fmt: skip
    assert "  escalated (100 optimizer steps: 40 in the first test, 60 extra of a budget of 60)" in str(
        retried
    )


def test_the_summary_gives_each_problem_its_own_line() -> None:
    """Three problems were one run-on line ("... (3 of 3 repeats). the loss rose ... . the repeats ...")."""
    from lrkit.finder import range_test

    shifts = iter([1.0, 1e3])
    shift = [1.0]

    def before(r: int) -> None:
        shift[0] = next(shifts)

    def rising(lr: float) -> float:  # the second repeat's bowl lies below start_lr
        return float((math.log10(lr * shift[0]) + 1.0) ** 2 + 1.0)

    res = range_test(rising, num_steps=80, repeats=2, before_repeat=before, start_lr=1e-3)
    assert {"early", "disagree"} <= set(res.problem_kinds), res.problems
    lines = str(res).splitlines()
    at = lines.index("  NOT TRUSTED:")
    assert lines[at + 1 :] == [f"  - {p.rstrip('.')}" for p in res.problems]

    one = range_test(lambda lr: 1.0, num_steps=40)  # a single problem stays on the verdict's line
    assert len(one.problems) == 1 and str(one).splitlines()[-1] == "  NOT TRUSTED: " + one.reason


def test_one_repeat_prints_no_interval() -> None:
    """With one repeat, "interval 0.0823 .. 0.0823" says nothing; with more it is the spread."""
    from lrkit.finder import range_test

    def bowl(lr: float) -> float:
        return float((math.log10(lr) + 1.0) ** 2 + 1.0)

    shift = [1.0]

    def before(r: int) -> None:  # repeats that differ, as over a loader that shuffles
        shift[0] = 1.0 + r

    one = range_test(bowl, num_steps=60)
    two = range_test(lambda lr: bowl(lr * shift[0]), num_steps=60, repeats=2, before_repeat=before)
    assert str(one).splitlines()[0] == f"suggested LR {one.suggestion:.3g} (rule 'lrkit', 1 repeat)"
    lo, hi = two.interval
    assert lo < hi and str(two).splitlines()[0].endswith(f"2 repeats, interval {lo:.3g} .. {hi:.3g})")
    alike = range_test(bowl, num_steps=60, repeats=2)  # the same curve twice: no interval either
    assert str(alike).splitlines()[0].endswith("(rule 'lrkit', 2 repeats, all alike)")


def test_a_curve_that_never_fell_is_not_said_to_fall_by_a_negative_amount() -> None:
    """A linear ramp whose first rung is far above the rest: the EMA's lag keeps the smoothed loss above
    the starting level, and the verdict read "the smoothed loss fell by -0.133 from 1.15"."""
    from lrkit.finder import range_test

    res = range_test(
        lambda lr: float((math.log10(lr) + 1.0) ** 2 + 1.0),
        num_steps=60,
        mode="linear",
        start_lr=1e-4,
        end_lr=1.0,
    )
    assert res.problem_kinds == ("flat",)
    assert "fell by -" not in str(res)
    assert "flat: the smoothed loss never fell below its starting level (1.15)" in res.reason


@pytest.mark.parametrize(
    ("name", "cls", "settings"),
    [
        ("sgd", "SGD", {"momentum": 0.9, "nesterov": False}),  # --model's sgd keeps its momentum 0.9
        ("nesterov", "SGD", {"momentum": 0.9, "nesterov": True}),
        ("rmsprop", "RMSprop", {"alpha": 0.99}),
        ("adagrad", "Adagrad", {"initial_accumulator_value": 0}),
        ("radam", "RAdam", {"weight_decay": 0.0}),
    ],
)
def test_find_model_takes_every_optimizer_the_lab_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, cls: str, settings: dict[str, Any]
) -> None:
    # --optimizer knew sgd, adam and adamw only, while lab, tune and auto take every name
    import lrkit.finder.torch_driver as driver

    setup_module_in(tmp_path, monkeypatch)
    seen: list[Any] = []
    real = driver.find_lr
    monkeypatch.setattr(
        driver, "find_lr", lambda model, opt, *a, **k: seen.append(opt) or real(model, opt, *a, **k)
    )
    args = parse(
        "--model", "my_setup:model", "--data", "my_setup:data", "--loss", "mse", "--optimizer", name,
        "--num-steps", "10", "--repeats", "1", "--out", "none",
    )  # fmt: skip
    args.func(args)
    (opt,) = seen
    assert type(opt).__name__ == cls
    assert {k: opt.defaults[k] for k in settings} == settings


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("AdamW", r"--optimizer must be one of .* \(did you mean 'adamw'\?\)"),
        ("prodigy", "estimates its own step"),
    ],
)
def test_find_model_refuses_a_misspelled_or_lr_free_optimizer_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, words: str
) -> None:
    setup_module_in(tmp_path, monkeypatch)
    args = parse("--model", "my_setup:model", "--data", "my_setup:data", "--optimizer", name)
    with pytest.raises(ValueError, match=words):
        args.func(args)


def noisy_result() -> Any:
    """A range test whose loss falls by less than 3x its batch-to-batch noise: the "noisy" verdict."""
    from lrkit.finder import range_test

    rng = np.random.default_rng(0)
    res = range_test(
        lambda lr: float((math.log10(lr) + 1.0) ** 2 / 400 + 1.0 + rng.normal(0, 0.05)), num_steps=60
    )
    assert "noisy" in res.problem_kinds, res.problems
    return res


def test_the_advice_names_find_lr_arguments_in_python_and_flags_on_the_command_line() -> None:
    """The same verdict, phrased for its reader: a Python caller is told find_lr's arguments (a
    validation set among them); ``lrkit find``'s user its flags, and nothing it has no flag for."""
    res = noisy_result()
    (noisy,) = [p for p, kind in zip(res.problems, res.problem_kinds) if kind == "noisy"]
    assert noisy.endswith(
        "; average more batches per step (batches_per_step), use a validation set (val_data) or run more "
        "repeats (repeats)"
    ), noisy
    cli = res.phrased_for(finder_cli.FLAGS)
    (flagged,) = [p for p, kind in zip(cli.problems, cli.problem_kinds) if kind == "noisy"]
    assert flagged == noisy.split("; ")[0] + (
        "; average more batches per step (--batches-per-step N) or run more repeats (--repeats N)"
    )
    assert "validation" not in str(cli) and "val_data" not in cli.why_none
    # range_test had no budget: none to enlarge
    assert cli.why_none.endswith("or give the finder a budget (--budget)")
    assert res.why_none.endswith("or give the finder a budget (budget)")
    # every flag the advice names is one lrkit find takes
    taken = {o for a in help_parser()._actions for o in a.option_strings}
    assert {f.split()[0] for f in finder_cli.FLAGS.values() if f.startswith("--")} <= taken
    # a suggestion: Python builds the schedule with a method, the command line with lrkit show
    from lrkit.finder import range_test

    good = range_test(lambda lr: float((math.log10(lr) + 1.0) ** 2 + 1.0), num_steps=60)
    peak = f"{good.suggestion:.3g}"
    assert f"use {peak} as the peak of warmup + cosine or WSD (.schedule('cosine'|'wsd'))," in str(good)
    cli_line = f'WSD (e.g. lrkit show "warmup(steps=5%) >> cosine(lr={peak})" --total STEPS),'
    assert cli_line in str(good.phrased_for(finder_cli.FLAGS))
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['val_set'\]"):
        res.phrased_for({"val_set": "--val"})


def help_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lrkit")
    return finder_cli.register(parser.add_subparsers(dest="command"))  # type: ignore[no-any-return]


def test_a_generator_from_data_loses_no_batch_to_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The first-batch check draws from a one-shot iterator: the test gets that batch back in front, so
    it sees the same batches as without the check (the same curve as the loader they came from)."""
    (tmp_path / "gen_setup.py").write_text(
        SETUP + "\n\ndef endless():\n    while True:\n        yield from data()\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    common = ["--model", "gen_setup:model", "--loss", "mse", "--num-steps", "20", "--repeats", "1"]
    curves = []
    for data in ("gen_setup:endless", "gen_setup:data"):
        args = parse(*common, "--data", data, "--out", "none", "--json", f"{data.split(':')[1]}.json")
        args.func(args)
        curves.append(json.loads((tmp_path / f"{data.split(':')[1]}.json").read_text())["curves"][0])
    assert curves[0]["losses"] == curves[1]["losses"]
