"""Spend summaries: by tenant, by model, or by the skills model calls led to.

Tenant and model are grouped in the database (`Store.reports.spend`). By skill, spend is
attributed from the audit trail: each model call's cost is split evenly over the tool
calls it asked for, so a skill's figure is what the models spent deciding to call it;
answers without tool calls count under `(no tool call)`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from orchestrator.store.records import AuditEvent, EventKind
from orchestrator.store.reports import SpendRow
from orchestrator.store.store import Store

__all__ = ["NO_TOOL", "CostGroup", "cost_report", "spend_by_skill"]

CostGroup = Literal["tenant", "model", "skill"]
NO_TOOL = "(no tool call)"


async def cost_report(store: Store, by: CostGroup, *, since: datetime | None) -> list[SpendRow]:
    """Spend grouped as asked, largest first."""
    if by == "skill":
        events = await store.reports.events(
            [
                EventKind.MODEL_CALL,
                EventKind.TOOL_CALL,
                EventKind.TOOL_ERROR,
                EventKind.SESSION_STARTED,
            ],
            since=since,
        )
        return spend_by_skill(events)
    return await store.reports.spend(by, since=since)


def spend_by_skill(events: list[AuditEvent]) -> list[SpendRow]:
    """Attribute model-call spend to the skills each call asked for."""
    tool_to_skill: dict[str, str] = {}
    for event in events:
        names: list[str] = []
        if event.kind is EventKind.SESSION_STARTED:
            skills = event.payload.get("skills")
            names = [str(name) for name in skills] if isinstance(skills, dict) else []
        elif event.skill:
            names = [event.skill]
        for name in names:
            tool_to_skill[name.replace(".", "_")] = name
    rows: dict[str, SpendRow] = {}
    sessions: dict[str, set[str]] = {}
    for event in events:
        if event.kind is not EventKind.MODEL_CALL:
            continue
        asked = event.payload.get("tool_calls")
        tools = [str(t) for t in asked] if isinstance(asked, list) and asked else [NO_TOOL]
        share = 1 / len(tools)
        for tool in tools:
            key = tool_to_skill.get(tool, tool)
            row = rows.setdefault(
                key,
                SpendRow(
                    key=key,
                    sessions=0,
                    model_calls=0,
                    input_tokens=0,
                    output_tokens=0,
                    cost_usd=0.0,
                ),
            )
            row.model_calls += 1
            row.input_tokens += round(event.input_tokens * share)
            row.output_tokens += round(event.output_tokens * share)
            row.cached_input_tokens += round(_count(event, "cached_input_tokens") * share)
            row.cache_write_tokens += round(_count(event, "cache_write_tokens") * share)
            row.cost_usd += event.cost_usd * share
            sessions.setdefault(key, set()).add(event.session_id)
    for key, row in rows.items():
        row.sessions = len(sessions[key])
    return sorted(rows.values(), key=lambda row: (-row.cost_usd, row.key))


def _count(event: AuditEvent, key: str) -> int:
    value = event.payload.get(key)
    return value if isinstance(value, int) else 0
