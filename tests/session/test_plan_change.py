"""Safe change: a running session keeps the plan version it started with."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from conftest import REPO, Env

from orchestrator.plans import load_plan
from orchestrator.service import decide_approval, start_session
from orchestrator.store.records import SessionStatus
from orchestrator.testing import wait_for_pending_approval

V1 = """
name: change
version: "1"
steps:
  - {id: look, type: skill, skill: tickets.get, arguments: {ticket_id: T-1001}}
  - {id: gate, type: approval, summary: "Go on with {{ steps.look.output.ticket_id }}?"}
  - {id: order, type: skill, skill: orders.get, arguments: {order_id: A-1001}}
"""
V2 = """
name: change
version: "2"
steps:
  - {id: look, type: skill, skill: tickets.get, arguments: {ticket_id: T-1002}}
  - {id: other, type: skill, skill: orders.get, arguments: {order_id: A-1002}}
"""


async def test_a_running_session_is_unaffected_by_a_plan_change(
    env_factory: Callable[[Path], Awaitable[Env]], tmp_path: Path
) -> None:
    env = await env_factory(REPO / "model_scripts/customer_refund.yaml")
    plan_file = tmp_path / "change.yaml"
    plan_file.write_text(V1)
    queue = env.settings.task_queue
    old = await start_session(env.client, load_plan(plan_file), {}, task_queue=queue)
    old_id = old.id.removeprefix("session-")
    pending = await wait_for_pending_approval(env.runtime.store, old_id)

    plan_file.write_text(V2)  # deployed while the first session waits
    new = await start_session(env.client, load_plan(plan_file), {}, task_queue=queue)
    new_result = await new.result()
    await decide_approval(
        env.client, env.runtime.store, pending.approval_id, approve=True, decided_by="maria"
    )
    old_result = await old.result()

    assert list(old_result.outputs) == ["look", "gate", "order"]
    final = old_result.final_output
    assert isinstance(final, dict) and final["order_id"] == "A-1001"
    assert list(new_result.outputs) == ["look", "other"]
    records = {
        s: await env.runtime.store.get_session(s) for s in (old_id, new.id.removeprefix("session-"))
    }
    assert {s: (r.plan_version, r.status) for s, r in records.items() if r} == {
        old_id: ("1", SessionStatus.COMPLETED),
        new.id.removeprefix("session-"): ("2", SessionStatus.COMPLETED),
    }
