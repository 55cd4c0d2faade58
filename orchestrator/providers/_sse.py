"""Server-Sent Events, read off the bytes of a stream, as both model APIs send them.

Only what the WHATWG event-stream format says a client must do: lines end with CR, LF or
CRLF (nothing else: a U+2028 inside a JSON string is text), `event:` and `data:` fields
(several `data:` lines joined by newlines), comments (`:`) and unknown fields ignored, an
event dispatched on its closing blank line. An event whose blank line never came was cut
off with the connection, so it is dropped, never half-read.

The events are split off the bytes as they arrive, on their blank lines, and each is
decoded once: a model stream is mostly one-line `data:` events, and splitting it line by
line first (httpx's `aiter_lines`, a `str` per line) cost a streamed call more CPU than
folding its events did (bench/README.md, time to first token).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

__all__ = ["SSEEvent", "parse_event", "split_events", "sse_events"]


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event: its type (`message` when the server named none) and data."""

    event: str
    data: str


def split_events(pending: bytes, chunk: bytes) -> tuple[list[bytes], bytes]:
    """The whole events in `pending + chunk` (without their blank lines), and the rest.

    Line ends are made LF first; a CR at the very end stays in the rest, since the LF of
    its CRLF may come with the next chunk (read alone, it would end one line too many).
    """
    buffer = pending + chunk if pending else chunk
    if b"\r" in buffer:
        held = buffer.endswith(b"\r")
        if held:
            buffer = buffer[:-1]
        buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        *events, rest = buffer.split(b"\n\n")
        return events, rest + b"\r" if held else rest
    *events, rest = buffer.split(b"\n\n")
    return events, rest


def parse_event(raw: bytes) -> SSEEvent | None:
    """The event of one block of lines (LF-separated, its blank line gone), if it has data.

    A block can start with blank lines (a stream's spare ones), never hold one inside.
    """
    text = raw.decode("utf-8", "replace")
    if text.startswith("data: ") and "\n" not in text:
        return SSEEvent("message", text[6:])
    event = ""
    data: list[str] = []
    for line in text.split("\n"):
        if not line or line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
    return SSEEvent(event or "message", "\n".join(data)) if data else None


async def sse_events(chunks: AsyncIterable[bytes]) -> AsyncIterator[SSEEvent]:
    """The events of an event stream, given its bytes in chunks of any size."""
    pending = b""
    async for chunk in chunks:
        blocks, pending = split_events(pending, chunk)
        for raw in blocks:
            event = parse_event(raw)
            if event is not None:
                yield event
