"""A tap in front of the scripted model server: who asked what when, and a hold for one call.

The harness needs two things from the model endpoint: a record of every request (which
session, which step, which turn, when), to show that nothing before an approval gate was
asked again after it; and a way to stop the worker in the middle of a model call, which it
gets by holding the next request until the worker has been killed; and the moment an
answer has left, to kill the worker between that activity and the next.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ModelTap", "TappedRequest"]

_STEP = re.compile(r"^Step: (\S+)", re.MULTILINE)


@dataclass(frozen=True)
class TappedRequest:
    """One chat-completions request as the endpoint saw it."""

    session_id: str | None
    step_id: str | None
    turn: int
    """Assistant messages already in the request: which turn of the step it asks for."""
    at: float
    """`time.monotonic()` when it arrived."""


def _describe(body: bytes, tag_key: str) -> tuple[str | None, str | None, int]:
    try:
        request = json.loads(body)
        messages = list(request["messages"])
    except (ValueError, KeyError, TypeError):
        return None, None, 0
    step: str | None = None
    session: str | None = None
    turn = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        role = message.get("role") if isinstance(message, dict) else None
        if role == "assistant":
            turn += 1
        if not isinstance(content, str):
            continue
        if role == "system" and step is None and (found := _STEP.search(content)):
            step = found.group(1)
        if role == "user" and session is None:
            tagged = re.search(rf'"{re.escape(tag_key)}": "([^"]+)"', content)
            session = tagged.group(1) if tagged else None
    return session, step, turn


class ModelTap:
    """ASGI middleware that records chat-completions requests and can hold the next one.

    Args:
        app: The scripted model server's app.
        tag_key: The session input key whose value names the session; agent steps show
            the session input to the model, so every request carries it.
    """

    def __init__(self, app: ASGIApp, *, tag_key: str = "chaos_session") -> None:
        self.app = app
        self.tag_key = tag_key
        self.requests: list[TappedRequest] = []
        self._arrived: asyncio.Event | None = None
        self._answered: asyncio.Event | None = None
        self._release = asyncio.Event()
        self._release.set()

    def hold_next(self) -> asyncio.Event:
        """Hold the next request until `release`; the event is set when it arrives."""
        self._arrived = asyncio.Event()
        self._release = asyncio.Event()
        return self._arrived

    def answered_next(self) -> asyncio.Event:
        """An event set as soon as the next answer has been sent in full."""
        self._answered = asyncio.Event()
        return self._answered

    def release(self) -> None:
        """Let a held request (and any after it) through."""
        self._arrived = None
        self._release.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Record a chat-completions request (holding it if asked), then pass it on."""
        if scope["type"] != "http" or not scope["path"].endswith("/chat/completions"):
            await self.app(scope, receive, send)
            return
        chunks: list[Message] = []
        while True:
            message = await receive()
            chunks.append(message)
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        body = b"".join(m.get("body", b"") for m in chunks if m["type"] == "http.request")
        session, step, turn = _describe(body, self.tag_key)
        self.requests.append(TappedRequest(session, step, turn, time.monotonic()))
        if self._arrived is not None and not self._arrived.is_set():
            self._arrived.set()
            await self._release.wait()

        async def replay() -> Message:
            if chunks:
                return chunks.pop(0)
            return await receive()

        await self.app(scope, replay, send)
        if self._answered is not None:
            self._answered.set()
            self._answered = None
