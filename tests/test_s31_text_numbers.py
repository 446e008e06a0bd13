"""A number written as text in a spec dict (what yaml.safe_load makes of ``1e-3``) is refused with the
reason and the fix; other text is refused as before."""

from __future__ import annotations

import pytest
import yaml

import lrkit
from lrkit.spec import SpecError


@pytest.mark.parametrize("text", ["1e-3", "5E-4", "+2e-1", "1e3"])
def test_yaml_1_1_text_numbers_get_the_hint(text: str) -> None:
    data = yaml.safe_load(f"type: cosine\nlr: {text}\nsteps: 100")
    assert isinstance(data["lr"], str)  # YAML 1.1: no dot, or an unsigned exponent
    with pytest.raises(SpecError, match=r"lr must be a number, got str .*yaml\.safe_load reads 1e-3 as text"):
        lrkit.from_dict(data)
    assert lrkit.loads(f"type: cosine\nlr: {text}\nsteps: 100", "yaml").peak() == float(text)


@pytest.mark.parametrize("text", ["abc", "0.1.2", ""])
def test_other_text_has_no_hint(text: str) -> None:
    with pytest.raises(SpecError) as info:
        lrkit.from_dict({"type": "cosine", "lr": text, "steps": 10})
    assert "must be a number, got str" in str(info.value) and "safe_load" not in str(info.value)
