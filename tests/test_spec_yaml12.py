"""A YAML spec file is read as an experiment file is, by YAML 1.2's rules (``lrkit._yaml``), not PyYAML's
YAML 1.1 ones: ``012`` is 12 (1.1: octal 10), ``1:30`` is text (1.1: 90), ``yes``/``on`` are text (1.1:
True), ``3e-4`` is a number (1.1: text); errors are one line with the line and column."""

from __future__ import annotations

import pytest

pytest.importorskip("yaml")

from lrkit.spec import SpecError, from_yaml, load


@pytest.mark.parametrize(
    ("written", "steps"),
    [("012", 12), ("0012", 12), ("1_000", 1000), ("0o17", 15), ("0x10", 16), ("+8", 8)],
)
def test_integers_read_as_written(written: str, steps: int) -> None:
    s = from_yaml(f"type: cosine\nlr: 1\nsteps: {written}\n")
    assert s.steps.value == steps  # type: ignore[attr-defined]


@pytest.mark.parametrize("written", ["3e-4", "3E-4", "3.0e-4", "0.0003", "3e-04"])
def test_floats_with_an_exponent_are_numbers(written: str) -> None:
    assert from_yaml(f"type: cosine\nlr: {written}\nsteps: 10\n").lr == pytest.approx(3e-4)  # type: ignore[attr-defined]


@pytest.mark.parametrize("word", ["yes", "no", "on", "off", "Yes", "ON", "y", "n"])
def test_yaml_11_booleans_are_text_and_refused_for_a_flag(word: str) -> None:
    with pytest.raises(SpecError, match=rf"three_phase must be true or false, got '{word}'"):
        from_yaml(f"type: one_cycle\nmax_lr: 1\nsteps: 100\nthree_phase: {word}\n")


def test_sexagesimal_is_text_not_90() -> None:
    with pytest.raises(SpecError, match=r"steps: expected a duration .* got '1:30'"):
        from_yaml("type: cosine\nlr: 1\nsteps: 1:30\n")


def test_errors_name_the_line_and_column(tmp_path: object) -> None:
    with pytest.raises(
        SpecError, match=r"^spec: line 3, column 1: the key 'lr' is given twice .*first on line 2"
    ):
        from_yaml("type: cosine\nlr: 1\nlr: 2\n")
    with pytest.raises(SpecError) as bad:
        from_yaml("type: cosine\n lr: 1: 2\n")
    assert "\n" not in str(bad.value)
    assert str(bad.value).startswith("spec: line 2, column 4: not valid YAML: mapping values are not allowed")


def test_a_spec_file_reads_the_same_way(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "s.yaml"
    path.write_text("type: cosine\nlr: 3e-4\nsteps: 012\n")
    s = load(path)
    assert (s.lr, s.steps.value) == (pytest.approx(3e-4), 12)  # type: ignore[attr-defined]
