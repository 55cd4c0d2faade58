"""A skill version as an MCP tool: its contract's schemas, description and risk hints."""

from __future__ import annotations

import mcp_types as types

from orchestrator.skills.models import RiskLevel, SkillSpec

__all__ = ["annotations_for", "tool_for"]


def annotations_for(spec: SkillSpec) -> types.ToolAnnotations:
    """The MCP hints a contract's risk level implies.

    Clients treat hints as advice only; the server itself still enforces the contract
    (approval, idempotency) whatever a client does with them.
    """
    risk = spec.risk
    return types.ToolAnnotations(
        title=spec.name,
        read_only_hint=risk is RiskLevel.READ_ONLY,
        destructive_hint=risk in (RiskLevel.IRREVERSIBLE_WRITE, RiskLevel.EXTERNAL_SIDE_EFFECT),
        idempotent_hint=spec.idempotent,
        open_world_hint=risk is RiskLevel.EXTERNAL_SIDE_EFFECT,
    )


def tool_for(spec: SkillSpec) -> types.Tool:
    """The MCP tool of one skill version; `_meta` names the exact contract version."""
    return types.Tool(
        name=spec.name,
        description=spec.description,
        input_schema=spec.input_schema,
        output_schema=spec.output_schema,
        annotations=annotations_for(spec),
        meta={
            "orchestrator/version": spec.version,
            "orchestrator/risk": spec.risk.value,
            "orchestrator/requires_approval": spec.requires_approval,
        },
    )
