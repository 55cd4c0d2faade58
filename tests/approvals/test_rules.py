"""The approval rules without a worker: each refusal, its typed error, and what passes."""

from __future__ import annotations

import re

import pytest

from orchestrator.approvals.people import ApproverDirectory
from orchestrator.approvals.rules import (
    check_bound,
    check_content,
    check_decider,
    check_decision,
    check_delegate_in_group,
    check_delegation,
    delegates,
    policy_for,
    same_decision,
)
from orchestrator.approvals.types import (
    ApprovalDecision,
    ApprovalDelegation,
    PendingApproval,
    SessionView,
    StepView,
)
from orchestrator.exceptions import (
    ApprovalAlreadyDecided,
    ApprovalBindingMismatch,
    ApprovalBySelf,
    ApprovalDelegated,
    ApprovalDelegationRefused,
    ApprovalDelegationUnsupported,
    ApprovalEditNotAllowed,
    ApprovalError,
    ApprovalNotInGroup,
    ApprovalReasonRequired,
    UnknownApproval,
)

WHERE = "session s1"


def _pending(**update: object) -> PendingApproval:
    base = PendingApproval(
        approval_id="apr_1",
        kind="tool_call",
        step_id="investigate",
        skill="payments.refund",
        skill_version="1.0.0",
        arguments={"amount": 10},
        summary="refund 10",
        binding_hash="h1",
        risk="irreversible_write",
        group="finance",
    )
    return base.model_copy(update=update)


def _decision(**update: object) -> ApprovalDecision:
    base = ApprovalDecision(
        approval_id="apr_1", binding_hash="h1", approve=True, decided_by="lee", groups=["finance"]
    )
    return base.model_copy(update=update)


def _delegation(**update: object) -> ApprovalDelegation:
    base = ApprovalDelegation(
        approval_id="apr_1",
        binding_hash="h1",
        delegated_by="lee",
        groups=["finance"],
        to="kim",
        to_groups=["finance"],
    )
    return base.model_copy(update=update)


def _decide(
    decision: ApprovalDecision, pending: PendingApproval | None = None, **kw: object
) -> None:
    prior = kw.get("prior")
    assert prior is None or isinstance(prior, ApprovalDecision)
    check_decision(
        decision,
        pending=_pending() if pending is None else pending,
        prior=prior,
        requested_by="maria",
        where=WHERE,
    )


def test_a_member_of_the_deciding_group_may_approve() -> None:
    _decide(_decision())
    _decide(_decision(groups=None, decided_by="anyone"))  # the operator surface checks no group


@pytest.mark.parametrize(
    ("decision", "error", "words"),
    [
        (_decision(decided_by="maria"), ApprovalBySelf, "maria started this session"),
        (
            _decision(decided_by="sam", groups=["ops"]),
            ApprovalNotInGroup,
            "sam is not in the group that decides this request (finance)",
        ),
        (_decision(approve=False), ApprovalReasonRequired, "a rejection needs a reason"),
        (_decision(approve=False, reason="  "), ApprovalReasonRequired, "needs a reason"),
        (
            _decision(approve=False, reason="no", arguments={"amount": 5}),
            ApprovalEditNotAllowed,
            "only when approving a skill call",
        ),
        (_decision(binding_hash="h2"), ApprovalBindingMismatch, "binding hash mismatch"),
        (_decision(approval_id="apr_2"), UnknownApproval, "no pending approval apr_2 in session"),
    ],
)
def test_a_bad_decision_is_refused_with_its_typed_error(
    decision: ApprovalDecision, error: type[ApprovalError], words: str
) -> None:
    pending = _pending() if decision.approval_id == "apr_1" else None
    with pytest.raises(error, match=re.escape(words)):
        check_decision(decision, pending=pending, prior=None, requested_by="maria", where=WHERE)


def test_an_edit_is_allowed_only_on_a_skill_call() -> None:
    _decide(_decision(arguments={"amount": 5}))
    with pytest.raises(ApprovalEditNotAllowed):
        _decide(_decision(arguments={"amount": 5}), _pending(kind="step"))
    check_content(approve=True, reason=None, edited=True, kind=None)  # a surface's early check


def test_a_request_without_a_group_is_open_unless_only_assigned_ones_are() -> None:
    _decide(_decision(groups=None), _pending(group=None))
    _decide(_decision(), _pending(group=None))  # the worker's policy named no group
    with pytest.raises(ApprovalNotInGroup, match=r"\(none\)"):
        check_decider(
            "apr_1",
            "lee",
            groups=["finance"],
            group=None,
            requested_by=None,
            delegate=None,
            assigned_only=True,
        )


def test_only_the_delegate_decides_a_delegated_request() -> None:
    handed = _pending(delegate="kim")
    with pytest.raises(ApprovalDelegated, match="delegated to kim, who alone decides it now"):
        _decide(_decision(), handed)
    _decide(_decision(decided_by="kim"), handed)


def test_a_repeat_passes_and_a_different_second_decision_is_refused() -> None:
    prior = _decision()
    assert same_decision(prior, _decision(decided_by="kim"))
    _decide(_decision(decided_by="kim"), prior=prior)  # a double submit: answered as duplicate
    with pytest.raises(ApprovalAlreadyDecided, match="already approved by lee"):
        _decide(_decision(approve=False, reason="no"), prior=prior)
    with pytest.raises(ApprovalAlreadyDecided):
        _decide(_decision(binding_hash="h2"), prior=prior)


def test_check_bound_returns_the_pending_request() -> None:
    pending = _pending()
    assert check_bound("apr_1", pending, "h1", what="x", where=WHERE) is pending


def test_check_decider_alone_orders_self_before_group() -> None:
    with pytest.raises(ApprovalBySelf):
        check_decider(
            "apr_1", "maria", groups=["ops"], group="finance", requested_by="maria", delegate=None
        )
    check_decider(
        "apr_1", "kim", groups=["finance"], group="finance", requested_by=None, delegate=None
    )


def test_a_member_may_hand_a_request_to_another_member() -> None:
    check_delegation(_delegation(), pending=_pending(), requested_by="maria", where=WHERE)


@pytest.mark.parametrize(
    ("delegation", "pending", "error", "words"),
    [
        (_delegation(), _pending(group=None), ApprovalDelegationUnsupported, "no deciding group"),
        (_delegation(groups=["ops"]), _pending(), ApprovalNotInGroup, "lee is not in the group"),
        (_delegation(), _pending(delegate="max"), ApprovalDelegationRefused, "only they may hand"),
        (_delegation(delegated_by="maria"), _pending(), ApprovalDelegationRefused, "maria started"),
        (_delegation(to="lee"), _pending(), ApprovalDelegationRefused, "another member"),
        (
            _delegation(to="ode", to_groups=["ops"]),
            _pending(),
            ApprovalDelegationRefused,
            "ode is not in finance",
        ),
        (_delegation(to="maria"), _pending(), ApprovalDelegationRefused, "maria started"),
        (
            _delegation(),
            _pending(approved_by=["kim"]),
            ApprovalDelegationRefused,
            "already approved",
        ),
        (_delegation(binding_hash="h9"), _pending(), ApprovalBindingMismatch, "delegation names"),
    ],
)
def test_a_bad_delegation_is_refused_with_its_typed_error(
    delegation: ApprovalDelegation,
    pending: PendingApproval,
    error: type[ApprovalError],
    words: str,
) -> None:
    with pytest.raises(error, match=re.escape(words)):
        check_delegation(delegation, pending=pending, requested_by="maria", where=WHERE)


def test_the_delegate_may_hand_it_on() -> None:
    check_delegation(
        _delegation(delegated_by="max", to="kim"),
        pending=_pending(delegate="max"),
        requested_by="maria",
        where=WHERE,
    )


def test_delegates_are_the_members_the_rules_allow() -> None:
    members = {
        "lee": ["finance"],
        "kim": ["finance"],
        "max": ["finance", "ops"],
        "maria": ["finance"],
        "ode": ["ops"],
    }
    found = delegates(
        "lee", group="finance", members=members, requested_by="maria", approved_by=["max"]
    )
    assert found == ["kim"]
    for to in found:  # every one offered passes the workflow's own check
        check_delegation(
            _delegation(to=to, to_groups=members[to]),
            pending=_pending(approved_by=["max"]),
            requested_by="maria",
            where=WHERE,
        )
    assert delegates("lee", group=None, members=members, requested_by=None) == []
    with pytest.raises(ApprovalDelegationRefused, match="any deciding group"):
        check_delegate_in_group("apr_1", None, "kim", ["finance"])


def test_policy_for_reads_the_group_the_chain_and_the_two_person_rule() -> None:
    directory = ApproverDirectory.model_validate(
        {
            "groups": ["finance", "ops"],
            "policy": {
                "skills": {"payments.refund": "finance"},
                "escalation": {"finance": "ops"},
                "timeout_seconds": 60,
                "two_person_risks": ["irreversible_write"],
            },
            "users": {},
        }
    )
    policy = policy_for(directory, _pending())
    assert (policy.group, policy.required, policy.escalation) == ("finance", 2, ["ops"])
    assert policy.timeout_seconds == 60
    single = policy_for(directory, _pending(risk="read", skill="other.skill"))
    assert (single.group, single.required) == (None, 1)


def test_the_session_view_reads_what_the_state_query_answers() -> None:
    """Approvals pages read the session's state as a `SessionView`: same names, a subset."""
    from orchestrator.session.types import SessionState, StepState

    assert set(SessionView.model_fields) <= set(SessionState.model_fields)
    assert set(StepView.model_fields) <= set(StepState.model_fields)
    state = SessionState(
        session_id="s1",
        plan_name="p",
        plan_version="1",
        pending_approvals=[_pending(delegate="kim")],
        steps=[StepState(id="investigate", type="agent", status="running")],
    )
    view = SessionView.model_validate_json(state.model_dump_json())
    assert view.pending_approvals == state.pending_approvals
    assert [(s.id, s.status) for s in view.steps] == [("investigate", "running")]
