"""``lrkit find --model``: --momentum with another optimizer says why and what to write, and the
optimizer is checked with the hyper-parameters it is built with (tester NF, 4)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lrkit.cli import main


@pytest.fixture
def args(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "nfxm.py").write_text(
        "import torch\n"
        "def model():\n    torch.manual_seed(0)\n    return torch.nn.Linear(4, 2)\n"
        "def data():\n    g = torch.Generator().manual_seed(0)\n"
        "    return [(torch.randn(8, 4, generator=g), torch.randint(0, 2, (8,), generator=g))\n"
        "            for _ in range(40)]\n"
    )
    return ["find", "--model", "nfxm:model", "--data", "nfxm:data", "--out", "none", "--num-steps", "20"]


@pytest.mark.parametrize(
    ("optimizer", "momentum", "expected"),
    [
        ("rmsprop", "0.5", "write --optimizer 'rmsprop(momentum=0.5)'"),
        (
            "momentum",
            "0.8",
            "(momentum sets momentum=0.9 itself); write --optimizer 'momentum(momentum=0.8)'",
        ),
        ("nesterov", "0.8", "write --optimizer 'nesterov(momentum=0.8)'"),
        ("adam", "0.8", "adam has no momentum setting (it takes betas, eps"),
    ],
)
def test_momentum_with_another_optimizer_says_why_and_the_fix(
    args: list[str], capsys: Any, optimizer: str, momentum: str, expected: str
) -> None:
    rc = main([*args, "--optimizer", optimizer, "--momentum", momentum])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"--momentum {momentum} is the flag of --optimizer sgd, not of '{optimizer}'" in err
    assert expected in err


def test_nesterov_takes_the_default_momentum(args: list[str], capsys: Any) -> None:
    rc = main([*args, "--optimizer", "sgd(nesterov=true)"])
    err = capsys.readouterr().err
    assert rc in (0, 3), err
    assert "Nesterov" not in err


def test_a_bad_value_names_what_it_was_built_with(args: list[str], capsys: Any) -> None:
    rc = main([*args, "--optimizer", "sgd(nesterov=true)", "--momentum", "0"])
    err = capsys.readouterr().err
    assert rc == 2
    assert (
        "--optimizer 'sgd(nesterov=true)', built with --weight-decay 0.0 and --momentum 0.0: Nesterov" in err
    )
