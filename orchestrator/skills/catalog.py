"""The skill catalog as JSON-able data, for `orchestrator skills show` and the HTTP API.

A later API route serves `catalog()` read-only: plain dicts of JSON values, so any transport
(a Starlette route, an MCP resource) can send them as they are.
"""

from __future__ import annotations

from orchestrator.skills.models import SkillSpec
from orchestrator.skills.registry import SkillRegistry
from orchestrator.types import JsonObject, JsonValue

__all__ = ["approval_text", "catalog", "describe"]


def approval_text(spec: SkillSpec) -> str:
    """The approval policy in words: `always`, `none`, or `when <CEL expression>`."""
    if spec.requires_approval:
        return "always"
    return f"when {spec.approval_condition}" if spec.approval_condition else "none"


def _seconds(value: object) -> JsonValue:
    total = getattr(value, "total_seconds", None)
    return total() if callable(total) else None


def describe(spec: SkillSpec) -> JsonObject:
    """One skill version's contract, with its input and output JSON Schemas."""
    return {
        "name": spec.name,
        "version": spec.version,
        "tool_name": spec.tool_name,
        "description": spec.description,
        "risk": spec.risk.value,
        "approval": approval_text(spec),
        "idempotent": spec.idempotent,
        "idempotency_key": list(spec.idempotency_key),
        "reads": list(spec.reads),
        "writes": list(spec.writes),
        "timeout_seconds": _seconds(spec.timeout),
        "retry": {
            "max_attempts": spec.max_attempts,
            "initial_interval_seconds": _seconds(spec.initial_retry),
            "max_interval_seconds": _seconds(spec.max_retry),
        },
        "owner": spec.owner,
        "deprecated": spec.deprecated,
        "implementation": spec.implementation,
        "source": spec.source,
        "input_schema": spec.input_schema,
        "output_schema": spec.output_schema,
    }


def catalog(registry: SkillRegistry) -> JsonObject:
    """Every skill with its versions (oldest first) and the version a bare name resolves to."""
    skills: list[JsonValue] = []
    for name in registry.names():
        versions = [item.spec for item in registry.versions(name)]
        current = [s.version for s in versions if not s.deprecated]
        skills.append(
            {
                "name": name,
                "latest": current[-1] if current else None,
                "versions": [describe(spec) for spec in versions],
            }
        )
    return {"skills": skills}
