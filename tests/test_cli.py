"""The command line: output, files written, and one-line errors with a non-zero exit."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lrkit.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_show_table_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "show", "warmup(10%) >> cosine(lr=3e-4, min_lr=3e-5)", "--total", "1000")
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0] == "# warmup(steps=100) >> cosine(lr=0.0003, steps=900, min_lr=3e-05)"
    assert lines[3].split() == ["100", "0.0003"] and lines[-1].split() == ["1000", "3e-05"]
    code, out, _ = run(
        capsys, "show", "step(lr=0.1, step_size=3ep)", "--steps-per-epoch", "10", "--at", "0,29,30", "--json"
    )
    data = json.loads(out)
    assert [p["lr"] for p in data["points"]] == pytest.approx([0.1, 0.1, 0.01])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["show", "cosine(lr=1"],
            "lrkit show: error: expected ',' or ')' in cosine(...), got the end at position 11",
        ),
        (["show", "cosin(lr=1)", "--total", "10"], "unknown schedule 'cosin' (did you mean 'cosine'?)"),
        (
            ["show", "warmup(1ep) >> cosine(lr=1)", "--total", "100"],
            "warmup.steps='1ep' is not in steps; pass --steps-per-epoch",
        ),
        (["show", "constant(1)"], "give --total N"),
        (
            ["plot", "cosine(lr=1)", "--total", "10", "--out", "x.gif"],
            "--out: expected a .png, .svg, .pdf file name, got 'x.gif'",
        ),
        (["show", "missing.yaml"], "spec: no such file 'missing.yaml'"),
        (  # torch's phase ends, as short numbers (they read -0.10000000000000009, 2.0)
            ["show", "one_cycle(max_lr=0.1)", "--total", "3"],
            "one_cycle: steps=3 with pct_start=0.3 leaves a phase with no steps (phase ends -0.1, 2)",
        ),
        (  # the panel and the steps named, not only the one-cycle's own words
            ["gallery", "--total", "3", "--out", "g.png"],
            "gallery: the 'one-cycle' panel cannot be drawn over 3 steps: one_cycle: steps=3",
        ),
    ],
)
def test_errors_are_one_line_with_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ["show", "cosine(lr=1)", "--total", "-3"],
            "lrkit show: error: --total: expected a whole number from 1 to 2**53, got '-3' "
            "(see lrkit show --help)",
        ),
        (
            ["plot", "cosine(lr=1)"],
            "lrkit plot: error: the following arguments are required: --total, --out (see lrkit plot --help)",
        ),
        (
            ["lab", "--seeds", "x"],
            "lrkit lab: error: --seeds: expected a whole number from 1 to 2**53, got 'x' "
            "(see lrkit lab --help)",
        ),
        (["--bad"], "lrkit: error: unrecognized arguments: --bad (see lrkit --help)"),
    ],
)
def test_argparse_errors_are_one_line_as_lrkit_s_own(
    capsys: pytest.CaptureFixture[str], argv: list[str], line: str
) -> None:
    """A flag argparse refuses reads like any other error: one line, the flag without argparse's
    'argument ' prefix (lrkit's own say '--total: ...'), and where the usage is; no usage block."""
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and err == line + "\n"


def test_a_plot_of_one_step_says_one_step(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lrkit.plot import plot_schedules

    pytest.importorskip("matplotlib")
    for total, words in ((1, "over 1 step"), (2, "over 2 steps")):
        fig = plot_schedules(["cosine(lr=0.1)"], total, tmp_path / f"{total}.png")
        assert fig.axes[0].get_title() == f"learning-rate schedule {words}"


def test_plot_writes_png_and_svg(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("a.png", "b.svg"):
        code, out, _ = run(
            capsys,
            "plot",
            "warmup(10%) >> cosine(lr=0.1)",
            "one_cycle(max_lr=0.1)",
            "--total",
            "500",
            "--out",
            str(tmp_path / name),
            "--log",
        )
        assert code == 0 and out.strip() == f"wrote {tmp_path / name}"
    assert (tmp_path / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = (tmp_path / "b.svg").read_text()
    assert "learning rate" in svg and "one_cycle(max_lr=0.1)" in svg  # axis label and legend


def test_schedules_lists_every_schedule(capsys: pytest.CaptureFixture[str]) -> None:
    from lrkit import REGISTRY

    code, out, _ = run(capsys, "schedules")
    assert code == 0
    for name, cls in REGISTRY.items():
        assert f"{name}: {cls.summary}" in out and cls.example in out


def test_recipes_and_scale(capsys: pytest.CaptureFixture[str]) -> None:
    import lrkit

    code, out, _ = run(capsys, "recipes", "bert_finetune")
    assert code == 0 and "Devlin et al. 2019" in out
    assert lrkit.parse(out.splitlines()[1].strip()) == lrkit.recipes.bert_finetune()
    code, out, _ = run(capsys, "scale", "--lr", "0.1", "--base-batch", "256", "--batch", "8192")
    assert code == 0 and out.splitlines()[:2] == [
        "lr = 3.2 (linear rule, x32)",
        "warm up over about 5 epochs",
    ]


def test_every_command_has_help() -> None:
    for cmd in (
        [],
        ["show"],
        ["plot"],
        ["schedules"],
        ["recipes"],
        ["scale"],
        ["gallery"],
        ["demo"],
        ["find"],
    ):
        r = subprocess.run(
            [sys.executable, "-m", "lrkit.cli", *cmd, "--help"], capture_output=True, text=True
        )
        assert r.returncode == 0 and "usage: lrkit" in r.stdout, (cmd, r.stderr)


def test_a_missing_framework_names_the_extra(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if only the numpy core were installed
    code, _, err = run(capsys, "plot", "cosine(lr=1)", "--total", "10", "--out", "x.png")
    assert code == 2 and "pip install 'lrkit[lab]'" in err and len(err.strip().splitlines()) == 1


def test_every_option_of_every_command_says_what_it_does() -> None:
    import argparse

    from lrkit.cli import build_parser

    silent: list[str] = []

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{path} {name}")
            elif not (action.help or "").strip() and not isinstance(action, argparse._HelpAction):
                silent.append(f"{path} {'/'.join(action.option_strings) or action.dest}")

    walk(build_parser(), "lrkit")
    assert silent == []


@pytest.mark.parametrize(
    "argv",
    [
        ["plot", "cosine(lr=0.1, steps=10)", "--total", "10", "--out", "s.png"],
        ["gallery", "--out", "g.png"],
        ["find", "--task", "digits-mlp-sgd"],  # the default --out is lr_find.png
        ["auto", "--task", "digits-mlp-sgd", "--plot", "a.png"],
        ["lab", "--task", "digits-mlp-sgd", "--strategy", "constant(lr=0.1)", "--out", "lab"],
    ],
    ids=lambda argv: argv[0],
)
def test_a_missing_matplotlib_is_named_before_any_work(tmp_path: Path, argv: list[str]) -> None:
    # before, find, auto and lab trained in full and only then failed on the plot or the report
    script = textwrap.dedent(
        f"""
        import sys, importlib.abc
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, fullname, path=None, target=None):
                if fullname.split(".")[0] == "matplotlib":
                    raise ModuleNotFoundError(f"No module named {{fullname!r}}", name=fullname)
        sys.meta_path.insert(0, Block())
        from lrkit.cli import main
        sys.exit(main({argv!r}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().endswith(
        "this needs matplotlib, which is not installed: pip install 'lrkit[lab]'"
    )
    assert done.stdout == "" and list(tmp_path.iterdir()) == []  # nothing run, nothing written


@pytest.mark.parametrize(
    ("argv", "warned"),
    [
        (
            ["show", "warmup(500) >> cosine(lr=0.1, steps=300)", "--total", "100", "--at", "0"],
            "lasts 800 steps",
        ),
        (
            ["plot", "cosine(lr=0.1, steps=300)", "cosine(lr=0.1)", "--total", "100", "--out", "w.png"],
            "lasts 300",
        ),
        (["show", "cosine(lr=0.1, steps=100)", "--total", "100", "--at", "0"], None),  # it fits: no word
        (["show", "warmup(50%) >> cosine(lr=0.1)", "--total", "100", "--at", "0"], None),
    ],
)
def test_a_schedule_longer_than_total_is_warned_about(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    warned: str,
) -> None:
    """'cosine(lr=0.1, steps=300)' over --total 100 never decays past a third of its way: the run ends
    before the schedule does, which is rarely meant (steps for epochs, a total from another run)."""
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, *argv)
    assert code == 0
    if warned is None:
        assert err == ""
    else:
        (line,) = err.splitlines()
        assert line.startswith(f"lrkit {argv[0]}: warning: ") and warned in line, line
        assert "more than --total 100: the run ends before the schedule does" in line, line


def test_a_lab_strategy_longer_than_the_run_is_warned_about_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    argv = ["lab", "--epochs", "1", "--workers", "1", "--strategy", "c=cosine(lr=0.05, steps=10000)"]
    code, _, err = run(capsys, *argv)
    warnings = [line for line in err.splitlines() if line.startswith("lrkit lab: warning: strategy 'c'")]
    assert code == 0 and len(warnings) == 1, err
    assert (
        "strategy 'c': its schedule lasts 10,000 steps, more than the run's 45 steps (1 epoch x 45)"
        in warnings[0]
    )


def test_plot_closes_its_figure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """main() run many times in one process (a notebook, a test suite) left one open figure per
    `lrkit plot`, until matplotlib warned of more than 20 and a lab run in that process printed it."""
    plt = pytest.importorskip("matplotlib.pyplot")
    before = plt.get_fignums()
    for i in range(3):
        code, _, _ = run(
            capsys, "plot", "cosine(lr=0.1)", "--total", "10", "--out", str(tmp_path / f"{i}.png")
        )
        assert code == 0
    assert plt.get_fignums() == before
