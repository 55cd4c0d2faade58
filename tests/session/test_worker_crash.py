"""A worker that dies mid-plan loses nothing: a new worker finishes the session, and the
refund is paid exactly once.

Workers run as real subprocesses (`python -m orchestrator worker`) and are killed with
SIGKILL; the model endpoint is the replay app behind a gate that holds one request, so
the kill lands at a known point without any sleep.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest
from conftest import REPO
from process_helpers import Gate
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from orchestrator.chaos import WorkerProcess
from orchestrator.plans import load_plan
from orchestrator.scripted_model import (
    LoopbackServer,
    ServedRequest,
    create_replay_app,
    load_model_script,
)
from orchestrator.service import decide_approval, query_state
from orchestrator.session.types import ActivityOptions, SessionOptions
from orchestrator.session_start import StartOptions
from orchestrator.settings import Settings
from orchestrator.store.records import EventKind, SessionStatus
from orchestrator.store.store import Store
from orchestrator.testing import GatedSession, eventually, start_until_approval

PLAN = REPO / "workflows/customer_refund.yaml"
SCRIPT = REPO / "model_scripts/customer_refund.yaml"

# Short heartbeats so the server notices a dead worker's activity in seconds, not minutes.
FAST_FAILOVER = SessionOptions(
    model_call=ActivityOptions(heartbeat=timedelta(seconds=2)),
    skill_call=ActivityOptions(heartbeat=timedelta(seconds=2)),
)


@pytest.fixture
async def workers(settings: Settings) -> AsyncIterator[Callable[[str], WorkerProcess]]:
    started: list[WorkerProcess] = []

    def make(scripted_url: str) -> WorkerProcess:
        worker = WorkerProcess(settings, scripted_url)
        worker.start()
        started.append(worker)
        return worker

    yield make
    for worker in started:
        worker.stop()


def ledger(settings: Settings) -> int:
    path = settings.resolved_state_dir / "skills" / "refunds.db"
    if not path.exists():
        return 0
    with sqlite3.connect(path, timeout=30) as conn:
        try:
            return int(conn.execute("SELECT count(*) FROM refunds").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # the skill made the file, not yet its table
                return 0
            raise


async def test_killed_after_the_refund_before_the_next_model_call(
    settings: Settings, client: Client, workers: Callable[[str], WorkerProcess]
) -> None:
    served: list[ServedRequest] = []
    # Requests 1-3 are the ticket, order and refund rounds; the 4th is the first model
    # call after the refund ran.
    gate = Gate(create_replay_app(load_model_script(SCRIPT), served=served), hold=4)
    async with (
        LoopbackServer(gate) as replay,
        await Store.open(settings.resolved_database_url) as store,
    ):
        first = workers(f"{replay.url}/v1")
        gated = await _at_the_gate(client, store, settings)
        handle, session_id, pending = gated.handle, gated.session_id, gated.pending
        await decide_approval(client, store, pending.approval_id, approve=True, decided_by="maria")

        async with asyncio.timeout(60):
            await gate.arrived.wait()
        first.kill()
        assert ledger(settings) == 1

        workers(f"{replay.url}/v1")
        gate.release.set()
        async with asyncio.timeout(180):
            result = await handle.result()

        assert result.status is SessionStatus.COMPLETED
        assert ledger(settings) == 1, "the refund was paid twice"
        events = await store.list_events(session_id)
        refunds = [
            e for e in events if e.kind is EventKind.TOOL_CALL and e.skill == "payments.refund"
        ]
        assert len(refunds) == 1
        # The interrupted call was asked again of the same pinned model, and recorded once.
        rounds = [
            (e.step_id, e.payload["round"], e.model)
            for e in events
            if e.kind is EventKind.MODEL_CALL
        ]
        assert rounds == [("investigate", r, "demo-strong") for r in range(4)] + [
            ("reply", 0, "demo-fast")
        ]
        assert {r.model for r in served if r.conversation == "investigate"} == {"replay-strong"}
        # Six requests reached the endpoint: the held one of the dead worker (which may never
        # be read), its retry by the new worker, and the rest once each.
        assert gate.seen == 6
        keys = [e.event_key for e in events]
        assert len(keys) == len(set(keys))


async def test_a_pending_approval_survives_a_worker_restart(
    settings: Settings, client: Client, workers: Callable[[str], WorkerProcess]
) -> None:
    served: list[ServedRequest] = []
    app = create_replay_app(load_model_script(SCRIPT), served=served)
    async with (
        LoopbackServer(app) as replay,
        await Store.open(settings.resolved_database_url) as store,
    ):
        first = workers(f"{replay.url}/v1")
        gated = await _at_the_gate(client, store, settings)
        handle, session_id, pending = gated.handle, gated.session_id, gated.pending
        first.kill()

        workers(f"{replay.url}/v1")

        async def waiting() -> list[str] | None:
            # The request is stored by a local activity inside the workflow task that
            # asked for it; if the kill beat that task's completion, the new worker runs
            # the task again and only then holds the request. Until the server gives up on
            # the dead worker's sticky queue, a query sent there can come back cancelled.
            try:
                state = await query_state(client, session_id)
            except RPCError as exc:
                if exc.status in (RPCStatusCode.CANCELLED, RPCStatusCode.DEADLINE_EXCEEDED):
                    return None
                raise
            return [p.approval_id for p in state.pending_approvals] or None

        assert await eventually(waiting, timeout=60, what="the request") == [pending.approval_id]
        assert ledger(settings) == 0
        await decide_approval(client, store, pending.approval_id, approve=True, decided_by="maria")
        async with asyncio.timeout(180):
            result = await handle.result()
        assert result.status is SessionStatus.COMPLETED
        assert ledger(settings) == 1
        # Nothing that ran before the gate ran again after it.
        assert [(r.conversation, r.turn) for r in served] == [
            ("investigate", 0),
            ("investigate", 1),
            ("investigate", 2),
            ("investigate", 3),
            ("reply", 0),
        ]


async def test_killed_while_the_refund_runs(
    settings: Settings, client: Client, workers: Callable[[str], WorkerProcess]
) -> None:
    """Kill as soon as the effect exists, whether or not its activity has reported back."""
    app = create_replay_app(load_model_script(SCRIPT))
    async with (
        LoopbackServer(app) as replay,
        await Store.open(settings.resolved_database_url) as store,
    ):
        first = workers(f"{replay.url}/v1")
        gated = await _at_the_gate(client, store, settings)
        handle, session_id, pending = gated.handle, gated.session_id, gated.pending
        await decide_approval(client, store, pending.approval_id, approve=True, decided_by="maria")

        async def paid() -> bool | None:
            return True if ledger(settings) else None

        await eventually(paid, timeout=60, interval=0.005, what="the refund")
        first.kill()
        workers(f"{replay.url}/v1")
        async with asyncio.timeout(180):
            result = await handle.result()
        assert result.status is SessionStatus.COMPLETED
        assert ledger(settings) == 1
        events = await store.list_events(session_id)
        assert (
            len(
                [
                    e
                    for e in events
                    if e.kind is EventKind.TOOL_CALL and e.skill == "payments.refund"
                ]
            )
            == 1
        )


async def _at_the_gate(client: Client, store: Store, settings: Settings) -> GatedSession:
    """Start the demo plan for ticket T-1001 and wait for its refund approval."""
    return await start_until_approval(
        client,
        store,
        load_plan(PLAN),
        {"ticket_id": "T-1001"},
        StartOptions(options=FAST_FAILOVER),
        task_queue=settings.task_queue,
        timeout=60,
    )
