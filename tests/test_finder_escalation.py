"""Escalation: a curve without signal gives no suggestion, a retry stays within its budget, and
``lrkit find`` exits non-zero when there is nothing to suggest."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrkit.finder import NoSuggestionError, range_test

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@settings(max_examples=30, deadline=None)
@given(level=st.floats(0.1, 100.0), seed=st.integers(0, 2**16), repeats=st.integers(1, 3))
def test_a_flat_curve_has_no_suggestion(level: float, seed: int, repeats: int) -> None:
    rng = np.random.default_rng(seed)
    res = range_test(
        lambda lr: level * (1.0 + 1e-4 * float(rng.standard_normal())), num_steps=40, repeats=repeats
    )
    assert res.suggestion is None and not res.trusted
    assert "flat" in res.problem_kinds and np.isfinite(res.candidate)
    assert res.reason.count("flat:") == 1  # one sentence per problem, not one per repeat
    with pytest.raises(NoSuggestionError, match="flat"):
        res.require()
    with pytest.raises(NoSuggestionError):
        _ = res.peak_lr
    assert str(res).startswith("no suggested LR") and res.to_dict()["suggestion"] is None


def _data(n: int = 96, seed: int = 0) -> Any:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [0.0]])
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)


def _flat_loss(out: Any, y: Any) -> Any:
    return (out * 0.0).sum() + 1.0 + 0.0 * y.sum()


@settings(max_examples=12, deadline=None)
@given(budget=st.integers(1, 160), repeats=st.integers(1, 3), flat=st.booleans())
def test_escalation_stays_within_the_budget(budget: int, repeats: int, flat: bool) -> None:
    from lrkit.finder import find_lr

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss = _flat_loss if flat else torch.nn.functional.mse_loss
    res = find_lr(model, opt, _data(), loss, repeats=repeats, num_steps=60, budget=budget)
    assert res.steps <= max(budget, 2) and res.budget == budget
    if flat:
        assert res.suggestion is None and res.escalation  # it tried (or said why it could not)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_budget_defaults_to_a_tenth_of_the_plan_or_one_epoch() -> None:
    from lrkit.finder import find_lr

    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    res = find_lr(model, opt, _data(), _flat_loss, planned_steps=2000)  # 12 batches per epoch
    assert res.budget == 200 and res.steps <= 200 and res.suggestion is None
    res = find_lr(model, opt, _data(), _flat_loss, planned_steps=50)
    assert res.budget == 12
    with pytest.raises(ValueError, match="planned_steps"):
        find_lr(model, opt, _data(), _flat_loss, budget=0.1)
    with pytest.raises(ValueError, match="budget"):
        find_lr(model, opt, _data(), _flat_loss, budget=1.5, planned_steps=100)


def test_lrkit_find_exits_non_zero_without_a_suggestion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from lrkit.finder import cli as finder_cli

    (tmp_path / "flat_setup.py").write_text(
        textwrap.dedent(
            """
            import torch

            def model():
                return torch.nn.Linear(4, 1)

            def data():
                x = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
                return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x[:, :1]), batch_size=8)

            def loss(out, y):
                return (out * 0.0).sum() + 1.0
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    parser = argparse.ArgumentParser(prog="lrkit")
    finder_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["find", "--model", "flat_setup:model", "--data", "flat_setup:data", "--loss", "flat_setup:loss",
         "--num-steps", "20", "--repeats", "1", "--out", "none", "--epochs", "30"]
    )  # fmt: skip
    assert args.func(args) == 1
    out = capsys.readouterr().out
    assert out.startswith("no suggested LR") and "flat" in out and "escalated" in out
