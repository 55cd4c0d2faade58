"""The event stream across processes on PostgreSQL: a worker writes, two `orchestrator api`
processes serve, and every watcher sees every durable event once.

The API processes are real subprocesses; the worker runs in the test's process (one
process start less on a busy CI machine). They share only Temporal and the PostgreSQL
store; the API processes learn that a session moved from `NOTIFY`. A gate
holds the session's second model request until the watchers are connected, so the rest
of the session reaches them live (with its streamed text, which travels by `NOTIFY` only),
and one watcher moves to the other process half-way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from conftest import REPO
from event_processes import api_processes, approvers_file
from postgres import scratch_database
from process_helpers import Gate
from temporalio.client import Client

from orchestrator.events.client import SseMessage, follow
from orchestrator.plans import load_plan
from orchestrator.runtime import Runtime
from orchestrator.scripted_model import LoopbackServer, create_replay_app, load_model_script
from orchestrator.service import start_session
from orchestrator.session_start import StartOptions
from orchestrator.settings import Settings
from orchestrator.store import Store
from orchestrator.store.records import SessionStatus
from orchestrator.testing import eventually
from orchestrator.worker import build_worker

PLAN = REPO / "workflows/research_summary.yaml"
SCRIPT = REPO / "model_scripts/research_summary.yaml"
INPUT = {"topic": "heat pumps", "sources": ["S-1", "S-2", "S-3", "S-4"]}


async def durable(
    messages: AsyncIterator[SseMessage], limit: int | None = None
) -> list[SseMessage]:
    """The durable events (those with an id) of a stream, up to `limit` of them."""
    got: list[SseMessage] = []
    async with contextlib.aclosing(messages):  # closing it closes the connection
        async for message in messages:
            if message.id is not None:
                got.append(message)
                if len(got) == limit:
                    break
    return got


async def test_two_api_processes_deliver_every_event_once_and_resume_across(
    settings: Settings, client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with scratch_database() as url:
        shared = settings.model_copy(update={"database_url": url})
        approvers = approvers_file(tmp_path)
        gate = Gate(create_replay_app(load_model_script(SCRIPT)), hold=2)
        # The test migrates the store before any process opens it.
        async with await Store.open(url) as store, LoopbackServer(gate) as replay:
            monkeypatch.setenv("ORCHESTRATOR_REPLAY_URL", f"{replay.url}/v1")
            runtime = await Runtime.open(shared)
            try:
                async with (
                    build_worker(client, runtime, task_queue=shared.task_queue),
                    api_processes(shared, approvers, 2) as (one, two),
                ):
                    handle = await start_session(
                        client,
                        load_plan(PLAN),
                        INPUT,
                        StartOptions(session_id="two"),
                        task_queue=shared.task_queue,
                    )
                    async with asyncio.timeout(60):
                        await gate.arrived.wait()

                    async def two_events() -> bool | None:
                        return True if len(await store.list_events("two")) >= 2 else None

                    await eventually(two_events, what="the session's first events")

                    seen: dict[str, list[SseMessage]] = {"one": [], "two": []}

                    async def watch(name: str, http: httpx.AsyncClient) -> None:
                        async for message in follow(http, "two"):
                            seen[name].append(message)

                    whole = [
                        asyncio.create_task(watch("one", one)),
                        asyncio.create_task(watch("two", two)),
                    ]
                    # A third watcher reads two events from the first process and disconnects.
                    async with asyncio.timeout(30):
                        head = await durable(follow(one, "two"), limit=2)
                        while not all(seen.values()):  # both connected before the model runs
                            await asyncio.sleep(0.01)
                    gate.release.set()
                    async with asyncio.timeout(30):
                        tail = await durable(follow(two, "two", after=int(head[-1].id or 0)))
                    async with asyncio.timeout(120):
                        result = await handle.result()
                        await asyncio.gather(*whole)
            finally:
                await runtime.close()
            stored = await store.list_events("two")

    assert result.status is SessionStatus.COMPLETED
    expected = [json.loads(event.model_dump_json()) for event in stored]
    assert [e["seq"] for e in expected] == list(range(1, len(expected) + 1))
    assert expected[-1]["kind"] == "session_completed"
    whole_one, whole_two = ([m for m in seen[n] if m.id is not None] for n in ("one", "two"))
    for got in (whole_one, whole_two, head + tail):
        assert [int(m.id or 0) for m in got] == [e["seq"] for e in expected]
        assert [m.json() for m in got] == expected
    # Deltas exist nowhere but in NOTIFY: both processes got the same ones, and the streamed
    # text of the last answer is the text its model_call event recorded.
    deltas_one, deltas_two = ([m.json() for m in seen[n] if m.event == "delta"] for n in seen)
    assert deltas_one and deltas_one == deltas_two
    [summary] = [e for e in expected if e["kind"] == "model_call" and e["step_id"] == "synthesize"]
    streamed = "".join(
        d["text"] for d in deltas_one if d["step_id"] == "synthesize" and d["kind"] == "text"
    )
    assert streamed == summary["payload"]["text"]
