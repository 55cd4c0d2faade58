"""The queue's rules, without a worker: who can decide what, in which order, with counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orchestrator.approvals.people import ApproverDirectory
from orchestrator.approvals.queue import Entry, Gate, arrange, gate_of, parse_show, refusal
from orchestrator.approvals.queue_stream import version
from orchestrator.store.records import ApprovalRecord, ApprovalStatus, AuditEvent, EventKind

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DIRECTORY = ApproverDirectory.model_validate(
    {
        "groups": ["finance", "ops"],
        "policy": {
            "skills": {"payments.refund": "finance"},
            "escalation": {"finance": "ops"},
            "timeout_seconds": 3600,
        },
        "users": {"lee": {"groups": ["finance"]}, "kim": {"groups": ["finance"]}, "ode": {}},
    }
)
LEE, KIM = DIRECTORY.users["lee"], DIRECTORY.users["kim"]


def _record(approval_id: str, asked: datetime = T0, **update: object) -> ApprovalRecord:
    base = ApprovalRecord(
        approval_id=approval_id,
        session_id=f"s-{approval_id}",
        workflow_id=f"w-{approval_id}",
        run_id="r",
        step_id="investigate",
        kind="tool_call",
        skill="payments.refund",
        skill_version="1.0.0",
        arguments={"amount": 10.0},
        summary="refund",
        binding_hash="h",
        requested_at=asked,
    )
    return base.model_copy(update=update)


def _event(kind: EventKind, at: datetime, **payload: object) -> AuditEvent:
    return AuditEvent(
        event_key=f"{kind.value}:{at.isoformat()}:{sorted(payload.items())}",
        session_id="s",
        workflow_id="w",
        run_id="r",
        kind=kind,
        payload=dict(payload),  # type: ignore[arg-type]
        created_at=at,
    )


def test_a_fresh_request_waits_on_its_group_for_the_policy_timeout() -> None:
    gate = gate_of(_record("a"), [], DIRECTORY)
    assert gate == Gate("finance", T0 + timedelta(hours=1))
    assert refusal(gate, LEE) is None
    assert refusal(gate, DIRECTORY.users["ode"]) == "waits on finance"


def test_escalation_moves_the_group_and_the_deadline_and_ends_a_delegation() -> None:
    rec = _record("a")
    moved = T0 + timedelta(hours=1, seconds=2)
    events = [
        _event(EventKind.SESSION_STARTED, T0, requested_by="kim"),
        _event(EventKind.APPROVAL_DELEGATED, T0, approval_id="a", to="lee"),
        _event(EventKind.APPROVAL_DELEGATED, T0, approval_id="other", to="kim"),
    ]
    before = gate_of(rec, events, DIRECTORY)
    assert (before.delegate, before.requested_by) == ("lee", "kim")
    assert refusal(before, KIM) == "you started its session"
    escalated = _event(EventKind.APPROVAL_ESCALATED, moved, approval_id="a", to_group="ops")
    after = gate_of(rec, [*events, escalated], DIRECTORY)
    assert after.group == "ops" and after.delegate is None
    assert after.deadline == moved + timedelta(hours=1)


def test_a_delegate_decides_alone_until_giving_the_first_of_two_approvals() -> None:
    rec = _record("a")
    handed = [_event(EventKind.APPROVAL_DELEGATED, T0, approval_id="a", to="lee")]
    gate = gate_of(rec, handed, DIRECTORY)
    assert refusal(gate, KIM) == "delegated to lee" and refusal(gate, LEE) is None
    first = _event(EventKind.APPROVAL_PARTIAL, T0, approval_id="a", approved_by="lee")
    gate = gate_of(rec, [*handed, first], DIRECTORY)
    assert gate.delegate is None and gate.approved_by == ("lee",)
    assert refusal(gate, KIM) is None
    assert refusal(gate, LEE) == "you gave the first approval; it needs another person"


def test_mine_lists_what_i_can_decide_soonest_deadline_first_with_every_count() -> None:
    late = _record("late", T0 + timedelta(minutes=30))
    soon = _record("soon", T0)
    theirs = _record("theirs", T0 - timedelta(hours=5), skill="deploys.rollback")
    done = _record("done", T0 - timedelta(days=1), status=ApprovalStatus.APPROVED, decided_at=T0)
    entries = []
    for rec in (late, theirs, soon, done):
        gate = gate_of(rec, [], DIRECTORY)
        if rec.skill == "deploys.rollback":
            gate = Gate("ops")
        pending = rec.status is ApprovalStatus.PENDING
        entries.append(Entry(rec, gate, refusal(gate, LEE) if pending else None))
    mine = arrange(entries, "mine")
    assert [e.record.approval_id for e in mine.entries] == ["soon", "late"]
    assert mine.counts == {"mine": 2, "pending": 3, "approved": 1, "rejected": 0, "all": 4}
    waiting = arrange(entries, "pending")
    # No deadline (ops has none here) sorts after every deadline.
    assert [e.record.approval_id for e in waiting.entries] == ["soon", "late", "theirs"]
    everything = arrange(entries, "all", limit=2)
    assert [e.record.approval_id for e in everything.entries] == ["soon", "late"]
    assert everything.total == 4
    assert version(mine) != version(arrange(entries[1:], "mine"))


def test_an_unknown_filter_is_the_default() -> None:
    assert parse_show("approved") == "approved"
    assert parse_show("<script>") == parse_show(None) == "mine"
