"""The one way a session's start is built, on either side of Temporal's durable boundary.

Every surface that starts a session (`orchestrator run`, `orchestrator.start`, the MCP
skill server, a parent workflow through `orchestrator.child`, a plan's `subplan` step)
builds its workflow input here, so each checks the input against the plan the same way
and fills the same fields. The builder is pure: no clock, no randomness, no I/O, so
workflow code may call it; the caller supplies a fresh id from its own source (`uuid4`
outside a workflow, `workflow.uuid4()` inside one, so a replay derives the same id).

What only a client may do before a start, the budget check against the store, is
`orchestrator.service.checked_start`, which wraps this.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, Field

from orchestrator.exceptions import SessionInputError
from orchestrator.plans.models import Plan
from orchestrator.session.types import SessionOptions, SessionStartInput
from orchestrator.types import JsonObject

__all__ = ["StartOptions", "build_start"]


class StartOptions(BaseModel):
    """How a session starts, apart from its plan and input: whose it is and who asked.

    One model for every starter's knobs, so adding one is a field here rather than a
    keyword re-listed through `orchestrator.start`, the service and the CLI.
    """

    session_id: str | None = None
    """The session's id (its workflow id is `session-<id>`); empty: a fresh one."""
    requested_by: str | None = None
    """Who asked, for the audit trail and the approval rules (no self-approval)."""
    tenant: str = "default"
    """Whose session this is: routing rules, pins and budgets are scoped by it."""
    team: str = "default"
    options: SessionOptions = Field(default_factory=SessionOptions)
    """How each kind of activity is scheduled (timeouts, retries, local or not)."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Request headers of the client that started the session, for routing rules."""
    subplans: dict[str, Plan] = Field(default_factory=dict)
    """Plans it runs as sub-plans, when they are not (or should not be) the project's
    own files; any left out are loaded from the project when the session starts."""


def build_start(
    plan: Plan, input: JsonObject, how: StartOptions, *, fresh_id: Callable[[], str] | None = None
) -> SessionStartInput:
    """The workflow input of a session of `plan` on `input`, started as `how` says.

    `fresh_id` is called only when `how` names no session id (and must be given then).

    Raises:
        SessionInputError: the input lacks a key the plan requires or breaks its
            `input_schema`; the message names the plan and every fault.
        ValueError: neither `how.session_id` nor `fresh_id` was given.
    """
    faults = plan.input_faults(input)
    if faults:
        raise SessionInputError(f"plan {plan.name!r}: input does not fit: {'; '.join(faults)}")
    session_id = how.session_id
    if session_id is None:
        if fresh_id is None:
            raise ValueError("build_start: name the session id or give fresh_id")
        session_id = fresh_id()
    return SessionStartInput(
        session_id=session_id,
        plan=plan,
        input=input,
        requested_by=how.requested_by,
        options=how.options,
        tenant=how.tenant,
        team=how.team,
        headers=how.headers,
        subplans=how.subplans,
    )
