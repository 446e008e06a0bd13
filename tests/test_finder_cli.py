"""``lrkit find``: the subcommand registered on a bare argparse parser (and through lrkit.cli)."""

from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path

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


def test_find_with_model_and_data_factories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "my_setup.py").write_text(
        textwrap.dedent(
            """
            import torch

            def model():
                torch.manual_seed(0)
                return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))

            def data():
                g = torch.Generator().manual_seed(0)
                x = torch.randn(64, 3, generator=g)
                y = x.sum(dim=1, keepdim=True)
                return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    args = parse(
        "--model", "my_setup:model", "--data", "my_setup:data", "--loss", "mse", "--optimizer", "adam",
        "--num-steps", "25", "--repeats", "1", "--out", "none",
    )  # fmt: skip
    code = args.func(args)
    out = capsys.readouterr().out
    # 8 batches of a noisy regression: exit 0 with a suggestion, or 1 with the reason and no suggestion
    assert (code, out.startswith("suggested LR")) in ((0, True), (1, False)), out
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
        (("--task", "digits-mlp-adam", "--num-steps", "1"), "--num-steps"),
        # matplotlib would add .png to a bare name (and the message would name another file), or
        # refuse an unknown suffix only after the whole test
        (("--task", "digits-mlp-adam", "--out", "lr_plot"), r"--out: expected a \.png, \.svg, \.pdf"),
        (("--task", "digits-mlp-adam", "--out", "lr.find"), r"--out: expected a \.png"),
    ],
)
def test_bad_input_raises_value_error(argv: tuple[str, ...], words: str) -> None:
    args = parse(*argv)
    with pytest.raises(ValueError, match=words):
        args.func(args)


def test_lrkit_cli_exposes_find() -> None:
    lrkit_cli = pytest.importorskip("lrkit.cli")
    parser = lrkit_cli.build_parser()
    args = parser.parse_args(["find", "--task", "digits-mlp-sgd"])
    assert args.func is finder_cli.run
