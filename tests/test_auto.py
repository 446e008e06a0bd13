"""``lrkit.auto``: finder -> schedule -> scheduler + guard in one call; nothing changes when it fails."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _loader(seed: int = 0) -> Any:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(512, 8, generator=g)
    y = (x[:, :4].sum(dim=1) > 0).long()
    return torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=16, shuffle=True, generator=g
    )


def _model() -> Any:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (torch.optim.Adam, "auto"),
        (lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9), "auto"),
        (lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9), "one_cycle"),
        (torch.optim.AdamW, "cosine"),
    ],
)
def test_auto_builds_scheduler_and_guard_within_a_tenth_of_the_run(make: Any, kind: str) -> None:
    import lrkit
    from lrkit.auto import PEAK_FACTOR

    model, loader = _model(), _loader()
    opt = make(model.parameters(), lr=1e-3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    run = lrkit.auto(
        model, opt, loader, torch.nn.functional.cross_entropy, epochs=100, kind=kind, search="separate",
        verbose=False,
    )  # fmt: skip
    for k, v in model.state_dict().items():  # the finder restored the model
        assert torch.equal(v, before[k])
    assert run.search == "separate"
    assert run.finder_steps <= 0.1 * run.total_steps and run.compute <= 1.1
    assert run.kind == ("wsd" if kind == "auto" else kind)  # WSD by default, SGD too
    assert run.total_steps == 100 * len(loader) and run.guard is not None
    # the optimizer follows the schedule from step 0, and the peak is c x the finder's suggestion
    assert opt.param_groups[0]["lr"] == pytest.approx(float(run.schedule(0)))
    peak = max(float(run.schedule(s)) for s in range(run.total_steps))
    assert run.finder.suggestion is not None
    assert peak == pytest.approx(run.peak_lr, rel=1e-6)
    assert run.peak_lr == PEAK_FACTOR["separate", run.kind] * run.finder.suggestion
    assert "peak LR" in run.summary
    assert str(run) == run.summary  # print(run): what was chosen and why, not the curves' arrays


@pytest.mark.parametrize(("total", "warmup"), [(1000, 0.05), (37, 0.1), (3200, 0.2), (20, 0.0)])
def test_separate_schedule_warms_up_linearly_over_its_fraction_of_the_run(total: int, warmup: float) -> None:
    """Hand-computed: a warmup over ``n = ceil(warmup * total)`` steps reaches the peak at step n with
    the factor (t + 1) / (n + 1), then cosine to 1% of the peak at the last step."""
    import math

    from lrkit.auto import separate_schedule

    peak = 0.3
    s = separate_schedule("cosine", peak, warmup).resolve(total_steps=total, steps_per_epoch=10)
    n = math.ceil(warmup * total)
    for t in range(n):
        assert float(s(t)) == pytest.approx(peak * (t + 1) / (n + 1))
    assert float(s(n)) == pytest.approx(peak)
    assert float(s(total)) == pytest.approx(0.01 * peak)
    t = n + (total - n) // 2  # the cosine's midpoint
    mid = 0.01 * peak + (peak - 0.01 * peak) * 0.5 * (1 + math.cos(math.pi * (t - n) / (total - n)))
    assert float(s(t)) == pytest.approx(mid)


@pytest.mark.parametrize(("left", "rewarm"), [(200, 0.1), (37, 0.3), (5000, 0.05), (50, 0.0)])
def test_in_run_schedule_rewarms_from_a_tenth_of_the_peak(left: int, rewarm: float) -> None:
    """Hand-computed: start + (1 - start) * t / n over n = ceil(rewarm * left) steps, then cosine."""
    import math

    from lrkit.auto import REWARM_START, in_run_schedule

    peak = 2e-3
    s = in_run_schedule(peak, rewarm).resolve(total_steps=left, steps_per_epoch=10)
    n = math.ceil(rewarm * left)
    for t in range(n):
        assert float(s(t)) == pytest.approx(peak * (REWARM_START + (1 - REWARM_START) * t / n))
    assert float(s(n)) == pytest.approx(peak)
    assert float(s(left)) == pytest.approx(0.01 * peak)


@pytest.mark.parametrize(("left", "rewarm"), [(200, 0.1), (37, 0.3), (5000, 0.05), (50, 0.0)])
@pytest.mark.parametrize("search", ["in_run", "separate"])
def test_wsd_holds_the_peak_then_cools_down_by_1_sqrt_over_the_last_fifth(
    left: int, rewarm: float, search: str
) -> None:
    """Hand-computed (Hägele et al. 2024): after the warmup of n = ceil(rewarm * left) steps the peak is
    held until left - d, d = ceil(0.2 * left), then peak * (1 - sqrt((t - (left - d)) / d)), 0 at the
    end; the warmup is the in-run re-warm or the separate test's linear warmup."""
    import math

    from lrkit.auto import REWARM_START, in_run_schedule, separate_schedule

    peak = 3e-3
    sched = (
        in_run_schedule(peak, rewarm, "wsd") if search == "in_run" else separate_schedule("wsd", peak, rewarm)
    )
    s = sched.resolve(total_steps=left, steps_per_epoch=10)
    n, d = math.ceil(rewarm * left), math.ceil(0.2 * left)
    for t in range(n):
        want = REWARM_START + (1 - REWARM_START) * t / n if search == "in_run" else (t + 1) / (n + 1)
        assert float(s(t)) == pytest.approx(peak * want)
    for t in range(n, left + 1):
        want = 1.0 if t <= left - d else 1 - math.sqrt((t - (left - d)) / d)
        assert float(s(t)) == pytest.approx(peak * want, abs=1e-12)
    assert float(s(left)) == 0.0


def test_auto_without_signal_raises_and_changes_nothing() -> None:
    import lrkit
    from lrkit.finder import NoSuggestionError

    model, loader = _model(), _loader()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    groups = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]

    def flat(out: Any, y: Any) -> Any:
        return (out * 0.0).sum() + 1.0

    with pytest.raises(NoSuggestionError, match="flat"):
        lrkit.auto(model, opt, loader, flat, epochs=5, verbose=False)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    assert [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups] == groups
    assert not opt.state


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"epochs": 0}, "epochs"),
        ({"epochs": 2, "kind": "step"}, "kind"),
        ({"epochs": 2, "warmup": 1.5}, "warmup"),
        ({"epochs": 2, "budget": -0.1}, "budget"),
        ({"epochs": 2, "budget": float("nan")}, "budget"),
        ({"epochs": 2, "budget": 1.5}, "budget"),
        ({"epochs": 2, "budget": 0}, "budget"),
    ],
)
def test_auto_rejects_bad_arguments(kw: dict[str, Any], match: str) -> None:
    """Refused before any training, whichever search would run (the in-run ramp takes no budget)."""
    import lrkit

    model = _model()
    with pytest.raises(ValueError, match=match):
        lrkit.auto(
            model, torch.optim.Adam(model.parameters()), _loader(), torch.nn.functional.cross_entropy, **kw
        )


@pytest.mark.parametrize("bad", [True, "10%", None, [0.1]])
def test_auto_refuses_a_budget_of_the_wrong_type(bad: Any) -> None:
    import lrkit

    model = _model()
    with pytest.raises(TypeError, match="budget"):
        lrkit.auto(model, torch.optim.Adam(model.parameters()), _loader(), torch.nn.functional.cross_entropy,
                   epochs=2, budget=bad)  # fmt: skip


@pytest.mark.parametrize("factor", [0.5, 1.0, 3.0])
def test_auto_peak_factor_scales_the_peak(factor: float) -> None:
    import lrkit

    model, loader = _model(), _loader()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    run = lrkit.auto(model, opt, loader, torch.nn.functional.cross_entropy, epochs=20, peak_factor=factor,
                     verbose=False)  # fmt: skip
    assert run.finder.suggestion is not None and run.peak_lr == pytest.approx(factor * run.finder.suggestion)
    top = max(float(run.schedule(s)) for s in range(run.total_steps))  # the peak may fall between steps
    assert run.peak_lr * 0.99 <= top <= run.peak_lr * (1 + 1e-9)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), True, "2"])
def test_auto_refuses_a_bad_peak_factor(bad: Any) -> None:
    import lrkit

    model, loader = _model(), _loader()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with pytest.raises(ValueError, match="peak_factor"):
        lrkit.auto(model, opt, loader, torch.nn.functional.cross_entropy, epochs=5, peak_factor=bad)


@pytest.mark.parametrize("threshold", [None, 4.0, 10.0])
def test_auto_guard_acts_on_nan_only_unless_given_a_threshold(threshold: float | None) -> None:
    import lrkit

    model, loader = _model(), _loader()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    run = lrkit.auto(model, opt, loader, torch.nn.functional.cross_entropy, epochs=20,
                     guard_threshold=threshold, verbose=False)  # fmt: skip
    assert run.guard is not None and run.guard.threshold == threshold
    assert ("NaN/inf loss" in run.summary) == (threshold is None)
    assert run.guard.check(torch.tensor(1.0), 0)
    # a loss far above the recent ones: a blow-up only with a threshold, once it has stayed there for
    # the guard's jump_steps (5) steps in a row; the steps before are applied
    seen = [run.guard.check(torch.tensor(1e6), step) for step in range(1, 6)]
    assert seen == [True] * 4 + [threshold is None]


def test_auto_passes_the_guards_options_and_the_searchs_grad_scaler_to_its_guard() -> None:
    """auto's guard could not keep its snapshots in host memory, nor restore the GradScaler the user's
    loop (and the search) steps with: a rollback then left the scaler's scale at its blown-up halvings."""
    import lrkit

    model, loader = _model(), _loader()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    options = {"snapshot_device": "cpu", "keep": 1, "factor": 0.25, "jump_steps": 3}
    run = lrkit.auto(model, opt, loader, torch.nn.functional.cross_entropy, epochs=20, guard=options,
                     guard_threshold=4.0, verbose=False)  # fmt: skip
    g = run.guard
    assert g is not None and (g.factor, g.keep, g.jump_steps, g.threshold) == (0.25, 1, 3, 4.0)
    assert (
        "roll back and multiply the LR by 0.25 on a loss above 4x the recent median, 3 steps" in run.summary
    )
    assert run.guard.check(torch.tensor(1.0), 0)
    assert set(g.snapshot_bytes) == {"cpu"}
    scaler = torch.amp.GradScaler("cpu")
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    run = lrkit.auto(model, opt, loader, torch.nn.functional.cross_entropy, epochs=20, grad_scaler=scaler,
                     amp_dtype=torch.bfloat16, verbose=False)  # fmt: skip
    assert (
        run.guard is not None
        and run.guard.scaler is scaler
        and "halve the LR on a NaN/inf loss" in run.summary
    )
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    run = lrkit.auto(
        model, opt, loader, torch.nn.functional.cross_entropy, epochs=20, guard=False, verbose=False
    )
    assert run.guard is None and "no guard" in run.summary


def test_train_task_replays_from_the_guard_s_rollback(monkeypatch: Any) -> None:
    """A NaN loss mid-training: the guard rolls back to its snapshot, and the loop goes on from that
    step (the schedule would otherwise lag behind the loop's counter and never finish its decay). The
    replayed steps count as training compute."""
    import lrkit.auto as auto_module
    from lrkit.tasks import TaskParts

    armed = [False]
    calls = [0]

    def loss_fn(out: Any, y: Any) -> Any:
        loss = torch.nn.functional.cross_entropy(out, y)
        if armed[0]:
            calls[0] += 1
            if calls[0] == 45:  # one NaN, past the guard's first snapshot (every 32 steps here)
                return loss * float("nan")
        return loss

    real = auto_module.auto

    def auto_then_arm(*args: Any, **kwargs: Any) -> Any:
        run = real(*args, **kwargs)
        armed[0] = True
        return run

    monkeypatch.setattr(auto_module, "auto", auto_then_arm)
    parts = TaskParts(_model(), _loader(), _loader(1), loss_fn, metric="accuracy", epochs=4,
                      optimizer="adam")  # fmt: skip
    out = auto_module.train_task(parts, search="separate")
    total = 4 * len(parts.train_loader)  # type: ignore[arg-type]
    assert out["events"] == 1
    # the NaN came at step 44 of the loop; the snapshot was at step 32: 12 steps replayed
    assert out["train_steps"] == total + 12
    assert out["compute"] == pytest.approx((out["finder_steps"] + total + 12) / total)


@pytest.mark.parametrize("search", ["in_run", "separate"])
@pytest.mark.parametrize("ratio", [10.0, 0.1, 3.0])
def test_auto_keeps_discriminative_lrs_of_param_groups(search: str, ratio: float) -> None:
    """Two param groups at lr and ratio x lr (fine-tuning's discriminative LRs): auto's schedule drives
    group 0 and keeps group 1 at ratio x it at every step (an absolute schedule used to be refused)."""
    import lrkit

    model, loader = _model(), _loader()
    opt = torch.optim.Adam(
        [{"params": model[0].parameters(), "lr": 1e-3}, {"params": model[2].parameters(), "lr": 1e-3 * ratio}]
    )
    run = lrkit.auto(model, opt, loader, torch.nn.functional.cross_entropy, epochs=10, search=search,
                     verbose=False)  # fmt: skip
    assert run.search == search and "keep their LR ratios" in run.summary
    for step in range(run.remaining_steps):
        a, b = (g["lr"] for g in opt.param_groups)
        assert a == pytest.approx(float(run.schedule(step)), rel=1e-6)
        assert b == pytest.approx(ratio * a, rel=1e-6)
        opt.step()
        run.scheduler.step()


BAD_CALLS = [
    *[
        ({"guard_threshold": v}, ValueError, "guard_threshold")
        for v in (-1, 1, 0.5, float("nan"), float("inf"), "4", True)
    ],
    *[
        ({k: 1}, TypeError, f"unexpected keyword argument.*'{k}'")
        for k in ("bogus", "lr", "planned_steps", "epoch")
    ],
    ({"guard": {"threshold": 3.0}}, ValueError, "guard: give the guard's threshold as guard_threshold="),
    ({"guard": {"snapshot_devic": "cpu"}}, TypeError, "guard: unknown option.s. snapshot_devic; expected "),
    (
        {"guard": "cpu"},
        TypeError,
        "guard must be True, False or a mapping of DivergenceGuard's options, got str",
    ),
    ({"device": "nonsense"}, ValueError, "device='nonsense'"),
    ({"device": 3.5}, ValueError, "device=3.5"),
    *(
        [({"device": "cuda"}, ValueError, "device='cuda' cannot be used")]
        if not torch.cuda.is_available()
        else []
    ),
]


@pytest.mark.parametrize(("kw", "err", "match"), BAD_CALLS)
def test_auto_names_a_bad_option_before_any_step(kw: dict[str, Any], err: type, match: str) -> None:
    """A bad guard threshold used to be found after the whole search (and named DivergenceGuard's
    parameter), an unknown option was reported by find_lr, an unusable device by a raw torch assert."""
    import lrkit

    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    steps: list[int] = []
    opt.register_step_pre_hook(lambda *a: steps.append(1))
    with pytest.raises(err, match=match):
        lrkit.auto(model, opt, _loader(), torch.nn.functional.cross_entropy, epochs=2, verbose=False, **kw)
    assert not steps and opt.param_groups[0]["lr"] == 1e-3


@pytest.mark.parametrize(
    ("model", "optimizer", "loader", "err", "match"),
    [
        ("model", "model", "loader", TypeError, "optimizer must be a torch.optim.Optimizer"),
        ("model", None, "loader", TypeError, "optimizer must be a torch.optim.Optimizer"),
        ("model", "adam", "loader", TypeError, "optimizer must be a torch.optim.Optimizer"),
        (None, "opt", "loader", TypeError, "model must be a torch.nn.Module"),
        ("model", "opt", [], ValueError, "train_loader is empty"),
        # not "has no len(); pass steps_per_epoch": no steps_per_epoch makes None a loader
        ("model", "opt", None, TypeError, r"train_loader must be an iterable of batches.*got None"),
    ],
)
def test_auto_names_a_wrong_model_optimizer_or_loader(
    model: Any, optimizer: Any, loader: Any, err: type, match: str
) -> None:
    import lrkit

    net = _model()
    opt = torch.optim.Adam(net.parameters())
    pick = {"model": net, "opt": opt, "loader": _loader()}
    args = [pick.get(x, x) if isinstance(x, str) else x for x in (model, optimizer, loader)]
    with pytest.raises(err, match=match):
        lrkit.auto(*args, torch.nn.functional.cross_entropy, epochs=2, verbose=False)


@pytest.mark.parametrize("epochs", [1, 2])
def test_a_search_costlier_than_the_run_warns_and_the_summary_says_what_ran(epochs: int) -> None:
    """A run of 32-64 steps: the in-run ramp's peak comes after half of it, so its steps are undone and
    its own curve gives the LR; the search then costs more than the run, which a warning says."""
    import lrkit

    model, loader = _model(), _loader()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with pytest.warns(lrkit.auto.SearchCostWarning, match=r"the LR search took \d+ optimizer steps") as seen:
        run = lrkit.auto(model, opt, loader, torch.nn.functional.cross_entropy, epochs=epochs, verbose=False)
    assert [w.filename for w in seen] == [__file__]  # points at the caller's line, through the module too
    assert run.trained_steps == 0 and run.search_steps > run.total_steps
    assert run.search == "in_run_restored"  # the ramp's curve gave the LR; none of its steps was kept
    assert f"one in-run ramp of {run.search_steps} steps, none kept" in run.summary
    assert "interval" not in run.summary  # one ramp has no interval over repeats
    assert f"({epochs} epoch{'s' if epochs > 1 else ''} x {len(loader)} steps planned)" in run.summary


def test_a_search_within_the_run_does_not_warn(recwarn: Any) -> None:
    import lrkit

    model, loader = _model(), _loader()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    run = lrkit.auto(model, opt, loader, torch.nn.functional.cross_entropy, epochs=20, verbose=False)
    assert run.compute <= 1.1
    assert not [w for w in recwarn if "LR search took" in str(w.message)]


@pytest.mark.parametrize(("kind", "steps"), [("auto", 1), ("cosine", 1), ("one_cycle", 3), ("wsd", 1)])
def test_a_run_too_short_for_the_schedule_is_refused_before_any_step(kind: str, steps: int) -> None:
    """One optimizer step (4 batches, 4 accumulation steps): no warmup + decay fits; one-cycle needs
    more than 3 for its phases. One error naming the run and the kind, before the search."""
    import lrkit

    model = _model()
    loader = list(_loader())[: 4 * steps]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(
        ValueError, match=rf"the run \(1 epoch x {steps} optimizer steps? = {steps}\) is too short"
    ):
        lrkit.auto(
            model, opt, loader, torch.nn.functional.cross_entropy, epochs=1, accumulation_steps=4,
            kind=kind, verbose=False,
        )  # fmt: skip
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items()) and not opt.state
    # 8 epochs of the same batches fit the schedule: it runs (and warns that the search cost more)
    with pytest.warns(UserWarning, match="the LR search took"):
        lrkit.auto(
            model,
            opt,
            loader,
            torch.nn.functional.cross_entropy,
            epochs=8,
            accumulation_steps=4,
            verbose=False,
        )


def test_the_summary_shows_no_spread_for_repeats_over_a_loader_that_does_not_shuffle() -> None:
    """Repeats over the same batches in the same order record one curve: the summary says they were
    alike instead of a zero-width 'interval x .. x' (a shuffled loader keeps its interval)."""
    import lrkit

    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 8, generator=g)
    y = (x[:, :4].sum(dim=1) > 0).long()
    plain = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    runs = {}
    for name, loader in (("plain", plain), ("shuffled", _loader())):
        model = _model()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # find_lr's own warning on alike repeats
            runs[name] = lrkit.auto(
                model, opt, loader, torch.nn.functional.cross_entropy, epochs=100, search="separate",
                verbose=False,
            )  # fmt: skip
    assert runs["plain"].finder.repeats_alike and not runs["shuffled"].finder.repeats_alike
    assert "3 repeats, all alike (the loader does not shuffle)" in runs["plain"].summary
    assert "interval" not in runs["plain"].summary
    assert "3 repeats, interval " in runs["shuffled"].summary
