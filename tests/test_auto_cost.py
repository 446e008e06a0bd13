"""``lrkit.auto`` says what its LR search did (``AutoResult.search``) and warns, once, when the search
costs more than its 1.1x target of the planned run, naming the cost and a fix that works."""

from __future__ import annotations

import re
import warnings
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _guide_setup(**kw: Any) -> tuple[Any, list[warnings.WarningMessage]]:
    """The example of the guide's section "One call: lrkit.auto" (docs/en/lab.md), 16 steps an epoch."""
    import lrkit

    torch.manual_seed(0)
    x = torch.randn(512, 10)
    y = (x[:, 0] > 0).long()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32, shuffle=True)
    model = torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        run = lrkit.auto(model, optimizer, loader, torch.nn.functional.cross_entropy, verbose=False, **kw)
    return run, [w for w in seen if "LR search took" in str(w.message)]


def _epochs_advised(message: str) -> int:
    (n,) = re.findall(r"plan at least (\d+) epochs?", message)
    return int(n)


def test_a_ramp_undone_on_a_short_run_says_so_and_warns_with_the_epochs_that_keep_it() -> None:
    """5 epochs x 16 steps: the ramp's rung at 3x its suggestion comes past half the 80 steps, so all
    62 steps are undone (1.77x). ``search`` said 'in_run' and nothing warned below 2x; now it is
    'in_run_restored', one SearchCostWarning names the cost, and the epochs it advises are enough."""
    from lrkit.auto import SearchCostWarning

    run, seen = _guide_setup(epochs=5)
    assert run.search == "in_run_restored" and run.trained_steps == 0
    assert run.compute == pytest.approx((run.search_steps + 80) / 80) and run.compute > 1.1
    assert "undone" in run.summary and "x the in-run ramp's" in run.summary
    assert [w.category for w in seen] == [SearchCostWarning]
    text = str(seen[0].message)
    assert f"took {run.search_steps} optimizer steps" in text and f"{run.compute:.2f}x" in text
    assert "above auto's 1.1x target" in text
    more = _epochs_advised(text)
    kept, quiet = _guide_setup(epochs=more)
    assert kept.search == "in_run" and kept.trained_steps > 0 and kept.compute <= 1.1 and not quiet
    # one epoch fewer is still above the target (the advice is the fewest epochs, not a guess)
    short, loud = _guide_setup(epochs=more - 1)
    assert short.compute > 1.1 and [w.category for w in loud] == [SearchCostWarning]


def test_a_kept_ramp_above_the_target_warns_too() -> None:
    """7 epochs: the ramp is kept as the warmup, but its 14 rungs past the kept one are 12.5% of the
    112 steps (1.125x): below the 2x the old warning waited for, above the 1.1x target."""
    run, seen = _guide_setup(epochs=7)
    assert run.search == "in_run" and run.trained_steps > 0
    assert 1.1 < run.compute < 2.0
    assert len(seen) == 1 and f"{run.compute:.2f}x the compute of one run" in str(seen[0].message)
    assert "rungs past the one kept as the warmup" in str(seen[0].message)


def test_the_separate_test_on_a_short_run_warns_and_names_the_in_run_search() -> None:
    run, seen = _guide_setup(epochs=20, search="separate")
    assert run.search == "separate" and run.compute > 1.1
    (w,) = seen
    assert f"(the separate test's {run.finder.steps} steps)" in str(w.message)
    assert 'search="in_run"' in str(w.message)


def test_a_ramp_without_signal_then_the_separate_test_says_both_ran() -> None:
    """end_lr 1e-2: the ramp has no signal (noisy, still falling), is undone, and the separate test
    finds the LR after retries with a higher end_lr, which the whole budget (1.0) pays for. ``search``
    said 'separate', as if the ramp had not run."""
    run, seen = _guide_setup(epochs=20, end_lr=1e-2, budget=1.0)
    assert run.search == "in_run_then_separate" and run.trained_steps == 0
    assert "had no signal" in run.summary and run.finder.escalation
    assert run.search_steps > run.finder.steps  # the ramp's steps count too
    (w,) = seen
    text = str(w.message)
    assert "without signal, then the separate test's" in text
    assert 'search="separate" (skips the ramp)' in text and "a smaller budget= (now 1.0;" in text
    assert f"epochs={_epochs_advised(text)})" in text


def test_the_cli_says_the_search_and_warns_once(tmp_path: Any, capsys: Any) -> None:
    """``lrkit auto --epochs 1`` on digits (45 steps): the ramp is undone; its JSON says so, and the
    warning is one line that names the flag to change."""
    import json

    from lrkit.cli import main

    out = tmp_path / "a.json"
    assert main(["auto", "--task", "digits-mlp-sgd", "--epochs", "1", "--json", str(out)]) == 0
    err = capsys.readouterr().err
    assert json.loads(out.read_text())["search"] == "in_run_restored"
    lines = [ln for ln in err.splitlines() if "LR search took" in ln]
    assert len(lines) == 1 and lines[0].startswith("lrkit auto: warning: the LR search took 65 optimizer")
    more = _epochs_advised(lines[0])
    assert f"(--epochs {more};" in lines[0] and "epochs=" not in lines[0]
