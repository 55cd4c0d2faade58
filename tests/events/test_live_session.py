"""A real session on the dev server, watched over SSE while its model streams.

The worker's model call sends its deltas (tagged with step, round, step attempt and the
activity's attempt) over loopback UDP to the API side's hub; the watcher sees the text of
an attempt whose stream was cut, that attempt abandoned, the retry's text, and only then
the `model_call` durable event. The durable events it saw are exactly the store's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

from conftest import Env
from event_serving import GATED_PLAN, answer_script, serving

from orchestrator.events.client import SseMessage, follow
from orchestrator.service import decide_approval, start_session
from orchestrator.session.types import ActivityOptions, SessionOptions
from orchestrator.session_start import StartOptions
from orchestrator.store.records import EventKind
from orchestrator.testing import wait_for_pending_approval

ANSWER = "The refund of 42.50 EUR for order A-1001 is approved and the customer is told today."

OPTIONS = SessionOptions(
    model_call=ActivityOptions(
        max_attempts=3,
        initial_retry=timedelta(milliseconds=50),
        max_retry=timedelta(milliseconds=100),
        heartbeat=timedelta(seconds=10),
    )
)


async def test_a_watcher_sees_tagged_deltas_before_the_durable_model_call(
    env_factory: Callable[[Path], Awaitable[Env]], tmp_path: Path
) -> None:
    env = await env_factory(
        answer_script(tmp_path, ANSWER, "{kind: cut_stream, after: 4, times: 1}")
    )
    store = env.runtime.store
    handle = await start_session(
        env.client,
        GATED_PLAN,
        {},
        StartOptions(options=OPTIONS),
        task_queue=env.settings.task_queue,
    )
    session_id = handle.id.removeprefix("session-")
    pending = await wait_for_pending_approval(store, session_id)
    async with serving(store, env.settings.resolved_state_dir) as served, served.client() as http:
        messages: list[SseMessage] = []

        async def watch() -> None:
            async for message in follow(http, session_id):
                messages.append(message)

        watcher = asyncio.create_task(watch())
        # Connected once the first durable events came: the session is past its start.
        async with asyncio.timeout(30):
            while not any(m.event == "message" for m in messages):
                await asyncio.sleep(0.01)
        await decide_approval(
            env.client, store, pending.approval_id, approve=True, decided_by="maria", reason="ok"
        )
        await handle.result()
        async with asyncio.timeout(30):
            await watcher

    durable = [m for m in messages if m.event == "message"]
    stored = await store.list_events(session_id)
    assert [(int(m.id or 0), m.json()["event_key"]) for m in durable] == [
        (e.seq, e.event_key) for e in sorted(stored, key=lambda e: e.seq or 0)
    ]
    assert messages[-1].event == "end"

    (model_call,) = [m for m in durable if m.json()["kind"] == EventKind.MODEL_CALL]
    deltas = [m.json() for m in messages if m.event == "delta"]
    call_round = model_call.json()["payload"]["round"]
    assert {(d["step_id"], d["round"], d["step_attempt"]) for d in deltas} == {
        ("answer", call_round, 0)
    }
    first = [d for d in deltas if d["attempt"] == 1]
    second = [d for d in deltas if d["attempt"] == 2]
    assert first and first[-1]["kind"] == "abandoned"
    assert 0 < len("".join(d["text"] for d in first)) < len(ANSWER)
    assert "".join(d["text"] for d in second if d["kind"] == "text") == ANSWER
    assert [d["n"] for d in second] == list(range(1, len(second) + 1))

    last_delta = max(i for i, m in enumerate(messages) if m.event == "delta")
    assert last_delta < messages.index(model_call)
    assert model_call.json()["payload"]["try"] == 2
