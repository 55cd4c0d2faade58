"""A session's full story, rebuilt from the audit store alone.

The store is the record: the plan and skill versions a session resolved, every model it
pinned (with the boundary and the reason), every model call with its tokens and cost,
every tool call with the contract version and outcome, every approval with who decided
and why, each step's output and the session's final output. `build_story` turns a
session's rows into one pydantic model, which the CLI prints as tables or as JSON. It
reads payload fields defensively: events written by older versions of the runtime lack
some of them.
"""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import BaseModel, Field

from orchestrator.store.records import (
    ApprovalRecord,
    ApprovalStatus,
    AuditEvent,
    EventKind,
    SessionRecord,
)
from orchestrator.types import JsonObject, JsonValue

__all__ = [
    "ApprovalEntry",
    "ModelCallEntry",
    "PinEntry",
    "SessionStory",
    "StepEntry",
    "ToolCallEntry",
    "build_story",
    "call_label",
]

_AGENT_CALL = re.compile(r"(?:f(\d+)\.)?(\d+)\.(\d+)")


def call_label(call_id: str | None) -> str | None:
    """A tool call's number as people count: round 1, call 1 is `1.1`.

    Call ids are 0-based (`0.0`) and stay so: idempotency keys and audit keys are built
    from them. A re-run after a forced failover (`f1.0.0`) says so. None for a call that
    is not an agent's (a skill step's single call).
    """
    match = _AGENT_CALL.fullmatch(call_id or "")
    if match is None:
        return None
    failover, round_no, index = match.groups()
    label = f"{int(round_no) + 1}.{int(index) + 1}"
    return f"{label} (failover {failover})" if failover else label


class StepEntry(BaseModel):
    """One plan step as it ran."""

    step_id: str
    type: str | None = None
    status: str = "running"
    error: str | None = None
    output: JsonValue = None
    """What the step produced (recorded by runtimes from this version on; a stand-in with
    a preview when it was over the event's size limit)."""


class PinEntry(BaseModel):
    """One routing decision: the model pinned at a boundary, and why."""

    step_id: str | None
    model: str
    boundary: str | None
    reason: str | None
    previous: str | None = None
    switched: bool = False
    """The pinned model changed here (a forced failover is one, with its `cause`)."""
    cause: str | None = None
    policy: str | None = None
    rules_fired: list[str] = Field(default_factory=list)
    at: datetime


class ModelCallEntry(BaseModel):
    """One call to the pinned model."""

    step_id: str | None
    round: int | None
    """0-based, as recorded; people read `round + 1`."""
    model: str | None
    deployment: str | None
    tool_calls: list[str] = Field(default_factory=list)
    input_tokens: int
    output_tokens: int
    cost_usd: float
    duration_ms: float | None
    at: datetime


class ToolCallEntry(BaseModel):
    """One tool call and how it ended."""

    step_id: str | None
    call_id: str | None
    """As recorded: 0-based `round.index` (the idempotency key's part), `step` in a skill step."""
    call: str | None = None
    """The same, numbered from 1 as people count (`1.1`: round 1, first call); see
    `call_label`."""
    skill: str | None
    version: str | None
    outcome: str
    """`ok`, `invalid_arguments`, `invalid_call`, `failed` or `rejected`."""
    arguments: JsonValue = None
    error: str | None = None
    approval_id: str | None = None
    duration_ms: float | None = None
    at: datetime


class ApprovalEntry(BaseModel):
    """One approval request and its decision."""

    approval_id: str
    step_id: str
    kind: str
    skill: str | None
    skill_version: str | None
    summary: str
    status: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    reason: str | None


class SessionStory(BaseModel):
    """Everything the store knows about one session."""

    session: SessionRecord
    plan: str
    plan_version: str
    requested_by: str | None = None
    skills: dict[str, str] = Field(default_factory=dict)
    """Skill versions the session resolved at start, by name."""
    steps: list[StepEntry] = Field(default_factory=list)
    final_output: JsonValue = None
    """The session's output (its last step's), once it completed."""
    model_timeline: list[PinEntry] = Field(default_factory=list)
    model_calls: list[ModelCallEntry] = Field(default_factory=list)
    tool_calls: list[ToolCallEntry] = Field(default_factory=list)
    approvals: list[ApprovalEntry] = Field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    cost_by_model: dict[str, float] = Field(default_factory=dict)
    runs: int = 1
    """Workflow runs the session took: one more each time it continued as new."""
    events: int = 0


def _str(payload: JsonObject, key: str) -> str | None:
    value = payload.get(key)
    return None if value is None else str(value)


def _int(payload: JsonObject, key: str) -> int | None:
    value = payload.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def build_story(
    session: SessionRecord, events: list[AuditEvent], approvals: list[ApprovalRecord]
) -> SessionStory:
    """Assemble a session's story from its row, its audit events and its approvals."""
    story = SessionStory(
        session=session,
        plan=session.plan_name,
        plan_version=session.plan_version,
        events=len(events),
    )
    steps: dict[str, StepEntry] = {}
    for event in events:
        _apply(story, steps, event)
    story.steps = list(steps.values())
    story.final_output = session.output
    for rec in approvals:
        story.approvals.append(
            ApprovalEntry(
                approval_id=rec.approval_id,
                step_id=rec.step_id,
                kind=rec.kind,
                skill=rec.skill,
                skill_version=rec.skill_version,
                summary=rec.summary,
                status=rec.status.value,
                requested_at=rec.requested_at,
                decided_by=rec.decided_by,
                decided_at=rec.decided_at,
                reason=rec.reason,
            )
        )
        if rec.kind == "tool_call" and rec.status is ApprovalStatus.REJECTED:
            story.tool_calls.append(
                ToolCallEntry(
                    step_id=rec.step_id,
                    call_id=None,
                    skill=rec.skill,
                    version=rec.skill_version,
                    outcome="rejected",
                    arguments=rec.arguments,
                    error=f"rejected by {rec.decided_by}: {rec.reason}",
                    approval_id=rec.approval_id,
                    at=rec.decided_at or rec.requested_at,
                )
            )
    story.tool_calls.sort(key=lambda entry: entry.at)
    # The session row holds the totals once it finished; while it runs, sum the calls.
    calls = story.model_calls
    story.input_tokens = session.input_tokens or sum(c.input_tokens for c in calls)
    story.output_tokens = session.output_tokens or sum(c.output_tokens for c in calls)
    story.cost_usd = session.cost_usd or sum(c.cost_usd for c in calls)
    return story


def _apply(story: SessionStory, steps: dict[str, StepEntry], event: AuditEvent) -> None:
    p = event.payload
    step = event.step_id
    match event.kind:
        case EventKind.SESSION_STARTED:
            skills = p.get("skills")
            if isinstance(skills, dict):
                story.skills = {str(k): str(v) for k, v in skills.items()}
            story.requested_by = _str(p, "requested_by")
        case EventKind.STEP_STARTED if step:
            steps[step] = StepEntry(step_id=step, type=_str(p, "type"))
        case EventKind.STEP_COMPLETED if step:
            entry = steps.setdefault(step, StepEntry(step_id=step))
            entry.status, entry.output = "completed", p.get("output")
        case EventKind.STEP_FAILED if step:
            entry = steps.setdefault(step, StepEntry(step_id=step))
            entry.status, entry.error = "failed", _str(p, "error")
        case EventKind.MODEL_PINNED:
            _pin(story, event)
        case EventKind.MODEL_CALL:
            calls = p.get("tool_calls")
            story.model_calls.append(
                ModelCallEntry(
                    step_id=step,
                    round=_int(p, "round"),
                    model=event.model,
                    deployment=_str(p, "deployment"),
                    tool_calls=[str(c) for c in calls] if isinstance(calls, list) else [],
                    input_tokens=event.input_tokens,
                    output_tokens=event.output_tokens,
                    cost_usd=event.cost_usd,
                    duration_ms=event.duration_ms,
                    at=event.created_at,
                )
            )
            key = event.model or "unknown"
            story.cost_by_model[key] = story.cost_by_model.get(key, 0.0) + event.cost_usd
        case EventKind.TOOL_CALL | EventKind.TOOL_ERROR:
            story.tool_calls.append(_tool(event))
        case EventKind.CONTINUED_AS_NEW:
            story.runs += 1
        case _:
            pass


def _pin(story: SessionStory, event: AuditEvent) -> None:
    p = event.payload
    previous = _str(p, "previous")
    fired = p.get("rules_fired")
    story.model_timeline.append(
        PinEntry(
            step_id=event.step_id,
            model=event.model or "unknown",
            boundary=_str(p, "boundary"),
            reason=_str(p, "reason"),
            previous=previous,
            switched=previous is not None and previous != event.model,
            cause=_str(p, "cause"),
            policy=_str(p, "policy"),
            rules_fired=[str(r) for r in fired] if isinstance(fired, list) else [],
            at=event.created_at,
        )
    )


def _tool(event: AuditEvent) -> ToolCallEntry:
    p = event.payload
    if event.kind is EventKind.TOOL_CALL:
        outcome = "ok"
    elif event.skill is None and "tool" in p:
        outcome = "invalid_call"
    elif "skill" in p:
        outcome = "failed"
    else:
        outcome = _str(p, "error_kind") or "invalid_arguments"
    call_id = _str(p, "call_id")
    return ToolCallEntry(
        step_id=event.step_id,
        call_id=call_id,
        call=call_label(call_id),
        skill=event.skill or _str(p, "skill") or _str(p, "tool"),
        version=_str(p, "version"),
        outcome=outcome,
        arguments=p.get("arguments"),
        error=_str(p, "error"),
        approval_id=_str(p, "approval_id"),
        duration_ms=event.duration_ms,
        at=event.created_at,
    )
