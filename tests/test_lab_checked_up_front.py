"""What a lab cannot run is refused before anything runs or is written, naming the strategy: an LR above
float32's largest number (a tester's ``constant(1e308)`` ran the other strategies' header, then torch's
"value cannot be converted to type float without overflow" ended the lab, blamed on the task), and
``optimizer_params`` torch refuses (``weight_decay: -1``: a torch traceback blamed on the built-in task;
an unknown name: refused only after ``lab: 1 run`` was printed and lab.db made)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")

from lrkit.cli import main


@pytest.mark.parametrize("lr", ["1e308", "3.5e38", "1e39"])
def test_an_lr_above_float32_is_refused_before_the_lab_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], lr: str
) -> None:
    out = tmp_path / "lab"
    argv = ["lab", "--task", "digits-mlp-sgd", "--epochs", "1", "--out", str(out)]
    argv += ["--strategy", "zero=constant(0)", "--strategy", f"big=warmup(10%) >> cosine(lr={lr})"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("lrkit lab: error: strategy 'big': its LR reaches "), captured.err
    assert "above float32's largest number (3.4e+38)" in captured.err and captured.err.count("\n") == 1
    assert captured.out == "" and not out.exists()


def test_an_lr_at_float32s_largest_number_is_not_refused(tmp_path: Path) -> None:
    from lrkit.lab.runner import Strategy, check_schedules

    check_schedules([Strategy("edge", "constant(3.4e38)")], 1, 45)


@pytest.mark.parametrize("optimizer", ["", "    optimizer: sgd\n"])  # the task's optimizer, or one named
@pytest.mark.parametrize(
    ("params", "said"),
    [
        ("{weight_decay: -1}", "Invalid weight_decay value: -1"),
        ("{momentum: -0.5}", "Invalid momentum value: -0.5"),
        ("{bogus: 1}", "has no hyper-parameter 'bogus'"),
    ],
)
def test_optimizer_params_torch_refuses_are_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], params: str, said: str, optimizer: str
) -> None:
    exp = tmp_path / "exp.yaml"
    exp.write_text(
        "name: e\ntask: digits-mlp-sgd\nepochs: 1\nseeds: 1\nstrategies:\n"
        f"  - label: bad\n    spec: constant(0.05)\n{optimizer}    optimizer_params: {params}\n",
        encoding="utf-8",
    )
    out = tmp_path / "lab"
    assert main(["lab", str(exp), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("lrkit lab: error: "), captured.err
    assert "strategy 'bad'" in captured.err and said in captured.err, captured.err
    assert "Traceback" not in captured.err and captured.err.count("\n") == 1
    assert captured.out == "" and not out.exists()
