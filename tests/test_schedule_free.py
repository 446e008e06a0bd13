"""Schedule-Free (train/eval modes, its own warmup) and Prodigy (its own step size) in the finder and
``lrkit.auto``."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")
schedulefree = pytest.importorskip("schedulefree")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _data(seed: int = 0) -> tuple[Any, Any]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(512, 8, generator=g)
    return x, (x[:, :4].sum(dim=1) > 0).long()


def _loader(seed: int = 0) -> Any:
    x, y = _data(seed)
    g = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=16, shuffle=True, generator=g
    )


def _model() -> Any:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))


def _sf(model: Any, warmup_steps: int = 0, mode: str = "eval") -> Any:
    """A Schedule-Free AdamW in ``mode``: a fresh one is in eval mode since schedulefree 1.3, in train
    mode before (1.2, the floor); either is switched explicitly (on a fresh one, only the flag)."""
    opt = schedulefree.AdamWScheduleFree(model.parameters(), lr=1e-3, warmup_steps=warmup_steps)
    if mode == "eval":
        opt.eval()
    else:
        opt.train()
    return opt


def _groups(opt: Any) -> list[dict[str, Any]]:
    return [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_find_lr_steps_schedule_free_in_train_mode_and_puts_its_mode_and_warmup_back(mode: str) -> None:
    """A Schedule-Free optimizer in eval mode (a fresh one's, since schedulefree 1.3) raises in step();
    the test switches it, holds its own warmup at 0 (the curve is the same as with warmup_steps=0: the
    ramp's LR is the LR it steps with), and restores weights, mode, warmup and step count."""
    from lrkit.finder import find_lr

    curves = []
    for warmup_steps in (0, 40):
        model = _model()
        opt = _sf(model, warmup_steps, mode)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        groups = _groups(opt)
        res = find_lr(model, opt, _loader(), torch.nn.functional.cross_entropy, num_steps=60)
        assert _groups(opt) == groups  # train_mode as given, warmup_steps, k = 0, lr_max as given
        assert opt.param_groups[0]["train_mode"] is (mode == "train") and opt.param_groups[0]["k"] == 0
        for k, v in model.state_dict().items():
            assert torch.equal(v, before[k])
        curves.append(res.losses)
    assert curves[0].tolist() == curves[1].tolist()


def test_find_lr_takes_schedule_free_val_loss_at_its_average_and_trains_at_its_train_point() -> None:
    from lrkit.finder import find_lr

    model = _model()
    opt = _sf(model)
    x, y = _data(1)
    seen: dict[bool, set[bool]] = {True: set(), False: set()}

    def forward(m: Any, batch: Any) -> Any:
        seen[torch.is_grad_enabled()].add(bool(opt.param_groups[0]["train_mode"]))
        return torch.nn.functional.cross_entropy(m(batch[0]), batch[1])

    find_lr(model, opt, _loader(), forward=forward, num_steps=20, val_data=[(x[:64], y[:64])])
    assert seen == {True: {True}, False: {False}}  # training steps in train mode, val loss in eval
    assert opt.param_groups[0]["train_mode"] is False


def test_in_run_ramp_keeps_a_consistent_schedule_free_state_or_restores_it() -> None:
    from lrkit.finder.in_run import ramp_in_run

    model = _model()
    opt = _sf(model, warmup_steps=25)
    ramp = ramp_in_run(model, opt, _loader(), torch.nn.functional.cross_entropy, peak_factor=3.0)
    assert ramp.kept > 0
    # the kept state is that after rung kept - 1: Schedule-Free's own step counter agrees
    assert opt.param_groups[0]["k"] == ramp.kept and opt.param_groups[0]["train_mode"] is True
    assert opt.param_groups[0]["lr"] == pytest.approx(ramp.peak)
    model2 = _model()
    opt2 = _sf(model2, warmup_steps=25)
    before, groups = {k: v.clone() for k, v in model2.state_dict().items()}, _groups(opt2)
    undone = ramp_in_run(model2, opt2, _loader(), torch.nn.functional.cross_entropy, max_kept=1)
    assert undone.kept == 0 and _groups(opt2) == groups
    for k, v in model2.state_dict().items():
        assert torch.equal(v, before[k])


@pytest.mark.parametrize("search", ["in_run", "separate"])
def test_auto_holds_a_schedule_free_peak_to_the_end_and_owns_the_warmup(search: str) -> None:
    import lrkit

    model = _model()
    opt = _sf(model, warmup_steps=30)
    run = lrkit.auto(
        model, opt, _loader(), torch.nn.functional.cross_entropy, epochs=20, search=search, verbose=False
    )
    assert run.kind == "constant" and run.search == search
    last = run.remaining_steps - 1
    assert float(run.schedule(last)) == pytest.approx(run.peak_lr)
    assert float(run.schedule(0)) < run.peak_lr  # warms up first (the re-warm after an in-run ramp)
    assert all(g["warmup_steps"] == 0 for g in opt.param_groups)
    assert "warmup_steps=30 set to 0" in run.summary and "Schedule-Free" in run.summary
    # it trains: the scheduler drives the LR and the optimizer steps in train mode
    opt.train()
    for step, (xb, yb) in zip(range(5), _loader(3), strict=False):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(xb), yb).backward()
        opt.step()
        run.scheduler.step()
        assert opt.param_groups[0]["lr"] == pytest.approx(float(run.schedule(step + 1)))


def test_auto_says_the_averaging_stands_in_for_a_decay_only_where_the_schedule_holds_its_peak() -> None:
    """Schedule-Free under a constant peak: its averaging stands in for a decay (the summary says so);
    under a decaying kind the user asked for, the schedule decays anyway, so the summary does not say it."""
    import lrkit

    words = "the averaging stands in for a decay"
    for kind, said in (("constant", True), ("wsd", False), ("cosine", False)):
        model = _model()
        run = lrkit.auto(
            model, _sf(model), _loader(), torch.nn.functional.cross_entropy, epochs=20, kind=kind,
            search="separate", verbose=False,
        )  # fmt: skip
        decays = float(run.schedule(run.remaining_steps - 1)) < 0.5 * run.peak_lr
        assert decays is not said, kind  # the reference: what the schedule itself does at the end
        assert (words in run.summary) is said, (kind, run.summary)
        assert "Schedule-Free" in run.summary


def test_auto_kind_constant_holds_the_peak_for_any_optimizer() -> None:
    import lrkit

    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    run = lrkit.auto(
        model, opt, _loader(), torch.nn.functional.cross_entropy, epochs=20, kind="constant",
        search="separate", verbose=False,
    )  # fmt: skip
    n = run.total_steps
    values = [float(run.schedule(s)) for s in range(n)]
    assert run.kind == "constant" and values[-1] == pytest.approx(run.peak_lr)
    top = values.index(max(values))
    assert top <= 0.05 * n + 1 and all(v == pytest.approx(run.peak_lr) for v in values[top:])
    assert "then the constant peak" in run.summary


def test_prodigy_is_refused_by_auto_and_flagged_by_find_lr() -> None:
    prodigyopt = pytest.importorskip("prodigyopt")
    import lrkit
    from lrkit.finder import find_lr

    model = _model()
    opt = prodigyopt.Prodigy(model.parameters(), lr=1.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"Prodigy estimates its own step size.*'d'"):
        lrkit.auto(model, opt, _loader(), torch.nn.functional.cross_entropy, epochs=5, verbose=False)
    assert opt.param_groups[0]["lr"] == 1.0 and not opt.state
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    with pytest.warns(UserWarning, match="Prodigy estimates its own step size"):
        find_lr(model, opt, _loader(), torch.nn.functional.cross_entropy, num_steps=10)
