"""Experiment files: a few hundred bytes of nested YAML aliases are refused by a value budget (as
lrkit.spec.from_yaml does), and every message shows a value cut short, never its whole repr."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lrkit.lab.experiment import load_experiment, parse_experiment
from lrkit.spec import MAX_NODES

LAUGHS = ", ".join(
    f"&{c} [{', '.join([f'*{p}'] * 10) if p else ', '.join(['x'] * 10)}]"
    for p, c in zip(["", *"abcdefgh"], "abcdefghi")
)


def _file(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "exp.yaml"
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


def test_a_label_of_nested_aliases_is_refused_at_once_with_little_memory(tmp_path: Path) -> None:
    """The tester's 403-byte file (a label holding a billion 'x' by aliases) took > 2 GB for minutes."""
    p = _file(
        tmp_path, f"task: digits-mlp-sgd\nstrategies:\n  - spec: constant(0.1)\n    label: [{LAUGHS}]\n"
    )
    assert p.stat().st_size < 500
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (2 * 1024**3, 2 * 1024**3))\n"
        "from lrkit.lab.experiment import load_experiment\n"
        "try:\n    load_experiment(sys.argv[1])\n"
        "except ValueError as exc:\n    print('REFUSED', len(str(exc)), exc)\n"
    )
    try:
        out = subprocess.run(
            [sys.executable, "-c", code, str(p)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
    except subprocess.TimeoutExpired:
        pytest.fail("reading the experiment file took more than 60 s")
    assert out.stdout.startswith("REFUSED"), out.stderr[-2000:]
    assert f"holds more than {MAX_NODES:,} values" in out.stdout and "alias" in out.stdout
    assert int(out.stdout.split()[1]) < 400


def test_an_alias_of_its_own_list_is_refused(tmp_path: Path) -> None:
    p = _file(tmp_path, "task: digits-mlp-sgd\nstrategies:\n  - spec: constant(0.1)\n    label: &a [*a]\n")
    with pytest.raises(ValueError, match="holds more than 100,000 values"):
        load_experiment(p)


def test_a_file_under_the_budget_is_read(tmp_path: Path) -> None:
    """Aliases used a few times (a shared optimizer_params) are what YAML is for: kept."""
    p = _file(
        tmp_path,
        """\
        task: digits-mlp-sgd
        strategies:
          - {label: a, spec: "cosine(lr=0.1)", optimizer: adamw, optimizer_params: &p {weight_decay: 0.1}}
          - {label: b, spec: "cosine(lr=0.2)", optimizer: adamw, optimizer_params: *p}
        """,
    )
    exp = load_experiment(p)
    assert [dict(s.optimizer_params) for s in exp.strategies] == [{"weight_decay": 0.1}] * 2


BIG: Any = st.one_of(
    st.integers(2_000, 30_000).map(lambda n: list(range(n))),
    st.integers(2_000, 30_000).map(lambda n: {f"k{i}": i for i in range(n)}),
    st.integers(2_000, 30_000).map(lambda n: [[i, "z" * 10] for i in range(n)]),
)


def _places(big: Any) -> list[dict[str, Any]]:
    """Experiments with ``big`` in each place a message shows a value."""
    ok = "cosine(lr=0.1)"
    return [
        {"task": "digits-mlp-sgd", "strategies": [{"spec": ok, "label": big}]},
        {"task": "digits-mlp-sgd", "strategies": [{"spec": big}]},
        {"task": "digits-mlp-sgd", "strategies": [big, ok]},
        {"task": "digits-mlp-sgd", "strategies": big if isinstance(big, dict) else 3},
        {"task": big, "strategies": [ok]},
        {"task": "digits-mlp-sgd", "name": big, "strategies": [ok]},
        {"task": "digits-mlp-sgd", "seeds": big, "strategies": [ok]},
        {"task": "digits-mlp-sgd", "epochs": big, "strategies": [ok]},
        {"task": "digits-mlp-sgd", "workers": big, "strategies": [ok]},
        {"task": "digits-mlp-sgd", "diverge_factor": big, "strategies": [ok]},
        {"task": "digits-mlp-sgd", "output": big, "strategies": [ok]},
        {"task": "digits-mlp-sgd", "optimizer": big, "strategies": [ok]},
        {"task": "digits-mlp-sgd", "strategies": {"a": {"spec": ok, "label": big}}},
        {"task": "digits-mlp-sgd", "strategies": [{"spec": ok, "optimizer": big}]},
        {"task": "digits-mlp-sgd", "strategies": {"a": big}},
    ]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(BIG)
def test_a_message_shows_a_huge_value_cut_short(big: Any) -> None:
    """A list or mapping (what YAML aliases multiply) where a value goes: the message stays short."""
    for data in _places(big):
        try:
            parse_experiment(data)
        except (ValueError, TypeError) as exc:
            text = str(exc)
            assert len(text) < 1000, (list(data), text[:300])
            assert text.startswith("experiment: ") or "strateg" in text, text[:300]


def test_the_label_of_a_strategy_is_cut_short() -> None:
    from lrkit.lab.runner import Strategy

    with pytest.raises(ValueError, match=r"label must be a non-empty string, got \[0, 1, 2") as info:
        Strategy(list(range(100_000)), "constant(0.1)")  # type: ignore[arg-type]
    assert len(str(info.value)) < 300
