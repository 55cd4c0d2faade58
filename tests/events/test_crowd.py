"""Many watchers of one session: one store read serves them all, each gets the identical
durable sequence, and a watcher that stops reading neither blocks the others nor loses a
durable event (it reads the store itself once it falls out of the shared window, and
resumes exactly after a drop)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from event_serving import append, new_session, serving

from orchestrator.events import Dropped, EventHub, StreamDelta, Watch
from orchestrator.events.client import sse_messages
from orchestrator.events.hub import MAX_WINDOW
from orchestrator.store import AuditEvent, EventKind, Store


def delta(session_id: str, n: int) -> StreamDelta:
    return StreamDelta(
        session_id=session_id,
        step_id="s1",
        round=1,
        step_attempt=0,
        attempt=1,
        n=n,
        kind="text",
        text=f"t{n} ",
    )


def counting_reads(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the store's `events_after` reads (each call's `after`); they still run."""
    calls: list[int] = []
    real: Callable[[str, int, int], Awaitable[list[AuditEvent]]] = store.stream.events_after

    async def events_after(session_id: str, after: int, limit: int) -> list[AuditEvent]:
        calls.append(after)
        return await real(session_id, after, limit)

    monkeypatch.setattr(store.stream, "events_after", events_after)
    return calls


async def durable_until(watch: Watch, last: int) -> list[AuditEvent]:
    got: list[AuditEvent] = []
    async with asyncio.timeout(30):
        while not got or got[-1].seq != last:
            item = await watch.next(5.0)
            # A dropped watcher hands its `Dropped` again on every call without waiting,
            # so the timeout above could never fire: fail at once instead of spinning.
            assert not isinstance(item, Dropped), item
            if isinstance(item, AuditEvent):
                got.append(item)
    return got


async def test_one_read_serves_every_watcher_and_each_gets_the_same_sequence(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    await new_session(store, "many")
    for n in range(5):
        await append(store, "many", f"a{n}")
    reads = counting_reads(store, monkeypatch)
    hub = EventHub(store)
    watches = [hub.watch("many") for _ in range(50)]
    first = await asyncio.gather(*(durable_until(w, 5) for w in watches))
    assert len(reads) == 1  # 50 watchers connecting at once: one read for all of them

    for n in range(5, 12):
        await append(store, "many", f"a{n}")
    hub.touch("many")  # one notice for the session: one read, whatever the watchers
    rest = await asyncio.gather(*(durable_until(w, 12) for w in watches))
    assert len(reads) == 2

    stored = [e.model_dump() for e in sorted(await store.list_events("many"), key=_seq)]
    for got in [a + b for a, b in zip(first, rest, strict=True)]:
        assert [e.model_dump() for e in got] == stored
    # Every watcher got the very same objects: read and decoded once.
    assert all(a is b for a, b in zip(first[0], first[-1], strict=True))
    assert hub.held("many") <= 12
    for watch in watches:
        watch.close()
    assert hub.watchers == 0 and hub.held("many") == 0


async def test_a_watcher_that_stops_reading_blocks_no_one_and_loses_no_durable_event(
    store: Store,
) -> None:
    await new_session(store, "slow")
    await append(store, "slow", "e0")
    hub = EventHub(store, max_deltas=64)
    slow = hub.watch("slow")
    fast = [hub.watch("slow") for _ in range(3)]
    first = await slow.next(5.0)
    assert isinstance(first, AuditEvent) and first.seq == 1

    total = MAX_WINDOW + 150  # more than the shared window keeps for a laggard
    readers = [asyncio.create_task(durable_until(w, total)) for w in fast]
    for n in range(1, total):
        await append(store, "slow", f"e{n}")
        if n % 50 == 0:
            hub.touch("slow")
            for k in range(40):
                hub.publish(delta("slow", n * 100 + k))
    hub.touch("slow")
    got = await asyncio.gather(*readers)
    assert all([e.seq for e in g] == list(range(1, total + 1)) for g in got)
    # The laggard holds nothing of its own; the window forgot what it alone still lacked.
    assert hub.held("slow") <= MAX_WINDOW and slow.behind

    # It fell behind on deltas too: dropped, naming where it stopped; it resumes exactly.
    dropped = await slow.next(5.0)
    assert dropped == Dropped(resume_after=1, reason="more than 64 deltas unread")
    with hub.watch("slow", after=dropped.resume_after) as again:
        rest = await durable_until(again, total)
    assert [first.seq] + [e.seq for e in rest] == list(range(1, total + 1))
    stored = sorted(await store.list_events("slow"), key=_seq)
    assert [first, *rest] == stored


async def test_sse_watchers_all_get_the_same_stream_while_one_never_reads(
    store: Store, tmp_path: Path
) -> None:
    """Over real HTTP: a client that stops reading fills its socket and is cut after the
    send timeout; the others get every event meanwhile; it resumes with `Last-Event-ID`."""
    await new_session(store, "sse")
    big = "x" * 60_000  # enough events of this size fill a stalled socket's buffers
    async with serving(store, tmp_path, send_timeout=1.0) as served, served.client() as http:
        stalled = http.stream("GET", "/api/sessions/sse/events")
        response = await stalled.__aenter__()  # connected; its body is not read for now
        try:

            async def follow() -> list[tuple[str | None, str]]:
                seen = []
                async with http.stream("GET", "/api/sessions/sse/events") as live:
                    async for message in sse_messages(live.aiter_lines()):
                        seen.append((message.id, message.data))
                        if message.event == "end":
                            return seen
                return seen

            readers = [asyncio.create_task(follow()) for _ in range(3)]
            async with asyncio.timeout(30):
                while served.hub.watchers < 4:
                    await asyncio.sleep(0.01)
            for n in range(200):
                await append(store, "sse", f"e{n}", payload={"n": n, "pad": big})
            await append(store, "sse", "done", EventKind.SESSION_COMPLETED)
            async with asyncio.timeout(60):
                streams = await asyncio.gather(*readers)
            stored = sorted(await store.list_events("sse"), key=_seq)
            wanted = [(str(e.seq), e.model_dump_json()) for e in stored]
            for seen in streams:
                assert [m for m in seen if m[0] is not None] == wanted
            # The stalled one was cut: the hub no longer holds its watcher.
            async with asyncio.timeout(30):
                while served.hub.watchers > 0:
                    await asyncio.sleep(0.05)
            partial = []
            with contextlib.suppress(httpx.HTTPError):  # the server cut it mid-stream
                async for message in sse_messages(response.aiter_lines()):
                    if message.id is not None:
                        partial.append((message.id, message.data))
        finally:
            await stalled.__aexit__(None, None, None)
        assert len(partial) < len(wanted)  # it really was cut before the end
        last = partial[-1][0] if partial else "0"
        async with http.stream(
            "GET", "/api/sessions/sse/events", headers={"Last-Event-ID": last}
        ) as resumed:
            rest = [
                (m.id, m.data)
                async for m in sse_messages(resumed.aiter_lines())
                if m.id is not None
            ]
        assert partial + rest == wanted


def _seq(event: AuditEvent) -> int:
    return event.seq or 0
