"""Recording outcome signals for the router to learn from: activity-side, never in workflows.

The workflow says whom an outcome is credited to (`Credit`: the pinned deployment, the
step's task type, the tenant) on the input of an activity it runs anyway (the `accept`
check, the approval decision, the audit events batch); these helpers write the signal to
the store from inside that activity, with a key derived from the run, so a retry writes it
once.
"""

from __future__ import annotations

from datetime import UTC, datetime

from orchestrator.observability.metrics import METRICS
from orchestrator.routing.learning import Signal, signal_score
from orchestrator.session.types import Credit, WorkflowEvent
from orchestrator.store.outcomes import OutcomeRecord
from orchestrator.store.records import EventKind
from orchestrator.store.store import Store

__all__ = ["event_signal", "record_outcome"]


def event_signal(event: WorkflowEvent) -> Signal | None:
    """The outcome a credited workflow event stands for, or None."""
    if event.credit is None:
        return None
    if event.kind is EventKind.TOOL_ERROR:
        return Signal.TOOL_ARGUMENT_ERROR
    if event.kind is EventKind.STEP_FAILED:
        return Signal.SCHEMA_FAILURE
    return None


async def record_outcome(
    store: Store,
    credit: Credit,
    signal: Signal,
    *,
    key: str,
    session_id: str,
    step_id: str | None,
    score: float | None = None,
    detail: str | None = None,
) -> bool:
    """Write one outcome of `credit`'s deployment; False when it was written before."""
    rec = OutcomeRecord(
        outcome_key=key,
        session_id=session_id,
        tenant=credit.tenant,
        task_type=credit.task_type,
        deployment=credit.deployment,
        signal=signal,
        score=signal_score(signal, score),
        step_id=step_id,
        detail=detail[:500] if detail else None,
        created_at=datetime.now(UTC),
    )
    written = await store.outcomes.record(rec)
    if written:
        METRICS.outcome(rec.tenant, rec.deployment, rec.task_type, rec.signal.value, rec.score)
    return written
