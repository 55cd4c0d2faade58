"""The floor of a Python HTTP proxy on this machine: bytes in, bytes out, nothing else.

`bench/gateway.py --floor` runs it beside the gateway and LiteLLM. It parses each request
with httptools, sends it unchanged to the upstream over a kept-alive connection of its own
(one per client connection), parses the answer and writes it back in one write: no JSON,
no keys, no routing, no store. What it adds to a call is what any gateway written in
Python with asyncio pays before doing any work of its own; the gateway's added latency
minus this one is the cost of its own work (sessions, pins, budgets, audit).

    python bench/_floor_proxy.py UPSTREAM_HOST:PORT LISTEN_PORT

Prints `floor proxy on PORT` once it listens. Benchmark machinery, not part of the runtime.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import cast

import httptools
import uvloop

__all__ = ["main"]


class _Upstream(asyncio.Protocol):
    """One kept-alive connection to the upstream; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[bytes] | None = None
        self.head: list[bytes] = []
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("upstream closed"))

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() not in (b"content-length", b"transfer-encoding", b"connection"):
            self.head.append(name + b": " + value + b"\r\n")

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        body = b"".join(self.body)
        status = self.parser.get_status_code()
        head = b"".join(self.head)
        self.head, self.body = [], []
        # httptools forgets keep-alive once a message is complete: a new parser per answer.
        self.parser = httptools.HttpResponseParser(self)
        answer = b"HTTP/1.1 %d OK\r\n" % status + head
        answer += b"content-length: %d\r\n\r\n" % len(body) + body
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(answer)


class _Client(asyncio.Protocol):
    """One client connection: each request forwarded, then its answer written back."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.head: list[bytes] = []
        self.body: list[bytes] = []
        self.upstream: _Upstream | None = None
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.worker = asyncio.get_running_loop().create_task(self._forward())

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.worker.cancel()
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"host":
            value = b"%s:%d" % (self.host.encode(), self.port)
        if name.lower() not in (b"content-length", b"connection"):
            self.head.append(name + b": " + value + b"\r\n")

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        body = b"".join(self.body)
        method = self.parser.get_method()
        request = method + b" " + self.url + b" HTTP/1.1\r\n" + b"".join(self.head)
        request += b"content-length: %d\r\n\r\n" % len(body) + body
        self.url, self.head, self.body = b"", [], []
        self.queue.put_nowait(request)

    async def _forward(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            request = await self.queue.get()
            if self.upstream is None or self.upstream.transport is None:
                _, self.upstream = await loop.create_connection(_Upstream, self.host, self.port)
            upstream = self.upstream
            upstream.waiter = loop.create_future()
            assert upstream.transport is not None
            upstream.transport.write(request)
            answer = await upstream.waiter
            if self.transport is not None:
                self.transport.write(answer)


async def _serve(upstream: str, port: int) -> None:
    host, _, upstream_port = upstream.rpartition(":")
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _Client(host, int(upstream_port)), "127.0.0.1", port, reuse_address=True
    )
    print(f"floor proxy on {port}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    """Serve until interrupted."""
    uvloop.install()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(sys.argv[1], int(sys.argv[2])))


if __name__ == "__main__":
    main()
