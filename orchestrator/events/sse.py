"""Server-Sent Events framing, and a streaming response that drops a stalled client.

Starlette's `StreamingResponse` waits for ever on a client that stopped reading (the
socket's buffer fills and every send waits for it to drain), which would keep its
watcher, and the connection, for ever. `EventStreamResponse` gives each send
`send_timeout` seconds; a client that takes longer is disconnected and resumes with its
`Last-Event-ID`, like after any other disconnect.
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
        writer = asyncio.create_task(self._write(send))
        reader = asyncio.create_task(_until_disconnect(receive))
        try:
            await asyncio.wait({writer, reader}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (writer, reader):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, TimeoutError, OSError):
                    await task
            with contextlib.suppress(Exception):
                await self._chunks.aclose()

    async def _write(self, send: Send) -> None:
        async for chunk in self._chunks:
            async with asyncio.timeout(self._send_timeout):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
