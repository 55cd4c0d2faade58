"""Durable-event notices over loopback UDP (SQLite): the worker's store says which sessions
moved after each commit, and the API process reads them at once instead of at its poll.

A notice is only a hint: the watcher still gets exactly the store's rows, a repeated
notice of what was read already reads nothing, and an older receiver ignores notices.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from event_serving import append, new_session

from orchestrator.events import StreamDelta, live_hub
from orchestrator.events import live as live_module
from orchestrator.events.hub import EventHub
from orchestrator.events.publisher import DeltaPublisher
from orchestrator.events.udp import UdpDeltaReceiver, UdpDeltaSender
from orchestrator.events.wire import decode_deltas
from orchestrator.store import AuditEvent, Store


async def test_a_workers_commit_reaches_a_watcher_without_any_poll(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'orchestrator.db'}"
    state_dir = tmp_path / "state"
    # The poll never runs in this test: only the worker's notices can wake the watcher.
    monkeypatch.setattr(live_module, "IDLE_POLL_S", 3600.0)
    async with await Store.open(url) as api_store, await Store.open(url) as worker_store:
        publisher = DeltaPublisher.for_store(worker_store, state_dir)
        await new_session(worker_store, "s1")
        await append(worker_store, "s1", "e0")
        got: list[AuditEvent] = []
        try:
            async with live_hub(api_store, state_dir, poll_interval=3600.0) as hub:
                with hub.watch("s1") as watch:
                    # The watcher's own first read; after it, nothing reads unless told.
                    item = await asyncio.wait_for(watch.next(None), 30)
                    assert isinstance(item, AuditEvent)
                    got.append(item)
                    for n in range(1, 11):  # UDP is best effort: write until one arrives
                        await append(worker_store, "s1", f"e{n}")
                        try:
                            item = await asyncio.wait_for(watch.next(None), 5)
                        except TimeoutError:
                            continue
                        assert isinstance(item, AuditEvent)
                        got.append(item)
                        break
                    # Then every event written meanwhile, once and in order.
                    while got[-1].seq != n + 1:
                        item = await asyncio.wait_for(watch.next(None), 30)
                        assert isinstance(item, AuditEvent)
                        got.append(item)
        finally:
            await publisher.close()
        stored = await api_store.list_events("s1")
    assert [(e.seq, e.event_key) for e in got] == [(e.seq, e.event_key) for e in stored]


async def test_a_notice_of_what_the_feed_read_already_reads_nothing(store: Store) -> None:
    await new_session(store, "s1")
    reads = 0
    events_after = store.stream.events_after

    async def counted(session_id: str, after: int, limit: int) -> list[AuditEvent]:
        nonlocal reads
        reads += 1
        return await events_after(session_id, after, limit)

    store.stream.events_after = counted  # type: ignore[method-assign]
    hub = EventHub(store)
    with hub.watch("s1") as watch:
        await append(store, "s1", "e1")
        hub.touch("s1", 1)
        item = await asyncio.wait_for(watch.next(None), 30)
        assert isinstance(item, AuditEvent) and item.seq == 1
        before = reads
        hub.touch("s1", 1)  # the poll, after the UDP notice, says the same
        for _ in range(5):
            await asyncio.sleep(0)
        assert reads == before
        await append(store, "s1", "e2")
        hub.touch("s1", 2)
        item = await asyncio.wait_for(watch.next(None), 30)
        assert isinstance(item, AuditEvent) and item.seq == 2


async def test_a_receiver_tells_notices_from_deltas(tmp_path: Path) -> None:
    moved: list[dict[str, int]] = []
    deltas: list[StreamDelta] = []
    receiver = UdpDeltaReceiver(tmp_path, deltas.extend, lambda m: moved.append(dict(m)))
    await receiver.start()
    sender = UdpDeltaSender(tmp_path)
    delta = StreamDelta(
        session_id="s", step_id="a", round=0, step_attempt=0, attempt=1, n=1, kind="text", text="hi"
    )
    try:
        async with asyncio.timeout(10):
            while not moved or not deltas:  # best effort: send until both arrived
                sender.moved({"s": 3, "t": 1})
                await sender.send([delta])
                await asyncio.sleep(0.01)
    finally:
        await sender.close()
        await receiver.close()
    assert moved[0] == {"s": 3, "t": 1}
    assert all(d == delta for d in deltas)


def test_an_older_receiver_reads_a_notice_as_no_deltas() -> None:
    """Before notices, a receiver decoded every datagram as deltas: a notice gives none."""
    assert decode_deltas(b'{"moved":{"s":3}}') == []


async def test_the_watching_processs_own_writes_wake_it_without_any_poll(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Feedback written by an API process reaches its own watchers at once."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'orchestrator.db'}"
    monkeypatch.setattr(live_module, "IDLE_POLL_S", 3600.0)
    async with await Store.open(url) as store:
        await new_session(store, "s1")
        await append(store, "s1", "e0")
        async with live_hub(store, None, poll_interval=3600.0) as hub:
            with hub.watch("s1") as watch:
                first = await asyncio.wait_for(watch.next(None), 30)
                await append(store, "s1", "feedback")
                second = await asyncio.wait_for(watch.next(None), 30)
        assert store.on_events_committed is None  # given back when the hub closed
    assert isinstance(first, AuditEvent) and isinstance(second, AuditEvent)
    assert [(first.seq, first.event_key), (second.seq, second.event_key)] == [
        (1, "session-s1:e0"),
        (2, "session-s1:feedback"),
    ]
