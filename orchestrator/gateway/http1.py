"""A lean HTTP/1.1 transport for the gateway's upstream calls: kept-alive connections, C parsing.

httpx's own transport (httpcore over anyio, h11 in pure Python) spent more CPU on a call
to a deployment than the deployment on a loopback network spent answering it
(bench/README.md, gateway). `LeanTransport` plugs into the same `httpx.AsyncClient`, so
the provider adapters, their error mapping (timeouts, connection failures, HTTP errors,
retry hints) and their streaming read exactly as before; underneath, each plain-`http`
origin keeps a pool of asyncio connections whose answers `httptools` parses in C, with
the request written in one system call.

What it keeps of httpx's transport: the connect, read and write timeouts of each request
(raised as httpx's own timeout errors), connection failures as `httpx.ConnectError`, a
connection that breaks mid-answer as `httpx.ReadError` (or `RemoteProtocolError` for a
malformed answer), streamed bodies read as they arrive, and a call cancelled (a client
that went away) closing its connection at once, so the deployment sees the disconnect.
A kept-alive connection that the server closed before answering is retried once on a new
one, as that request never reached the server's application. `https`, and anything without
`httptools`, goes to httpx's default transport.
"""

from __future__ import annotations

import asyncio
import collections
import importlib.util
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, cast

import httpx
from httpx._client import USE_CLIENT_DEFAULT, UseClientDefault
from httpx._types import (
    AuthTypes,
    CookieTypes,
    HeaderTypes,
    QueryParamTypes,
    RequestContent,
    RequestData,
    RequestExtensions,
    RequestFiles,
    TimeoutTypes,
)

from orchestrator.gateway import jsonio

__all__ = ["AVAILABLE", "LeanTransport", "UpstreamClient"]

AVAILABLE = importlib.util.find_spec("httptools") is not None
"""Whether `httptools` is installed (the `fast` extra); without it httpx serves every call."""

_IDLE_SECONDS = 4.0
"""A kept-alive connection idle longer is closed rather than reused: uvicorn, the usual
server of self-hosted endpoints, closes its idle connections after 5 s."""
_MAX_IDLE = 256
"""Idle connections kept per origin."""
_MAX_HEADS = 256
"""Request heads kept by `UpstreamClient` (one per deployment URL and header set)."""
_PAUSE_AT = 1 << 20
"""Bytes of answer buffered unread before the connection stops reading (back pressure)."""


class _Connection(asyncio.Protocol):
    """One connection to an origin; one request at a time."""

    def __init__(self, origin: tuple[str, int]) -> None:
        import httptools

        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.reused = False
        self._parser = httptools.HttpResponseParser(self)
        self._parse_error: type[Exception] = httptools.HttpParserError
        self._reset()

    def _reset(self) -> None:
        self.received = 0
        self.reusable = False
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.head: asyncio.Future[int] | None = None
        self.chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.paused = False
        self.complete = False
        self.error: Exception | None = None
        self.wake: asyncio.Future[None] | None = None

    # ---- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio's, they only behave like them.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        try:
            self._parser.feed_data(data)
        except self._parse_error as exc:
            self._fail(httpx.RemoteProtocolError(f"malformed answer: {exc}"))
            self.close()

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.complete:
            detail = str(exc) if exc is not None else "the server closed the connection"
            self._fail(httpx.ReadError(detail))

    def pause_writing(self) -> None:
        pass

    def resume_writing(self) -> None:
        pass

    # ---- httptools callbacks ------------------------------------------------------------

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        # Read here: once the message is complete the parser no longer says.
        self.reusable = self._parser.should_keep_alive()
        head = self.head
        if head is not None and not head.done():
            head.set_result(self._parser.get_status_code())

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > _PAUSE_AT and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        self.complete = True
        self._wake()

    # ---- the request's side -------------------------------------------------------------

    def _wake(self) -> None:
        wake = self.wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    def _fail(self, error: Exception) -> None:
        if self.error is None:
            self.error = error
        head = self.head
        if head is not None and not head.done():
            head.set_exception(error)
        self._wake()

    def keep_alive(self) -> bool:
        return self.complete and not self.closed and self.reusable

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def head_late(self, seconds: float) -> None:
        """The read timeout passed before the answer's head came: the request fails."""
        head = self.head
        if head is not None and not head.done():
            self._fail(httpx.ReadTimeout(f"no answer within {seconds}s"))

    def send(self, data: bytes) -> asyncio.Future[int]:
        """Write a whole request; the future gets the answer's status once its head is read."""
        self._reset()
        self.head = asyncio.get_running_loop().create_future()
        assert self.transport is not None
        self.transport.write(data)
        return self.head

    async def next_chunk(self, timeout: float | None) -> bytes | None:
        """The next piece of the body; None at its end.

        Raises:
            httpx.ReadTimeout: nothing arrived within `timeout`.
            httpx.ReadError: the connection broke before the body ended.
        """
        while True:
            if self.chunks:
                chunk = self.chunks.popleft()
                self.buffered -= len(chunk)
                if self.paused and self.buffered <= _PAUSE_AT // 2 and self.transport is not None:
                    self.paused = False
                    self.transport.resume_reading()
                return chunk
            if self.complete:
                return None
            if self.error is not None:
                raise self.error
            self.wake = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(timeout):
                    await self.wake
            except TimeoutError:
                raise httpx.ReadTimeout(f"no data for {timeout}s") from None
            finally:
                self.wake = None


class _Body(httpx.AsyncByteStream):
    """An answer's body as it arrives; closing it returns the connection to its pool."""

    def __init__(
        self, transport: LeanTransport, connection: _Connection, timeout: float | None
    ) -> None:
        self._transport = transport
        self._connection = connection
        self._timeout = timeout
        self._done = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        connection = self._connection
        try:
            while True:
                chunk = await connection.next_chunk(self._timeout)
                if chunk is None:
                    break
                yield chunk
        except BaseException:
            self._done = True
            connection.abort()
            raise
        await self.aclose()

    async def aclose(self) -> None:
        if self._done:
            return
        self._done = True
        self._transport.release(self._connection)


def _head(method: bytes, target: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    """A request's head, blank line included."""
    lines = [b"%s %s HTTP/1.1\r\n" % (method, target)]
    lines.extend(b"%s: %s\r\n" % (name, value) for name, value in headers)
    lines.append(b"\r\n")
    return b"".join(lines)


def _timeouts(request: httpx.Request) -> tuple[float | None, float | None]:
    timeout: dict[str, float | None] = request.extensions.get("timeout", {})
    return timeout.get("connect"), timeout.get("read")


class _WholeResponse(httpx.Response):
    """A whole answer, its JSON read with the gateway's reader (orjson when installed)."""

    def json(self, **kwargs: Any) -> Any:
        if not kwargs:
            try:
                return jsonio.loads(self.content)
            except jsonio.JSONDecodeError:
                pass  # UTF-16 or -32, or not JSON: the standard library says which
        return super().json(**kwargs)


class _ReadResponse(_WholeResponse):
    """A whole uncompressed answer, its `httpx.Headers` made only once asked for.

    Its attributes are those `httpx.Response.__init__` sets for a read answer. A model
    call's answer is read for its status and its JSON, its headers only when it is an
    error (retry hints); normalising them into `httpx.Headers` was most of the cost of
    making the response.
    """

    def __init__(
        self, status: int, headers: list[tuple[bytes, bytes]], content: bytes, reason: bytes
    ) -> None:
        # Not `super().__init__`: these are the attributes it sets for a read answer.
        self.status_code = status
        self._raw_headers = headers
        self._headers: httpx.Headers | None = None
        self._request = None
        self.next_request = None
        self.extensions = {"http_version": b"HTTP/1.1", "reason_phrase": reason}
        self.history = []
        self.default_encoding = "utf-8"
        self.stream = httpx.ByteStream(content)
        self._content = content
        self._num_bytes_downloaded = len(content)
        self.is_stream_consumed = True
        self.is_closed = True

    @property
    def headers(self) -> httpx.Headers:
        if self._headers is None:
            self._headers = httpx.Headers(self._raw_headers)
        return self._headers

    @headers.setter
    def headers(self, value: httpx.Headers) -> None:
        self._headers = value


def _read_response(
    status: int, headers: list[tuple[bytes, bytes]], content: bytes, reason: bytes
) -> httpx.Response:
    """A whole answer as an `httpx.Response` that reads as `aread` leaves one.

    `httpx.Response(content=...)` re-encodes the body into a new stream and merges a
    `Content-Length` header into the headers: ten times the cost of the response itself.
    The answer already has both, so it gets the body as its stream and as read content
    (decoded by httpx when it came compressed).
    """
    if not any(name.lower() == b"content-encoding" for name, _ in headers):
        return _ReadResponse(status, headers, content, reason)
    response = _WholeResponse(
        status,
        headers=headers,
        stream=httpx.ByteStream(content),
        extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason},
    )
    response.read()  # decoded as httpx decodes it (gzip, deflate...)
    return response


class LeanTransport(httpx.AsyncBaseTransport):
    """httpx's transport for plain-`http` origins, kept-alive; others go to `fallback`.

    Args:
        fallback: The transport for `https` and for requests whose body streams; httpx's
            default when not given.
    """

    def __init__(self, fallback: httpx.AsyncBaseTransport | None = None) -> None:
        self._fallback = fallback or httpx.AsyncHTTPTransport()
        self._idle: dict[tuple[str, int], list[_Connection]] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request` on a kept-alive connection; the answer's body streams from it."""
        url = request.url
        if url.scheme != "http" or not AVAILABLE:
            return await self._fallback.handle_async_request(request)
        try:
            content = request.content
        except httpx.RequestNotRead:
            return await self._fallback.handle_async_request(request)
        connect_timeout, read_timeout = _timeouts(request)
        data = _head(request.method.encode(), url.raw_path, request.headers.raw) + content
        response = await self.post_streamed(url, data, connect_timeout, read_timeout)
        response.request = request
        return response

    async def post_streamed(
        self, url: httpx.URL, data: bytes, connect_timeout: float | None, read_timeout: float | None
    ) -> httpx.Response:
        """Send a whole request (`data`: head and body); the answer's body streams.

        It arrives as `handle_async_request`'s does; the answer carries no `request`.

        Raises:
            httpx.ReadTimeout, httpx.ReadError, httpx.ConnectError, httpx.ConnectTimeout:
                as `handle_async_request` raises them.
        """
        connection, status = await self._exchange(url, data, connect_timeout, read_timeout)
        return httpx.Response(
            status,
            headers=connection.headers,
            stream=_Body(self, connection, read_timeout),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": connection.reason},
        )

    async def post_whole(
        self, url: httpx.URL, data: bytes, connect_timeout: float | None, read_timeout: float | None
    ) -> httpx.Response:
        """Send a whole request (`data`: head and body) and read its whole answer.

        The answer comes back read, as `aread` leaves a streamed one, without the streamed
        body's layers (`_Body`, httpx's async iteration) for an answer that is usually in
        the connection's buffer by the time its head is parsed. It carries no `request`.

        Raises:
            httpx.ReadTimeout, httpx.ReadError, httpx.ConnectError, httpx.ConnectTimeout:
                as `handle_async_request` and reading its body raise them.
        """
        connection, status = await self._exchange(url, data, connect_timeout, read_timeout)
        chunks: list[bytes] = []
        try:
            while (chunk := await connection.next_chunk(read_timeout)) is not None:
                chunks.append(chunk)
        except BaseException:
            connection.abort()
            raise
        self.release(connection)
        return _read_response(status, connection.headers, b"".join(chunks), connection.reason)

    async def _exchange(
        self, url: httpx.URL, data: bytes, connect_timeout: float | None, read_timeout: float | None
    ) -> tuple[_Connection, int]:
        """Write `data` on a kept-alive connection; the connection and the answer's status."""
        origin = (url.host, url.port or 80)
        loop = asyncio.get_running_loop()
        for attempt in range(2):
            connection = await self._connection(origin, connect_timeout)
            status_of = connection.send(data)
            # A timer that fails the head's future, not `asyncio.timeout`: that one's
            # context manager, its task lookups and its cancellation cost more per call.
            late = (
                None
                if read_timeout is None
                else loop.call_later(read_timeout, connection.head_late, read_timeout)
            )
            try:
                status = await status_of
            except httpx.ReadError:
                connection.abort()
                # A kept-alive connection the server had closed: the request never reached it.
                if connection.reused and connection.received == 0 and attempt == 0:
                    continue
                raise
            except BaseException:
                # A read timeout among them (`head_late`): the connection is of no more use.
                connection.abort()
                raise
            finally:
                if late is not None:
                    late.cancel()
            return connection, status
        raise AssertionError("unreachable")

    async def _connection(self, origin: tuple[str, int], timeout: float | None) -> _Connection:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            if connection.closed or now - connection.idle_since > _IDLE_SECONDS:
                connection.close()
                continue
            connection.reused = True
            return connection
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                _, protocol = await loop.create_connection(
                    lambda: _Connection(origin), origin[0], origin[1]
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"no connection within {timeout}s") from None
        except OSError as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        return protocol

    def release(self, connection: _Connection) -> None:
        """After an answer was read whole: keep the connection for the next call, or close it."""
        if not connection.keep_alive():
            connection.close()
            return
        idle = self._idle.setdefault(connection.origin, [])
        if len(idle) >= _MAX_IDLE:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        idle.append(connection)

    async def aclose(self) -> None:
        """Close every idle connection and the fallback transport."""
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()
        await self._fallback.aclose()

    def __repr__(self) -> str:
        extra: Any = sum(len(v) for v in self._idle.values())
        return f"LeanTransport(idle={extra})"


class UpstreamClient(httpx.AsyncClient):
    """httpx's client, whose plain JSON `post` to a `LeanTransport` origin skips its layers.

    A model call is one `post` of a JSON body: building it through httpx's request
    machinery (URL and header merging, the cookie jar, auth and redirect flows, event
    hooks) cost more than sending it. Such a post's head is built here once per URL and
    headers, with the client's default headers, and its whole answer read without a
    streamed body (`LeanTransport.post_whole`); anything else (`stream`, other arguments,
    an origin a proxy serves) goes through httpx as usual. There is no cookie jar on this
    path: one tenant's upstream cookies never ride on another tenant's call.
    """

    def __init__(self, transport: LeanTransport, limits: httpx.Limits) -> None:
        super().__init__(transport=transport, limits=limits)
        self._lean = transport
        self._heads: dict[tuple[str, tuple[object, ...]], bytes] = {}

    async def post(
        self,
        url: httpx.URL | str,
        *,
        content: RequestContent | None = None,
        data: RequestData | None = None,
        files: RequestFiles | None = None,
        json: Any | None = None,
        params: QueryParamTypes | None = None,
        headers: HeaderTypes | None = None,
        cookies: CookieTypes | None = None,
        auth: AuthTypes | UseClientDefault = USE_CLIENT_DEFAULT,
        follow_redirects: bool | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutTypes | UseClientDefault = USE_CLIENT_DEFAULT,
        extensions: RequestExtensions | None = None,
    ) -> httpx.Response:
        """`httpx.AsyncClient.post`; a JSON body to a plain-`http` origin goes straight out."""
        plain = (
            json is not None
            and content is None
            and data is None
            and files is None
            and params is None
            and cookies is None
            and extensions is None
            and auth is USE_CLIENT_DEFAULT
            and follow_redirects is USE_CLIENT_DEFAULT
            and self._straight(url, timeout)
        )
        if not plain:
            return await super().post(
                url,
                content=content,
                data=data,
                files=files,
                json=json,
                params=params,
                headers=headers,
                cookies=cookies,
                auth=auth,
                follow_redirects=follow_redirects,
                timeout=timeout,
                extensions=extensions,
            )
        assert isinstance(url, httpx.URL) and isinstance(timeout, httpx.Timeout)
        body = jsonio.dumps(json)
        head = self._head_of(url, headers)
        wire = b"%sContent-Length: %d\r\n\r\n%s" % (head, len(body), body)
        return await self._lean.post_whole(url, wire, timeout.connect, timeout.read)

    async def post_stream(
        self, url: httpx.URL | str, *, json: Any, headers: dict[str, str], timeout: httpx.Timeout
    ) -> httpx.Response:
        """A JSON post whose answer streams, as `send(build_request(...), stream=True)`.

        To a plain-`http` origin the head is built as `post` builds it, with no cookie jar
        (a deployment's cookies never ride on another tenant's call). httpx's layers
        (`build_request`, the cookie jar's `extract_cookies`, the auth and redirect flows)
        cost a streamed model call more CPU than the transport did (bench/README.md, time
        to first token). The caller closes the answer.
        """
        if not self._straight(url, timeout):
            request = self.build_request("POST", url, json=json, headers=headers, timeout=timeout)
            return await self.send(request, stream=True)
        assert isinstance(url, httpx.URL)
        body = jsonio.dumps(json)
        wire = b"%sContent-Length: %d\r\n\r\n%s" % (self._head_of(url, headers), len(body), body)
        return await self._lean.post_streamed(url, wire, timeout.connect, timeout.read)

    def _straight(self, url: httpx.URL | str, timeout: object) -> bool:
        """Whether a post to `url` may skip httpx's layers.

        Only to a plain-`http` URL without credentials that `LeanTransport` serves, with a
        whole `httpx.Timeout`.
        """
        return (
            isinstance(url, httpx.URL)
            and url.scheme == "http"
            and not url.userinfo
            and isinstance(timeout, httpx.Timeout)
            and AVAILABLE
            and self._transport_for_url(url) is self._lean
        )

    def _head_of(self, url: httpx.URL, headers: HeaderTypes | None) -> bytes:
        """The head of a JSON post to `url`, up to its `Content-Length`.

        Built once per URL and headers, as httpx builds it (the client's defaults, `Host`,
        the call's headers, `Content-Type`): merging them into `httpx.Headers` and a
        `Request` on every call cost more than writing the request.
        """
        extra: tuple[object, ...] = ()
        if isinstance(headers, Mapping):
            extra = tuple(headers.items())
        elif headers:
            extra = tuple(httpx.Headers(headers).raw)
        key = (str(url), extra)
        head = self._heads.get(key)
        if head is None:
            merged = httpx.Headers(self.headers)
            if headers:
                merged.update(headers)
            merged["Content-Type"] = "application/json"
            request = httpx.Request("POST", url, headers=merged)
            kept = [(k, v) for k, v in request.headers.raw if k.lower() != b"content-length"]
            head = _head(b"POST", url.raw_path, kept)[:-2]
            if len(self._heads) >= _MAX_HEADS:
                self._heads.clear()
            self._heads[key] = head
        return head
