"""Deltas: from a worker's publisher over loopback UDP to an SSE watcher, without an id;
and a watcher that never reads is dropped with the seq to resume after, memory bounded."""

from __future__ import annotations

import asyncio
from pathlib import Path

from event_serving import append, new_session, serving

from orchestrator.events import DeltaPublisher, Dropped, EventHub, StreamDelta, Tags
from orchestrator.events.client import sse_messages
from orchestrator.events.udp import UdpDeltaReceiver, UdpDeltaSender
from orchestrator.events.wire import decode_deltas, encode_deltas
from orchestrator.store import AuditEvent, EventKind, Store


def delta(n: int) -> StreamDelta:
    return StreamDelta(
        session_id="slow", step_id="s1", round=1, step_attempt=0, attempt=1, n=n, kind="text"
    )


async def test_deltas_reach_the_sse_watcher_without_an_id(store: Store, tmp_path: Path) -> None:
    await new_session(store, "d1")
    await append(store, "d1", "a")
    publisher = DeltaPublisher.for_store(store, tmp_path)
    async with (
        serving(store, tmp_path) as served,
        served.client() as http,
        http.stream("GET", "/api/sessions/d1/events") as response,
    ):
        messages = sse_messages(response.aiter_lines())
        first = await anext(messages)
        assert first.id == "1"
        tags = Tags("d1", "s1", round=2, step_attempt=0, attempt=1)
        sink = publisher.sink(tags)

        class Piece:
            kind = "text"
            text = "Hel"
            index = 0
            call_id = None
            name = None

        async with asyncio.timeout(10):
            while True:  # UDP is best effort: send until one arrives
                await sink(Piece())  # type: ignore[arg-type]
                await publisher.drain()
                try:
                    async with asyncio.timeout(0.2):
                        got = await anext(messages)
                    break
                except TimeoutError:
                    continue
    await publisher.close()
    assert got.event == "delta" and got.id is None
    body = got.json()
    assert body["text"] == "Hel" and body["round"] == 2 and body["attempt"] == 1


async def test_a_watcher_that_never_reads_is_dropped_with_its_resume_point(
    store: Store,
) -> None:
    await new_session(store, "slow")
    await append(store, "slow", "a")
    hub = EventHub(store, max_deltas=8)
    watch = hub.watch("slow")
    first = await watch.next(1.0)
    assert first is not None and not isinstance(first, Dropped | StreamDelta)
    for n in range(10_000):
        hub.publish(delta(n))
    assert watch.queued == 0  # overflow freed the queue: memory stays bounded
    dropped = await watch.next(1.0)
    assert dropped == Dropped(resume_after=1, reason="more than 8 deltas unread")
    assert hub.watchers == 0


async def test_a_receiver_that_starts_gets_the_next_batch_of_a_running_sender(
    tmp_path: Path,
) -> None:
    sender = UdpDeltaSender(tmp_path)
    await sender.send([delta(1)])  # nobody listens yet; the sender has looked
    got: asyncio.Queue[list[StreamDelta]] = asyncio.Queue()
    receiver = UdpDeltaReceiver(tmp_path, got.put_nowait)
    await receiver.start()
    try:
        await sender.send([delta(2)])  # at once: no waiting for the sender's refresh
        async with asyncio.timeout(5):
            batch = await got.get()
    finally:
        await receiver.close()
        await sender.close()
    assert [d.n for d in batch] == [2]
    assert not list((tmp_path / "stream").glob("*.draft"))


def test_deltas_are_split_to_the_carrier_limit_and_a_large_one_keeps_its_text() -> None:
    big = delta(1).model_copy(update={"text": "é" * 5000 + '\n"end"'})
    small = [delta(n).model_copy(update={"text": f"t{n}"}) for n in range(2, 200)]
    bodies = list(encode_deltas([big, *small], 2000))
    assert all(len(body) <= 2000 for body in bodies) and len(bodies) > 5
    got = [d for body in bodies for d in decode_deltas(body)]
    pieces = [d for d in got if d.n == 1]
    assert len(pieces) > 1 and "".join(d.text for d in pieces) == big.text
    assert got[len(pieces) :] == small


async def test_the_text_at_hand_goes_before_the_sessions_last_event(store: Store) -> None:
    """The call that ends a session sends its text, then commits the end: a watcher that
    had both in memory and took the end first stopped there, and the text was lost (a
    terminal's `orchestrator run` printed no answer)."""
    await new_session(store, "end")
    await append(store, "end", "a")
    hub = EventHub(store)
    with hub.watch("end") as watch:
        first = await watch.next(1.0)
        assert isinstance(first, AuditEvent) and first.seq == 1
        await append(store, "end", "call", EventKind.MODEL_CALL)
        await append(store, "end", "close", EventKind.SESSION_COMPLETED)
        hub.touch("end")
        async with asyncio.timeout(10):
            while hub.held("end") < 2:  # both new events read into memory
                await asyncio.sleep(0)
        for n, text in enumerate(["Dear ", "Ana"], start=1):
            hub.publish(
                StreamDelta(
                    session_id="end",
                    step_id="s1",
                    round=0,
                    step_attempt=0,
                    attempt=1,
                    n=n,
                    kind="text",
                    text=text,
                )
            )
        got = [await watch.next(1.0) for _ in range(4)]
    kinds = [
        item.kind if isinstance(item, AuditEvent) else f"delta {item.text}"
        for item in got
        if isinstance(item, AuditEvent | StreamDelta)
    ]
    assert kinds == [
        EventKind.MODEL_CALL,
        "delta Dear ",
        "delta Ana",
        EventKind.SESSION_COMPLETED,
    ]
