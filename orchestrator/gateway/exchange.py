"""A gateway request and its reply, whatever serves them: the lean server or Starlette.

The routes (`orchestrator.gateway.routes`) take an `Ask` and give a `Reply`; two thin
adapters carry them over HTTP: `orchestrator.gateway.server` for `orchestrator gateway`
(its own HTTP/1.1 server, where uvicorn's and Starlette's layers cost more CPU than the
routes themselves) and `orchestrator.gateway.app` for `orchestrator api`, which mounts the
routes under `/v1` beside its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from pydantic import JsonValue

from orchestrator.gateway import jsonio

__all__ = [
    "JSON",
    "SSE",
    "TEXT",
    "Ask",
    "Dialect",
    "Handler",
    "Reply",
    "Route",
    "json_reply",
    "text_reply",
]

Dialect = Literal["openai", "anthropic"]
"""The API a route speaks, and so the shape of its errors."""

JSON = "application/json"
SSE = "text/event-stream; charset=utf-8"
TEXT = "text/plain; charset=utf-8"


@dataclass(slots=True)
class Ask:
    """One request, read whole: what a route needs of it.

    `headers` has lower-case names (the first of repeated ones). `gone` resolves when the
    client disconnects; it is shared by whoever watches the request, so a watcher adds and
    removes its callback or waits on it, and never cancels it.
    """

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    gone: Callable[[], asyncio.Future[None]] = field(repr=False)
    """The disconnect as a future; called only once the body is read."""


@dataclass(slots=True)
class Reply:
    """A route's answer: a whole body, or `chunks` written as they come (SSE).

    `after` is work the answer does not wait for, run by the adapter once the answer is
    written (or the client is gone): a served request's audit row. It answers its own
    errors; the adapter awaits it before the connection's next request.
    """

    status: int
    headers: Mapping[str, str]
    body: bytes = b""
    content_type: str = JSON
    chunks: AsyncIterator[bytes] | None = None
    after: Callable[[], Awaitable[None]] | None = None


Handler = Callable[[Ask], Awaitable[Reply]]


@dataclass(frozen=True, slots=True)
class Route:
    """One method at one exact path, and the API it speaks.

    `dialect` shapes the errors the adapter itself raises (a body over the limit) before
    the handler runs.
    """

    method: str
    path: str
    dialect: Dialect
    handler: Handler


def json_reply(
    content: JsonValue, status: int = 200, headers: Mapping[str, str] | None = None
) -> Reply:
    """`content` as compact JSON, as Starlette's `JSONResponse` renders it."""
    return Reply(status, headers or {}, jsonio.dumps(content))


def text_reply(text: str, status: int, headers: Mapping[str, str] | None = None) -> Reply:
    """A plain-text answer (405, 404, 400 from the server itself)."""
    return Reply(status, headers or {}, text.encode(), TEXT)
