"""The events that are ready together reach the client as one chunk (one write), at once."""

from __future__ import annotations

import asyncio

from orchestrator.gateway.errors import BadRequest
from orchestrator.gateway.sse import OpenAIStream
from orchestrator.gateway.stream import _events, _Item
from orchestrator.providers.streaming import ModelDelta


def _text(text: str) -> _Item:
    return ("d", ModelDelta(kind="text", text=text))


async def test_events_ready_together_go_out_in_one_chunk_and_later_ones_in_the_next() -> None:
    queue: asyncio.Queue[_Item] = asyncio.Queue()
    for text in ("b", "c"):
        queue.put_nowait(_text(text))
    upstream = asyncio.Event()

    async def call() -> None:
        await upstream.wait()

    task = asyncio.create_task(call())
    encoder, alone = OpenAIStream("d", "id", 1, False), OpenAIStream("d", "id", 1, False)
    chunks = _events(encoder, _text("a"), queue, task)

    first = await anext(chunks)
    expected = alone.start() + [alone.delta(ModelDelta(kind="text", text=t))[0] for t in "abc"]
    assert first == b"".join(expected)

    later = asyncio.ensure_future(anext(chunks))
    await asyncio.wait({later}, timeout=0)
    assert not later.done()  # nothing ready: it waits for the next event, sends nothing
    queue.put_nowait(BadRequest("over"))
    assert await later == b"".join(alone.error(BadRequest("over")))
    assert [chunk async for chunk in chunks] == []
    assert task.cancelled()
