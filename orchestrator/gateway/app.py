"""The gateway's routes as Starlette routes, for `orchestrator api` to mount under `/v1`.

A thin adapter: the body is read up to the size limit (413 past it, in the route's API's
error shape) into an `Ask`, the route answers a `Reply`, and the reply goes out as a
Starlette response (SSE chunks as a `StreamingResponse`, which stops them when the client
disconnects). `orchestrator gateway` serves the same routes with its own server
(`orchestrator.gateway.server`).
"""

from __future__ import annotations

import asyncio

from starlette._utils import get_route_path
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Match
from starlette.types import Receive, Scope, Send

from orchestrator.gateway.errors import BodyTooLarge, error_response
from orchestrator.gateway.exchange import Ask, Reply, Route
from orchestrator.gateway.routes import routes
from orchestrator.gateway.service import Gateway

__all__ = ["gateway_app", "gateway_routes"]


async def _body(request: Request, limit: int) -> bytes:
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
    return b"".join(chunks)


class _Disconnect:
    """The request's disconnect as one future, made when first asked for.

    The body has been read, so the next ASGI message can only be the disconnect.
    """

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.future: asyncio.Future[None] | None = None

    def __call__(self) -> asyncio.Future[None]:
        if self.future is None:
            self.future = asyncio.ensure_future(self._wait())
        return self.future

    async def _wait(self) -> None:
        await self._receive()

    def close(self) -> None:
        if self.future is not None and not self.future.done():
            self.future.cancel()


def _response(reply: Reply) -> Response:
    media = reply.content_type or None
    if reply.chunks is not None:
        return StreamingResponse(
            reply.chunks, status_code=reply.status, headers=reply.headers, media_type=media
        )
    # The content type is set whole (charset included), as the lean server writes it.
    headers = dict(reply.headers)
    if media is not None:
        headers["content-type"] = media
    return Response(reply.body, status_code=reply.status, headers=headers)


class _Endpoint(BaseRoute):
    """One method at one exact path, its handler called with no per-route wrapping.

    Starlette's `Route` wraps every call in its request-response and exception layers;
    the gateway's handlers already answer every error themselves, so a request goes
    straight from the router to the handler and its response.
    """

    def __init__(self, route: Route, limit: int) -> None:
        self.route = route
        self.path = route.path
        self.limit = limit

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or get_route_path(scope) != self.path:
            return Match.NONE, {}
        return (Match.FULL if scope["method"] == self.route.method else Match.PARTIAL), {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.route
        if scope["method"] != route.method:
            response: Response = PlainTextResponse(
                "Method Not Allowed", status_code=405, headers={"allow": route.method}
            )
            await response(scope, receive, send)
            return
        request = Request(scope, receive, send)
        disconnect = _Disconnect(receive)
        try:
            body = await _body(request, self.limit)
        except BodyTooLarge as exc:
            reply = error_response(exc, route.dialect, {})
        else:
            ask = Ask(scope["method"], self.path, request.headers, body, disconnect)
            try:
                reply = await route.handler(ask)
            finally:
                # Before the response: a streamed one listens for the disconnect itself.
                disconnect.close()
        try:
            await _response(reply)(scope, receive, send)
        finally:
            if reply.after is not None:
                await reply.after()


def gateway_routes(gateway: Gateway, prefix: str = "") -> list[BaseRoute]:
    """The routes, relative to where they are mounted (`/v1`), or under `prefix`."""
    limit = gateway.settings.max_body_bytes
    return [_Endpoint(route, limit) for route in routes(gateway, prefix)]


def gateway_app(gateway: Gateway) -> Starlette:
    """The routes as an app, to mount at `/v1`."""
    return Starlette(routes=gateway_routes(gateway))
