"""The in-run ramp: the range test's steps up to the peak are kept as training (lrkit.auto's default on
short runs). Checked against a hand-written replay of the same steps, and for exact restore when the
ramp has no signal."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from lrkit.finder.core import StopRule, lr_ramp, sweep

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _loader(seed: int = 0) -> Any:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(512, 8, generator=torch.Generator().manual_seed(1))
    y = (x[:, :4].sum(dim=1) > 0).long()
    return torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=16, shuffle=True, generator=g
    )


def _model() -> Any:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))


# --- the rise stop (numpy core) --------------------------------------------------------------------
def test_rise_stops_once_the_bottom_is_behind_the_ramp() -> None:
    lrs = lr_ramp(1e-5, 10.0, 76)
    x = np.log10(lrs)
    loss = 2.0 - 1.5 / (1 + np.exp(-(x + 3) * 3)) + np.where(x > -1, (x + 1) ** 2 * 4, 0.0)
    it = iter(loss.tolist())
    curve = sweep(lambda lr: next(it), lrs, stop=StopRule(rise=0.5))
    i_min = int(np.argmin(curve.smoothed))
    assert curve.stopped_at is not None and curve.stopped_at < lrs.size - 1
    # it stopped at the first rung where the smoothed loss is more than half the drop above its minimum
    start = float(np.median(loss[:10]))
    drop = start - curve.smoothed[: curve.stopped_at + 1].min()
    assert curve.smoothed[-1] - curve.smoothed[i_min] > 0.5 * drop
    assert all(s - curve.smoothed[: k + 1].min() <= 0.5 * drop for k, s in enumerate(curve.smoothed[:-1]))
    # without rise, the ramp goes on until the 4x blow-up rule fires, later
    it = iter(loss.tolist())
    assert sweep(lambda lr: next(it), lrs).lrs.size > curve.lrs.size


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), scale=st.floats(1e-4, 0.3))
@example(seed=1876, scale=0.25)  # stopped at rung 10 when a minimum in the head counted as a drop
def test_rise_never_stops_a_flat_noisy_ramp(seed: int, scale: float) -> None:
    """Noise on a flat curve is no drop: the rise test must not fire (the 4x rule cannot either)."""
    rng = np.random.default_rng(seed)
    lrs = lr_ramp(1e-5, 10.0, 76)
    loss = (2.3 + scale * rng.standard_normal(lrs.size)).tolist()
    it = iter(loss)
    assert sweep(lambda lr: next(it), lrs, stop=StopRule(rise=0.5)).stopped_at is None


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf])
def test_rise_must_be_positive(bad: float) -> None:
    with pytest.raises(ValueError, match="rise"):
        StopRule(rise=bad)


# --- the torch ramp ----------------------------------------------------------------------------------
@pytest.mark.parametrize("every", [1, 3])
def test_ramp_keeps_exactly_the_steps_up_to_the_peak(every: int) -> None:
    from lrkit.finder.in_run import WINDOW, ramp_in_run

    model, loader = _model(), _loader()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    ramp = ramp_in_run(
        model, opt, loader, torch.nn.functional.cross_entropy, peak_factor=3.0, snapshot_every=every
    )
    assert ramp.result.trusted and ramp.peak is not None and ramp.result.suggestion is not None
    assert ramp.peak == pytest.approx(3.0 * ramp.result.suggestion)
    assert 0 < ramp.kept < ramp.spent and ramp.spent - ramp.kept <= WINDOW
    lrs = ramp.result.lrs
    # the newest snapshot (one after every `every`-th rung) at or below the peak
    assert ramp.kept % every == 0
    assert lrs[ramp.kept - 1] <= ramp.peak < lrs[min(ramp.kept + every - 1, lrs.size - 1)]
    assert opt.param_groups[0]["lr"] == pytest.approx(ramp.peak)
    assert all(p.grad is None for p in model.parameters())  # as after zero_grad(set_to_none=True)
    # replay: the same model, optimizer and batches, trained by hand at the ramp's first `kept` LRs
    ref, ref_loader = _model(), _loader()
    ref_opt = torch.optim.Adam(ref.parameters(), lr=1e-3)
    batches = iter(ref_loader)
    for lr in lrs[: ramp.kept]:
        try:
            x, y = next(batches)
        except StopIteration:
            batches = iter(ref_loader)
            x, y = next(batches)
        ref_opt.param_groups[0]["lr"] = float(lr)
        ref_opt.zero_grad()
        torch.nn.functional.cross_entropy(ref(x), y).backward()
        ref_opt.step()
    for a, b in zip(model.parameters(), ref.parameters(), strict=True):
        assert torch.equal(a, b)
    for p, q in zip(model.parameters(), ref.parameters(), strict=True):
        assert torch.equal(opt.state[p]["exp_avg_sq"], ref_opt.state[q]["exp_avg_sq"])


@pytest.mark.parametrize(("window", "every"), [(40, 1), (40, 4), (10, 3)])
def test_the_ring_holds_window_over_every_lean_copies(monkeypatch: Any, window: int, every: int) -> None:
    """Memory: at most ceil(window / every) ring snapshots are alive at once, and each copies every
    parameter, buffer and optimizer-state tensor once (no gradients, no second parameter copy)."""
    import gc
    import weakref

    import lrkit.finder.in_run as in_run
    from lrkit.finder.torch_driver import _Snapshot

    alive: weakref.WeakSet[Any] = weakref.WeakSet()
    most = [0]

    class Counted(_Snapshot):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            if kwargs.get("lean"):
                gc.collect()
                alive.add(self)
                most[0] = max(most[0], len(alive))
                copies = [v for *_, v in self.tensors] + [
                    v for s in self.opt_state.values() for v in s.values() if torch.is_tensor(v)
                ]
                held = sum(v.numel() for v in copies) + sum(
                    v.numel() for v in self.param_values if v is not None
                )
                model_numel = sum(t.numel() for t in model.state_dict().values())
                state_numel = sum(v.numel() for s in opt.state.values() for v in s.values()
                                  if torch.is_tensor(v))  # fmt: skip
                assert held == model_numel + state_numel
                assert all(g == (None, None) for g in self.grads)

    monkeypatch.setattr(in_run, "_Snapshot", Counted)
    model, loader = _model(), _loader()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    ramp = in_run.ramp_in_run(
        model, opt, loader, torch.nn.functional.cross_entropy, window=window, snapshot_every=every
    )
    assert ramp.spent > window  # the ring filled up
    assert most[0] <= -(-window // every) + 1  # + the one being appended as the oldest leaves


def test_offloaded_copies_go_back_to_their_device() -> None:
    """The offload path's bookkeeping (_Away: a value on the CPU and the device it came from): cloning
    restores the device, and _put copies into the existing tensor, keeping its identity."""
    from lrkit.finder.torch_driver import _Away, _clone, _put

    t = torch.arange(6.0)
    away = _Away(t.clone(), t.device)
    back = _clone(away)
    assert torch.equal(back, t) and back.device == t.device and back is not away.value
    target = {"x": torch.zeros(6)}
    ident = target["x"]
    _put(target, "x", away)
    assert target["x"] is ident and torch.equal(ident, t)
    _put(target, "y", away)  # missing: a fresh copy on the original device
    assert torch.equal(target["y"], t) and target["y"] is not away.value


def test_ramp_offload_keeps_the_same_result() -> None:
    from lrkit.finder.in_run import ramp_in_run

    out = []
    for offload in (False, True):
        model, loader = _model(), _loader()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        ramp = ramp_in_run(model, opt, loader, torch.nn.functional.cross_entropy, offload=offload)
        out.append((ramp.kept, [p.detach().clone() for p in model.parameters()]))
    assert out[0][0] == out[1][0] > 0
    assert all(torch.equal(a, b) for a, b in zip(out[0][1], out[1][1], strict=True))


def _state(model: Any, opt: Any) -> tuple[dict[str, Any], list[dict[str, Any]], int]:
    groups = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    return {k: v.clone() for k, v in model.state_dict().items()}, groups, len(opt.state)


def _assert_same(model: Any, opt: Any, before: tuple[dict[str, Any], list[dict[str, Any]], int]) -> None:
    params, groups, n_state = before
    for k, v in model.state_dict().items():
        assert torch.equal(v, params[k])
    assert [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups] == groups
    assert len(opt.state) == n_state


def test_ramp_without_signal_restores_everything() -> None:
    from lrkit.finder.in_run import ramp_in_run

    model, loader = _model(), _loader()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    before = _state(model, opt)

    def flat(out: Any, y: Any) -> Any:
        return (out * 0.0).sum() + 1.0

    ramp = ramp_in_run(model, opt, loader, flat)
    assert not ramp.result.trusted and ramp.peak is None and ramp.kept == 0
    assert "flat" in ramp.result.reason
    _assert_same(model, opt, before)


def test_ramp_whose_peak_would_eat_the_run_restores_everything() -> None:
    from lrkit.finder.in_run import ramp_in_run

    model, loader = _model(), _loader()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = _state(model, opt)
    ramp = ramp_in_run(model, opt, loader, torch.nn.functional.cross_entropy, max_kept=5)
    assert ramp.peak is not None and ramp.kept == 0
    _assert_same(model, opt, before)


def test_ramp_restores_on_an_error_mid_ramp() -> None:
    from lrkit.finder.in_run import ramp_in_run

    model, loader = _model(), _loader()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = _state(model, opt)
    calls = 0

    def failing(out: Any, y: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 20:
            raise RuntimeError("boom")
        return torch.nn.functional.cross_entropy(out, y)

    with pytest.raises(RuntimeError, match="boom"):
        ramp_in_run(model, opt, loader, failing)
    _assert_same(model, opt, before)


@pytest.mark.parametrize(("kw", "match"), [({"peak_factor": 0.0}, "peak_factor"), ({"window": 0}, "window"),
                                           ({"peak_factor": "3"}, "peak_factor"),
                                           ({"snapshot_every": 0}, "snapshot_every"),
                                           ({"snapshot_every": 2.5}, "snapshot_every"),
                                           ({"snapshot_every": True}, "snapshot_every"),
                                           ({"offload": "yes"}, "offload"),
                                           ({"max_kept": 0}, "max_kept"), ({"max_kept": -3}, "max_kept"),
                                           ({"max_kept": 2.0}, "max_kept"),
                                           ({"rule": "nope"}, "rule")])  # fmt: skip
def test_ramp_rejects_bad_arguments(kw: dict[str, Any], match: str) -> None:
    from lrkit.finder.in_run import ramp_in_run

    model = _model()
    opt = torch.optim.Adam(model.parameters())
    with pytest.raises((TypeError, ValueError), match=match):
        ramp_in_run(model, opt, _loader(), torch.nn.functional.cross_entropy, **kw)
    assert not opt.state  # refused before any step


# --- lrkit.auto with the in-run ramp ----------------------------------------------------------------
@pytest.mark.parametrize(("kind", "built"), [("auto", "wsd"), ("cosine", "cosine"), ("one_cycle", "cosine")])
def test_auto_in_run_costs_at_most_a_tenth_and_continues_from_the_kept_rung(kind: str, built: str) -> None:
    import lrkit
    from lrkit.auto import KEEP_FACTOR, PEAK_FACTOR, REWARM, REWARM_START
    from lrkit.finder.in_run import SNAPSHOT_EVERY

    model, loader = _model(), _loader()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    run = lrkit.auto(
        model, opt, loader, torch.nn.functional.cross_entropy, epochs=10, kind=kind, verbose=False
    )
    assert run.search == "in_run"
    assert 0 < run.trained_steps <= run.total_steps // 2
    assert run.remaining_steps == run.total_steps - run.trained_steps
    assert run.compute <= 1.1 and run.compute == (run.search_steps + run.total_steps) / run.total_steps
    sugg = run.finder.suggestion
    assert sugg is not None
    # the state kept is that of the last saved rung at or below KEEP_FACTOR x the suggestion
    lrs, last = run.finder.curves[0].lrs, run.trained_steps - 1
    assert lrs[last] <= KEEP_FACTOR * sugg
    assert last + SNAPSHOT_EVERY >= lrs.size or lrs[last + SNAPSHOT_EVERY] > KEEP_FACTOR * sugg
    assert run.kind == built  # one-cycle's own warmup cannot follow the kept ramp: cosine, and it says so
    assert ("one-cycle warms up from ~0 itself" in run.summary) == (kind == "one_cycle")
    assert run.peak_lr == pytest.approx(PEAK_FACTOR["in_run", run.kind] * sugg)
    # the schedule re-warms linearly from a tenth of the peak, then WSD's cool-down ends at 0 (cosine's
    # at 1% of the peak)
    assert opt.param_groups[0]["lr"] == pytest.approx(REWARM_START * run.peak_lr)
    top = max(float(run.schedule(s)) for s in range(run.remaining_steps))
    assert top == pytest.approx(run.peak_lr)
    n = math.ceil(REWARM[run.kind] * run.remaining_steps)  # the kind's re-warm fraction of the steps left
    assert float(run.schedule(n - 1)) < run.peak_lr and float(run.schedule(n)) == pytest.approx(run.peak_lr)
    end = 0.0 if run.kind == "wsd" else 0.01 * run.peak_lr
    assert float(run.schedule(run.remaining_steps)) == pytest.approx(end)
    assert "in-run ramp" in run.summary


def test_auto_runs_in_run_on_a_long_run_too() -> None:
    """search='auto' is in-run whatever the length (it used to pick the separate test on 3,000+ steps,
    which the --long benchmark measured worse and 9x dearer); a long run keeps a small ramp."""
    import lrkit

    model, loader = _model(), _loader()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    run = lrkit.auto(model, opt, loader, torch.nn.functional.cross_entropy, epochs=100, verbose=False)
    assert run.search == "in_run" and 0 < run.trained_steps < 0.05 * run.total_steps
    assert run.compute < 1.01


def test_auto_in_run_falls_back_to_the_separate_test_without_signal() -> None:
    import lrkit
    from lrkit.finder import NoSuggestionError

    model, loader = _model(), _loader()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
    before = _state(model, opt)

    def flat(out: Any, y: Any) -> Any:
        return (out * 0.0).sum() + 1.0

    with pytest.raises(NoSuggestionError, match="flat"):
        lrkit.auto(model, opt, loader, flat, epochs=5, search="in_run", verbose=False)
    _assert_same(model, opt, before)


def test_auto_rejects_an_unknown_search() -> None:
    import lrkit

    model = _model()
    with pytest.raises(ValueError, match="search"):
        lrkit.auto(model, torch.optim.Adam(model.parameters()), _loader(), torch.nn.functional.cross_entropy,
                   epochs=2, search="grid")  # fmt: skip


def test_cli_auto_search_in_run_trains_exactly_the_planned_steps(tmp_path: Any) -> None:
    import json

    from lrkit.cli import main
    from lrkit.tasks import get_task

    out = tmp_path / "auto.json"
    code = main(["auto", "--task", "digits-mlp-adam", "--search", "in_run", "--json", str(out)])
    assert code == 0
    got = json.loads(out.read_text())
    parts = get_task("digits-mlp-adam").build(0)
    assert got["search"] == "in_run" and got["train_steps"] == parts.epochs * parts.epoch_steps
    assert got["compute"] == pytest.approx((got["finder_steps"] + got["train_steps"]) / got["train_steps"])


def test_cli_auto_refuses_an_unknown_search(capsys: Any) -> None:
    from lrkit.cli import main

    exc = main(["auto", "--task", "digits-mlp-adam", "--search", "grid"])
    assert exc == 2 and "--search" in capsys.readouterr().err


def test_cli_auto_kind_constant_holds_the_peak(tmp_path: Any) -> None:
    import json

    from lrkit.cli import main

    out = tmp_path / "auto.json"
    assert main(["auto", "--task", "digits-mlp-adam", "--kind", "constant", "--json", str(out)]) == 0
    got = json.loads(out.read_text())
    assert got["kind"] == "constant" and "then the constant peak" in got["summary"]


@pytest.mark.parametrize(
    ("flag", "name"), [("--json", "auto.json"), ("--plot", "auto.png"), ("--plot", "auto.txt")]
)
def test_cli_auto_checks_its_output_paths_before_training(
    tmp_path: Any, monkeypatch: Any, capsys: Any, flag: str, name: str
) -> None:
    """A --json or --plot path that cannot be written used to fail after the whole training, losing its
    result; a file in the way is left as it was."""
    import lrkit.auto
    from lrkit.cli import main

    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"trained before the {flag} path was checked")

    monkeypatch.setattr(lrkit.auto, "train_task", never)
    blocker = tmp_path / "a_file"
    blocker.write_text("mine")
    bad = [str(blocker / name), str(tmp_path)]  # under a file; a folder
    if name.endswith(".txt"):
        bad = [str(tmp_path / name)]  # not a plot format
    for path in bad:
        assert main(["auto", "--task", "digits-mlp-adam", flag, path]) == 2
        assert flag in capsys.readouterr().err
    assert blocker.read_text() == "mine"


def test_cli_auto_epochs_and_optimizer_replace_the_task_s(tmp_path: Any) -> None:
    """--epochs and --optimizer (as in lrkit lab and tune): the run trains that many epochs' steps, and
    the optimizer the search ran on is the one named."""
    import json

    import lrkit.auto as auto_module
    from lrkit.cli import main
    from lrkit.tasks import get_task

    seen: list[str] = []
    real = auto_module.auto

    def spy(model: Any, optimizer: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(type(optimizer).__name__)
        return real(model, optimizer, *args, **kwargs)

    out = tmp_path / "auto.json"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(auto_module, "auto", spy)
        argv = ["--epochs", "3", "--optimizer", "adamw", "--json", str(out)]
        assert main(["auto", "--task", "digits-mlp-sgd", *argv]) == 0
    got = json.loads(out.read_text())
    spe = get_task("digits-mlp-sgd").build(0).epoch_steps
    assert seen == ["AdamW"] and got["optimizer"] == "adamw" and got["epochs"] == 3
    assert got["train_steps"] == 3 * spe and f"(3 epochs x {spe} steps planned)" in got["summary"]


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--epochs", "0"], "--epochs"),
        (["--epochs", "-4"], "--epochs"),
        (["--optimizer", "lamb"], "--optimizer"),
        (["--optimizer", "prodigy"], "estimates its own step size"),
        (["--max-grad-norm", "0"], "--max-grad-norm"),
        (["--max-grad-norm", "nan"], "--max-grad-norm"),
        (["--max-grad-norm", "inf"], "--max-grad-norm"),
    ],
)
def test_cli_auto_refuses_bad_epochs_and_optimizers(argv: list[str], named: str, capsys: Any) -> None:
    from lrkit.cli import main

    try:
        code = main(["auto", "--task", "digits-mlp-sgd", *argv])
    except SystemExit as exc:  # a bad number is an argparse error (lrkit._cliargs)
        code = exc.code
    assert code == 2
    assert named in capsys.readouterr().err


@pytest.mark.parametrize("fail_at", ["scheduler", "guard"])
def test_auto_undoes_a_kept_ramp_when_a_later_step_fails(monkeypatch: Any, fail_at: str) -> None:
    """The ramp's kept steps trained the model; if building the scheduler or the guard then fails, the
    model, the optimizer's state and its groups are as before the call (nothing is lost half-done)."""
    import lrkit
    import lrkit.adapters.torch as adapter
    import lrkit.control.guard as guard_module
    import lrkit.finder.in_run as in_run

    model, loader = _model(), _loader()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    groups = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"{fail_at} failed")

    if fail_at == "scheduler":
        monkeypatch.setattr(adapter, "scheduler", boom)
    else:
        monkeypatch.setattr(guard_module, "DivergenceGuard", boom)
    kept: list[int] = []
    real_ramp = in_run.ramp_in_run

    def spy(*args: Any, **kwargs: Any) -> Any:
        out = real_ramp(*args, **kwargs)
        kept.append(out.kept)
        return out

    monkeypatch.setattr(in_run, "ramp_in_run", spy)
    with pytest.raises(RuntimeError, match=f"{fail_at} failed"):
        lrkit.auto(model, opt, loader, torch.nn.functional.cross_entropy, epochs=10, verbose=False)
    assert kept and kept[0] > 0  # the ramp was kept, so there was something to undo
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not opt.state
    assert [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups] == groups


@pytest.mark.parametrize(
    "option", [{"repeats": 2}, {"batches_per_step": 2}, {"diverge_factor": 5.0}, {"diverge_patience": 5}]
)
def test_auto_never_drops_a_finder_option_the_in_run_ramp_cannot_honour(option: dict[str, Any]) -> None:
    """search='in_run' refuses it by name; search='auto' runs the separate test, which honours it."""
    import lrkit

    model, loader = _model(), _loader()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    (name,) = option
    with pytest.raises(ValueError, match=name):
        lrkit.auto(model, opt, loader, torch.nn.functional.cross_entropy, epochs=10, search="in_run",
                   verbose=False, **option)  # fmt: skip
    assert not opt.state  # refused before anything ran
    run = lrkit.auto(model, opt, loader, torch.nn.functional.cross_entropy, epochs=10, verbose=False,
                     **option)  # fmt: skip
    assert run.search == "separate" and run.trained_steps == 0


def test_auto_passes_the_in_run_options_on() -> None:
    import lrkit

    model, loader = _model(), _loader()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    run = lrkit.auto(model, opt, loader, torch.nn.functional.cross_entropy, epochs=10, verbose=False,
                     rule="minimum", start_lr=1e-4, seed=3)  # fmt: skip
    assert run.search == "in_run" and run.finder.rule == "minimum"
    assert run.finder.lrs[0] == pytest.approx(1e-4)


def test_ramp_with_gradient_accumulation_keeps_exactly_a_hand_replay() -> None:
    """accumulation_steps=3: each rung is one optimizer step over 3 micro-batches, each loss / 3."""
    from lrkit.finder.in_run import ramp_in_run

    model, loader = _model(), _loader()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    ramp = ramp_in_run(model, opt, loader, torch.nn.functional.cross_entropy, accumulation_steps=3)
    assert ramp.kept > 0
    ref, ref_loader = _model(), _loader()
    ref_opt = torch.optim.Adam(ref.parameters(), lr=1e-3)
    batches = iter(ref_loader)

    def next_batch() -> Any:
        nonlocal batches
        try:
            return next(batches)
        except StopIteration:
            batches = iter(ref_loader)
            return next(batches)

    for lr in ramp.result.lrs[: ramp.kept]:
        ref_opt.param_groups[0]["lr"] = float(lr)
        ref_opt.zero_grad()
        for _ in range(3):
            x, y = next_batch()
            (torch.nn.functional.cross_entropy(ref(x), y) / 3).backward()
        ref_opt.step()
    for a, b in zip(model.parameters(), ref.parameters(), strict=True):
        assert torch.equal(a, b)


def test_ramp_under_amp_with_a_grad_scaler_keeps_the_scaler_consistent() -> None:
    """bf16 autocast on the CPU and a GradScaler: the ramp runs and keeps its steps, and the scaler it
    leaves is finite and usable."""
    from lrkit.finder.in_run import ramp_in_run

    model, loader = _model(), _loader()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    ramp = ramp_in_run(model, opt, loader, torch.nn.functional.cross_entropy,
                       amp_dtype=torch.bfloat16, grad_scaler=scaler)  # fmt: skip
    assert ramp.result.trusted and ramp.kept > 0
    assert all(torch.isfinite(p).all() for p in model.parameters())
    # the scaler never grew past its growth interval inside a short ramp, and it is a usable scaler
    assert 0 < scaler.get_scale() <= 2.0**10
    loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 8)), torch.tensor([0, 1, 0, 1]))
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()


def test_auto_runs_in_run_with_the_options_it_now_honours() -> None:
    import lrkit

    model, loader = _model(), _loader()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    run = lrkit.auto(model, opt, loader, torch.nn.functional.cross_entropy, epochs=10, verbose=False,
                     accumulation_steps=2, amp_dtype=torch.bfloat16)  # fmt: skip
    assert run.search == "in_run" and run.trained_steps > 0


def test_a_restored_ramp_puts_the_grad_scaler_back_too() -> None:
    from lrkit.finder.in_run import ramp_in_run

    model, loader = _model(), _loader()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=2)
    scaler.scale(torch.ones((), requires_grad=True))  # initialise its state lazily
    before = {k: (v.clone() if torch.is_tensor(v) else v) for k, v in scaler.state_dict().items()}

    def flat(out: Any, y: Any) -> Any:
        return (out * 0.0).sum() + 1.0

    ramp = ramp_in_run(model, opt, loader, flat, grad_scaler=scaler)
    assert ramp.kept == 0  # no signal: everything restored
    after = scaler.state_dict()
    assert after.keys() == before.keys()
    for k, v in before.items():
        assert torch.equal(after[k], v) if torch.is_tensor(v) else after[k] == v, k


@pytest.mark.parametrize("search", ["in_run", "separate"])
def test_a_distributed_sampler_moves_to_its_next_epoch_when_the_ramp_wraps(search: str) -> None:
    """A DistributedSampler reshuffles only on set_epoch: a ramp longer than an epoch sees pass k in
    the sampler's epoch-k order (as a training loop's epochs would), not the first order again; a
    restore puts the sampler's epoch back."""
    from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

    from lrkit.finder import find_lr
    from lrkit.finder.in_run import ramp_in_run

    n, batch = 32, 8
    ds = TensorDataset(torch.randn(n, 8, generator=torch.Generator().manual_seed(0)), torch.arange(n))
    sampler = DistributedSampler(ds, num_replicas=1, rank=0, shuffle=True, seed=3)
    loader = DataLoader(ds, batch_size=batch, sampler=sampler)
    seen: list[int] = []

    def flat(out: Any, idx: Any) -> Any:  # no signal: the ramp runs all its rungs
        seen.extend(int(i) for i in idx)
        return (out * 0.0).sum() + 1.0

    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    if search == "in_run":
        ramp_in_run(model, opt, loader, flat, num_steps=20)
    else:
        find_lr(model, opt, loader, flat, num_steps=20, repeats=1, seed=0)
    assert sampler.epoch == 0  # put back: the separate test, or the in-run ramp without signal
    passes = [seen[i : i + n] for i in range(0, len(seen), n)]
    assert len(passes) == 5
    for epoch, got in enumerate(passes):
        sampler.set_epoch(epoch)
        assert got == list(sampler)
    assert len({tuple(p) for p in passes}) > 1


class _OwnAdam(torch.optim.Adam):
    """A user's subclass of a torch.optim optimizer (one that logs, say): its state is Adam's, built
    lazily, so it restarts too."""


class _OwnMomentum(torch.optim.Optimizer):
    """An optimizer that derives from none of torch.optim's (its state may not be rebuilt lazily): left
    alone."""

    def __init__(self, params: Any, lr: float = 1e-3) -> None:
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    buf = self.state[p].setdefault("buf", torch.zeros_like(p))
                    p.add_(buf.mul_(0.9).add_(p.grad), alpha=-group["lr"])


@pytest.mark.parametrize(
    ("make", "restarted"),
    [
        (lambda p: torch.optim.Adam(p, lr=1e-3), True),
        (lambda p: torch.optim.RMSprop(p, lr=1e-3), True),
        (lambda p: torch.optim.Adagrad(p, lr=1e-2), True),
        (lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9), True),
        (lambda p: _OwnAdam(p, lr=1e-3), True),
        (lambda p: _OwnMomentum(p, lr=1e-2), False),
    ],
)
def test_after_a_kept_ramp_the_optimizer_steps_as_a_fresh_one(make: Any, restarted: bool) -> None:
    """The ramp's running statistics (gathered far below the peak) are cleared before the re-warm: the
    first step after auto equals that of a new optimizer of the same class on the same weights and
    gradient (a torch.optim one; others keep their statistics, and the summary says which)."""
    import copy

    import lrkit

    model, loader = _model(), _loader()
    opt = make(model.parameters())
    run = lrkit.auto(model, opt, loader, torch.nn.functional.cross_entropy, epochs=10, verbose=False)
    assert run.search == "in_run" and run.trained_steps > 0
    assert ("running statistics restart" in run.summary) == restarted
    twin = copy.deepcopy(model)
    fresh = type(opt)(twin.parameters(), **{k: v for k, v in opt.defaults.items()})
    for g in fresh.param_groups:
        g["lr"] = opt.param_groups[0]["lr"]
    x, y = next(iter(loader))
    for m, o in ((model, opt), (twin, fresh)):
        o.zero_grad()
        torch.nn.functional.cross_entropy(m(x), y).backward()
        o.step()
    same = all(torch.equal(a, b) for a, b in zip(model.parameters(), twin.parameters()))
    assert same == restarted


def test_a_schedule_free_optimizer_keeps_its_state_after_a_kept_ramp() -> None:
    """Schedule-Free's state holds its weight sequences: clearing it would lose the training."""
    schedulefree = pytest.importorskip("schedulefree")
    import lrkit

    model, loader = _model(), _loader()
    opt = schedulefree.AdamWScheduleFree(model.parameters(), lr=1e-3)
    run = lrkit.auto(model, opt, loader, torch.nn.functional.cross_entropy, epochs=10, verbose=False)
    assert run.search == "in_run" and run.trained_steps > 0
    assert "running statistics restart" not in run.summary
    assert all("z" in opt.state[p] for p in model.parameters())


def test_an_in_run_ramp_undone_is_still_the_search_that_gave_the_lr() -> None:
    """On a 1-epoch digits run the ramp's peak comes past half the run, so its steps are undone; the
    LR is the ramp's. The result said search 'separate' (and the JSON of ``lrkit auto``, and the plot's
    title) while its summary said 'one in-run ramp of 65 steps, none kept'; then 'in_run', as if kept."""
    import lrkit
    from lrkit.tasks import get_task

    parts = get_task("digits-mlp-sgd").build(0)
    opt = parts.make_optimizer(1e-3)
    with pytest.warns(UserWarning, match="the LR search took"):
        run = lrkit.auto(parts.model, opt, parts.train_loader, parts.loss_fn, epochs=1, verbose=False)
    assert "none kept" in run.summary and run.trained_steps == 0
    assert run.search == "in_run_restored" and run.search_steps > 0
