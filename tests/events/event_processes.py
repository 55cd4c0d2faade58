"""Real processes for the event-stream tests: several `orchestrator api` processes as
operators run them (`process_helpers`), and in front of the scripted model server a stream
that stops half-way.

The API processes share nothing with the test but the store and the approvers file, as
in a deployment; watchers reach them over HTTP only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from process_helpers import process_env, start_serving, stop_serving
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator.approvals.people import hash_token
from orchestrator.devserver import free_port
from orchestrator.settings import Settings

TOKEN = "watch-token"
"""The bearer token of `ana`, the one person in `approvers_file`."""


def approvers_file(folder: Path) -> Path:
    """An approvers file naming one person who may watch sessions with `TOKEN`."""
    path = folder / "approvers.yaml"
    path.write_text(
        f"groups: [ops]\nusers:\n  ana:\n    groups: [ops]\n    tokens: ['{hash_token(TOKEN)}']\n",
        encoding="utf-8",
    )
    return path


async def _started(settings: Settings, approvers: Path) -> tuple[asyncio.subprocess.Process, int]:
    port = free_port()
    env = process_env(
        settings,
        ORCHESTRATOR_APPROVERS_FILE=str(approvers),
        ORCHESTRATOR_LOG_FORMAT="json",
    )
    return await start_serving(env, port), port


@contextlib.asynccontextmanager
async def api_processes(
    settings: Settings, approvers: Path, count: int
) -> AsyncIterator[list[httpx.AsyncClient]]:
    """`count` `orchestrator api` processes, started at once, each on a free port.

    Yields a client per process with its base URL and `TOKEN`. The processes are stopped
    with SIGINT, as a person at a terminal would.
    """
    started = await asyncio.gather(
        *(_started(settings, approvers) for _ in range(count)), return_exceptions=True
    )
    procs = [s[0] for s in started if not isinstance(s, BaseException)]
    try:
        for outcome in started:
            if isinstance(outcome, BaseException):
                raise outcome
        async with contextlib.AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(
                    httpx.AsyncClient(
                        base_url=f"http://127.0.0.1:{port}",
                        headers={"Authorization": f"Bearer {TOKEN}"},
                    )
                )
                for _proc, port in started  # type: ignore[misc]
            ]
            yield clients
    finally:
        await asyncio.gather(*(stop_serving(proc) for proc in procs))


class HoldStream:
    """ASGI middleware that lets the first chat-completions stream send `frames` SSE frames,
    then holds it (the rest never comes while the test runs); later requests pass whole.

    A model that stops mid-answer without closing the connection, as a worker sees an
    endpoint while it is killed.
    """

    def __init__(self, app: ASGIApp, frames: int) -> None:
        self.app = app
        self.frames = frames
        self.held = asyncio.Event()
        """Set once the first frames of the first stream went out."""
        self.release = asyncio.Event()
        self._seen = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/chat/completions"):
            await self.app(scope, receive, send)
            return
        self._seen += 1
        if self._seen > 1:
            await self.app(scope, receive, send)
            return
        sent = bytearray()

        async def cut(message: Message) -> None:
            if message["type"] != "http.response.body" or self.held.is_set():
                if not self.held.is_set():
                    await send(message)
                return
            sent.extend(message.get("body", b""))
            ends = [i for i in range(len(sent)) if sent.startswith(b"\n\n", i)]
            if len(ends) < self.frames:
                return  # wait for more of the stream before sending anything
            body = bytes(sent[: ends[self.frames - 1] + 2])
            await send({"type": "http.response.body", "body": body, "more_body": True})
            self.held.set()
            await self.release.wait()
            raise OSError("held stream released")

        with contextlib.suppress(OSError):
            await self.app(scope, receive, cut)
