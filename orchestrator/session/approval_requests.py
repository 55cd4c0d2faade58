"""What an approval request is, as pure functions of the action it guards.

The workflow builds a request from these before it waits, and the `check_call` activity
(`patches.CHECK_GENERATION`) builds the same request from the same inputs when it finds a
call gated: the request's id is a hash of the action (`approvals.binding`), so both
agree on it without talking.
"""

from __future__ import annotations

import json

from orchestrator.approvals.binding import approval_id_for, binding_hash
from orchestrator.session.types import PendingApproval
from orchestrator.skills.models import SkillSpec
from orchestrator.types import JsonObject

__all__ = ["call_summary", "pending_request"]


def call_summary(spec: SkillSpec, arguments: JsonObject) -> str:
    """What an approver reads about a gated tool call."""
    return (
        f"{spec.name}@{spec.version} ({spec.risk.value})"
        f" with {json.dumps(arguments, sort_keys=True)}"
    )


def pending_request(
    *,
    workflow_id: str,
    step_id: str,
    call_id: str,
    spec: SkillSpec | None,
    arguments: JsonObject,
    summary: str,
) -> PendingApproval:
    """The request bound to exactly this action (a tool call, or an approval step's summary)."""
    binding = binding_hash(
        workflow_id=workflow_id,
        step_id=step_id,
        call_id=call_id,
        skill=spec.name if spec else None,
        skill_version=spec.version if spec else None,
        arguments=arguments,
    )
    return PendingApproval(
        approval_id=approval_id_for(binding),
        kind="tool_call" if spec else "step",
        step_id=step_id,
        skill=spec.name if spec else None,
        skill_version=spec.version if spec else None,
        arguments=arguments,
        summary=summary,
        binding_hash=binding,
        risk=spec.risk.value if spec else None,
    )
