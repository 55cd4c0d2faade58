"""Follow a session's event stream over HTTP, resuming after every disconnect.

`follow` is what `orchestrator sessions watch` runs, and what a Python program on another
machine than the worker can use: it parses Server-Sent Events, remembers the last durable
event's id, and on a dropped connection (or a `dropped` notice) connects again with
`Last-Event-ID`, so the caller sees each durable event once, in order.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Final

import httpx

from orchestrator.exceptions import OrchestratorError

__all__ = ["SseMessage", "StreamClosed", "follow", "sse_messages"]

RECONNECT_S: Final = 0.5


@dataclass(frozen=True)
class SseMessage:
    """One Server-Sent Event: its type (`message` when none was named), id and data."""

    event: str
    data: str
    id: str | None

    def json(self) -> dict[str, object]:
        """The data as a JSON object."""
        value = json.loads(self.data)
        if not isinstance(value, dict):
            raise ValueError("event data is not a JSON object")
        return value


class StreamClosed(OrchestratorError):
    """The server refused the stream (401, 404, ...): retrying will not help."""


async def sse_messages(lines: AsyncIterator[str]) -> AsyncIterator[SseMessage]:
    """Parse SSE lines (as `httpx.Response.aiter_lines` gives them) into messages."""
    event, event_id = "", None
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield SseMessage(event or "message", "\n".join(data), event_id)
            event, data, event_id = "", [], None
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            event_id = value


async def follow(
    client: httpx.AsyncClient,
    session_id: str,
    *,
    after: int = 0,
    max_reconnects: int | None = None,
    on_resume: Callable[[int], None] | None = None,
) -> AsyncIterator[SseMessage]:
    """Every message of the session's stream from after `after`, reconnecting as needed.

    Ends after `end` (the session finished) or when the server answers 204. `client`
    carries the base URL and the `Authorization` header. `on_resume(last)` is told each
    time a connection after the first is accepted, with the seq it resumes after.

    Raises:
        StreamClosed: the server answered 4xx (no token, unknown session).
        httpx.HTTPError: `max_reconnects` consecutive connections failed.
    """
    last = after
    failures = 0
    connected = False
    while True:
        try:
            async with client.stream(
                "GET",
                f"/api/sessions/{session_id}/events",
                headers={"Last-Event-ID": str(last), "Accept": "text/event-stream"},
                timeout=httpx.Timeout(10.0, read=None),
            ) as response:
                if response.status_code == 204:
                    return
                if 400 <= response.status_code < 500:
                    await response.aread()
                    raise StreamClosed(_refusal(response))
                response.raise_for_status()
                failures = 0
                if connected and on_resume is not None:
                    on_resume(last)
                connected = True
                async for message in sse_messages(response.aiter_lines()):
                    if message.id is not None:
                        last = int(message.id)
                    yield message
                    if message.event == "end":
                        return
                    if message.event == "dropped":
                        break
        except (httpx.TransportError, httpx.HTTPStatusError):
            failures += 1
            if max_reconnects is not None and failures > max_reconnects:
                raise
        await asyncio.sleep(RECONNECT_S if failures else 0)


def _refusal(response: httpx.Response) -> str:
    try:
        reason = response.json().get("error", response.text)
    except ValueError:
        reason = response.text
    return f"{response.request.url.path}: {response.status_code} {reason}"
