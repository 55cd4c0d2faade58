"""YAML with node positions kept, so an error on a field can name its line and column.

Plan files and skill contracts both report faults as `file: line L, column C: field: message`.
"""

from __future__ import annotations

from collections.abc import Sequence

import yaml

__all__ = ["Positions", "positions", "where"]

Positions = dict[tuple[str, ...], str]
"""`line L, column C` of every mapping value and list item, by its path of keys and indexes."""


def positions(node: yaml.Node | None) -> Positions:
    """Where each value of a composed YAML document starts."""
    out: Positions = {}
    if node is not None:
        _walk(node, (), out)
    return out


def _walk(node: yaml.Node, path: tuple[str, ...], out: Positions) -> None:
    mark = node.start_mark
    out[path] = f"line {mark.line + 1}, column {mark.column + 1}"
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                _walk(value, (*path, str(key.value)), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, str(i)), out)


def where(found: Positions, loc: Sequence[str]) -> str:
    """The position of `loc`, or of its nearest enclosing value that the file has."""
    loc = tuple(loc)
    for cut in range(len(loc), -1, -1):
        if loc[:cut] in found:
            return found[loc[:cut]]
    return "line 1, column 1"
