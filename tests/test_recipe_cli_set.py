"""``lrkit recipes NAME --set KEY=VALUE``: a recipe with its own parameters, equal to the Python call."""

from __future__ import annotations

import pytest

import lrkit
from lrkit import recipes
from lrkit.cli import main


@pytest.mark.parametrize(
    ("name", "settings", "call"),
    [
        (
            "resnet_imagenet",
            ["batch=1024", "milestones=30,60,80"],
            {"batch": 1024, "milestones": (30, 60, 80)},
        ),
        ("bert_finetune", ["lr=3e-5", "warmup=6%"], {"lr": 3e-5, "warmup": "6%"}),
        ("transformer_noam", ["d_model=1024", "warmup=8000"], {"d_model": 1024, "warmup": 8000}),
        ("sgdr_cifar", ["period=5ep", "mult=1"], {"period": "5ep", "mult": 1}),
        ("resnet_imagenet", ["milestones=80"], {"milestones": (80,)}),  # one value: a list of one
    ],
)
def test_set_gives_the_recipe_with_those_parameters(
    name: str, settings: list[str], call: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["recipes", name, "--set", *settings]) == 0
    spec = capsys.readouterr().out.splitlines()[-1].strip()
    assert lrkit.parse(spec) == getattr(recipes, name)(**call) != getattr(recipes, name)()


def test_one_recipe_lists_its_parameters(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recipes", "resnet_imagenet"]) == 0
    assert "batch=256, warmup=None, milestones=(30, 60, 90)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (
            ["recipes", "bert_finetune", "--set", "lrr=3e-5"],
            "unknown parameter(s) lrr; it takes lr (default 5e-05)",
        ),
        (["recipes", "--set", "lr=1"], "--set needs one recipe NAME"),
        (["recipes", "gpt_cosine", "--set", "lr"], "--set: expected KEY=VALUE"),
        (["recipes", "gpt_cosine", "--set", "=1"], "--set: expected KEY=VALUE"),
        (
            ["recipes", "resnet_imagenet", "--set", "batch=10.5"],
            "resnet_imagenet: batch must be an integer >= 1 (the effective batch), got float 10.5",
        ),
        (["recipes", "llm_wsd", "--set", "lr=1", "lr=2"], "--set: lr is given twice (1 and 2); give it once"),
        (["recipes", "resnet_imagenet", "--set", "milestones=30,x"], "milestones"),
        (["recipes", "transformer_noam", "--set", "warmup=abc"], "warmup must be a number"),
    ],
)
def test_a_bad_setting_is_one_error_line_and_nothing_printed(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and named in err and err.startswith("lrkit recipes: error:")
