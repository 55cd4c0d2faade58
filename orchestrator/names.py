"""Stable names of the workflow, its query, update and signal, and its activities.

Names are part of every recorded history; they are spelled here once and never derived
from Python objects, so renaming a method cannot break a running session.

They are the contract between the workflow and its clients, so they live outside both:
the approvals surfaces call the updates and the query without importing the session.
`orchestrator.session.names` re-exports them.
"""

from __future__ import annotations

__all__ = [
    "CALL_MODEL",
    "CALL_SKILL",
    "CHECK_ANSWER",
    "CHECK_CALL",
    "CLOSED_BY_CALL",
    "DECIDE_APPROVAL",
    "DELEGATE_APPROVAL",
    "ESCALATE_APPROVAL",
    "FINISH_SESSION",
    "RECORD_APPROVAL_DECISION",
    "RECORD_APPROVAL_REQUEST",
    "RECORD_EVENTS",
    "REQUEST_APPROVAL",
    "REQUEST_MODEL_SWITCH",
    "RESOLVE_APPROVAL_POLICY",
    "ROUTE",
    "SETTLE_BUDGET",
    "START_SESSION",
    "STATE_QUERY",
    "WORKFLOW_NAME",
    "workflow_id_for",
]

WORKFLOW_NAME = "orchestrator.AgentSession"


def workflow_id_for(session_id: str) -> str:
    """The workflow id of a session: stable, so a session can be found from its id."""
    return f"session-{session_id}"


STATE_QUERY = "state"
DECIDE_APPROVAL = "decide_approval"
DELEGATE_APPROVAL = "delegate_approval"
REQUEST_MODEL_SWITCH = "request_model_switch"

START_SESSION = "orchestrator.start_session"
CALL_MODEL = "orchestrator.call_model"
CALL_SKILL = "orchestrator.call_skill"
CHECK_CALL = "orchestrator.check_call"
RECORD_EVENTS = "orchestrator.record_events"
RECORD_APPROVAL_REQUEST = "orchestrator.record_approval_request"
RECORD_APPROVAL_DECISION = "orchestrator.record_approval_decision"
RESOLVE_APPROVAL_POLICY = "orchestrator.resolve_approval_policy"
REQUEST_APPROVAL = "orchestrator.request_approval"
ESCALATE_APPROVAL = "orchestrator.escalate_approval"
FINISH_SESSION = "orchestrator.finish_session"
CLOSED_BY_CALL = "orchestrator.closed_by_call"
ROUTE = "orchestrator.route"
CHECK_ANSWER = "orchestrator.check_answer"
SETTLE_BUDGET = "orchestrator.settle_budget"
