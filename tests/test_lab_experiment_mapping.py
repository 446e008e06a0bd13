"""Experiment files with ``strategies`` as a mapping ``{label: strategy}`` (YAML and TOML): the same
Experiment as the list form, labels that disagree with their key refused, a YAML key written twice
refused (PyYAML keeps the last one silently), errors that name the label's path, and ``seeds``."""

from __future__ import annotations

from pathlib import Path

import pytest

from lrkit.lab.experiment import Experiment, load_experiment, parse_experiment
from lrkit.lab.store import ResultStore

TASK = "digits-mlp-sgd"

LIST_YAML = """\
task: digits-mlp-sgd
epochs: 2
seeds: 2
optimizer: momentum
strategies:
  - "zeta=cosine(lr=0.1)"
  - label: warmup + cosine
    spec: "warmup(5%) >> cosine(lr=5e-2)"
  - label: adamw
    spec: "constant(lr=3e-4)"
    optimizer: adamw
    optimizer_params: {weight_decay: 0.05, betas: [0.9, 0.95]}
  - label: dict
    spec: {type: linear, lr: 0.1, end_lr: 0.001}
  - "alpha@adam=constant(1e-3)"
"""

MAP_YAML = """\
task: digits-mlp-sgd
epochs: 2
seeds: 2
optimizer: momentum
strategies:
  zeta: cosine(lr=0.1)
  warmup + cosine: "warmup(5%) >> cosine(lr=5e-2)"
  adamw:
    spec: "constant(lr=3e-4)"
    optimizer: adamw
    optimizer_params: {weight_decay: 0.05, betas: [0.9, 0.95]}
  dict:
    label: dict                      # agrees with its key: allowed
    spec: {type: linear, lr: 0.1, end_lr: 0.001}
  alpha: "alpha@adam=constant(1e-3)"
"""

MAP_TOML = """\
task = "digits-mlp-sgd"
epochs = 2
seeds = 2
optimizer = "momentum"

[strategies]
zeta = "cosine(lr=0.1)"
"warmup + cosine" = "warmup(5%) >> cosine(lr=5e-2)"

[strategies.adamw]
spec = "constant(lr=3e-4)"
optimizer = "adamw"
optimizer_params = { weight_decay = 0.05, betas = [0.9, 0.95] }

[strategies.dict.spec]
type = "linear"
lr = 0.1
end_lr = 0.001

[strategies.alpha]
spec = "constant(1e-3)"
optimizer = "adam"
"""

LIST_TOML = """\
task = "digits-mlp-sgd"
epochs = 2
seeds = 2
optimizer = "momentum"

[[strategies]]
label = "zeta"
spec = "cosine(lr=0.1)"

[[strategies]]
label = "warmup + cosine"
spec = "warmup(5%) >> cosine(lr=5e-2)"

[[strategies]]
label = "adamw"
spec = "constant(lr=3e-4)"
optimizer = "adamw"
optimizer_params = { weight_decay = 0.05, betas = [0.9, 0.95] }

[[strategies]]
label = "dict"
spec = { type = "linear", lr = 0.1, end_lr = 0.001 }

[[strategies]]
label = "alpha"
spec = "constant(1e-3)"
optimizer = "adam"
"""


def _load(tmp_path: Path, name: str, text: str) -> Experiment:
    folder = tmp_path / name.replace(".", "_")
    folder.mkdir()
    path = folder / ("e" + Path(name).suffix)  # one stem: the name (the file's stem) is the same
    path.write_text(text, encoding="utf-8")
    return load_experiment(path)


def _error(tmp_path: Path, text: str, suffix: str = ".yaml") -> str:
    path = tmp_path / ("bad" + suffix)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError) as info:
        load_experiment(path)
    return str(info.value)


def test_the_mapping_form_is_the_list_form_in_yaml_and_toml(tmp_path: Path) -> None:
    reference = _load(tmp_path, "list.yaml", LIST_YAML)
    expected = [
        ("zeta", "cosine(lr=0.1)", "momentum", {}),
        ("warmup + cosine", "warmup(steps=5%) >> cosine(lr=0.05)", "momentum", {}),
        ("adamw", "constant(lr=0.0003)", "adamw", {"weight_decay": 0.05, "betas": (0.9, 0.95)}),
        ("dict", "linear(lr=0.1, end_lr=0.001)", "momentum", {}),
        ("alpha", "constant(lr=0.001)", "adam", {}),
    ]
    got = [(s.label, s.spec, s.optimizer, dict(s.optimizer_params)) for s in reference.strategies]
    assert got == expected  # the reference itself is what the list form always meant
    for name, text in [("map.yaml", MAP_YAML), ("map.toml", MAP_TOML), ("list.toml", LIST_TOML)]:
        e = _load(tmp_path, name, text)
        assert [(s.label, s.spec, s.optimizer, dict(s.optimizer_params)) for s in e.strategies] == expected
        assert e == reference, name  # every field: strategies (schedules too), seeds, epochs, name


def test_labels_keep_the_files_order_not_sorted_order(tmp_path: Path) -> None:
    labels = ["c", "a", "b", "10", "9"]
    yaml_text = "task: digits-mlp-sgd\nstrategies:\n" + "".join(
        f"  '{x}': constant({i + 1}e-2)\n" for i, x in enumerate(labels)
    )
    toml_text = 'task = "digits-mlp-sgd"\n[strategies]\n' + "".join(
        f'"{x}" = "constant({i + 1}e-2)"\n' for i, x in enumerate(labels)
    )
    for name, text in [("o.yaml", yaml_text), ("o.toml", toml_text)]:
        e = _load(tmp_path, name, text)
        assert [s.label for s in e.strategies] == labels
        assert [s.spec for s in e.strategies] == [f"constant(lr={(i + 1) / 100:g})" for i in range(5)]


def test_the_users_file_names_the_label_and_says_where_the_schedule_goes(tmp_path: Path) -> None:
    """The file that was refused as 'strategies must be a list, got dict'."""
    text = (
        "task: digits-mlp-sgd\nepochs: 2\nstrategies:\n  a: constant(lr=1e-1)\n"
        "  b:\n    name: cosine\n    lr: 1e-1\nseeds: 1\n"
    )
    msg = _error(tmp_path, text)
    assert "strategies.b: unknown key 'name'" in msg and "spec: {type: cosine, lr: 0.1}" in msg, msg
    fixed = text.replace("    name: cosine\n    lr: 1e-1\n", "    spec: {type: cosine, lr: 1e-1}\n")
    e = _load(tmp_path, "fixed.yaml", fixed)
    assert [(s.label, s.spec) for s in e.strategies] == [("a", "constant(lr=0.1)"), ("b", "cosine(lr=0.1)")]
    assert e.seeds == [0] and e.epochs == 2


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ('a: "x=constant(0.1)"', ["strategies.a", "'x'", "'a'", "differs from its key"]),
        ('a: "x@adam=constant(0.1)"', ["strategies.a", "'x'", "'a'", "differs from its key"]),
        ("a: {label: x, spec: constant(0.1)}", ["strategies.a.label", "'x'", "'a'", "differs from its key"]),
    ],
)
def test_a_label_that_disagrees_with_its_key_is_refused_naming_both(
    tmp_path: Path, entry: str, words: list[str]
) -> None:
    msg = _error(tmp_path, f"task: digits-mlp-sgd\nstrategies:\n  {entry}\n")
    assert all(w in msg for w in words), msg


def test_a_label_that_disagrees_with_its_key_is_refused_in_toml_too(tmp_path: Path) -> None:
    msg = _error(
        tmp_path, 'task = "digits-mlp-sgd"\n[strategies.a]\nlabel = "b"\nspec = "constant(0.1)"\n', ".toml"
    )
    assert "strategies.a.label 'b' differs from its key 'a'" in msg, msg


@pytest.mark.parametrize(
    ("text", "key", "line", "first"),
    [
        ("task: t\nstrategies:\n  a: constant(0.1)\n  b: constant(0.2)\n  a: cosine(lr=0.1)\n", "a", 5, 3),
        ("task: t\nstrategies: {a: constant(0.1), a: constant(0.2)}\n", "a", 2, 2),
        ("task: t\nepochs: 2\nstrategies: [constant(0.1)]\nepochs: 3\n", "epochs", 4, 2),
        ("task: t\nstrategies:\n  a:\n    spec: constant(0.1)\n    spec: constant(0.2)\n", "spec", 5, 4),
        ("task: t\nstrategies:\n  - label: x\n    spec: constant(0.1)\n    label: y\n", "label", 5, 3),
    ],
)
def test_a_yaml_key_written_twice_is_refused_not_silently_dropped(
    tmp_path: Path, text: str, key: str, line: int, first: int
) -> None:
    msg = _error(tmp_path, text)
    assert f".yaml:{line}:" in msg, msg  # FILE:LINE:COLUMN, as the file's syntax errors
    assert f": the key {key!r} is written twice in one mapping (first on line {first})" in msg, msg
    assert "\n" not in msg  # one line, as every lrkit error


def test_yaml_merge_keys_still_override_without_being_called_duplicates(tmp_path: Path) -> None:
    text = (
        "task: digits-mlp-sgd\nstrategies:\n"
        "  a: &base {spec: constant(0.1), optimizer: adam}\n"
        "  b:\n    <<: *base\n    spec: constant(0.2)\n"
    )
    e = _load(tmp_path, "merge.yaml", text)
    assert [(s.label, s.spec, s.optimizer) for s in e.strategies] == [
        ("a", "constant(lr=0.1)", "adam"),
        ("b", "constant(lr=0.2)", "adam"),
    ]


def test_a_toml_key_written_twice_is_refused_as_well(tmp_path: Path) -> None:
    msg = _error(tmp_path, 'task = "t"\n[strategies]\na = "constant(0.1)"\na = "constant(0.2)"\n', ".toml")
    assert "not valid TOML" in msg, msg


@pytest.mark.parametrize(
    ("yaml_text", "toml_text"),
    [
        ("task: t\nstrategies: []\n", 'task = "t"\nstrategies = []\n'),
        ("task: t\nstrategies: {}\n", 'task = "t"\n[strategies]\n'),
    ],
)
def test_an_empty_mapping_is_refused_as_an_empty_list_is(
    tmp_path: Path, yaml_text: str, toml_text: str
) -> None:
    for text, suffix in [(yaml_text, ".yaml"), (toml_text, ".toml")]:
        msg = _error(tmp_path, text, suffix)
        assert msg == "experiment: strategies is empty; expected at least one spec or mapping", msg


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ("b: {spec: {type: cosine, lrr: 0.1}}", ["strategies.b.spec:", "'lrr'"]),
        ("b: {spec: 'cosine(lrr=0.1)'}", ["strategies.b.spec:", "'lrr'"]),
        ("b: {spec: 3}", ["strategies.b.spec:", "spec string or mapping", "int 3"]),
        ("'warmup + cosine': {spec: 'cosine(lr=x)'}", ["strategies['warmup + cosine'].spec:"]),
        (
            "b: {spec: constant(0.1), optimiser: adam}",
            ["strategies.b: unknown key 'optimiser'", "'optimizer'"],
        ),
        ("b: {name: x, spec: constant(0.1)}", ["strategies.b: unknown key 'name'", "'label'"]),
        ("b: {label: '', spec: constant(0.1)}", ["strategies.b.label must be a non-empty string"]),
        (
            "b: {spec: constant(0.1), optimizer: lion}",
            ["strategies.b:", "optimizer must be one of", "'lion'"],
        ),
        (
            "b: {spec: constant(0.1), optimizer: adamw, optimizer_params: {weight_decay: -1}}",
            ["strategies.b:", "optimizer_params", "weight_decay"],
        ),
        ("b: 3", ["strategies.b must be a string or a mapping", "int 3"]),
        ("b:", ["strategies.b must be a string or a mapping", "None"]),
        ("b: {optimizer: adam}", ["strategies.b: missing key 'spec'"]),
        ("b: 'cosine(lrr=0.1)'", ["strategies.b", "'lrr'"]),
        ("1: constant(0.1)", ["strategies: the label 1 (int) must be a string", "quote it"]),
        ("'  ': constant(0.1)", ["strategies: a label is empty"]),
    ],
)
def test_a_bad_entry_is_named_by_its_label_and_path(tmp_path: Path, entry: str, words: list[str]) -> None:
    msg = _error(tmp_path, f"task: digits-mlp-sgd\nstrategies:\n  {entry}\n")
    assert msg.startswith("experiment: ") and all(w in msg for w in words), msg


def test_a_bad_toml_entry_is_named_by_its_path(tmp_path: Path) -> None:
    msg = _error(tmp_path, 'task = "t"\n[strategies.b.spec]\ntype = "cosine"\nlrr = 0.1\n', ".toml")
    assert msg.startswith("experiment: strategies.b.spec: cosine: unknown parameter 'lrr'"), msg


def test_strategies_of_another_type_name_both_forms() -> None:
    with pytest.raises(ValueError) as info:
        parse_experiment({"task": TASK, "strategies": "constant(0.1)"})
    msg = str(info.value)
    assert "strategies must be a list" in msg and "mapping of label: spec" in msg and "str" in msg, msg


@pytest.mark.parametrize(("seeds", "expected"), [(1, [0]), (3, [0, 1, 2]), ([7, 0], [7, 0])])
def test_seeds_as_a_count_or_a_list(seeds: object, expected: list[int]) -> None:
    """The guide's ``seeds: 2`` is a count (as ``--seeds 2``): seeds 0 and 1."""
    assert parse_experiment({"task": TASK, "strategies": ["constant(0.1)"], "seeds": seeds}).seeds == expected


def test_seeds_as_a_quoted_count_is_refused_as_other_numbers_written_as_text_are() -> None:
    """``seeds: '2'`` was taken as 2 while ``weight_decay: '0.1'`` was refused: text is refused alike."""
    with pytest.raises(ValueError) as info:
        parse_experiment({"task": TASK, "strategies": ["constant(0.1)"], "seeds": "2"})
    assert str(info.value).startswith("experiment: seeds must be an integer >= 1 or a list, got the text '2'")


@pytest.mark.parametrize("seeds", [0, -1, 2.5, "0,1,2", True, []])
def test_bad_seeds_show_both_spellings(seeds: object) -> None:
    with pytest.raises(ValueError) as info:
        parse_experiment({"task": TASK, "strategies": ["constant(0.1)"], "seeds": seeds})
    msg = str(info.value)
    assert "seeds: 3 runs seeds 0, 1, 2" in msg and "seeds: [0, 7, 42]" in msg, msg


@pytest.mark.usefixtures("one_torch_thread")
def test_lrkit_lab_runs_a_mapping_form_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    from lrkit.cli import main

    exp = tmp_path / "exp.yaml"
    exp.write_text(
        "task: digits-mlp-sgd\nepochs: 1\nseeds: 1\nworkers: 1\noutput: out\nstrategies:\n"
        "  warm cos: 'warmup(10%) >> cosine(lr=0.05)'\n"
        "  adam: {spec: 'constant(1e-3)', optimizer: adam}\n",
        encoding="utf-8",
    )
    rc = main(["lab", str(exp)])
    captured = capsys.readouterr()
    assert rc == 0, captured
    with ResultStore(tmp_path / "out" / "lab.db") as store:
        (e,) = store.experiments()
        runs = store.runs(e.id)
    assert e.name == "exp" and e.task == TASK
    assert [(r.label, r.optimizer, r.seed, r.status) for r in runs] == [
        ("warm cos", "momentum", 0, "ok"),  # the task's own optimizer
        ("adam", "adam", 0, "ok"),
    ]
    assert all(r.final_metric is not None and r.final_metric > 0.5 for r in runs)
    assert (tmp_path / "out" / "report.html").is_file()


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_the_guides_list_mapping_and_toml_files_are_one_experiment(lang: str, tmp_path: Path) -> None:
    """docs/*/lab.md shows one experiment three ways (the TOML block is untagged: the docs test runs
    python, bash and yaml blocks only, so it is loaded here)."""
    page = (Path(__file__).parent.parent / "docs" / lang / "lab.md").read_text(encoding="utf-8")
    found = {}
    for first in ("# experiment.yaml", "# named.yaml", "# experiment.toml"):
        start = page.index(first)
        found[first.split()[1]] = page[start : page.index("```", start)]
    got = {}
    for name, text in found.items():  # one folder: output is taken from the file's folder
        (tmp_path / name).write_text(text, encoding="utf-8")
        got[name] = load_experiment(tmp_path / name)
    listed, named, toml = got["experiment.yaml"], got["named.yaml"], got["experiment.toml"]
    assert [s.label for s in named.strategies] == ["warmup + cosine", "AdamW", "one-cycle"]
    assert named == listed and toml == listed


@pytest.mark.parametrize(
    ("strategies", "where"),
    [
        ("  b:\n    spec: cosine(lr=0.1)\n    optimizer: lamb\n", "strategies.b: "),
        ("  - label: b\n    spec: cosine(lr=0.1)\n    optimizer: lamb\n", "strategies[0]: strategy 'b': "),
    ],
)
def test_a_strategys_error_names_it_once(tmp_path: Path, strategies: str, where: str) -> None:
    """A key names the strategy, so the Strategy's own "strategy 'b':" is not repeated after it; a list
    entry's place does not, so it stays."""
    msg = _error(tmp_path, "task: digits-mlp-sgd\nstrategies:\n" + strategies, ".yaml")
    assert f"experiment: {where}optimizer must be one of" in msg, msg
    assert msg.count("'b'") == ("[0]" in where), msg
