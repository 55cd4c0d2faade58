"""The session's last model call: whether its final answer ends the session, and the end.

From `patches.LAST_CALL_GENERATION` the model-call activity closes the session itself
when the answer it got ends it, instead of a `finish_session` local activity after it (one
activation, one local activity and its marker fewer per session). It can, because the
workflow knows before the call whether a final answer would end the session, and both
sides compute what follows from that answer with the functions here: pure, so the
workflow may call them, and one definition, so the activity writes exactly the events
and output the workflow would have handed to `finish_session`.
"""

from __future__ import annotations

from pydantic import BaseModel

from orchestrator.plans.models import AgentStep, Plan
from orchestrator.providers.messages import ChatMessage
from orchestrator.session.payloads import recorded_output
from orchestrator.session.truncation import joined_answer
from orchestrator.session.types import ModelCallResult, SessionClosed
from orchestrator.types import JsonObject, JsonValue

__all__ = ["LastCallEnd", "ends_session", "final_output", "step_completed_payload"]


def ends_session(plan: Plan, step: AgentStep) -> bool:
    """Whether a final answer of `step` ends the session with nothing left to run or check.

    The plan's last step itself (not one held by a construct, which runs on after it), with
    no `accept` check (a rejected answer re-runs the step on a stronger model) and no
    output schema, of the step's or of the plan's (a broken one fails the session).
    """
    return (
        bool(plan.steps)
        and plan.steps[-1] is step
        and step.accept is None
        and step.output_schema is None
        and plan.output_schema is None
    )


def final_output(messages: list[ChatMessage], closed: SessionClosed | None = None) -> JsonValue:
    """The step's output from a conversation that ends with its final answer.

    A retry that found the session closed by an earlier attempt answers with that
    attempt's output (`closed.output`), not with an answer of its own.
    """
    if closed is not None and closed.output is not None:
        return closed.output
    return joined_answer(messages)


def step_completed_payload(step_id: str, output: JsonValue) -> JsonObject:
    """The `step_completed` event's payload for a step's output."""
    return {"output": recorded_output(step_id, output)}


class LastCallEnd(BaseModel):
    """What `orchestrator.closed_by_call` found: the end a closing call wrote, or nothing.

    `result` is the call's answer as a retry that found the end gives it
    (`ModelCallResult.closed` set), None when no attempt of the call wrote it.
    """

    result: ModelCallResult | None = None
