"""Server-Sent Events framing, and a streaming response that drops a stalled client.

Starlette's `StreamingResponse` waits for ever on a client that stopped reading (the
socket's buffer fills and every send waits for it to drain), which would keep its
watcher, and the connection, for ever. `EventStreamResponse` gives each send
`send_timeout` seconds; a client that takes longer is disconnected and resumes with its
`Last-Event-ID`, like after any other disconnect.

The limit is kept by one watchdog per stream, not by an `asyncio.timeout` around each
send: a send that does not wait for the client (nearly all of them) then costs no timer
made and cancelled, which under a crowd's tokens was an eighth of the API process's work
per write (bench/README.md, `stream.py`, "the API's fan-out"). The watchdog looks at the
send under way every quarter of `send_timeout`, so a stalled client is cut between
`send_timeout` and 1.25 times it after its send began.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

__all__ = ["EventStreamResponse", "comment", "frame"]


def frame(data: str, *, event: str | None = None, id: int | None = None) -> bytes:
    """One SSE event; `data` is one JSON line (no newlines)."""
    head = f"id: {id}\n" if id is not None else ""
    head += f"event: {event}\n" if event else ""
    return f"{head}data: {data}\n\n".encode()


def comment(text: str) -> bytes:
    """An SSE comment: ignored by clients, keeps proxies from closing an idle stream."""
    return f": {text}\n\n".encode()


class EventStreamResponse(Response):
    """A `text/event-stream` response over `chunks`.

    It ends when the chunks end, the client goes away, or the client stops reading for
    `send_timeout` seconds.
    """

    def __init__(self, chunks: AsyncGenerator[bytes, None], *, send_timeout: float = 30.0) -> None:
        super().__init__(status_code=200, media_type="text/event-stream")
        self._chunks = chunks
        self._send_timeout = send_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the headers, then each chunk as it comes, until one side is done."""
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-store"),
                    (b"x-accel-buffering", b"no"),
                ],
            }
        )
        sending = _Sending()
        writer = asyncio.create_task(self._write(send, sending))
        reader = asyncio.create_task(_until_disconnect(receive))
        watchdog = asyncio.create_task(_until_stalled(sending, self._send_timeout))
        try:
            await asyncio.wait({writer, reader, watchdog}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (writer, reader, watchdog):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, TimeoutError, OSError):
                    await task
            with contextlib.suppress(Exception):
                await self._chunks.aclose()

    async def _write(self, send: Send, sending: _Sending) -> None:
        loop = asyncio.get_running_loop()
        async for chunk in self._chunks:
            sending.since = loop.time()
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            sending.since = None
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class _Sending:
    """When the send under way began (the loop's clock), or None between sends."""

    __slots__ = ("since",)

    def __init__(self) -> None:
        self.since: float | None = None


async def _until_stalled(sending: _Sending, limit: float) -> None:
    """Return once a send has been under way for `limit` seconds (looked at every limit/4)."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(limit / 4)
        since = sending.since
        if since is not None and loop.time() - since >= limit:
            return


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
