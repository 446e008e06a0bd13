"""A wrapper optimizer that keeps the one it wraps under ``_base_optimizer`` (as timm's Lookahead) and
subclasses Optimizer without calling its __init__ (so it has no step hooks of its own): lrkit.torch.scheduler
(follow_optimizer=True, the default) refused it ("has no step hooks and wraps no optimizer that has"), and
so did lrkit.auto, though the finder restores such a wrapper's state. It now follows the wrapped
optimizer's steps, as it does accelerate's wrapper (under ``optimizer``)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import lrkit  # noqa: E402


class TimmStyleLookahead(torch.optim.Optimizer):
    """Lookahead (Zhang et al. 2019) as a wrapper: no Optimizer.__init__, the base under _base_optimizer."""

    def __init__(self, base: torch.optim.Optimizer, alpha: float = 0.5, k: int = 6) -> None:
        self._base_optimizer = base
        self.param_groups = base.param_groups
        self.defaults = base.defaults
        self.state: Any = defaultdict(dict)
        self.alpha, self.k = alpha, k
        for group in self.param_groups:
            group.setdefault("lookahead_step", 0)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self._base_optimizer.zero_grad(set_to_none)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = self._base_optimizer.step(closure)
        for group in self.param_groups:
            group["lookahead_step"] += 1
            if group["lookahead_step"] % self.k == 0:
                for p in group["params"]:
                    slow = self.state[p].setdefault("slow", p.detach().clone())
                    slow.add_(p - slow, alpha=self.alpha)
                    p.copy_(slow)
        return loss


def _train(
    opt: torch.optim.Optimizer, model: torch.nn.Module, sched: Any, steps: int, skip: set[int]
) -> list[float]:
    lrs = []
    for i in range(steps):
        if i not in skip:  # a step the loop skips (as GradScaler would): the schedule must not advance
            model(torch.randn(4, 3)).pow(2).mean().backward()
            opt.step()
            opt.zero_grad()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    return lrs


def test_a_timm_style_lookahead_is_scheduled_by_its_steps() -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = TimmStyleLookahead(torch.optim.AdamW(model.parameters(), lr=1e-3))
    sched = lrkit.torch.scheduler(opt, "cosine(lr=0.01)", total_steps=20)
    lrs = _train(opt, model, sched, 12, skip={3, 4})
    expected = lrkit.parse("cosine(lr=0.01)").resolve(total_steps=20)
    # 10 optimizer steps in 12 calls: the two calls without one do not advance the schedule
    assert sched.last_epoch == 10
    assert lrs[-1] == pytest.approx(float(expected(10)), rel=1e-12)
    assert opt._base_optimizer.param_groups[0]["lr"] == lrs[-1]
