"""The session event stream over real SSE on loopback, on SQLite and PostgreSQL.

Durable events come from the store exactly as activities write them (`append_event`,
which numbers them); the SSE endpoint is served by uvicorn as `orchestrator api` serves
it, and read with httpx as any client would.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
from event_serving import append, new_session, serving

from orchestrator.events.client import SseMessage, follow, sse_messages
from orchestrator.store import EventKind, Store


async def durable(messages: list[SseMessage]) -> list[int]:
    return [int(m.id) for m in messages if m.id is not None]


async def test_stream_sends_every_event_with_its_seq_then_resumes_after_last_event_id(
    store: Store, tmp_path: Path
) -> None:
    await new_session(store, "s1")
    for n in range(3):
        await append(store, "s1", f"e{n}")
    async with serving(store, tmp_path) as served, served.client() as http:
        async with http.stream("GET", "/api/sessions/s1/events") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            got: list[SseMessage] = []
            async for message in sse_messages(response.aiter_lines()):
                got.append(message)
                if len(got) == 2:
                    break
        assert [m.id for m in got] == ["1", "2"]
        assert got[0].event == "message"
        first = got[0].json()
        assert first["seq"] == 1 and first["kind"] == "step_started"
        assert first["payload"] == {"key": "e0"}

        # Meanwhile the session goes on and finishes.
        await append(store, "s1", "e3")
        await append(store, "s1", "done", EventKind.SESSION_COMPLETED)

        async with http.stream(
            "GET", "/api/sessions/s1/events", headers={"Last-Event-ID": "2"}
        ) as response:
            rest = [m async for m in sse_messages(response.aiter_lines())]
        assert [m.id for m in rest if m.id] == ["3", "4", "5"]
        assert rest[-1].event == "end" and rest[-1].json() == {"last_seq": 5}

        # ?after= resumes the same way; the header wins when both are given.
        async with http.stream("GET", "/api/sessions/s1/events?after=3") as response:
            assert [m.id for m in [m async for m in sse_messages(response.aiter_lines())]] == [
                "4",
                "5",
                None,
            ]
        async with http.stream(
            "GET", "/api/sessions/s1/events?after=0", headers={"Last-Event-ID": "4"}
        ) as response:
            ids = [m.id async for m in sse_messages(response.aiter_lines())]
        assert ids == ["5", None]

        # Nothing after the end: 204 tells EventSource to stop reconnecting.
        finished = await http.get("/api/sessions/s1/events", headers={"Last-Event-ID": "5"})
        assert finished.status_code == 204


async def test_live_events_reach_a_connected_watcher(store: Store, tmp_path: Path) -> None:
    await new_session(store, "live")
    async with serving(store, tmp_path) as served, served.client() as http:
        seen: list[int] = []
        reading = asyncio.Event()

        async def watch() -> None:
            async for message in follow(http, "live"):
                if message.id is not None:
                    seen.append(int(message.id))
                    reading.set()

        watcher = asyncio.create_task(watch())
        await append(store, "live", "a")
        async with asyncio.timeout(10):
            await reading.wait()
        for n in range(5):
            await append(store, "live", f"b{n}")
        await append(store, "live", "end", EventKind.SESSION_FAILED)
        async with asyncio.timeout(10):
            await watcher
    assert seen == [1, 2, 3, 4, 5, 6, 7]


async def test_unknown_and_other_tenants_sessions_get_the_same_404(
    store: Store, tmp_path: Path
) -> None:
    await new_session(store, "mine", tenant="bo-co")
    await new_session(store, "theirs", tenant="acme")
    await append(store, "theirs", "x")
    async with serving(store, tmp_path) as served, served.client("bo") as bo:
        assert (await bo.get("/api/sessions/mine")).status_code == 200
        for path in ("/api/sessions/{}", "/api/sessions/{}/events"):
            unknown = await bo.get(path.format("nope"))
            other = await bo.get(path.format("theirs"))
            assert unknown.status_code == other.status_code == 404
            # Same body but for the id the caller gave: nothing says "exists".
            assert unknown.json()["error"].replace("nope", "X") == other.json()["error"].replace(
                "theirs", "X"
            )
        async with httpx.AsyncClient(base_url=served.url) as anonymous:
            refused = await anonymous.get("/api/sessions/mine/events")
            assert refused.status_code == 401
            assert "Bearer" in refused.json()["error"]
        async with served.client() as ana:  # no tenant list: every tenant
            assert (await ana.get("/api/sessions/theirs")).json()["last_seq"] == 1
        bad = await bo.get("/api/sessions/mine/events?after=-3")
        assert bad.status_code == 400
        assert bad.json()["error"].startswith("after: '-3' is not an event number")


async def test_session_json_state(store: Store, tmp_path: Path) -> None:
    await new_session(store, "st")
    await append(store, "st", "a")
    await append(store, "st", "b")
    async with serving(store, tmp_path) as served, served.client() as http:
        body = (await http.get("/api/sessions/st")).json()
    assert body["session_id"] == "st"
    assert body["status"] == "running"
    assert body["last_seq"] == 2
    assert json.dumps(body)  # plain JSON throughout
