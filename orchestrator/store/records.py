"""Plain records the store reads and writes.

Activities build these and hand them to the store; the CLI and API read them back. They
are pydantic models so they serialise the same way everywhere (log lines, JSON API, CLI).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from orchestrator.types import JsonObject, JsonValue

__all__ = [
    "ENDED",
    "ApprovalRecord",
    "ApprovalStatus",
    "AuditEvent",
    "EventKind",
    "SessionRecord",
    "SessionStatus",
    "event_differences",
    "statuses_refused_for",
]


class SessionStatus(StrEnum):
    """Where a session is in its life."""

    RUNNING = "running"
    WAITING_APPROVAL = "waiting_approval"
    COMPLETED = "completed"
    FAILED = "failed"


ENDED = (SessionStatus.COMPLETED, SessionStatus.FAILED)
"""The statuses a session ends in."""


def statuses_refused_for(status: SessionStatus | None) -> tuple[str, ...]:
    """The stored statuses over which writing `status` is refused.

    An ended session keeps its end: another end is refused, and so is a status that would
    reopen it. The same end again (a retry of the write) is not refused; with no status
    written, nothing is.
    """
    if status is None:
        return ()
    return tuple(end.value for end in ENDED if end is not status)


class EventKind(StrEnum):
    """Kinds of audit event. Every routing decision, call, approval and cost is one."""

    SESSION_STARTED = "session_started"
    SESSION_COMPLETED = "session_completed"
    SESSION_FAILED = "session_failed"
    STEP_STARTED = "step_started"
    STEP_COMPLETED = "step_completed"
    STEP_FAILED = "step_failed"
    MODEL_PINNED = "model_pinned"
    MODEL_CALL = "model_call"
    TOOL_CALL = "tool_call"
    TOOL_ERROR = "tool_error"
    APPROVAL_REQUESTED = "approval_requested"
    APPROVAL_DECIDED = "approval_decided"
    APPROVAL_ESCALATED = "approval_escalated"
    """A request timed out at one group and moved to the next, or expired after the last."""
    APPROVAL_PARTIAL = "approval_partially_approved"
    """One of several required approvals (two-person rule): the action still waits."""
    APPROVAL_DELEGATED = "approval_delegated"
    """A member of the deciding group handed the request to another member."""
    CONTINUED_AS_NEW = "continued_as_new"
    ENSEMBLE_MERGED = "ensemble_merged"
    """Every model's answer to an ensemble step, the tally, and the merged answer."""
    SUBPLAN_STARTED = "subplan_started"
    """A sub-plan step started its child session (whose id the payload names)."""
    MCP_CALL = "mcp_call"
    """A `tools/call` over MCP, either direction: client identity, tool, version, outcome."""
    FEEDBACK_RECORDED = "feedback_recorded"
    """Explicit feedback on a session (`POST /api/sessions/{id}/feedback`): key, score,
    comment and who gave it; its outcomes are in `routing_outcomes`."""
    MCP_SENDING = "mcp_sending"
    """An outgoing `tools/call` of a tool that is not idempotent, written just before it is
    sent: an attempt with this row may have run, whatever became of it."""


class ApprovalStatus(StrEnum):
    """State of one approval request."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class SessionRecord(BaseModel):
    """One agent session: a workflow run of a plan."""

    session_id: str
    workflow_id: str
    run_id: str
    plan_name: str
    plan_version: str
    tenant: str = "default"
    """Whose session it is; cost reports and budgets group by it."""
    team: str = "default"
    status: SessionStatus = SessionStatus.RUNNING
    input: JsonObject = Field(default_factory=dict)
    output: JsonValue = None
    error: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    started_at: datetime
    ended_at: datetime | None = None


class AuditEvent(BaseModel):
    """One audit trail entry.

    `event_key` is derived from the workflow run and the point in it that produced the
    event, so an activity that is retried writes its event once, never twice.
    """

    event_key: str
    session_id: str
    workflow_id: str
    run_id: str
    kind: EventKind
    step_id: str | None = None
    model: str | None = None
    skill: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    duration_ms: float | None = None
    payload: JsonObject = Field(default_factory=dict)
    created_at: datetime
    id: int | None = None
    """Assigned by the store; orders events as written."""
    seq: int | None = None
    """Assigned by the store: the event's number in its session (1, 2, ...), in the order
    the events were committed; the id of the session's event stream."""


class ApprovalRecord(BaseModel):
    """A request for a person to approve an action, and its decision."""

    approval_id: str
    session_id: str
    workflow_id: str
    run_id: str
    step_id: str
    kind: str
    """`tool_call` (a gated skill call) or `step` (an approval step of the plan)."""
    skill: str | None = None
    skill_version: str | None = None
    arguments: JsonObject = Field(default_factory=dict)
    summary: str
    binding_hash: str
    status: ApprovalStatus = ApprovalStatus.PENDING
    requested_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None
    reason: str | None = None


EVENT_CONTENT = (
    "session_id",
    "workflow_id",
    "kind",
    "step_id",
    "model",
    "skill",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "payload",
)
"""What an audit event says. Left out: what the store assigns (`id`), what a retry measures
afresh (`created_at`, `duration_ms`), and `run_id`, since a run continued as new may write
again an event its previous run wrote under the same workflow-scoped key."""


def event_differences(stored: AuditEvent, new: AuditEvent) -> list[str]:
    """The content fields (payload keys as `payload.<key>`) in which two events differ.

    Empty for a true retry of the same event. Names only, never values: a payload may
    hold what an error message must not repeat.
    """
    found: list[str] = []
    for name in EVENT_CONTENT:
        old, now = getattr(stored, name), getattr(new, name)
        if name == "payload":
            found += [
                f"payload.{key}"
                for key in sorted(old.keys() | now.keys())
                if old.get(key) != now.get(key)
            ]
        elif old != now:
            found.append(name)
    return found
