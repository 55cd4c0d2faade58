"""YAML with node positions kept, so an error on a field can name its line and column.

Plan files, skill contracts and connector files all report faults as
`file: line L, column C: field: message`. They are read with `parse`, which also refuses
what a hand-written definition never holds but a hostile or broken file can: one key twice
in a mapping (YAML keeps the last silently), nesting deeper than `MAX_DEPTH`, and aliases
that expand to more than `MAX_VALUES` values (a "billion laughs" file would otherwise take
minutes and gigabytes to load).
"""

from __future__ import annotations

from collections.abc import Sequence

import yaml

__all__ = [
    "MAX_DEPTH",
    "MAX_VALUES",
    "Positions",
    "YamlFault",
    "parse",
    "positions",
    "where",
]

Positions = dict[tuple[str, ...], str]
"""`line L, column C` of every mapping value and list item, by its path of keys and indexes."""

MAX_DEPTH = 64
"""Deepest nesting of mappings and lists a definition file may have."""
MAX_VALUES = 100_000
"""Most values a definition file may hold once its aliases are expanded."""


class YamlFault(ValueError):
    """The text is not YAML, or not YAML a definition file may be; the message says where."""


def parse(text: str) -> tuple[object, Positions]:
    """The value of a one-document YAML text and the position of each of its values.

    Raises:
        YamlFault: not valid YAML, a duplicate key, too deep, or too many values; the
            message names the line and column when the fault has one.
    """
    try:
        # The reader checks for unprintable characters as soon as it is made.
        loader = yaml.SafeLoader(text)
    except yaml.YAMLError as exc:
        raise YamlFault(f"not valid YAML: {exc}") from None
    try:
        try:
            node = loader.get_single_node()
        except yaml.YAMLError as exc:
            raise YamlFault(f"not valid YAML: {exc}") from None
        except RecursionError:
            raise YamlFault(f"nested deeper than {MAX_DEPTH} levels") from None
        if node is None:
            return None, {}
        found: Positions = {}
        _walk(node, (), found, [0])
        try:
            return loader.construct_document(node), found
        except yaml.YAMLError as exc:
            raise YamlFault(f"not valid YAML: {exc}") from None
        except ValueError as exc:
            # e.g. an integer of more digits than Python converts from text.
            raise YamlFault(f"not valid YAML: {exc}") from None
    finally:
        loader.dispose()


def positions(node: yaml.Node | None) -> Positions:
    """Where each value of a composed YAML document starts.

    Raises:
        YamlFault: the document is too deep, too large, or repeats a key.
    """
    out: Positions = {}
    if node is not None:
        _walk(node, (), out, [0])
    return out


def _at(node: yaml.Node) -> str:
    mark = node.start_mark
    return f"line {mark.line + 1}, column {mark.column + 1}"


def _walk(node: yaml.Node, path: tuple[str, ...], out: Positions, count: list[int]) -> None:
    count[0] += 1
    if count[0] > MAX_VALUES:
        raise YamlFault(f"{_at(node)}: more than {MAX_VALUES} values once aliases are expanded")
    if len(path) > MAX_DEPTH:
        raise YamlFault(f"{_at(node)}: nested deeper than {MAX_DEPTH} levels")
    out[path] = _at(node)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                name = str(key.value)
                if name in seen and key.tag != "tag:yaml.org,2002:merge":
                    raise YamlFault(f"{_at(key)}: key {name!r} appears twice in one mapping")
                seen.add(name)
                _walk(value, (*path, name), out, count)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, str(i)), out, count)


def where(found: Positions, loc: Sequence[str]) -> str:
    """The position of `loc`, or of its nearest enclosing value that the file has."""
    loc = tuple(loc)
    for cut in range(len(loc), -1, -1):
        if loc[:cut] in found:
            return found[loc[:cut]]
    return "line 1, column 1"
