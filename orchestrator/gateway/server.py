"""The gateway process's own HTTP/1.1 server: an asyncio protocol over `httptools`.

uvicorn's protocol and Starlette's request, routing and response layers took about two
fifths of the gateway process's CPU (bench/README.md, gateway), more than the routes'
own work. The gateway needs little of them: four routes at exact paths, bodies read
whole (JSON), answers written whole or as server-sent events. This server parses each
request in C, calls its route with an `Ask` and writes the `Reply` in one system call.

What it does of HTTP/1.1: kept-alive connections (closed after `keep_alive_seconds`
idle), pipelined requests answered in order, `Content-Length` and chunked request
bodies, `Expect: 100-continue`, the body limit (413 in the route's API's error shape as
soon as the declared or received size passes it, without reading further), malformed
requests (400, then the connection closes), streamed replies in chunked encoding (a client
that disconnects cancels the stream, and so the upstream call), and a graceful stop
(stop accepting, finish what is in flight, then close). Paths the gateway's routes do not
serve (`/metrics`, `/healthz`, `/readyz`) go to an ASGI `fallback` app, its answer
buffered whole.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import http
import importlib.util
import time
from collections.abc import Sequence
from email.utils import formatdate
from typing import Any, Self, cast
from urllib.parse import unquote

from starlette.types import ASGIApp, Message

from orchestrator.gateway.errors import BodyTooLarge, error_response
from orchestrator.gateway.exchange import Ask, Reply, Route, text_reply
from orchestrator.gateway.routes import routes
from orchestrator.gateway.service import Gateway
from orchestrator.logs import get_logger
from orchestrator.scripted_model.server import Listener

__all__ = ["AVAILABLE", "GatewayServer", "gateway_server"]

log = get_logger(__name__)

AVAILABLE = importlib.util.find_spec("httptools") is not None
"""Whether `httptools` is installed (the `fast` extra); without it `orchestrator gateway`
serves its routes with uvicorn and Starlette, as `orchestrator api` does."""

_STATUS_LINES: dict[int, bytes] = {
    status.value: b"HTTP/1.1 %d %s\r\n" % (status.value, status.phrase.encode())
    for status in http.HTTPStatus
}
_STATUS_LINES[499] = b"HTTP/1.1 499 Client Closed Request\r\n"
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_PIPELINE_PAUSE = 32
"""Requests read ahead of the one being answered before the connection stops reading."""
_PIPELINE_RESUME = 8
_LINGER_SECONDS = 2.0
"""After a refusal (413, 400) the connection reads and drops what the client still sends,
for at most this long, so that closing it does not reset the refusal away unread."""


def _status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    return line if line is not None else b"HTTP/1.1 %d Unknown\r\n" % status


def _head(reply: Reply, date: bytes, close: bool, length: int | None) -> bytes:
    """A reply's head: `length` as `Content-Length`, or chunked when None."""
    parts = [_status_line(reply.status), date]
    for name, value in reply.headers.items():
        parts.append(b"%s: %s\r\n" % (name.encode("latin-1"), value.encode("latin-1")))
    if reply.content_type:
        parts.append(b"content-type: %s\r\n" % reply.content_type.encode("latin-1"))
    if length is None:
        parts.append(b"transfer-encoding: chunked\r\n")
    else:
        parts.append(b"content-length: %d\r\n" % length)
    if close:
        parts.append(b"connection: close\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


class _Request:
    """A request being read, then waiting its turn, then answered."""

    __slots__ = (
        "body",
        "chunks",
        "expect",
        "headers",
        "http11",
        "keep_alive",
        "method",
        "path",
        "query",
        "refusal",
        "route",
        "size",
    )

    def __init__(self) -> None:
        self.method = ""
        self.path = ""
        self.query = b""
        self.headers: dict[str, str] = {}
        self.chunks: list[bytes] = []
        self.size = 0
        self.body = b""
        self.keep_alive = True
        self.http11 = True
        self.expect = False
        self.route: Route | None = None
        self.refusal: Reply | None = None
        """Answered without a handler; the connection closes after it."""


class _Stop(Exception):
    """Raised from a parser callback to stop parsing the connection (a refusal)."""


class _Connection(asyncio.Protocol):
    """One client connection: its requests parsed in order and answered in order."""

    def __init__(self, server: GatewayServer) -> None:
        import httptools

        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.upgrade: type[Exception] = httptools.HttpParserUpgrade
        self.malformed: type[Exception] = httptools.HttpParserError
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.reading: _Request | None = None
        """The request whose head or body is arriving."""
        self.waiting: collections.deque[_Request] = collections.deque()
        self.task: asyncio.Task[None] | None = None
        """Answering the request at the head of the line."""
        self.streaming = False
        self.lost: asyncio.Future[None] | None = None
        self.drained: asyncio.Future[None] | None = None
        self.closed = False
        self.parsing = True
        """False after a refusal or a malformed request: later bytes are dropped."""
        self.read_paused = False
        self.idle_since = time.monotonic()

    # ---- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio's, they only behave like them.
        self.transport = cast(asyncio.Transport, transport)
        self.server.connections.add(self)

    def data_received(self, data: bytes) -> None:
        if not self.parsing:
            return
        try:
            self.parser.feed_data(data)
        except self.upgrade:
            # No upgrades here: what follows the request's head is not HTTP/1.1.
            self._stop_parsing()
        except self.malformed as exc:
            if self.parsing:
                self._stop_parsing()
                request = self.reading or _Request()
                self.reading = None
                request.refusal = text_reply(f"Invalid HTTP request received: {exc}", 400)
                self._queue(request)

    def eof_received(self) -> bool | None:
        # Closes the connection; a reply still being written is of no use to anyone.
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.forget(self)
        self.waiting.clear()
        if self.lost is not None and not self.lost.done():
            self.lost.set_result(None)
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)
        if self.streaming and self.task is not None:
            # The stream's writer waits on the upstream call: stop it, which cancels the call.
            self.task.cancel()

    def pause_writing(self) -> None:
        if self.drained is None:
            self.drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        drained, self.drained = self.drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    # ---- httptools callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.url = b""
        self.reading = _Request()
        self.idle_since = 0.0

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        request = self.reading
        assert request is not None
        request.headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))

    def on_headers_complete(self) -> None:
        request = self.reading
        assert request is not None
        parser = self.parser
        request.method = parser.get_method().decode("ascii")
        request.keep_alive = parser.should_keep_alive()
        request.http11 = parser.get_http_version() == "1.1"
        path, _, request.query = self.url.partition(b"?")
        request.path = unquote(path.decode("latin-1")) if b"%" in path else path.decode("ascii")
        request.route = self.server.routes.get(request.path)
        headers = request.headers
        declared = headers.get("content-length")
        limit = self.server.limit
        if declared is not None and declared.isdigit() and int(declared) > limit:
            self._refuse(
                request, f"body of {declared} bytes is over the gateway's limit of {limit}"
            )
        if headers.get("expect", "").lower() == "100-continue":
            request.expect = True
            self._continue()

    def on_body(self, body: bytes) -> None:
        request = self.reading
        assert request is not None
        request.size += len(body)
        if request.size > self.server.limit:
            self._refuse(request, f"body is over the gateway's limit of {self.server.limit} bytes")
        request.chunks.append(body)

    def on_message_complete(self) -> None:
        request = self.reading
        assert request is not None
        self.reading = None
        chunks = request.chunks
        request.body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        request.chunks = []
        self._queue(request)

    # ---- answering ----------------------------------------------------------------------

    def _refuse(self, request: _Request, message: str) -> None:
        """Answer 413 in the route's API's shape, read no more, and stop this parse."""
        dialect = request.route.dialect if request.route is not None else "openai"
        request.refusal = error_response(BodyTooLarge(message), dialect, {})
        self.reading = None
        self._stop_parsing()
        self._queue(request)
        raise _Stop

    def _stop_parsing(self) -> None:
        self.parsing = False

    def _continue(self) -> None:
        """`100 Continue` for the request being read, once it is next in line."""
        request = self.reading
        if (
            request is not None
            and request.expect
            and self.task is None
            and not self.waiting
            and self.transport is not None
        ):
            request.expect = False
            self.transport.write(_CONTINUE)

    def _queue(self, request: _Request) -> None:
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._serve(request))
            return
        self.waiting.append(request)
        if len(self.waiting) >= _PIPELINE_PAUSE and not self.read_paused:
            self.read_paused = True
            assert self.transport is not None
            self.transport.pause_reading()

    def gone(self) -> asyncio.Future[None]:
        """The connection's end, as a future shared by every watcher of its requests."""
        lost = self.lost
        if lost is None:
            lost = self.lost = asyncio.get_running_loop().create_future()
            if self.closed:
                lost.set_result(None)
        return lost

    async def _serve(self, request: _Request) -> None:
        close = True
        reply: Reply | None = None
        try:
            reply = request.refusal or await self._answer(request)
            if self.closed:
                return
            close = request.refusal is not None or not request.keep_alive or self.server.stopping
            if reply.chunks is None:
                self._write_whole(request, reply, close)
            else:
                close = await self._write_stream(request, reply, close)
        except asyncio.CancelledError:
            # The client went away mid-stream, or the server stopped waiting at shutdown.
            return
        except Exception:
            log.exception("gateway: unexpected error answering a request", path=request.path)
            if not self.closed and not self.streaming:
                self._write_whole(request, text_reply("Internal Server Error", 500), True)
            close = True
        finally:
            try:
                if reply is not None and reply.after is not None:
                    # Written (or the client gone): what the answer did not wait for.
                    await reply.after()
            finally:
                self.task = None
                self.streaming = False
                self._after(request, close)

    async def _answer(self, request: _Request) -> Reply:
        route = request.route
        if route is None:
            return await self._fallback(request)
        if request.method != route.method:
            return text_reply("Method Not Allowed", 405, {"allow": route.method})
        return await route.handler(
            Ask(request.method, request.path, request.headers, request.body, self.gone)
        )

    def _write_whole(self, request: _Request, reply: Reply, close: bool) -> None:
        assert self.transport is not None
        body = reply.body
        head = _head(reply, self.server.date, close, len(body))
        self.transport.write(head if request.method == "HEAD" else head + body)

    async def _write_stream(self, request: _Request, reply: Reply, close: bool) -> bool:
        """Write the chunks as they come; whether the connection must close after them.

        The head goes out with the first chunk, in one write: a streamed reply is made
        when its first event is ready (`stream_reply`), so that costs it no time, and
        a write less is a system call less per stream.
        """
        transport = self.transport
        chunks = reply.chunks
        assert transport is not None and chunks is not None
        chunked = request.http11
        close = close or not chunked
        self.streaming = True
        try:
            head = self._stream_head(reply, close, chunked)
            async for chunk in chunks:
                if not chunk:
                    continue
                framed = b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk
                transport.write(head + framed if head else framed)
                head = b""
                if self.drained is not None:
                    await self.drained
                if self.closed:
                    break
            if head and not self.closed:
                transport.write(head)
            if chunked and not self.closed:
                transport.write(b"0\r\n\r\n")
        finally:
            self.streaming = False
            closer = getattr(chunks, "aclose", None)
            if closer is not None:
                await closer()
        return close

    def _stream_head(self, reply: Reply, close: bool, chunked: bool) -> bytes:
        if chunked:
            return _head(reply, self.server.date, close, None)
        # An HTTP/1.0 client: the body ends when the connection does.
        head = _head(reply, self.server.date, True, 0)
        return head.replace(b"content-length: 0\r\n", b"")

    def _after(self, request: _Request, close: bool) -> None:
        """The reply is written: close, or answer the next request in line."""
        transport = self.transport
        if self.closed or transport is None:
            return
        if request.refusal is not None:
            self._linger(transport)
            return
        if close:
            transport.close()
            return
        if self.waiting:
            self.task = asyncio.get_running_loop().create_task(self._serve(self.waiting.popleft()))
            if self.read_paused and len(self.waiting) <= _PIPELINE_RESUME:
                self.read_paused = False
                transport.resume_reading()
            return
        if not self.parsing:
            # An upgrade was asked for: what follows its request is not HTTP/1.1.
            transport.close()
            return
        self.idle_since = time.monotonic() if self.reading is None else 0.0
        self._continue()

    def _linger(self, transport: asyncio.Transport) -> None:
        """Close after a refusal without resetting it away: send FIN, drop what comes."""
        self.parsing = False
        if transport.can_write_eof():
            transport.write_eof()
            asyncio.get_running_loop().call_later(_LINGER_SECONDS, transport.close)
        else:
            transport.close()

    async def _fallback(self, request: _Request) -> Reply:
        """A path of the `fallback` ASGI app, its answer buffered whole."""
        app = self.server.fallback
        if app is None:
            return text_reply("Not Found", 404)
        transport = self.transport
        assert transport is not None
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1" if request.http11 else "1.0",
            "method": request.method,
            "scheme": "http",
            "path": request.path,
            "raw_path": request.path.encode("latin-1"),
            "query_string": request.query,
            "root_path": "",
            "headers": [
                (name.encode("latin-1"), value.encode("latin-1"))
                for name, value in request.headers.items()
            ],
            "client": transport.get_extra_info("peername"),
            "server": transport.get_extra_info("sockname"),
            "state": {},
        }
        sent = False
        start: dict[str, Any] = {}
        body: list[bytes] = []

        async def receive() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": request.body, "more_body": False}
            await self.gone()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                body.append(message.get("body", b""))

        await app(scope, receive, send)
        headers = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in start.get("headers", [])
            if name.lower() != b"content-length"
        }
        return Reply(int(start.get("status", 500)), headers, b"".join(body), content_type="")


class GatewayServer(Listener):
    """Serve `routes` (exact paths) on `host:port` while the block runs.

    Args:
        routes: The gateway's routes, with their full paths (`/v1/...`).
        limit: The largest request body accepted, in bytes (413 past it).
        host: Interface to bind.
        port: Port to bind; 0 picks a free one (read it back from `port`).
        fallback: An ASGI app for every other path (the operator endpoints); 404 without.
        keep_alive_seconds: An idle kept-alive connection is closed after this long.
        shutdown_seconds: How long requests in flight get to finish when the server stops.
    """

    def __init__(
        self,
        routes: Sequence[Route],
        *,
        limit: int,
        host: str = "127.0.0.1",
        port: int = 0,
        fallback: ASGIApp | None = None,
        keep_alive_seconds: float = 5.0,
        shutdown_seconds: float = 30.0,
    ) -> None:
        super().__init__(host, port)
        self.routes = {route.path: route for route in routes}
        self.limit = limit
        self.fallback = fallback
        self.connections: set[_Connection] = set()
        self.stopping = False
        self.date = b""
        self._keep_alive = keep_alive_seconds
        self._shutdown = shutdown_seconds
        self._server: asyncio.Server | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._all_closed = asyncio.Event()

    async def __aenter__(self) -> Self:
        sock = self._listen()
        self._tick()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), sock=sock, backlog=2048)
        self._ticker = asyncio.create_task(self._tick_every_second(), name=f"gateway:{self.url}")
        return self

    def _tick(self) -> None:
        self.date = b"date: %s\r\n" % formatdate(usegmt=True).encode()
        if not self.connections:
            return
        cutoff = time.monotonic() - self._keep_alive
        for connection in list(self.connections):
            if 0.0 < connection.idle_since < cutoff and connection.transport is not None:
                connection.transport.close()

    async def _tick_every_second(self) -> None:
        """The `date` header and closing idle connections, once a second for all of them."""
        while True:
            await asyncio.sleep(1.0)
            self._tick()

    def forget(self, connection: _Connection) -> None:
        """A connection closed."""
        self.connections.discard(connection)
        if self.stopping and not self.connections:
            self._all_closed.set()

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish (up to `shutdown_seconds`), close."""
        server, self._server = self._server, None
        if server is None:
            return
        self.stopping = True
        server.close()
        for connection in list(self.connections):
            busy = connection.task is not None or connection.reading is not None
            if not busy and connection.transport is not None:
                connection.transport.close()
        if self.connections:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._shutdown):
                    await self._all_closed.wait()
        for connection in list(self.connections):
            if connection.task is not None:
                connection.task.cancel()
            if connection.transport is not None:
                connection.transport.abort()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        await server.wait_closed()


def gateway_server(
    gateway: Gateway, *, host: str = "127.0.0.1", port: int = 0, fallback: ASGIApp | None = None
) -> GatewayServer:
    """The gateway's routes at `/v1` with its body limit, as `orchestrator gateway` serves them.

    `fallback` serves every other path (the operator endpoints).
    """
    return GatewayServer(
        routes(gateway, prefix="/v1"),
        limit=gateway.settings.max_body_bytes,
        host=host,
        port=port,
        fallback=fallback,
    )
