"""Server-Sent Events, read off a stream of lines, as both model APIs send them.

Only what the WHATWG event-stream format says a client must do: `event:` and `data:`
fields (several `data:` lines joined by newlines), comments (`:`) and unknown fields
ignored, an event dispatched on its closing blank line. An event whose blank line never
came was cut off with the connection, so it is dropped, never half-read.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

__all__ = ["SSEEvent", "sse_events"]


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event: its type (`message` when the server named none) and data."""

    event: str
    data: str


async def sse_events(lines: AsyncIterable[str]) -> AsyncIterator[SSEEvent]:
    """The events of an event stream, given its lines without their line endings."""
    event = ""
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield SSEEvent(event or "message", "\n".join(data))
            event, data = "", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
