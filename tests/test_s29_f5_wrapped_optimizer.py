"""find_lr and lrkit.auto put back the state of every optimizer in a wrapper chain: a Lookahead-style
wrapper (its inner optimizer in ``.optimizer`` or ``._base_optimizer``, sharing param_groups) and
torch's ZeroRedundancyOptimizer (its local optimizer in ``.optim``). Before, only the outer optimizer's
``state`` was copied: the inner AdamW kept the test's steps (step 3 -> 33, exp_avg_sq 18x)."""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import pytest

import lrkit

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Lookahead(torch.optim.Optimizer):
    """The usual wrapper shape: shares param_groups, keeps its slow weights in its own state and a step
    counter as an attribute, the inner optimizer in ``.optimizer`` (never calls Optimizer.__init__)."""

    def __init__(self, optimizer: Any, k: int = 5, alpha: float = 0.5) -> None:
        self.optimizer, self.k, self.alpha, self.counter = optimizer, k, alpha, 0
        self.param_groups, self.defaults = optimizer.param_groups, optimizer.defaults
        self.state = defaultdict(dict)
        for g in self.param_groups:
            for p in g["params"]:
                self.state[p]["slow"] = p.detach().clone()

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = self.optimizer.step(closure)
        self.counter += 1
        if self.counter % self.k == 0:
            for p, s in self.state.items():
                s["slow"].add_(p - s["slow"], alpha=self.alpha)
                p.copy_(s["slow"])
        return loss


class TimmLookahead(torch.optim.Optimizer):
    """timm's Lookahead, in short: the inner optimizer in ``._base_optimizer``, the step count in the
    shared param groups and the slow weights in the inner optimizer's state."""

    def __init__(self, base: Any, alpha: float = 0.5, k: int = 6) -> None:
        self._base_optimizer = base
        self.param_groups, self.defaults = base.param_groups, base.defaults
        self.state = defaultdict(dict)
        for g in self.param_groups:
            g.setdefault("lookahead_step", 0)

    def zero_grad(self, set_to_none: bool = True) -> None:  # torch's would patch this class's step
        self._base_optimizer.zero_grad(set_to_none)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = self._base_optimizer.step(closure)
        for g in self.param_groups:
            g["lookahead_step"] += 1
            if g["lookahead_step"] % 6 == 0:
                for p in g["params"]:
                    st = self._base_optimizer.state[p]
                    slow = st.setdefault("slow_buff", p.detach().clone())
                    slow.add_(p - slow, alpha=0.5)
                    p.copy_(slow)
        return loss


DATA = [(torch.randn(8, 4, generator=torch.Generator().manual_seed(i)),) for i in range(8)]


def _loss(m: Any, b: Any) -> Any:
    return m(b[0]).pow(2).mean()


def _optimizers(opt: Any) -> list[Any]:
    out = [opt]
    for name in ("optimizer", "optim", "_base_optimizer"):
        inner = getattr(opt, name, None)
        if isinstance(inner, torch.optim.Optimizer):
            out.append(inner)
    return out


def _everything(opt: Any, params: list[Any]) -> list[Any]:
    """Every optimizer's state (by parameter, in ``params``' order), param groups (without params) and
    counter, copied."""
    assert {id(p) for o in _optimizers(opt) for p in o.state} <= {id(p) for p in params}
    return [
        (
            [copy.deepcopy(o.state[p]) if p in o.state else None for p in params],
            [{k: v for k, v in g.items() if k != "params"} for g in o.param_groups],
            getattr(o, "counter", None),
        )
        for o in _optimizers(opt)
    ]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _run(make: Callable[[Any], Any], finder: bool) -> tuple[Any, Any, Any]:
    """3 steps, optionally find_lr, then 5 more steps: (state right after the finder, or before it; the
    state at the end; the weights at the end)."""
    torch.manual_seed(0)
    m = torch.nn.Linear(4, 1)
    opt = make(m)
    for b in DATA[:3]:
        _loss(m, b).backward()
        opt.step()
        opt.zero_grad()
    if finder:
        lrkit.find_lr(m, opt, DATA, forward=_loss, num_steps=30, repeats=1)
    params = list(m.parameters())
    mid = _everything(opt, params)
    for b in DATA[3:]:
        _loss(m, b).backward()
        opt.step()
        opt.zero_grad()
    return mid, _everything(opt, params), [p.detach().clone() for p in params]


@contextmanager
def _one_process_group(tmp_path: Path) -> Iterator[None]:
    dist = pytest.importorskip("torch.distributed")
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def _zero(m: Any) -> Any:
    from torch.distributed.optim import ZeroRedundancyOptimizer

    return ZeroRedundancyOptimizer(m.parameters(), optimizer_class=torch.optim.AdamW, lr=1e-2)


MAKERS: dict[str, Callable[[Any], Any]] = {
    "lookahead": lambda m: Lookahead(torch.optim.AdamW(m.parameters(), lr=1e-2)),
    "timm_lookahead": lambda m: TimmLookahead(torch.optim.AdamW(m.parameters(), lr=1e-2)),
    "zero": _zero,
}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # ZeroRedundancyOptimizer's own
@pytest.mark.parametrize("kind", list(MAKERS))
def test_find_lr_restores_every_optimizer_in_the_chain_bit_for_bit(kind: str, tmp_path: Path) -> None:
    """After find_lr the wrapper's and the inner optimizer's state, param groups and counter are what
    they were, and 5 more steps give the same weights, bit for bit, as without the test (before: the
    inner AdamW's step count 3 -> 33, the weights off by up to 0.047)."""
    with _one_process_group(tmp_path) if kind == "zero" else nullcontext():
        before, end0, w0 = _run(MAKERS[kind], finder=False)
        after, end1, w1 = _run(MAKERS[kind], finder=True)
    inner = before[1][0]
    assert all(float(s["step"]) == 3 for s in inner)  # the inner AdamW had stepped
    assert _same(after, before)
    assert _same(end1, end0)
    assert all(torch.equal(a, b) for a, b in zip(w0, w1, strict=True))


def _pretrained() -> tuple[Any, Any]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(512, 8, generator=g)
    y = ((x @ (torch.arange(8.0) / 8) + 2.0 * x[:, 0] ** 2) > 0).long()
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y),
        batch_size=32,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    torch.manual_seed(0)
    m = torch.nn.Sequential(
        torch.nn.Linear(8, 32),
        torch.nn.ReLU(),
        torch.nn.Linear(32, 32),
        torch.nn.ReLU(),
        torch.nn.Linear(32, 2),
    )
    return m, loader


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::lrkit.auto.SearchCostWarning")
@pytest.mark.parametrize("kind", ["lookahead", "zero"])
def test_auto_keeps_only_the_kept_rungs_in_the_inner_optimizer(kind: str, tmp_path: Path) -> None:
    """lrkit.auto's in-run ramp rolls every optimizer of the chain back to the kept rung: the inner
    AdamW (which lrkit does not restart inside a wrapper) has taken exactly the kept steps, not those
    of the rungs past it that were undone (before: 70 of which 56 kept, with ZeRO 57 of 40)."""
    with _one_process_group(tmp_path) if kind == "zero" else nullcontext():
        m, loader = _pretrained()
        opt = MAKERS[kind](m)
        setup = lrkit.auto(m, opt, loader, torch.nn.functional.cross_entropy, epochs=10)
        inner = opt.optimizer if kind == "lookahead" else opt.optim
        steps = {float(s["step"]) for s in inner.state.values()}
    assert setup.search == "in_run" and setup.trained_steps > 0
    assert setup.search_steps > 0  # rungs past the kept one ran and were undone
    assert steps == {float(setup.trained_steps)}
    if kind == "lookahead":
        assert opt.counter == setup.trained_steps
        assert "running statistics, from the ramp's LRs far below the peak, are kept" in setup.summary


def test_auto_summary_names_statistics_kept_in_a_wrapped_optimizer() -> None:
    """auto's summary says an optimizer it cannot restart kept its statistics also when they live in the
    wrapped optimizer only (timm's Lookahead keeps no state of its own); before, it said nothing."""
    from lrkit.auto import _kept_note

    m = torch.nn.Linear(4, 1)
    opt = TimmLookahead(torch.optim.AdamW(m.parameters(), lr=1e-2))
    assert _kept_note(opt, False) == ""  # nothing stepped yet
    _loss(m, DATA[0]).backward()
    opt.step()
    assert not any(opt.state.values())
    assert "running statistics" in _kept_note(opt, False) and "TimmLookahead" in _kept_note(opt, False)
