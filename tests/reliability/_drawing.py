"""Hypothesis helpers shared by the bad-input property tests.

`drawn` exists for tests that must send examples from the test's own event loop (HTTP to
an app over the dev server, an MCP session): hypothesis runs synchronously, so the
examples are drawn first, then sent. They are still hypothesis's examples (edge-seeking,
varied each run); only shrinking is lost.
"""

from __future__ import annotations

from typing import TypeVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.types import JsonValue

T = TypeVar("T")


def drawn(strategy: st.SearchStrategy[T], count: int) -> list[T]:
    """Up to `count` examples of `strategy`, drawn by hypothesis's engine."""
    found: list[T] = []

    @settings(
        max_examples=count, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(strategy)
    def collect(example: T) -> None:
        found.append(example)

    collect()
    return found


def json_values(extra: list[JsonValue] | None = None) -> st.SearchStrategy[JsonValue]:
    """Any JSON value, small, with `extra` edge values among the scalars."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=40),
        *([st.sampled_from(extra)] if extra else []),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
        ),
        max_leaves=12,
    )
