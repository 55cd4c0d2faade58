"""Explicit feedback on a session, credited to the deployments that served it.

`POST /api/sessions/{id}/feedback` and `SessionHandle.feedback` both land here. Feedback
names a step or the whole session; it is credited to the deployment each step ended on
(its last pin in the audit trail, with the step's task type), as a `feedback` outcome with
the given score (1 good, 0 bad), counted in `orchestrator_routing_outcomes_total` and
`orchestrator_feedback_score`, and audited once as a `feedback_recorded` event. The
caller's `key` makes it idempotent: sending the same feedback again is a no-op, and
different feedback under a key already used is refused.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.exceptions import OrchestratorError
from orchestrator.observability.metrics import METRICS
from orchestrator.routing.learning import Signal
from orchestrator.store.outcomes import OutcomeRecord
from orchestrator.store.records import AuditEvent, EventKind
from orchestrator.store.store import Store

__all__ = ["Feedback", "FeedbackError", "give_feedback"]


class FeedbackError(OrchestratorError):
    """Feedback that cannot be credited: an unknown session or step, or no model ran."""


class Feedback(BaseModel):
    """What a person or program says about a session's (or one step's) result."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(min_length=1, max_length=200)
    """The caller's id for this feedback: the same key again is a no-op."""
    score: float = Field(ge=0, le=1)
    """1 good, 0 bad, or anything between."""
    step_id: str | None = None
    """The step it is about; None: every agent step of the session."""
    comment: str | None = Field(default=None, max_length=2000)


async def give_feedback(
    store: Store, session_id: str, feedback: Feedback, *, given_by: str
) -> list[OutcomeRecord]:
    """Record `feedback` against the deployment(s) it is about; the outcomes written.

    Raises:
        FeedbackError: no such session, no such step, or no model served it.
        OutcomeKeyConflict: the key was used before for different feedback.
    """
    session = await store.get_session(session_id)
    if session is None:
        raise FeedbackError(f"no session {session_id!r}")
    last: dict[str, tuple[str, str]] = {}
    for event in await store.list_events(session_id, kind=EventKind.MODEL_PINNED):
        if event.step_id and event.model:
            task_type = event.payload.get("task_type")
            last[event.step_id] = (
                event.model,
                task_type if isinstance(task_type, str) else "default",
            )
    if feedback.step_id is not None:
        if feedback.step_id not in last:
            steps = ", ".join(sorted(last)) or "none"
            raise FeedbackError(
                f"session {session_id!r} has no agent step {feedback.step_id!r}"
                f" that a model served (steps: {steps})"
            )
        last = {feedback.step_id: last[feedback.step_id]}
    if not last:
        raise FeedbackError(f"no model has served session {session_id!r} yet: nothing to credit")
    detail = f"{given_by}: {feedback.comment}" if feedback.comment else given_by
    now = datetime.now(UTC)
    records = [
        OutcomeRecord(
            outcome_key=f"feedback:{session_id}:{feedback.key}:{step}",
            session_id=session_id,
            tenant=session.tenant,
            task_type=task_type,
            deployment=deployment,
            signal=Signal.FEEDBACK,
            score=feedback.score,
            step_id=step,
            detail=detail,
            created_at=now,
        )
        for step, (deployment, task_type) in sorted(last.items())
    ]
    for rec in records:
        if await store.outcomes.record(rec):
            METRICS.outcome(rec.tenant, rec.deployment, rec.task_type, rec.signal.value, rec.score)
    # After the outcomes, which refuse different feedback under a used key (409) before
    # anything is audited; the same feedback again finds its event and writes nothing.
    await store.append_event(
        AuditEvent(
            event_key=f"feedback:{session_id}:{feedback.key}",
            session_id=session_id,
            workflow_id=session.workflow_id,
            run_id=session.run_id,
            kind=EventKind.FEEDBACK_RECORDED,
            step_id=feedback.step_id,
            payload={
                "key": feedback.key,
                "score": feedback.score,
                "comment": feedback.comment,
                "given_by": given_by,
            },
            created_at=now,
        )
    )
    return records
