"""The approval payloads: what a waiting request is, and what people send to decide it.

They cross the session workflow's boundary (its state query, its two updates, the policy
activity), so the session imports them from here, never the other way round: the
approvals domain depends on nothing in `orchestrator.session`. `orchestrator.session.types`
re-exports them under their old names. The JSON of each is what recorded histories hold
(pydantic's, without class or module names), so moving them changed nothing on the wire.

`SessionView` is the part of the session's state query that approvals pages read,
declared here so they need not import the session's own `SessionState`.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from orchestrator.types import JsonObject

__all__ = [
    "ApprovalDecision",
    "ApprovalDecisionResult",
    "ApprovalDelegation",
    "ApprovalDelegationResult",
    "ApprovalPolicy",
    "PendingApproval",
    "SessionView",
    "StepView",
]


class PendingApproval(BaseModel):
    """An action waiting for a person."""

    approval_id: str
    kind: str
    step_id: str
    skill: str | None = None
    skill_version: str | None = None
    arguments: JsonObject = Field(default_factory=dict)
    summary: str
    binding_hash: str
    risk: str | None = None
    """The skill's risk level, from its contract (None for an approval step)."""
    group: str | None = None
    """The group that may decide now; set by the runtime's policy, moved on by escalation."""
    required: int = 1
    """How many distinct people must approve (2: the two-person rule)."""
    approved_by: list[str] = Field(default_factory=list)
    """Who has approved so far, while more approvals are required."""
    delegate: str | None = None
    """The one member of `group` a member handed the request to; only they may decide it,
    until they approve (with two approvals needed, the rest of the group decides the
    second) or the request escalates to the next group."""
    delegations: int = 0
    """How many times the request was delegated (each one is an audit event)."""
    chain: list[str] = Field(default_factory=list)
    """The groups the request moves to, in order, when a group's time runs out."""
    deadline: datetime | None = None
    """When the current group's time runs out (None: no timeout)."""


class ApprovalPolicy(BaseModel):
    """Who decides a request and how long they have, from the project's approvers file."""

    group: str | None = None
    required: int = 1
    escalation: list[str] = Field(default_factory=list)
    """The groups a request moves to, in order, each time `timeout_seconds` passes."""
    timeout_seconds: float | None = None
    """None: wait for ever. After the last group's timeout the request expires, rejected."""


class ApprovalDecision(BaseModel):
    """A person's decision, sent to the workflow as an update.

    `binding_hash` is the hash of the exact action the person was shown; a decision whose
    hash differs from the pending action's is refused, so approving one call can never
    release another.
    """

    approval_id: str
    binding_hash: str
    approve: bool
    decided_by: str = Field(min_length=1)
    reason: str | None = None
    groups: list[str] | None = None
    """The decider's groups as the API or inbox authenticated them; the workflow refuses a
    decision from outside the request's group. None from operator surfaces (the CLI)."""
    arguments: JsonObject | None = None
    """An approver's edit of the arguments (approve only), already checked against the
    contract by the surface that took it; the call runs with these instead."""
    edited_binding_hash: str | None = None
    """Set by the workflow: the binding hash of the edited action that the approval covers."""


class ApprovalDecisionResult(BaseModel):
    """What the workflow did with a decision."""

    approval_id: str
    status: str
    decided_by: str
    duplicate: bool = False
    """True when the same decision had already been taken; nothing changed."""


class ApprovalDelegation(BaseModel):
    """Hand a pending request to another member of its group, sent as an update.

    The surface that took it (API, inbox, CLI) authenticated both people and sends their
    groups from the approvers file; the workflow checks them against the request.
    """

    approval_id: str
    binding_hash: str
    delegated_by: str = Field(min_length=1)
    groups: list[str]
    """The delegating person's groups."""
    to: str = Field(min_length=1)
    to_groups: list[str]
    """The delegate's groups."""
    reason: str | None = None


class ApprovalDelegationResult(BaseModel):
    """Who the request waits on now."""

    approval_id: str
    delegate: str
    group: str | None


class StepView(BaseModel):
    """One step of the session's state query, as far as an approvals page shows it."""

    id: str
    status: str = "pending"


class SessionView(BaseModel):
    """The session's state query (`SessionState`), read for what approvals pages need.

    Fields this does not name are ignored, so the session's state can grow freely; a
    test keeps these names a subset of `SessionState`'s.
    """

    pending_approvals: list[PendingApproval] = Field(default_factory=list)
    steps: list[StepView] = Field(default_factory=list)
