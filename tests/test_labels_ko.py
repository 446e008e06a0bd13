"""``lrkit demo --lang ko`` and ``lrkit tune --lang ko`` name their strategies in Korean (the report was
Korean around English labels: "too large: constant 8.7", "recipe: GPT cosine"); the specs and
optimizers are the same in either language, and the English labels are as before."""

from __future__ import annotations

import re

import pytest

from lrkit.demo import LABELS_KO as DEMO_KO
from lrkit.demo import demo_strategies
from lrkit.tune.cli import LABELS_KO as TUNE_KO

HANGUL = re.compile("[\uac00-\ud7a3]")


@pytest.mark.parametrize("peak", [0.0871, 3e-4, 1.0])
def test_the_demo_names_its_strategies_in_korean(peak: float) -> None:
    en, ko = demo_strategies(peak), demo_strategies(peak, "ko")
    assert [(s, o) for _, s, o in en] == [(s, o) for _, s, o in ko]  # the same lab
    assert en[0][0] == f"too large: constant {100 * peak:.3g}" and en[6][0] == "one-cycle"  # as before
    assert ko[0][0] == f"너무 큼: constant {100 * peak:.3g}"
    translated = [k for (e, _, _), (k, _, _) in zip(en, ko) if e != k]
    assert len(translated) == len(DEMO_KO) and all(HANGUL.search(k) for k in translated)
    assert len({label for label, _, _ in ko}) == len(ko)  # still one label per strategy


@pytest.mark.parametrize("source", ["finder", "range centre"])
def test_tune_names_its_report_strategies_in_korean(source: str) -> None:
    pytest.importorskip("torch")
    from lrkit.tune.cli import report_strategies

    en = report_strategies("cosine(lr=0.1)", 0.05, source, "adam")
    ko = report_strategies("cosine(lr=0.1)", 0.05, source, "adam", lang="ko")
    assert [s.spec for s in en] == [s.spec for s in ko]
    assert en[0].label == "tuned" and en[2].label == "recipe: GPT cosine"
    assert all(HANGUL.search(s.label) for s in ko), [s.label for s in ko]
    assert {s.label for s in en} <= set(TUNE_KO)
