"""The demo plan end to end on a real dev server, scripted model server and SQLite store."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

from conftest import REPO, Env

from orchestrator.plans import load_plan
from orchestrator.service import decide_approval, query_state, start_session
from orchestrator.store.records import EventKind, SessionStatus
from orchestrator.testing import wait_for_pending_approval

PLAN = REPO / "workflows/customer_refund.yaml"
SCRIPT = REPO / "model_scripts/customer_refund.yaml"


def refunds(env: Env) -> int:
    path = env.runtime.skill_state_dir / "refunds.db"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM refunds").fetchone()[0])


async def test_demo_runs_end_to_end_with_gate_and_pinning(
    env_factory: Callable[[Path], Awaitable[Env]],
) -> None:
    env = await env_factory(SCRIPT)
    plan = load_plan(PLAN)
    handle = await start_session(
        env.client, plan, {"ticket_id": "T-1001"}, task_queue=env.settings.task_queue
    )
    session_id = handle.id.removeprefix("session-")

    pending = await wait_for_pending_approval(env.runtime.store, session_id)
    assert pending.skill == "payments.refund"
    assert pending.arguments == {
        "order_id": "A-1001",
        "amount": 42.5,
        "currency": "EUR",
        "reason": "Kettle arrived with a cracked base",
    }
    state = await query_state(env.client, session_id)
    assert state.status is SessionStatus.WAITING_APPROVAL
    assert state.current_step == "investigate"
    assert state.pinned_model == "demo-strong"
    assert state.in_tool_loop
    assert [p.approval_id for p in state.pending_approvals] == [pending.approval_id]
    assert state.cost_usd > 0
    assert refunds(env) == 0, "the refund ran before anyone approved it"

    decided = await decide_approval(
        env.client, env.runtime.store, pending.approval_id, approve=True, decided_by="maria"
    )
    assert decided.status == "approved"
    result = await handle.result()

    assert result.status is SessionStatus.COMPLETED
    assert "Refunded 42.50 EUR" in str(result.outputs["investigate"])
    assert str(result.final_output).startswith("Dear Ana")
    assert refunds(env) == 1
    assert [(p.step_id, p.model) for p in result.model_timeline] == [
        ("investigate", "demo-strong"),
        ("reply", "demo-fast"),
    ]

    # Pinning: every model call of the investigate loop went to the pinned model, as the
    # endpoint itself saw it.
    served = [(r.conversation, r.model) for r in env.replay.requests]
    assert served == [("investigate", "replay-strong")] * 4 + [("reply", "replay-fast")]

    store = env.runtime.store
    record = await store.get_session(session_id)
    assert record is not None and record.status is SessionStatus.COMPLETED
    assert record.cost_usd == result.cost_usd > 0
    events = await store.list_events(session_id)
    kinds = [e.kind for e in events]
    assert kinds.count(EventKind.MODEL_CALL) == 5
    assert kinds.count(EventKind.TOOL_CALL) == 3
    assert kinds.count(EventKind.APPROVAL_REQUESTED) == 1
    assert kinds.count(EventKind.APPROVAL_DECIDED) == 1
    assert kinds[0] is EventKind.SESSION_STARTED
    assert kinds[-1] is EventKind.SESSION_COMPLETED
    decision = next(e for e in events if e.kind is EventKind.APPROVAL_DECIDED)
    assert decision.payload["decided_by"] == "maria"
    refund_call = next(
        e for e in events if e.kind is EventKind.TOOL_CALL and e.skill == "payments.refund"
    )
    assert refund_call.payload["approval_id"] == pending.approval_id
    # The approval happened before the refund ran.
    assert events.index(decision) < events.index(refund_call)
