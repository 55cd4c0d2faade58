"""Resolving the plans a plan runs as sub-plans: every one found, and no cycle.

Used when a session starts (the resolved plans travel with it, so a running session keeps
the versions it began with) and by `orchestrator validate` (so a missing plan or a cycle
is reported before anything runs).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from orchestrator.exceptions import PlanError
from orchestrator.plans.models import Plan

__all__ = ["resolve_subplans"]


def resolve_subplans(
    plan: Plan,
    known: Mapping[str, Plan],
    load: Callable[[], Mapping[str, Plan]] | None = None,
) -> dict[str, Plan]:
    """Every plan `plan` runs as a sub-plan, at any depth, by name.

    `known` is searched first; `load` (called at most once, only when a name is not in
    `known`) gives the project's plans.

    Raises:
        PlanError: a sub-plan names no plan, or plans run each other in a cycle.
    """
    found: dict[str, Plan] = {}
    loaded: Mapping[str, Plan] | None = None

    def lookup(name: str, by: str) -> Plan:
        nonlocal loaded
        if name in found:
            return found[name]
        if name in known:
            return known[name]
        if loaded is None and load is not None:
            loaded = load()
        if loaded is not None and name in loaded:
            return loaded[name]
        have = sorted({*known, *(loaded or {})})
        raise PlanError(
            f"plan {by!r} runs sub-plan {name!r}, which is not a plan of the project"
            f" (known: {', '.join(have) or 'none'})"
        )

    def visit(current: Plan, path: tuple[str, ...]) -> None:
        for name in current.subplan_names():
            if name in path:
                cycle = " -> ".join([*path[path.index(name) :], name])
                raise PlanError(f"sub-plans run each other in a cycle: {cycle}")
            sub = lookup(name, current.name)
            found[name] = sub
            visit(sub, (*path, name))

    visit(plan, (plan.name,))
    return found
