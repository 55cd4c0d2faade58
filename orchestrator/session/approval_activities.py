"""Activities of the approval wait: resolve the policy, and escalate a request that timed out.

The policy (which group, how many people, how long each group has) comes from the
project's approvers file and the skill's risk level in its contract, read here, outside
workflow code and out of the model's reach. An escalation is an audit event and, when the
next group has a webhook, a JSON POST over httpx:

```json
{"event": "approval_escalated", "approval_id": "apr_…", "session_id": "…",
 "workflow_id": "session-…", "step_id": "investigate", "skill": "payments.refund",
 "arguments": {...}, "summary": "…", "from_group": "finance", "to_group": "ops",
 "waited_seconds": 3600.0, "expired": false}
```

`to_group` is null and `expired` true when the last group's time ran out; that notice
goes to the last group's webhook. A webhook that fails is logged, never retried into
the workflow: the escalation itself has happened either way.

They live beside the workflow (their inputs carry its `CallContext`); the policy itself
is the approvals domain's rule, `orchestrator.approvals.rules.policy_for`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from temporalio import activity

from orchestrator.approvals.people import approvers_file, load_approvers
from orchestrator.approvals.rules import policy_for
from orchestrator.logs import get_logger
from orchestrator.runtime import Runtime
from orchestrator.session import names
from orchestrator.session.types import (
    Ack,
    ApprovalPolicy,
    ApprovalRequestInput,
    EscalationInput,
)
from orchestrator.store.records import AuditEvent, EventKind
from orchestrator.types import JsonObject

__all__ = ["ApprovalActivities", "escalation_payload"]

log = get_logger(__name__)


def escalation_payload(request: EscalationInput) -> JsonObject:
    """The documented webhook body of an escalation."""
    pending, ctx = request.approval, request.ctx
    return {
        "event": "approval_escalated",
        "approval_id": pending.approval_id,
        "session_id": ctx.session_id,
        "workflow_id": ctx.workflow_id,
        "step_id": pending.step_id,
        "skill": pending.skill,
        "arguments": pending.arguments,
        "summary": pending.summary,
        "from_group": request.from_group,
        "to_group": request.to_group,
        "waited_seconds": request.waited_seconds,
        "expired": request.to_group is None,
    }


class ApprovalActivities:
    """The approval activities over one process's runtime."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def all(self) -> list[Callable[..., Any]]:
        """Every activity, for a worker's `activities=`."""
        return [self.resolve_approval_policy, self.escalate_approval]

    @activity.defn(name=names.RESOLVE_APPROVAL_POLICY)
    async def resolve_approval_policy(self, request: ApprovalRequestInput) -> ApprovalPolicy:
        """Who decides this request, how many of them, and how long each group has."""
        directory = load_approvers(approvers_file(self.runtime.settings.project_dir))
        return policy_for(directory, request.approval)

    @activity.defn(name=names.ESCALATE_APPROVAL)
    async def escalate_approval(self, request: EscalationInput) -> Ack:
        """Record the escalation (or expiry) and notify the group it now waits on."""
        ctx, pending = request.ctx, request.approval
        payload = escalation_payload(request)
        level = "expired" if request.to_group is None else request.to_group
        await self.runtime.store.append_event(
            AuditEvent(
                event_key=f"{ctx.workflow_id}:{ctx.step_id or '-'}:"
                f"approval_escalated:{pending.approval_id}:{level}",
                session_id=ctx.session_id,
                workflow_id=ctx.workflow_id,
                run_id=ctx.run_id,
                kind=EventKind.APPROVAL_ESCALATED,
                step_id=ctx.step_id,
                skill=pending.skill,
                payload=payload,
                created_at=datetime.now(UTC),
            )
        )
        directory = load_approvers(approvers_file(self.runtime.settings.project_dir))
        url = directory.policy.webhooks.get(request.to_group or request.from_group or "")
        if url:
            try:
                async with httpx.AsyncClient(timeout=10.0) as http:
                    answer = await http.post(url, json=payload)
                    answer.raise_for_status()
            except httpx.HTTPError as exc:
                log.warning("escalation webhook failed", url=url, error=str(exc))
        log.info(
            "approval escalated",
            approval_id=pending.approval_id,
            from_group=request.from_group,
            to_group=request.to_group,
        )
        return Ack()
