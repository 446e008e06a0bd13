"""The README's quick start runs as written (its >>> examples are doctested by pytest's README glob)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_quick_start_runs_and_sets_the_scheduled_lr() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    code = next(b for b in blocks if "lrkit.torch.scheduler" in b)
    env: dict[str, object] = {}
    exec(compile(code, str(README), "exec"), env)
    import lrkit

    sched = lrkit.parse("warmup(5%) >> cosine(lr=3e-4, min_lr=3e-5)").resolve(total_steps=1000)
    opt = env["optimizer"]
    assert opt.param_groups[0]["lr"] == sched(1000)  # type: ignore[attr-defined]


def test_make_targets_named_in_the_readme_exist() -> None:
    makefile = (README.parent / "Makefile").read_text()
    for target in re.findall(r"^make (\w+)", README.read_text(), re.M):
        assert re.search(rf"^{target}:", makefile, re.M), target
