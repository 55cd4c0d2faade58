"""`orchestrator.start` and `SessionHandle` on the dev server: state, approve, result, and
`events()` live (durable events exactly as stored, model text as it streams: over UDP on
SQLite, by NOTIFY on PostgreSQL), resumable by seq, ending when the session ends or its
workflow is closed from outside."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from conftest import Env
from event_serving import GATED_PLAN, answer_script
from postgres import scratch_database
from temporalio.service import RPCError

import orchestrator.handle
from orchestrator import BudgetExceededError, SessionHandle, StartOptions, start
from orchestrator.events import TERMINAL_KINDS, StreamDelta
from orchestrator.exceptions import ApprovalError
from orchestrator.routing.policy import Budget
from orchestrator.session.types import SessionState
from orchestrator.settings import Settings
from orchestrator.store.records import AuditEvent, EventKind, SessionStatus
from orchestrator.testing import eventually, wait_for_pending_approval

ANSWER = "Order A-1001 ships on Monday; the customer is told by mail today."


async def started(env_factory: Callable[[Path], Awaitable[Env]], tmp_path: Path) -> Env:
    return await env_factory(answer_script(tmp_path, ANSWER))


@pytest.fixture(params=["sqlite", "postgresql"])
async def backend(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[str]:
    """The worker's store: SQLite (deltas over UDP) or PostgreSQL (deltas by NOTIFY)."""
    if request.param == "postgresql":
        async with scratch_database() as url:
            settings.database_url = url
            yield request.param
    else:
        yield request.param


async def test_a_handle_runs_a_session_and_follows_it_live(
    backend: str, env_factory: Callable[[Path], Awaitable[Env]], tmp_path: Path
) -> None:
    env = await started(env_factory, tmp_path)
    store = env.runtime.store
    handle = await start(
        env.client,
        store,
        GATED_PLAN,
        {},
        task_queue=env.settings.task_queue,
        state_dir=env.settings.resolved_state_dir,
    )
    items: list[AuditEvent | StreamDelta] = []

    async def follow() -> None:
        async for item in handle.events():
            items.append(item)

    follower = asyncio.create_task(follow())

    async def waiting() -> SessionState | None:
        state = await handle.state()
        return state if state.pending_approvals and items else None

    state = await eventually(waiting, what="the gate, seen by state() and events()")
    assert state.current_step == "gate"
    decided = await handle.approve(by="maria", reason="fine")
    assert decided.status == "approved"
    result = await handle.result()
    assert result.status is SessionStatus.COMPLETED and result.final_output == ANSWER
    async with asyncio.timeout(30):
        await follower  # ends by itself after the session's last event

    stored = sorted(await store.list_events(handle.session_id), key=lambda e: e.seq or 0)
    durable = [i for i in items if isinstance(i, AuditEvent)]
    assert [(e.seq, e.event_key) for e in durable] == [(e.seq, e.event_key) for e in stored]
    texts = [i for i in items if isinstance(i, StreamDelta) and i.kind == "text"]
    assert "".join(d.text for d in texts) == ANSWER
    assert {(d.step_id, d.attempt) for d in texts} == {("answer", 1)}
    model_call = next(i for i in durable if i.kind is EventKind.MODEL_CALL)
    assert items.index(texts[-1]) < items.index(model_call)

    # Resuming after any seq gives exactly the rest, and ends at the session's end.
    middle = len(stored) // 2
    again = SessionHandle(env.client, store, handle.session_id)
    rest = [i async for i in again.events(after=stored[middle - 1].seq or 0, deltas=False)]
    assert [e.event_key for e in rest if isinstance(e, AuditEvent)] == [
        e.event_key for e in stored[middle:]
    ]
    with pytest.raises(ApprovalError, match="no pending approval"):
        await again.reject(by="maria", reason="too late")


async def test_events_end_when_the_workflow_is_closed_from_outside(
    env_factory: Callable[[Path], Awaitable[Env]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(orchestrator.handle, "IDLE_CHECK_S", 0.2)
    env = await started(env_factory, tmp_path)
    handle = await start(
        env.client, env.runtime.store, GATED_PLAN, {}, task_queue=env.settings.task_queue
    )
    await wait_for_pending_approval(env.runtime.store, handle.session_id)
    await env.client.get_workflow_handle(handle.workflow_id).terminate("operator")
    async with asyncio.timeout(30):
        seen = [i async for i in handle.events()]
    assert seen and all(isinstance(i, AuditEvent) for i in seen)
    assert not [i for i in seen if isinstance(i, AuditEvent) and i.kind in TERMINAL_KINDS]


async def test_start_refuses_a_session_past_its_budget_as_the_cli_does(
    env_factory: Callable[[Path], Awaitable[Env]], tmp_path: Path
) -> None:
    env = await started(env_factory, tmp_path)
    budgets = [Budget(tenant="acme", limit_usd=0.5, session_reserve_usd=0.6)]
    queue = env.settings.task_queue
    with pytest.raises(BudgetExceededError, match=r"budget acme/\* \(month .* is exhausted"):
        await start(
            env.client,
            env.runtime.store,
            GATED_PLAN,
            {},
            StartOptions(session_id="over-budget", tenant="acme"),
            task_queue=queue,
            budgets=budgets,
        )
    with pytest.raises(RPCError, match="not found"):
        await env.client.get_workflow_handle("session-over-budget").describe()
    # Another tenant's session is not held to acme's budget.
    other = await start(
        env.client, env.runtime.store, GATED_PLAN, {}, task_queue=queue, budgets=budgets
    )
    await wait_for_pending_approval(env.runtime.store, other.session_id)
    await env.client.get_workflow_handle(other.workflow_id).terminate("done")


def test_the_package_imports_the_client_side_only_on_first_use() -> None:
    """`orchestrator` is imported inside the workflow sandbox: it must stay light."""
    probe = (
        "import sys, orchestrator\n"
        "assert 'orchestrator.handle' not in sys.modules, 'handle imported eagerly'\n"
        "assert orchestrator.SessionHandle.__module__ == 'orchestrator.handle'\n"
        "assert orchestrator.start is orchestrator.handle.start\n"
    )
    subprocess.run([sys.executable, "-c", probe], check=True)
