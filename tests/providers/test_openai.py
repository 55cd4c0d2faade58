"""OpenAIProvider against real HTTP endpoints on loopback: the scripted server and tiny apps."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

import orchestrator.providers
from orchestrator.exceptions import (
    ConfigError,
    ProviderConnectionError,
    ProviderHTTPError,
    ProviderResponseError,
    ProviderTimeoutError,
)
from orchestrator.providers import (
    ChatMessage,
    ModelRequest,
    OpenAIProvider,
    ToolCall,
    ToolDefinition,
)
from orchestrator.scripted_model import LoopbackServer, ReplayScript, ScriptedModelServer

SCRIPT = ReplayScript.model_validate(
    {
        "conversations": [
            {
                "name": "investigate",
                "match": {"model": "scripted-strong", "contains": "Step: investigate"},
                "turns": [
                    {
                        "tool_calls": [
                            {"name": "tickets_get", "arguments": {"ticket_id": "T-1001"}},
                            {"name": "orders_get", "arguments": {"order_id": "A-1001"}},
                        ]
                    },
                    {
                        "content": "Refund approved for A-1001.",
                        "usage": {"input_tokens": 120, "output_tokens": 30},
                    },
                ],
            },
            {
                "name": "malformed",
                "match": {"contains": "Step: malformed"},
                "turns": [
                    {
                        "tool_calls": [
                            {"name": "orders_get", "arguments_raw": '{"order_id": '},
                            {"name": "orders_get", "arguments_raw": "[1, 2]"},
                        ]
                    }
                ],
            },
        ]
    }
)

TOOLS = [
    ToolDefinition(
        name="tickets_get",
        description="Read a support ticket.",
        parameters={"type": "object", "properties": {"ticket_id": {"type": "string"}}},
    ),
    ToolDefinition(
        name="orders_get",
        description="Read an order.",
        parameters={"type": "object", "properties": {"order_id": {"type": "string"}}},
    ),
]

VALID_BODY = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "upstream-model-2025",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
}


def _request(text: str, model: str = "scripted-strong") -> ModelRequest:
    return ModelRequest(
        model=model,
        messages=[
            ChatMessage(role="system", content=f"You are careful.\n{text}"),
            ChatMessage(role="user", content="Customer T-1001 wants a refund."),
        ],
        tools=TOOLS,
    )


Handler = Callable[[Request], Awaitable[Response]]


@contextlib.asynccontextmanager
async def _provider_for(
    handler: Handler, *, api_key: str | None = None, timeout: float = 5.0
) -> AsyncIterator[OpenAIProvider]:
    """A provider pointed at a one-route endpoint that answers with `handler`."""
    app = Starlette(routes=[Route("/v1/chat/completions", handler, methods=["POST"])])
    async with (
        LoopbackServer(app) as server,
        OpenAIProvider(base_url=f"{server.url}/v1", api_key=api_key, timeout=timeout) as provider,
    ):
        yield provider


@pytest.fixture
async def replay() -> AsyncIterator[ScriptedModelServer]:
    async with ScriptedModelServer(SCRIPT) as server:
        yield server


def test_public_api_is_locked() -> None:
    assert set(orchestrator.providers.__all__) == {
        "AliasEntry",
        "AnthropicProvider",
        "ChatMessage",
        "DeltaSink",
        "ModelDelta",
        "ModelEntry",
        "ModelRegistry",
        "ModelRequest",
        "ModelResponse",
        "OpenAIProvider",
        "OpenAIResponsesProvider",
        "ProviderEntry",
        "ToolCall",
        "ToolDefinition",
        "Usage",
        "load_model_registry",
    }


async def test_tool_call_round_trip(replay: ScriptedModelServer) -> None:
    request = _request("Step: investigate")
    async with OpenAIProvider(base_url=replay.base_url) as provider:
        first = await provider.complete(request)
        assert first.finish_reason == "tool_calls"
        assert first.provider_model == "scripted-strong"
        assert [(c.id, c.name, c.arguments) for c in first.message.tool_calls] == [
            ("call_investigate_0_0", "tickets_get", {"ticket_id": "T-1001"}),
            ("call_investigate_0_1", "orders_get", {"order_id": "A-1001"}),
        ]
        assert first.message.tool_calls[0].arguments_json == '{"ticket_id": "T-1001"}'
        assert first.usage.input_tokens > 0
        assert first.usage.output_tokens > 0

        results = [
            ChatMessage(role="tool", tool_call_id=call.id, content='{"ok": true}')
            for call in first.message.tool_calls
        ]
        follow_up = request.model_copy(
            update={"messages": [*request.messages, first.message, *results]}
        )
        second = await provider.complete(follow_up)

    assert second.message.content == "Refund approved for A-1001."
    assert second.message.tool_calls == []
    assert second.finish_reason == "stop"
    assert (second.usage.input_tokens, second.usage.output_tokens) == (120, 30)
    assert [(r.conversation, r.turn, r.message_count, r.tool_calls) for r in replay.requests] == [
        ("investigate", 0, 2, True),
        ("investigate", 1, 5, False),
    ]
    assert replay.requests[0].tools == ["tickets_get", "orders_get"]


async def test_malformed_arguments_give_parse_error(replay: ScriptedModelServer) -> None:
    async with OpenAIProvider(base_url=replay.base_url) as provider:
        response = await provider.complete(_request("Step: malformed", model="any"))
    broken, not_object = response.message.tool_calls
    assert broken.arguments is None
    assert broken.arguments_json == '{"order_id": '
    assert broken.parse_error is not None
    assert broken.parse_error.startswith("arguments are not valid JSON: ")
    assert "at char 13" in broken.parse_error
    assert not_object.arguments is None
    assert not_object.parse_error == "arguments are not a JSON object but list"


async def test_no_matching_conversation_is_a_permanent_400(replay: ScriptedModelServer) -> None:
    async with OpenAIProvider(base_url=replay.base_url) as provider:
        with pytest.raises(ProviderHTTPError) as caught:
            await provider.complete(_request("Step: investigate", model="other-model"))
    error = caught.value
    assert error.status_code == 400
    assert not error.retryable
    assert error.retry_after is None
    message = str(error)
    assert message.startswith(f"{replay.base_url}/chat/completions: HTTP 400: ")
    assert "scripted model: no conversation matches model='other-model'" in message
    assert len(message) < 450


async def test_wrong_api_key_is_401_and_never_echoed() -> None:
    right, wrong = "sk-right-0123456789", "sk-wrong-9876543210"
    async with ScriptedModelServer(SCRIPT, api_key=right) as replay:
        async with OpenAIProvider(base_url=replay.base_url, api_key=wrong) as provider:
            with pytest.raises(ProviderHTTPError) as caught:
                await provider.complete(_request("Step: investigate"))
        async with OpenAIProvider(base_url=replay.base_url) as provider:
            with pytest.raises(ProviderHTTPError) as missing:
                await provider.complete(_request("Step: investigate"))
        async with OpenAIProvider(base_url=replay.base_url, api_key=right) as provider:
            answered = await provider.complete(_request("Step: investigate"))
    assert caught.value.status_code == 401
    assert missing.value.status_code == 401
    assert not caught.value.retryable
    for text in (str(caught.value), str(missing.value), repr(caught.value)):
        assert right not in text
        assert wrong not in text
    assert answered.message.tool_calls


async def test_key_echoed_by_endpoint_is_redacted() -> None:
    key = "sk-secret-echo-42"

    async def echo(request: Request) -> Response:
        given = request.headers["authorization"].removeprefix("Bearer ")
        message = f"Incorrect API key provided: {given}. Find your key at example.com."
        return JSONResponse({"error": {"message": message}}, status_code=401)

    async with _provider_for(echo, api_key=key) as provider:
        with pytest.raises(ProviderHTTPError) as caught:
            await provider.complete(_request("x"))
    assert key not in str(caught.value)
    assert "Incorrect API key provided: [redacted]." in str(caught.value)


@pytest.mark.parametrize(
    ("status", "headers", "retry_after"),
    [
        (429, {"Retry-After": "7"}, 7.0),
        (500, {"Retry-After": "0.5"}, 0.5),
        (503, {}, None),
        (503, {"Retry-After": "soon"}, None),
        (429, {"retry-after-ms": "1500", "Retry-After": "2"}, 1.5),
    ],
)
async def test_overload_and_server_errors_are_retryable(
    status: int, headers: dict[str, str], retry_after: float | None
) -> None:
    async def overloaded(_: Request) -> Response:
        body = {"error": {"message": "x" * 1000, "type": "server_error"}}
        return JSONResponse(body, status_code=status, headers=headers)

    async with _provider_for(overloaded) as provider:
        with pytest.raises(ProviderHTTPError) as caught:
            await provider.complete(_request("x"))
    assert caught.value.status_code == status
    assert caught.value.retryable
    assert caught.value.retry_after == retry_after
    assert f"HTTP {status}: xxx" in str(caught.value)
    assert len(str(caught.value)) < 400


async def test_retry_after_as_http_date() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)

    async def limited(_: Request) -> Response:
        return PlainTextResponse("slow down", status_code=429, headers={"Retry-After": when})

    async with _provider_for(limited) as provider:
        with pytest.raises(ProviderHTTPError) as caught:
            await provider.complete(_request("x"))
    assert caught.value.retry_after is not None
    assert 60 < caught.value.retry_after <= 120
    assert "HTTP 429: slow down" in str(caught.value)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"<html>oops</html>", "response is not JSON (HTTP 200, body starts '<html>oops</html>')"),
        (b"[]", "response has no JSON object body"),
        (b"{}", "response has no choices"),
        (b'{"choices": []}', "response has no choices"),
        (b'{"choices": [{"finish_reason": "stop"}]}', "response has no choices[0].message"),
        (
            b'{"choices": [{"message": {"content": 3}}]}',
            "response choices[0].message.content is not a string",
        ),
        (
            b'{"choices": [{"message": {"tool_calls": [{"function": {"name": "f"}}]}}]}',
            "response has no choices[0].message.tool_calls[0].id",
        ),
        (
            b'{"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": "7"}}',
            "response usage.prompt_tokens is not an integer",
        ),
    ],
)
async def test_malformed_success_bodies(body: bytes, problem: str) -> None:
    async def malformed(_: Request) -> Response:
        return Response(body, media_type="application/json")

    async with _provider_for(malformed) as provider:
        with pytest.raises(ProviderResponseError) as caught:
            await provider.complete(_request("x"))
    assert str(caught.value) == f"{provider.endpoint}: {problem}"
    assert not caught.value.retryable


async def test_connection_refused() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with OpenAIProvider(base_url=f"http://127.0.0.1:{port}/v1") as provider:
        with pytest.raises(ProviderConnectionError) as caught:
            await provider.complete(_request("x"))
    assert caught.value.retryable
    assert str(caught.value).startswith(
        f"http://127.0.0.1:{port}/v1/chat/completions: connection failed: "
    )


async def test_connection_dropped_without_answer() -> None:
    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(drop, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        async with OpenAIProvider(base_url=f"http://127.0.0.1:{port}/v1") as provider:
            with pytest.raises(ProviderConnectionError) as caught:
                await provider.complete(_request("x"))
    assert caught.value.retryable
    assert str(caught.value).startswith(
        f"http://127.0.0.1:{port}/v1/chat/completions: connection failed: "
    )


async def test_timeout() -> None:
    never = asyncio.Event()

    async def hang(_: Request) -> Response:
        await never.wait()
        return JSONResponse(VALID_BODY)

    async with asyncio.timeout(10), _provider_for(hang, timeout=0.2) as provider:
        try:
            with pytest.raises(ProviderTimeoutError) as caught:
                await provider.complete(_request("x"))
        finally:
            never.set()
    assert caught.value.retryable
    assert "no answer within 0.2s" in str(caught.value)


async def test_wire_format_of_request_and_response() -> None:
    seen: list[tuple[dict[str, object], str | None]] = []

    async def capture(request: Request) -> Response:
        seen.append((json.loads(await request.body()), request.headers.get("authorization")))
        return JSONResponse(VALID_BODY)

    call = ToolCall(id="call_1", name="orders_get", arguments_json='{"order_id": "A-1"}')
    request = ModelRequest(
        model="gpt-test",
        messages=[
            ChatMessage(role="system", content="sys"),
            ChatMessage(role="user", content="hi", name="ana"),
            ChatMessage(role="assistant", content=None, tool_calls=[call]),
            ChatMessage(role="tool", tool_call_id="call_1", content='{"total": 42}'),
        ],
        tools=TOOLS[1:],
        temperature=0.0,
        max_tokens=256,
    )
    async with _provider_for(capture, api_key="k-1") as provider:
        response = await provider.complete(request)

    body, authorization = seen[0]
    assert authorization == "Bearer k-1"
    assert body == {
        "model": "gpt-test",
        "messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "hi", "name": "ana"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "orders_get", "arguments": '{"order_id": "A-1"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": '{"total": 42}'},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "orders_get",
                    "description": "Read an order.",
                    "parameters": {
                        "type": "object",
                        "properties": {"order_id": {"type": "string"}},
                    },
                },
            }
        ],
        "temperature": 0.0,
        "max_tokens": 256,
    }
    assert response.message == ChatMessage(role="assistant", content="hi")
    assert (response.usage.input_tokens, response.usage.output_tokens) == (7, 3)
    assert response.finish_reason == "stop"
    assert response.provider_model == "upstream-model-2025"


async def test_shared_client_is_left_open(replay: ScriptedModelServer) -> None:
    async with httpx.AsyncClient() as client:
        async with OpenAIProvider(base_url=replay.base_url, http_client=client) as provider:
            await provider.complete(_request("Step: investigate"))
        assert not client.is_closed


@pytest.mark.parametrize("base_url", ["ftp://example.com/v1", "not a url", "http:///v1"])
def test_bad_base_url_is_a_config_error(base_url: str) -> None:
    with pytest.raises(ConfigError, match="base_url"):
        OpenAIProvider(base_url=base_url)


async def test_endpoint_hides_credentials_in_url() -> None:
    async with OpenAIProvider(
        base_url="https://user:pw@example.com/v1/?api-key=s3cret"
    ) as provider:
        assert provider.endpoint == "https://example.com/v1/chat/completions"
