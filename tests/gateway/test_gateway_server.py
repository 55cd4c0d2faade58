"""The gateway's own HTTP/1.1 server, against real clients and raw sockets.

Kept-alive and pipelined requests, chunked uploads, `Expect: 100-continue`, the body
limit refused before the body is read, malformed requests, the operator endpoints behind
it, a client that leaves mid-stream cancelling the upstream call, and a stop that lets a
request in flight finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import yaml
from gw_harness import TOKEN, keys, keys_raw, serve_gateway
from openai import AsyncOpenAI
from process_helpers import process_env, start_serving, stop_serving
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from orchestrator.cli import gateway as gateway_cli
from orchestrator.devserver import free_port
from orchestrator.gateway import Gateway, GatewaySettings
from orchestrator.gateway.server import GatewayServer, gateway_server
from orchestrator.gateway.sessions import Boundary
from orchestrator.observability import health_app
from orchestrator.observability.metrics import METRICS
from orchestrator.providers.registry import ModelRegistry
from orchestrator.scripted_model import LoopbackServer
from orchestrator.store import Store
from orchestrator.types import JsonObject

HERE = Path(__file__).parent
AUTH = f"authorization: Bearer {TOKEN}\r\n"
HELLO = {"model": "fast", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"


async def _read_reply(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One whole reply with a `Content-Length` body: status, headers (lower case), body."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


@contextlib.asynccontextmanager
async def _socket(
    server: GatewayServer | LoopbackServer,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def _post(path: str, body: bytes, extra: str = "") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nhost: t\r\n{AUTH}content-type: application/json\r\n"
    return f"{head}content-length: {len(body)}\r\n{extra}\r\n".encode() + body


async def test_openai_sdk_chat_and_stream_over_one_kept_alive_connection(store_url: str) -> None:
    async with (
        serve_gateway(HERE / "plain.yaml", store_url) as served,
        AsyncOpenAI(base_url=served.base_url, api_key=TOKEN, max_retries=0) as client,
    ):
        whole = await client.chat.completions.with_raw_response.create(
            model="fast", messages=[{"role": "user", "content": "hi"}]
        )
        assert whole.headers["x-orchestrator-deployment"] == "fast"
        assert whole.parse().choices[0].message.content == "fast answers."
        stream = await client.chat.completions.create(
            model="strong", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text == "strong answers."
        models = await client.models.list()
        assert {m.id for m in models.data} >= {"fast", "strong", "smart", "cheap"}


async def test_pipelined_requests_are_answered_in_order(store_url: str) -> None:
    async with (
        serve_gateway(HERE / "plain.yaml", store_url) as served,
        _socket(served.server) as (reader, writer),
    ):
        strong = json.dumps({**HELLO, "model": "strong"}).encode()
        models = f"GET /v1/models HTTP/1.1\r\nhost: t\r\n{AUTH}\r\n".encode()
        writer.write(
            _post("/v1/chat/completions", strong)
            + models
            + _post("/v1/chat/completions", json.dumps(HELLO).encode())
        )
        first, second, third = [await _read_reply(reader) for _ in range(3)]
    assert first[0] == second[0] == third[0] == 200
    assert json.loads(first[2])["model"] == "strong"
    assert json.loads(second[2])["object"] == "list"
    assert json.loads(third[2])["model"] == "fast"
    assert "connection" not in third[1]


async def test_a_chunked_upload_and_expect_100_continue_are_read(store_url: str) -> None:
    body = json.dumps(HELLO).encode()
    async with (
        serve_gateway(HERE / "plain.yaml", store_url) as served,
        _socket(served.server) as (reader, writer),
    ):
        head = f"POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\n{AUTH}"
        writer.write(f"{head}transfer-encoding: chunked\r\n\r\n".encode())
        for piece in (body[:7], body[7:20], body[20:]):
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        writer.write(b"0\r\n\r\n")
        chunked = await _read_reply(reader)
        writer.write(f"{head}content-length: {len(body)}\r\nexpect: 100-continue\r\n\r\n".encode())
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(body)
        continued = await _read_reply(reader)
    assert chunked[0] == continued[0] == 200
    assert json.loads(chunked[2])["choices"][0]["message"]["content"] == "fast answers."
    assert json.loads(continued[2])["model"] == "fast"


@pytest.mark.parametrize(
    ("path", "shape"),
    [("/v1/chat/completions", "invalid_request_error"), ("/v1/messages", "request_too_large")],
)
async def test_a_declared_body_over_the_limit_is_refused_before_it_is_sent(
    store_url: str, path: str, shape: str
) -> None:
    settings = GatewaySettings(max_body_bytes=1000, retry_backoff_seconds=0.0)
    async with serve_gateway(HERE / "plain.yaml", store_url, settings=settings) as served:
        async with _socket(served.server) as (reader, writer):
            # The head alone: the refusal comes without the body ever being sent.
            writer.write(
                f"POST {path} HTTP/1.1\r\nhost: t\r\n{AUTH}content-length: 5000\r\n\r\n".encode()
            )
            status, headers, body = await _read_reply(reader)
            assert await reader.read() == b""
        assert served.replay.requests == []
    assert status == 413
    assert headers["connection"] == "close"
    error = json.loads(body)["error"]
    assert error["type"] == shape
    assert "5000 bytes" in error["message"]


async def test_a_chunked_body_over_the_limit_is_refused_once_it_passes(store_url: str) -> None:
    settings = GatewaySettings(max_body_bytes=1000, retry_backoff_seconds=0.0)
    async with serve_gateway(HERE / "plain.yaml", store_url, settings=settings) as served:
        async with _socket(served.server) as (reader, writer):
            head = f"POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\n{AUTH}"
            writer.write(f"{head}transfer-encoding: chunked\r\n\r\n".encode())
            writer.write(b"%x\r\n%s\r\n" % (1200, b"x" * 1200))
            status, _, body = await _read_reply(reader)
        assert served.replay.requests == []
    assert status == 413
    assert "over the gateway's limit of 1000 bytes" in json.loads(body)["error"]["message"]


async def test_malformed_http_is_a_400_and_the_connection_closes(store_url: str) -> None:
    async with (
        serve_gateway(HERE / "plain.yaml", store_url) as served,
        _socket(served.server) as (reader, writer),
    ):
        models = f"GET /v1/models HTTP/1.1\r\nhost: t\r\n{AUTH}\r\n".encode()
        writer.write(models + b"NOT HTTP AT ALL\r\n\r\n")
        first = await _read_reply(reader)
        second = await _read_reply(reader)
        assert await reader.read() == b""
    assert first[0] == 200
    assert second[0] == 400
    assert second[1]["connection"] == "close"


async def test_an_upgrade_is_answered_as_plain_http_then_the_connection_closes(
    store_url: str,
) -> None:
    async with (
        serve_gateway(HERE / "plain.yaml", store_url) as served,
        _socket(served.server) as (reader, writer),
    ):
        upgrade = "connection: upgrade\r\nupgrade: websocket\r\n"
        writer.write(f"GET /v1/models HTTP/1.1\r\nhost: t\r\n{AUTH}{upgrade}\r\n".encode())
        status, _, body = await _read_reply(reader)
        assert await reader.read() == b""
    assert status == 200
    assert json.loads(body)["object"] == "list"


async def test_method_path_and_operator_endpoints(store_url: str) -> None:
    async with (
        await Store.open(store_url) as store,
        _held_gateway(store, "http://127.0.0.1:9/v1") as gateway,
        gateway_server(gateway, fallback=health_app(store)) as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        wrong = await http.get("/v1/chat/completions")
        missing = await http.get("/v2/nothing")
        health = await http.get("/healthz")
        metrics = await http.get("/metrics")
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "POST"
    assert missing.status_code == 404
    assert health.status_code == 200
    assert health.text == "ok\n"
    assert metrics.status_code == 200
    assert "orchestrator_gateway_requests" in metrics.text


async def test_an_answer_is_counted_once_written(store_url: str) -> None:
    """The request's metrics and the router's live latency are kept after the answer's
    write, off the request's path, yet before its client has read it."""

    def requests(boundary: str) -> float:
        value = METRICS.registry.get_sample_value(
            "orchestrator_gateway_requests_total",
            {"api": "openai", "boundary": boundary, "outcome": "ok"},
        )
        return value or 0.0

    async with (
        serve_gateway(HERE / "plain.yaml", store_url) as served,
        httpx.AsyncClient(base_url=served.server.url) as http,
    ):
        calls = served.gateway.router.metrics.stats("fast").calls
        before = {b.value: requests(b.value) for b in Boundary}
        answer = await http.post(
            "/v1/chat/completions", json=HELLO, headers={"authorization": f"Bearer {TOKEN}"}
        )
        assert answer.status_code == 200
        boundary = answer.headers["x-orchestrator-boundary"]
        assert requests(boundary) == before[boundary] + 1
        assert served.gateway.router.metrics.stats("fast").calls == calls + 1


def _held_models(base_url: str) -> JsonObject:
    """A models file whose only deployment, `held`, is at `base_url`."""
    return {
        "providers": {"up": {"kind": "openai", "base_url": base_url, "timeout_seconds": 30}},
        "models": {"held": {"provider": "up", "model": "held-1"}},
        "default_model": "held",
    }


@contextlib.asynccontextmanager
async def _held_gateway(store: Store, base_url: str) -> AsyncIterator[Gateway]:
    registry = ModelRegistry.model_validate(_held_models(base_url))
    gateway = Gateway(registry, keys(), store, GatewaySettings(retry_backoff_seconds=0.0))
    try:
        yield gateway
    finally:
        await gateway.aclose()


class _Upstream:
    """A chat endpoint that streams one piece, then holds until `release` (or forever)."""

    def __init__(self) -> None:
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()
        self.ended = asyncio.Event()
        self.app = Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        self.arrived.set()

        async def events() -> AsyncIterator[bytes]:
            head = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "h"}
            try:
                first = {"index": 0, "delta": {"role": "assistant", "content": "Hel"}}
                yield f"data: {json.dumps({**head, 'choices': [first]})}\n\n".encode()
                await self.release.wait()
                last = {"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}
                yield f"data: {json.dumps({**head, 'choices': [last]})}\n\n".encode()
                yield b"data: [DONE]\n\n"
            finally:
                self.ended.set()

        if body.get("stream"):
            return StreamingResponse(events(), media_type="text/event-stream")
        await self.release.wait()
        answer = {"role": "assistant", "content": "Hello"}
        choice = {"index": 0, "message": answer, "finish_reason": "stop"}
        done = {"id": "c1", "object": "chat.completion", "created": 0, "model": "h"}
        return JSONResponse({**done, "choices": [choice]})


@contextlib.asynccontextmanager
async def _before_upstream(store_url: str) -> AsyncIterator[tuple[_Upstream, Gateway]]:
    """A gateway whose only deployment is an `_Upstream`."""
    upstream = _Upstream()
    async with (
        LoopbackServer(upstream.app) as fake,
        await Store.open(store_url) as store,
        _held_gateway(store, f"{fake.url}/v1") as gateway,
    ):
        yield upstream, gateway


async def test_a_client_leaving_mid_stream_cancels_the_upstream_call(store_url: str) -> None:
    async with (
        _before_upstream(store_url) as (upstream, gateway),
        gateway_server(gateway) as server,
    ):
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            request = {**HELLO, "model": "held", "stream": True}
            auth = {"authorization": f"Bearer {TOKEN}"}
            async with http.stream("POST", "/v1/chat/completions", json=request, headers=auth) as r:
                assert r.status_code == 200
                async for line in r.aiter_lines():
                    if "Hel" in line:
                        break
        # The client's connection is closed: the gateway drops the upstream call.
        async with asyncio.timeout(20):
            await upstream.ended.wait()
        assert not upstream.release.is_set()


async def test_a_stop_lets_the_request_in_flight_finish(store_url: str) -> None:
    async with _before_upstream(store_url) as (upstream, gateway):
        server = gateway_server(gateway)
        await server.__aenter__()
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            answer = asyncio.create_task(
                http.post(
                    "/v1/chat/completions",
                    json={**HELLO, "model": "held"},
                    headers={"authorization": f"Bearer {TOKEN}"},
                )
            )
            await upstream.arrived.wait()
            stopping = asyncio.create_task(server.stop())
            # Stopped accepting: a new connection is refused while the first is answered.
            while True:
                try:
                    _, probe = await asyncio.open_connection("127.0.0.1", server.port)
                except ConnectionError:
                    break
                probe.close()
            upstream.release.set()
            reply = await answer
            await stopping
    assert reply.status_code == 200
    assert reply.json()["choices"][0]["message"]["content"] == "Hello"
    assert reply.headers["connection"] == "close"


@pytest.mark.parametrize("lean", [True, False])
async def test_the_cli_serves_with_uvicorn_when_httptools_is_missing(
    store_url: str, lean: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gateway_cli, "AVAILABLE", lean)
    async with (
        await Store.open(store_url) as store,
        _held_gateway(store, "http://127.0.0.1:9/v1") as gateway,
        gateway_cli._served(store, gateway, "127.0.0.1", 0) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        health = await http.get("/healthz")
        models = await http.get("/v1/models", headers={"authorization": f"Bearer {TOKEN}"})
    assert health.text == "ok\n"
    assert models.json()["data"][0]["id"] == "auto"
    assert ("server" in health.headers) is not lean


async def test_sigterm_lets_the_gateway_process_finish_its_request(tmp_path: Path) -> None:
    upstream = _Upstream()
    async with LoopbackServer(upstream.app) as fake:
        (tmp_path / "models.yaml").write_text(yaml.safe_dump(_held_models(f"{fake.url}/v1")))
        (tmp_path / "gateway_keys.yaml").write_text(yaml.safe_dump(keys_raw()))
        env = process_env(None, ORCHESTRATOR_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/g.db")
        port = free_port()
        proc = await start_serving(env, port, "gateway", "--project", str(tmp_path))
        try:
            async with httpx.AsyncClient(timeout=30) as http:
                answer = asyncio.create_task(
                    http.post(
                        f"http://127.0.0.1:{port}/v1/chat/completions",
                        json={**HELLO, "model": "held"},
                        headers={"authorization": f"Bearer {TOKEN}"},
                    )
                )
                await upstream.arrived.wait()
                proc.send_signal(signal.SIGTERM)
                assert proc.stdout is not None
                line = ""
                while "stopping" not in line:
                    line = (await proc.stdout.readline()).decode()
                    assert line, "the gateway exited before it finished its request"
                upstream.release.set()
                reply = await answer
        finally:
            code = await stop_serving(proc)
    assert reply.status_code == 200
    assert reply.json()["choices"][0]["message"]["content"] == "Hello"
    assert code == 0
