"""A streaming chat request: the upstream call as a task, its deltas relayed as SSE.

The response starts only when the first piece of the answer arrives (or the whole answer,
from a deployment that does not stream), so retries and failovers before it are invisible
to the client and the headers name the deployment that really answers. From the first
relayed byte on, the attempt is committed: a failure ends the stream with an error event
in the client's format instead of handing the rest to another model (LiteLLM #31067: a
mid-stream fallback turned tool calls into prose). A client that disconnects cancels the
upstream call.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

from orchestrator.gateway.errors import GatewayError, error_response
from orchestrator.gateway.exchange import SSE, Ask, Reply
from orchestrator.gateway.relay import normalised
from orchestrator.gateway.service import Admitted, Gateway, Outcome
from orchestrator.gateway.sessions import Boundary
from orchestrator.gateway.sse import AnthropicStream, OpenAIStream, StreamEncoder
from orchestrator.providers.streaming import DeltaSink, ModelDelta

__all__ = ["ClientGone", "stream_reply", "until_disconnect"]

_Item = tuple[str, ModelDelta] | Outcome | GatewayError
_T = TypeVar("_T")


async def until_disconnect(ask: Ask, wanted: Awaitable[_T], work: asyncio.Future[Any] | None) -> _T:
    """Await `wanted`, unless the client disconnects first: then cancel `work` and give up.

    `work` is the upstream call.

    Raises:
        ClientGone: the client disconnected.
    """
    waiting = asyncio.ensure_future(wanted)
    gone = ask.gone()
    try:
        watched: set[asyncio.Future[Any]] = {waiting, gone}
        await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        if waiting.done():
            return waiting.result()
        if work is not None and not work.done():
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work
        raise ClientGone
    finally:
        # `gone` is the request's, shared with its other watchers: never cancelled here.
        if not waiting.done():
            waiting.cancel()


class ClientGone(Exception):
    """The client disconnected before its answer was ready."""


async def stream_reply(
    ask: Ask, gateway: Gateway, admitted: Admitted, include_usage: bool = False
) -> Reply:
    """The SSE reply of an admitted request, or its error as JSON if nothing was sent.

    The reply's chunks end the upstream call when they are closed early (the adapter
    cancels their writing when the client disconnects).
    """
    queue: asyncio.Queue[_Item] = asyncio.Queue()
    relayed = [False]
    cache: list[str] = []

    def sink_for(deployment: str) -> DeltaSink:
        async def sink(delta: ModelDelta) -> None:
            relayed[0] = True
            await queue.put((deployment, delta))

        return sink

    async def run() -> None:
        try:
            await queue.put(await gateway.run(admitted, sink_for, lambda: relayed[0], cache.append))
        except GatewayError as exc:
            await queue.put(exc)

    task = asyncio.create_task(run())
    first = await until_disconnect(ask, queue.get(), task)
    if isinstance(first, GatewayError):
        await task
        return error_response(first, admitted.api, {})
    deployment = first[0] if isinstance(first, tuple) else first.answered.deployment
    encoder = _encoder(admitted, deployment, include_usage)
    # A cached answer keeps the request's boundary, as a non-streamed hit does.
    same = deployment == admitted.first or bool(cache)
    boundary = admitted.boundary.value if same else Boundary.FAILOVER
    headers = {
        "x-orchestrator-deployment": deployment,
        "x-orchestrator-boundary": str(boundary),
        "x-orchestrator-session": admitted.session.session_id,
        "x-orchestrator-session-source": admitted.session.source,
        "x-request-id": admitted.request_id,
        "cache-control": "no-cache",
    }
    if cache:
        headers["x-orchestrator-cache"] = cache[0]
    return Reply(200, headers, content_type=SSE, chunks=_events(encoder, first, queue, task))


def _encoder(admitted: Admitted, deployment: str, include_usage: bool) -> StreamEncoder:
    if admitted.api == "anthropic":
        return AnthropicStream(deployment, f"msg_{admitted.request_id}")
    return OpenAIStream(
        deployment, f"chatcmpl-{admitted.request_id}", int(time.time()), include_usage
    )


async def _events(
    encoder: StreamEncoder,
    first: _Item,
    queue: asyncio.Queue[_Item],
    task: asyncio.Task[None],
) -> AsyncIterator[bytes]:
    """The encoded events, as one chunk per batch of items that were ready together.

    The upstream call queues every event of one read before this runs again, so a batch is
    what arrived in one read: one write to the client for it, never a wait for more.
    """
    item = first
    try:
        out = encoder.start()
        while True:
            done = _encode(encoder, item, out)
            while not done and not queue.empty():
                done = _encode(encoder, queue.get_nowait(), out)
            yield b"".join(out)
            if done:
                return
            out = []
            item = await queue.get()
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _encode(encoder: StreamEncoder, item: _Item, out: list[bytes]) -> bool:
    """Add `item`'s events to `out`; whether it ended the stream."""
    if isinstance(item, GatewayError):
        out += encoder.error(item)
        return True
    if isinstance(item, Outcome):
        out += encoder.finish(normalised(item.answered.response))
        return True
    out += encoder.delta(item[1])
    return False
