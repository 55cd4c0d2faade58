"""A worker killed while its model streams: the watcher sees the first attempt's text, then
the retry's under a larger attempt number, and the durable events exactly once.

The worker is a real process (`python -m orchestrator worker`) killed with SIGKILL, so it
says nothing more (no `abandoned` delta: its attempt just stops). The model endpoint is
the replay app behind `HoldStream`, which sends the first stream's opening frames and then
nothing, so the kill lands while text is flowing without any sleep. Temporal notices the
dead attempt by its missed heartbeat and runs the call again on a new worker process.
The watcher is the SSE endpoint served in the test, fed over loopback UDP (SQLite).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from event_processes import HoldStream
from event_serving import GATED_PLAN, answer_script, serving
from temporalio.client import Client

from orchestrator.chaos import WorkerProcess
from orchestrator.events.client import SseMessage, follow
from orchestrator.scripted_model import LoopbackServer, create_replay_app, load_model_script
from orchestrator.service import decide_approval, start_session
from orchestrator.session.types import ActivityOptions, SessionOptions
from orchestrator.session_start import StartOptions
from orchestrator.settings import Settings
from orchestrator.store import Store
from orchestrator.store.records import EventKind, SessionStatus
from orchestrator.testing import wait_for_pending_approval

ANSWER = "Your refund of 42.50 EUR for order A-1001 is approved; the money is back within days."

OPTIONS = SessionOptions(
    model_call=ActivityOptions(
        max_attempts=3,
        initial_retry=timedelta(milliseconds=50),
        max_retry=timedelta(milliseconds=100),
        # A dead worker's attempt is given up after this long without a heartbeat.
        heartbeat=timedelta(seconds=3),
    )
)


async def test_a_watcher_sees_the_dead_attempt_then_the_retry_and_each_event_once(
    settings: Settings, client: Client, tmp_path: Path
) -> None:
    hold = HoldStream(create_replay_app(load_model_script(answer_script(tmp_path, ANSWER))), 3)
    first = second = None
    async with (
        LoopbackServer(hold) as replay,
        await Store.open(settings.resolved_database_url) as store,
        serving(store, settings.resolved_state_dir) as served,
        served.client() as http,
    ):
        try:
            first = WorkerProcess(settings, f"{replay.url}/v1")
            first.start()
            handle = await start_session(
                client,
                GATED_PLAN,
                {},
                StartOptions(options=OPTIONS),
                task_queue=settings.task_queue,
            )
            session_id = handle.id.removeprefix("session-")
            pending = await wait_for_pending_approval(store, session_id, timeout=60)
            messages: list[SseMessage] = []
            streaming = asyncio.Event()

            async def watch() -> None:
                async for message in follow(http, session_id):
                    messages.append(message)
                    if message.event == "delta" and message.json()["kind"] == "text":
                        streaming.set()

            watcher = asyncio.create_task(watch())
            async with asyncio.timeout(30):
                while not any(m.event == "message" for m in messages):
                    await asyncio.sleep(0.01)
            await decide_approval(
                client, store, pending.approval_id, approve=True, decided_by="maria"
            )
            async with asyncio.timeout(60):
                await hold.held.wait()
                await streaming.wait()  # the first attempt's text reached the watcher
            first.kill()
            second = WorkerProcess(settings, f"{replay.url}/v1")
            second.start()
            async with asyncio.timeout(120):
                result = await handle.result()
                await watcher
        finally:
            hold.release.set()
            for worker in (first, second):
                if worker is not None:
                    worker.stop()
        stored = await store.list_events(session_id)

    assert result.status is SessionStatus.COMPLETED
    durable = [m for m in messages if m.event == "message"]
    assert [(int(m.id or 0), m.json()["event_key"]) for m in durable] == [
        (e.seq, e.event_key) for e in stored
    ]
    assert [e.seq for e in stored] == list(range(1, len(stored) + 1))
    (model_call,) = [m for m in durable if m.json()["kind"] == EventKind.MODEL_CALL]
    assert model_call.json()["payload"]["try"] == 2
    assert model_call.json()["payload"]["text"] == ANSWER

    deltas = [m.json() for m in messages if m.event == "delta"]
    attempts = [d["attempt"] for d in deltas]
    assert attempts == sorted(attempts) and set(attempts) == {1, 2}
    dead = [d for d in deltas if d["attempt"] == 1]
    retry = [d for d in deltas if d["attempt"] == 2]
    # The dead attempt's text stops short (and says nothing more); the retry's is whole.
    dead_text = "".join(d["text"] for d in dead)
    assert dead_text and ANSWER.startswith(dead_text) and dead_text != ANSWER
    assert all(d["kind"] == "text" for d in dead)
    assert "".join(d["text"] for d in retry if d["kind"] == "text") == ANSWER
    assert [d["n"] for d in retry] == list(range(1, len(retry) + 1))
    last_delta = max(i for i, m in enumerate(messages) if m.event == "delta")
    assert last_delta < messages.index(model_call)
