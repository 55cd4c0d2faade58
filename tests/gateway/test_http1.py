"""The gateway's upstream transport: kept-alive connections, a stale one retried, timeouts
and cancellation as httpx's own transport raises and does them."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from orchestrator.devserver import free_port
from orchestrator.gateway.http1 import LeanTransport, UpstreamClient
from orchestrator.providers import ChatMessage, ModelDelta, ModelRequest, OpenAIProvider

_ANSWER = b'{"ok":true}'

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[bool]]
"""Answers one request on a connection (its number); False closes the connection."""


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return await reader.readexactly(length)


def _ok(body: bytes = _ANSWER, close: bool = False) -> bytes:
    extra = b"connection: close\r\n" if close else b""
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        + extra
        + b"content-length: %d\r\n\r\n" % len(body)
        + body
    )


@contextlib.asynccontextmanager
async def _server(handler: Handler) -> AsyncIterator[tuple[str, list[int]]]:
    """A raw HTTP/1.1 server on loopback; yields its URL and the connections it accepted."""
    accepted: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(len(accepted))
        number = accepted[-1]
        try:
            while await handler(reader, writer, number):
                pass
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1/chat/completions", accepted
    finally:
        server.close()


def _client() -> UpstreamClient:
    return UpstreamClient(LeanTransport(), httpx.Limits())


async def test_calls_share_one_kept_alive_connection_and_bodies_arrive_whole() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        body = await _read_request(reader)
        writer.write(_ok(body))
        await writer.drain()
        return True

    async with _server(answer) as (url, accepted), _client() as client:
        for i in range(5):
            response = await client.post(
                httpx.URL(url), json={"n": i, "text": "é"}, timeout=httpx.Timeout(5)
            )
            assert response.status_code == 200
            assert response.json() == {"n": i, "text": "é"}
        # The same through httpx's own layers (`build_request` and `send`), streamed.
        request = client.build_request("POST", url, json={"n": 9}, timeout=5)
        streamed = await client.send(request, stream=True)
        assert json.loads(b"".join([chunk async for chunk in streamed.aiter_raw()])) == {"n": 9}
        await streamed.aclose()
    assert len(accepted) == 1


async def test_a_whole_answer_reads_as_httpx_reads_it_compressed_or_not() -> None:
    packed = gzip.compress(b'{"packed":true}')

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        body = await _read_request(reader)
        if json.loads(body)["gzip"]:
            writer.write(
                b"HTTP/1.1 429 Too Many\r\ncontent-type: application/json\r\n"
                b"Content-Encoding: gzip\r\nretry-after: 3\r\n"
                + b"content-length: %d\r\n\r\n" % len(packed)
                + packed
            )
        else:
            writer.write(_ok())
        await writer.drain()
        return True

    async with _server(answer) as (url, _), _client() as client:
        plain = await client.post(httpx.URL(url), json={"gzip": False}, timeout=httpx.Timeout(5))
        packed_answer = await client.post(
            httpx.URL(url), json={"gzip": True}, timeout=httpx.Timeout(5)
        )
    assert (plain.status_code, plain.content, plain.text) == (200, _ANSWER, _ANSWER.decode())
    assert plain.is_closed and plain.reason_phrase == "OK"
    assert plain.headers["content-type"] == "application/json"
    assert packed_answer.status_code == 429 and packed_answer.is_error
    assert packed_answer.json() == {"packed": True}
    assert packed_answer.headers["retry-after"] == "3"
    assert packed_answer.reason_phrase == "Too Many"


async def test_a_connection_the_server_closed_is_not_reused_and_a_stale_one_is_retried() -> None:
    served: dict[int, int] = {}

    async def plan(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        await _read_request(reader)
        served[n] = served.get(n, 0) + 1
        if n == 0 and served[n] == 2:
            # Closes its kept-alive connection as the next request arrives on it.
            return False
        writer.write(_ok(close=n == 1))
        await writer.drain()
        return n != 1

    async with _server(plan) as (url, accepted), _client() as client:
        for _ in range(3):
            response = await client.post(httpx.URL(url), json={}, timeout=httpx.Timeout(5))
            assert response.json() == {"ok": True}
    # 0 answered, then dropped the second call unanswered: sent again on 1, which said
    # `connection: close`, so the third call opened 2.
    assert len(accepted) == 3
    assert served == {0: 2, 1: 1, 2: 1}


async def test_no_answer_in_time_is_a_read_timeout_and_a_broken_one_a_read_error() -> None:
    hang = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        await _read_request(reader)
        if n == 0:
            await hang.wait()
            return False
        writer.write(b'HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{"cut')
        await writer.drain()
        return False

    async with _server(silent) as (url, _), _client() as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post(httpx.URL(url), json={}, timeout=httpx.Timeout(5, read=0.05))
        hang.set()
        with pytest.raises(httpx.ReadError):
            await client.post(httpx.URL(url), json={}, timeout=httpx.Timeout(5))


async def test_a_cancelled_call_closes_its_connection() -> None:
    arrived = asyncio.Event()
    closed = asyncio.Event()

    async def wait(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        await _read_request(reader)
        arrived.set()
        if await reader.read() == b"":
            closed.set()
        return False

    async with _server(wait) as (url, _), _client() as client:
        call = asyncio.create_task(client.post(httpx.URL(url), json={}, timeout=httpx.Timeout(5)))
        await arrived.wait()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await asyncio.wait_for(closed.wait(), 5)


async def test_nothing_listening_is_a_connect_error() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1/chat/completions"
    async with _client() as client:
        with pytest.raises(httpx.ConnectError):
            await client.post(httpx.URL(url), json={}, timeout=httpx.Timeout(5))


def _event(delta: dict[str, object], finish: str | None = None) -> bytes:
    chunk = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: %s\n\n" % json.dumps(chunk).encode()


async def test_a_streamed_call_goes_straight_out_and_keeps_no_cookie() -> None:
    """A deployment's `Set-Cookie` on a streamed answer never rides on a later call (any
    tenant's): the streamed post skips httpx's cookie jar, as the whole one does."""
    heads: list[bytes] = []
    stream = (
        _event({"role": "assistant", "content": ""})
        + _event({"content": "hi"})
        + _event({}, "stop")
        + b"data: [DONE]\n\n"
    )

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        heads.append(head.lower())
        length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
        await reader.readexactly(length)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"set-cookie: tenant=a; Path=/\r\n"
            + b"content-length: %d\r\n\r\n" % len(stream)
            + stream
        )
        await writer.drain()
        return True

    request = ModelRequest(
        model="m", messages=[ChatMessage(role="user", content="Say hi.")], stream=True
    )
    deltas: list[ModelDelta] = []

    async def sink(delta: ModelDelta) -> None:
        deltas.append(delta)

    async with _server(answer) as (url, accepted), _client() as client:
        base = url.removesuffix("/chat/completions")
        async with OpenAIProvider(base_url=base, timeout=5, http_client=client) as provider:
            for _ in range(2):
                response = await provider.complete(request, sink)
                assert response.message.content == "hi"
    assert [delta.text for delta in deltas] == ["hi", "hi"]
    assert len(heads) == 2 and len(accepted) == 1
    assert [b"cookie:" in head for head in heads] == [False, False]
