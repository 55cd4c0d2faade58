"""The gateway's HTTP routes: OpenAI- and Anthropic-compatible, to mount under `/v1`.

Bodies are read up to the size limit (413 past it) and parsed (400 when not JSON) before
anything else happens, so bad input changes nothing stored. Every error comes back in the
error shape of the API the client spoke.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable

from pydantic import JsonValue
from starlette._utils import get_route_path
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Match
from starlette.types import Receive, Scope, Send

from orchestrator.exceptions import StoreError
from orchestrator.gateway.anthropic_wire import parse_messages, render_messages
from orchestrator.gateway.calls import ChatCall
from orchestrator.gateway.embeddings import embed
from orchestrator.gateway.errors import (
    BadRequest,
    BodyTooLarge,
    Dialect,
    GatewayError,
    error_response,
)
from orchestrator.gateway.openai_wire import parse_chat, render_chat
from orchestrator.gateway.service import Gateway, Outcome
from orchestrator.gateway.stream import ClientGone, stream_response
from orchestrator.logs import get_logger

__all__ = ["gateway_app", "gateway_routes"]

log = get_logger(__name__)


async def _body(request: Request, limit: int) -> JsonValue:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"body of {declared} bytes is over the gateway's limit of {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"body is over the gateway's limit of {limit} bytes")
        chunks.append(chunk)
    try:
        value: JsonValue = json.loads(b"".join(chunks))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    return value


async def _answer(request: Request, gateway: Gateway, call: ChatCall, api: Dialect) -> Outcome:
    """The whole answer; a client that disconnects first cancels the upstream call.

    The request runs in this task, and a watcher of the connection cancels it if the client
    goes away first (the body has been read, so the next ASGI message can only be the
    disconnect). A task of its own for the work and `asyncio.wait` on both cost more than
    the routing of the request.

    Raises:
        ClientGone: the client disconnected before the answer was ready.
    """
    admitted = await gateway.admit(call, request.headers, api)
    task = asyncio.current_task()
    assert task is not None
    answered = False

    def disconnected(_: object) -> None:
        if not answered:
            task.cancel()

    gone = asyncio.ensure_future(request.receive())
    gone.add_done_callback(disconnected)
    try:
        outcome = await gateway.run(admitted)
        answered = True
        return outcome
    except asyncio.CancelledError:
        if gone.done() and not gone.cancelled():
            task.uncancel()
            raise ClientGone from None
        raise
    finally:
        answered = True
        gone.cancel()


def _include_usage(raw: JsonValue) -> bool:
    """Whether an OpenAI client asked for a usage chunk at the end of its stream."""
    options = raw.get("stream_options") if isinstance(raw, dict) else None
    return isinstance(options, dict) and options.get("include_usage") is True


def _guarded(
    dialect: Dialect, handler: Callable[[Request], Awaitable[Response]]
) -> Callable[[Request], Awaitable[Response]]:
    """Turn every refusal into the client's own error shape; never a traceback."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except GatewayError as exc:
            return error_response(exc, dialect, {})
        except ClientGone:
            return Response(status_code=499)
        except StoreError as exc:
            log.error("gateway: store failed", error=str(exc))
            return error_response(GatewayError(f"the gateway's store failed: {exc}"), dialect, {})

    return endpoint


class _Endpoint(BaseRoute):
    """One method at one exact path, its handler called with no per-route wrapping.

    Starlette's `Route` wraps every call in its request-response and exception layers;
    the gateway's handlers already answer every error themselves (`_guarded`), so a
    request goes straight from the router to the handler and its response.
    """

    def __init__(
        self, path: str, method: str, handler: Callable[[Request], Awaitable[Response]]
    ) -> None:
        self.path = path
        self.method = method
        self.handler = handler

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or get_route_path(scope) != self.path:
            return Match.NONE, {}
        return (Match.FULL if scope["method"] == self.method else Match.PARTIAL), {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != self.method:
            response: Response = PlainTextResponse(
                "Method Not Allowed", status_code=405, headers={"allow": self.method}
            )
        else:
            response = await self.handler(Request(scope, receive, send))
        await response(scope, receive, send)


def gateway_routes(gateway: Gateway, prefix: str = "") -> list[BaseRoute]:
    """The routes, relative to where they are mounted (`/v1`), or under `prefix`."""
    limit = gateway.settings.max_body_bytes

    async def chat_completions(request: Request) -> Response:
        raw = await _body(request, limit)
        call = parse_chat(raw)
        if call.stream:
            admitted = await gateway.admit(call, request.headers, "openai")
            return await stream_response(request, gateway, admitted, _include_usage(raw))
        outcome = await _answer(request, gateway, call, "openai")
        body = render_chat(
            outcome.answered.response,
            deployment=outcome.answered.deployment,
            call_id=f"chatcmpl-{outcome.request_id}",
            created=int(time.time()),
        )
        return JSONResponse(body, headers=outcome.headers())

    async def messages(request: Request) -> Response:
        call = parse_messages(await _body(request, limit))
        if call.stream:
            admitted = await gateway.admit(call, request.headers, "anthropic")
            return await stream_response(request, gateway, admitted)
        outcome = await _answer(request, gateway, call, "anthropic")
        body = render_messages(
            outcome.answered.response,
            deployment=outcome.answered.deployment,
            call_id=f"msg_{outcome.request_id}",
        )
        return JSONResponse(body, headers=outcome.headers())

    async def embeddings(request: Request) -> Response:
        raw = await _body(request, limit)
        if not isinstance(raw, dict):
            raise BadRequest("body: expected an object")
        body, deployment = await embed(gateway, raw, request.headers)
        return JSONResponse(
            body,
            headers={"x-orchestrator-deployment": deployment, "x-request-id": uuid.uuid4().hex},
        )

    async def models(request: Request) -> Response:
        key = gateway.authenticate(request.headers)
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "orchestrator"}
            for name in gateway.names_for(key)
        ]
        return JSONResponse({"object": "list", "data": data})

    return [
        _Endpoint(f"{prefix}/chat/completions", "POST", _guarded("openai", chat_completions)),
        _Endpoint(f"{prefix}/messages", "POST", _guarded("anthropic", messages)),
        _Endpoint(f"{prefix}/embeddings", "POST", _guarded("openai", embeddings)),
        _Endpoint(f"{prefix}/models", "GET", _guarded("openai", models)),
    ]


def gateway_app(gateway: Gateway) -> Starlette:
    """The routes as an app, to mount at `/v1`."""
    return Starlette(routes=gateway_routes(gateway))
