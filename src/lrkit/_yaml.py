"""YAML read by YAML 1.2's rules, for experiment files and spec files (PyYAML is an extra).

PyYAML follows YAML 1.1, where ``on``/``off``/``yes``/``no`` are booleans (a strategy labelled ``on``
is True), ``012`` is octal 10, ``1:30`` is 90, ``2024-05-01`` a date and ``3e-4`` a string. This loader
reads plain scalars by YAML 1.2's core schema (with Python's ``1_000``) and refuses a key written twice
in one mapping (PyYAML keeps the last one silently).
"""

from __future__ import annotations

import functools
import re
from typing import Any


class DuplicateKey(Exception):
    """A key written twice in one YAML mapping (lines and columns 1-based)."""

    def __init__(self, key: Any, line: int, column: int, first: int) -> None:
        super().__init__(key, line, column, first)
        self.key, self.line, self.column, self.first = key, line, column, first


_DIGITS = r"[0-9](?:_?[0-9])*"  # 1_000 as in Python and TOML
#: YAML 1.2's core schema (with Python's digit separators), instead of PyYAML's YAML 1.1 rules
_RESOLVERS: list[tuple[str, str, list[str]]] = [
    ("null", r"~|null|Null|NULL|", ["~", "n", "N", ""]),
    ("bool", r"true|True|TRUE|false|False|FALSE", list("tTfF")),  # 1.1 also: yes no on off
    # 1.1: 012 is octal (10), 1:30 sexagesimal (90), 0b11 binary; 1.2 and this loader: 012 is 12
    ("int", rf"[-+]?(?:{_DIGITS}|0o[0-7](?:_?[0-7])*|0x[0-9a-fA-F](?:_?[0-9a-fA-F])*)", list("-+0123456789")),
    # 1.1 wants a dot and a signed exponent: 3e-4 was the string '3e-4'
    (
        "float",
        rf"[-+]?(?:{_DIGITS}(?:\.(?:{_DIGITS})?)?|\.{_DIGITS})(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)",
        list("-+0123456789."),
    ),
    ("merge", r"<<", ["<"]),  # "<<: *base"
]  # and no timestamps (2024-05-01 is text) nor 1.1's "=" (a tag no safe loader constructs)


@functools.cache
def loader() -> Any:
    """PyYAML's safe loader reading YAML 1.2's plain scalars: ``on``, ``off``, ``yes`` and ``no`` are
    text, ``012`` is 12 (not octal 10), ``1:30`` and ``2024-05-01`` are text (not 90 and a date),
    ``3e-4`` is a number; a key written twice in one mapping raises :class:`DuplicateKey`."""
    import yaml

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            if isinstance(node, yaml.MappingNode):
                first: dict[Any, int] = {}
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue  # "<<: *base": keys written here override the merged ones
                    key = self.construct_object(key_node, deep=False)
                    mark = key_node.start_mark
                    try:
                        if key in first:
                            raise DuplicateKey(key, mark.line + 1, mark.column + 1, first[key])
                        first[key] = mark.line + 1
                    except TypeError:  # unhashable: PyYAML's own error follows
                        continue
            return super().construct_mapping(node, deep=deep)

        def construct_yaml_int(self, node: Any) -> int:
            text = self.construct_scalar(node).replace("_", "")
            body = text.lstrip("+-")
            base = {"0o": 8, "0x": 16}.get(body[:2], 10)
            value = int(body[2:] if base != 10 else body, base)
            return -value if text.startswith("-") else value

    Loader.yaml_implicit_resolvers = {}  # PyYAML's YAML 1.1 ones left out
    for kind, pattern, first in _RESOLVERS:
        Loader.add_implicit_resolver(f"tag:yaml.org,2002:{kind}", re.compile(f"^(?:{pattern})$"), first)
    Loader.add_constructor("tag:yaml.org,2002:int", Loader.construct_yaml_int)
    return Loader


def _at(mark: Any) -> tuple[int, int] | None:
    """A PyYAML mark's (line, column), 1-based."""
    return None if mark is None else (mark.line + 1, mark.column + 1)


def describe_error(text: str, exc: Exception) -> tuple[tuple[int, int] | None, str]:
    """PyYAML's error as ``((line, column), "not valid YAML: PROBLEM (CONTEXT at LINE:COL)")`` on one
    line, with a hint for a tab or an unquoted ``': '``; the position is None when PyYAML gives none."""
    problem_at, context_at = _at(getattr(exc, "problem_mark", None)), _at(getattr(exc, "context_mark", None))
    context: str | None = getattr(exc, "context", None)
    problem: str | None = getattr(exc, "problem", None) or context
    position = getattr(exc, "position", None)
    at = problem_at or context_at
    if at is None and isinstance(position, int):  # a ReaderError: a character YAML does not allow
        before = text[:position]
        at = (before.count("\n") + 1, position - before.rfind("\n"))
        problem = str(exc).splitlines()[0]
    if at is None or problem is None:
        return None, f"not valid YAML: {' '.join(str(exc).split())}"
    out = f"not valid YAML: {problem}"
    if context and context != problem:
        out += (
            f" ({context} at {context_at[0]}:{context_at[1]})"
            if context_at not in (None, at)
            else f" ({context})"
        )
    if "\\t" in problem:
        out += "; YAML indents with spaces, not tabs"
    elif problem == "mapping values are not allowed here":
        out += "; quote a value that holds ': '"
    return at, out
