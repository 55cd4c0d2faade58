"""The Temporal dev server stops while sessions run and wait for approvals, and starts
again on the same persisted database file and port: every session resumes and finishes.

The worker is not restarted: it runs in this process for the whole test and reconnects
by itself. While the server is away its pollers and activity completions fail with
`Unavailable` and are retried with backoff (the SDK's handling of transient errors);
once the server answers again on the same address the worker polls again, and work that
was in flight is reported late or, when the server has timed it out, retried.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import REPO

from orchestrator.client import connect
from orchestrator.devserver import DevServer, free_port
from orchestrator.plans import load_plan
from orchestrator.runtime import Runtime
from orchestrator.scripted_model import ScriptedModelServer
from orchestrator.service import decide_approval, start_session
from orchestrator.session.types import ActivityOptions, SessionOptions, SessionResult
from orchestrator.session_start import StartOptions
from orchestrator.settings import Settings
from orchestrator.store.records import ApprovalStatus, EventKind, SessionStatus
from orchestrator.testing import eventually
from orchestrator.worker import build_worker

PLAN = REPO / "workflows/customer_refund.yaml"
SCRIPT = REPO / "model_scripts/customer_refund.yaml"
OPTIONS = SessionOptions(
    model_call=ActivityOptions(heartbeat=timedelta(seconds=2)),
    skill_call=ActivityOptions(heartbeat=timedelta(seconds=2)),
)


@pytest.fixture
async def own_server(tmp_path: Path) -> AsyncIterator[DevServer]:
    """A dev server of this test alone (the shared one stays up for the other tests)."""
    server = DevServer(
        db_file=tmp_path / "temporal" / "temporal.db", port=free_port(), ui_port=None
    )
    await server.start()
    yield server
    await server.stop()


def paid(settings: Settings) -> int:
    path = settings.resolved_state_dir / "skills" / "refunds.db"
    with sqlite3.connect(path, timeout=30) as conn:
        return int(conn.execute("SELECT count(*) FROM refunds").fetchone()[0])


async def test_sessions_resume_after_the_server_restarts(
    own_server: DevServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(
        project_dir=REPO,
        state_dir=tmp_path / "state",
        temporal_address=own_server.address,
        task_queue="server-restart",
    )
    plan = load_plan(PLAN)
    async with ScriptedModelServer(SCRIPT) as replay:
        monkeypatch.setenv("ORCHESTRATOR_REPLAY_URL", replay.base_url)
        runtime = await Runtime.open(settings)
        store = runtime.store
        try:
            client = await connect(settings)
            async with build_worker(client, runtime):

                async def start() -> str:
                    handle = await start_session(
                        client,
                        plan,
                        {"ticket_id": "T-1001"},
                        StartOptions(options=OPTIONS),
                        task_queue=settings.task_queue,
                    )
                    return handle.id.removeprefix("session-")

                def waiting(ids: list[str]) -> Callable[[], Awaitable[bool | None]]:
                    async def probe() -> bool | None:
                        pending = await store.list_approvals(status=ApprovalStatus.PENDING)
                        return True if {p.session_id for p in pending} >= set(ids) else None

                    return probe

                waiters = [await start() for _ in range(3)]
                await eventually(waiting(waiters), timeout=120, what="three approvals")
                # A fourth session is inside its tool loop when the server goes away.
                runner = await start()

                async def asked_the_model() -> bool | None:
                    events = await store.list_events(runner, kind=EventKind.MODEL_CALL)
                    return True if events else None

                await eventually(asked_the_model, timeout=60, what="a model call")
                await own_server.stop()
                await own_server.start()

                ids = [*waiters, runner]
                await eventually(waiting(ids), timeout=180, what="four approvals")
                for rec in await store.list_approvals(status=ApprovalStatus.PENDING):
                    await decide_approval(
                        client, store, rec.approval_id, approve=True, decided_by="maria"
                    )
                async with asyncio.timeout(240):
                    results = [
                        await client.get_workflow_handle(
                            f"session-{i}", result_type=SessionResult
                        ).result()
                        for i in ids
                    ]
            assert [r.status for r in results] == [SessionStatus.COMPLETED] * 4
            assert paid(settings) == 4
            for session_id in ids:
                record = await store.get_session(session_id)
                assert record is not None and record.status is SessionStatus.COMPLETED
                events = await store.list_events(session_id)
                refunds = [
                    e
                    for e in events
                    if e.kind is EventKind.TOOL_CALL and e.skill == "payments.refund"
                ]
                assert len(refunds) == 1
        finally:
            await runtime.close()
