"""Streaming providers over loopback HTTP: the scripted server and small misbehaving endpoints.

A streamed call must come out exactly as the same call without streaming (text, tool
calls, usage, finish reason), hand its pieces to the delta sink as they arrive, and a
stream that stops short, however it stops, must raise a retryable `ProviderStreamError`
instead of returning what arrived.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from orchestrator.exceptions import ProviderError, ProviderResponseError, ProviderStreamError
from orchestrator.gateway.http1 import LeanTransport
from orchestrator.providers import (
    AnthropicProvider,
    ChatMessage,
    ModelDelta,
    ModelRequest,
    OpenAIProvider,
    ToolDefinition,
)
from orchestrator.providers._anthropic_stream import MessageAssembler
from orchestrator.providers._openai_stream import ChatCompletionAssembler
from orchestrator.providers._sse import SSEEvent, sse_events
from orchestrator.scripted_model import LoopbackServer, ReplayScript, ScriptedModelServer

LONG_TEXT = "Refund approved for A-1001, within the policy; " * 12

SCRIPT = ReplayScript.model_validate(
    {
        "conversations": [
            {
                "name": "tools",
                "match": {"contains": "Step: tools"},
                "turns": [
                    {
                        "tool_calls": [
                            {"name": "tickets_get", "arguments": {"ticket_id": "T-1001"}},
                            {
                                "name": "orders_get",
                                "arguments": {"order_id": "A-1001", "lines": [1, 2, 3]},
                            },
                        ]
                    },
                ],
            },
            {
                "name": "text",
                "match": {"contains": "Step: text"},
                "turns": [{"content": LONG_TEXT}],
            },
            {
                "name": "priced",
                "match": {"contains": "Step: priced"},
                "turns": [
                    {
                        "content": "priced answer",
                        "usage": {"input_tokens": 900, "output_tokens": 70},
                    }
                ],
            },
            {
                "name": "cut",
                "match": {"contains": "Step: cut"},
                "turns": [{"content": LONG_TEXT, "fault": {"kind": "cut_stream", "after": 4}}],
            },
            {
                "name": "cut-tools",
                "match": {"contains": "Step: cut-tools"},
                "turns": [
                    {
                        "tool_calls": [{"name": "t", "arguments": {"a": "x" * 200}}],
                        "fault": {"kind": "cut_stream", "after": 5},
                    }
                ],
            },
        ]
    }
)

TOOLS = [
    ToolDefinition(name="tickets_get", description="Read a ticket.", parameters={"type": "object"}),
    ToolDefinition(name="orders_get", description="Read an order.", parameters={"type": "object"}),
]

Provider = OpenAIProvider | AnthropicProvider


def _request(step: str, *, stream: bool) -> ModelRequest:
    return ModelRequest(
        model="scripted-strong",
        messages=[
            ChatMessage(role="system", content=f"Step: {step}"),
            ChatMessage(role="user", content="Customer T-1001 wants a refund."),
        ],
        tools=TOOLS,
        stream=stream,
    )


@pytest.fixture
async def replay() -> AsyncIterator[ScriptedModelServer]:
    async with ScriptedModelServer(SCRIPT) as server:
        yield server


@pytest.fixture(params=["openai", "anthropic"])
async def provider(
    request: pytest.FixtureRequest, replay: ScriptedModelServer
) -> AsyncIterator[Provider]:
    kind = OpenAIProvider if request.param == "openai" else AnthropicProvider
    async with kind(base_url=replay.base_url, timeout=5) as client:
        yield client


class Deltas:
    """A delta sink that keeps what it gets."""

    def __init__(self) -> None:
        self.seen: list[ModelDelta] = []

    async def __call__(self, delta: ModelDelta) -> None:
        self.seen.append(delta)

    def text(self) -> str:
        return "".join(d.text for d in self.seen if d.kind == "text")

    def arguments(self, index: int) -> str:
        return "".join(d.text for d in self.seen if d.kind == "tool_call_args" and d.index == index)


@pytest.mark.parametrize("step", ["text", "tools", "priced"])
async def test_a_streamed_answer_equals_the_whole_one(
    provider: Provider, replay: ScriptedModelServer, step: str
) -> None:
    whole = await provider.complete(_request(step, stream=False))
    deltas = Deltas()
    streamed = await provider.complete(_request(step, stream=True), on_delta=deltas)
    assert streamed == whole
    assert [r.stream for r in replay.requests] == [False, True]
    # The stream really came in pieces, and the pieces add up to the answer.
    assert len(deltas.seen) >= 2
    if step != "tools":
        assert deltas.text() == whole.message.content
        return
    calls = whole.message.tool_calls
    assert [c.name for c in calls] == ["tickets_get", "orders_get"]
    assert [deltas.arguments(i) for i in range(2)] == [c.arguments_json for c in calls]
    assert {(d.index, d.call_id, d.name) for d in deltas.seen} == {
        (i, c.id, c.name) for i, c in enumerate(calls)
    }


async def test_a_providers_own_client_streams_plain_http_through_the_lean_transport(
    replay: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The lean transport keeps the socket read by a protocol: no pause and resume of the
    # reader (two system calls on the worker's loop) for every chunk of a stream.
    seen: list[str] = []
    handle = LeanTransport.handle_async_request

    async def counted(self: LeanTransport, request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return await handle(self, request)

    monkeypatch.setattr(LeanTransport, "handle_async_request", counted)
    # Another test of the run may have installed a tracer provider, for the whole process.
    monkeypatch.setattr("orchestrator.observability.tracing.tracing_on", lambda: False)
    deltas = Deltas()
    async with OpenAIProvider(base_url=replay.base_url, timeout=5) as provider:
        streamed = await provider.complete(_request("text", stream=True), on_delta=deltas)
    assert streamed.message.content == LONG_TEXT == deltas.text()
    assert seen == [f"{replay.base_url}/chat/completions"]

    # With tracing on, httpx's own transport, which OpenTelemetry's instrumentation sees.
    seen.clear()
    monkeypatch.setattr("orchestrator.observability.tracing.tracing_on", lambda: True)
    async with OpenAIProvider(base_url=replay.base_url, timeout=5) as provider:
        traced = await provider.complete(_request("text", stream=True))
    assert traced.message.content == LONG_TEXT
    assert seen == []


async def test_usage_is_the_same_streamed(provider: Provider) -> None:
    streamed = await provider.complete(_request("priced", stream=True))
    assert (streamed.usage.input_tokens, streamed.usage.output_tokens) == (900, 70)


@pytest.mark.parametrize("step", ["cut", "cut-tools"])
async def test_a_cut_stream_is_a_retryable_fault_and_no_answer(
    provider: Provider, step: str
) -> None:
    deltas = Deltas()
    with pytest.raises(ProviderStreamError, match="stream was cut") as caught:
        await provider.complete(_request(step, stream=True), on_delta=deltas)
    assert caught.value.retryable
    # Some of the answer had arrived (and was shown to watchers), none of it is returned.
    assert deltas.seen
    assert deltas.text() != LONG_TEXT


async def test_a_non_streamed_answer_reaches_the_sink_whole(provider: Provider) -> None:
    deltas = Deltas()
    text = await provider.complete(_request("text", stream=False), on_delta=deltas)
    tools = await provider.complete(_request("tools", stream=False), on_delta=deltas)
    assert deltas.seen[0] == ModelDelta(kind="text", text=text.message.content or "")
    assert deltas.seen[1:] == [
        ModelDelta(kind="tool_call_args", text=c.arguments_json, index=i, call_id=c.id, name=c.name)
        for i, c in enumerate(tools.message.tool_calls)
    ]


def test_a_delta_is_frozen() -> None:
    delta = ModelDelta(kind="text", text="hi")
    with pytest.raises(ValueError, match="frozen"):
        delta.text = "changed"  # type: ignore[misc]


# Endpoints that stop short in ways the scripted model server's faults do not cover.

_OPENAI_HEAD = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}


def _openai_chunk(delta: dict[str, object], finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return f"data: {json.dumps({**_OPENAI_HEAD, 'choices': [choice]})}\n\n".encode()


def _anthropic_event(data: dict[str, object]) -> bytes:
    return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode()


_MESSAGE_START = _anthropic_event(
    {
        "type": "message_start",
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "m",
            "content": [],
            "stop_reason": None,
            "usage": {"input_tokens": 5, "output_tokens": 1},
        },
    }
)
_TEXT_START = _anthropic_event(
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
)
_TEXT_DELTA = _anthropic_event(
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}}
)

ENDINGS: dict[str, tuple[str, list[bytes], str]] = {
    # An OpenAI stream that ends cleanly but without data: [DONE].
    "openai-no-done": (
        "openai",
        [_openai_chunk({"role": "assistant", "content": "Hel"}), _openai_chunk({}, "stop")],
        "ended before data: \\[DONE\\]",
    ),
    # An OpenAI-compatible gateway that reports a backend failure inside the stream.
    "openai-error-chunk": (
        "openai",
        [
            _openai_chunk({"role": "assistant", "content": "Hel"}),
            b'data: {"error": {"message": "backend overloaded", "type": "server_error"}}\n\n',
        ],
        "backend overloaded",
    ),
    # Anthropic's stream without message_stop.
    "anthropic-no-stop": (
        "anthropic",
        [_MESSAGE_START, _TEXT_START, _TEXT_DELTA],
        "ended before message_stop",
    ),
    # Anthropic's error event mid-stream (overloaded after the answer began).
    "anthropic-error-event": (
        "anthropic",
        [
            _MESSAGE_START,
            _TEXT_START,
            _TEXT_DELTA,
            _anthropic_event(
                {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
            ),
        ],
        "overloaded_error: Overloaded",
    ),
}


@pytest.mark.parametrize("ending", sorted(ENDINGS))
async def test_a_stream_that_stops_short_is_retryable(ending: str) -> None:
    kind, frames, message = ENDINGS[ending]

    async def stream(_: Request) -> Response:
        return StreamingResponse(iter(frames), media_type="text/event-stream")

    app = Starlette(
        routes=[Route(p, stream, methods=["POST"]) for p in ("/chat/completions", "/v1/messages")]
    )
    provider_type = OpenAIProvider if kind == "openai" else AnthropicProvider
    deltas = Deltas()
    async with LoopbackServer(app) as server, provider_type(base_url=server.url) as provider:
        with pytest.raises(ProviderStreamError, match=message) as caught:
            await provider.complete(_request("any", stream=True), on_delta=deltas)
    assert caught.value.retryable
    assert deltas.text() == "Hel"


async def test_an_endpoint_that_ignores_stream_still_answers() -> None:
    """Some OpenAI-compatible servers answer a whole body to `stream: true`."""
    body = {
        "id": "c1",
        "object": "chat.completion",
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    }
    asked: list[object] = []

    async def whole(request: Request) -> Response:
        asked.append((await request.json()).get("stream_options"))
        return JSONResponse(body)

    app = Starlette(routes=[Route("/chat/completions", whole, methods=["POST"])])
    deltas = Deltas()
    async with LoopbackServer(app) as server, OpenAIProvider(base_url=server.url) as provider:
        response = await provider.complete(_request("any", stream=True), on_delta=deltas)
    assert asked == [{"include_usage": True}]
    assert response.message.content == "hi"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (7, 3)
    assert deltas.seen == [ModelDelta(kind="text", text="hi")]


async def test_an_error_status_to_a_stream_request_is_the_usual_http_error() -> None:
    async def refuse(_: Request) -> Response:
        return JSONResponse({"error": {"message": "slow down"}}, status_code=429)

    app = Starlette(routes=[Route("/chat/completions", refuse, methods=["POST"])])
    async with LoopbackServer(app) as server, OpenAIProvider(base_url=server.url) as provider:
        with pytest.raises(ProviderError, match="HTTP 429: slow down") as caught:
            await provider.complete(_request("any", stream=True))
    assert caught.value.retryable
    assert not isinstance(caught.value, ProviderStreamError)


async def _chunks(raw: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(raw), size):
        yield raw[start : start + size]


async def _events(text: str, size: int, newline: str = "\n") -> list[SSEEvent]:
    raw = text.replace("\n", newline).encode()
    return [event async for event in sse_events(_chunks(raw, size))]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
async def test_sse_fields_comments_and_a_cut_last_event(size: int, newline: str) -> None:
    text = (
        ": a comment\n"
        "event: one\ndata: a\ndata:  b\nid: 7\nretry: 10\n\n"
        "data: {}\n\n"
        "\n\n"
        "event: lonely\n\n"
        "data:\n\n"
        "data: \u00e9\u2028\u00e9\n\n"
        "event: cut\ndata: never finished"
    )
    assert await _events(text, size, newline) == [
        SSEEvent("one", "a\n b"),
        SSEEvent("message", "{}"),
        SSEEvent("message", ""),
        SSEEvent("message", "\u00e9\u2028\u00e9"),
    ]


@pytest.mark.parametrize("data", ["{", '{"a": 1} x', "data: {}"])
async def test_a_chunk_that_is_not_json_breaks_either_stream(data: str) -> None:
    with pytest.raises(ProviderResponseError, match="data is not JSON"):
        await ChatCompletionAssembler("e").feed(SSEEvent("message", data))
    with pytest.raises(ProviderResponseError, match="message_start data is not JSON"):
        await MessageAssembler("e").feed(SSEEvent("message_start", data))


def _cached_endpoint() -> Starlette:
    """Answers one message, whole or streamed, with prompt-cache counts in its usage."""
    openai_whole = {
        "id": "c1",
        "object": "chat.completion",
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello"},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 2000,
            "completion_tokens": 9,
            "total_tokens": 2009,
            "prompt_tokens_details": {"cached_tokens": 1536},
        },
    }
    usage_chunk = {**_OPENAI_HEAD, "choices": [], "usage": openai_whole["usage"]}
    openai_frames = [
        _openai_chunk({"role": "assistant", "content": "Hel"}),
        _openai_chunk({"content": "lo"}),
        _openai_chunk({}, "stop"),
        f"data: {json.dumps(usage_chunk)}\n\n".encode(),
        b"data: [DONE]\n\n",
    ]
    start_usage = {
        "input_tokens": 12,
        "cache_read_input_tokens": 1500,
        "cache_creation_input_tokens": 300,
        "output_tokens": 1,
    }
    anthropic_whole = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": [{"type": "text", "text": "Hello"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {**start_usage, "output_tokens": 9},
    }
    start = {**anthropic_whole, "content": [], "stop_reason": None, "usage": start_usage}
    anthropic_frames = [
        _anthropic_event({"type": "message_start", "message": start}),
        _TEXT_START,
        _TEXT_DELTA,
        _anthropic_event(
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "lo"},
            }
        ),
        _anthropic_event({"type": "content_block_stop", "index": 0}),
        _anthropic_event(
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 9},
            }
        ),
        _anthropic_event({"type": "message_stop"}),
    ]

    async def chat(request: Request) -> Response:
        if (await request.json()).get("stream"):
            return StreamingResponse(iter(openai_frames), media_type="text/event-stream")
        return JSONResponse(openai_whole)

    async def messages(request: Request) -> Response:
        if (await request.json()).get("stream"):
            return StreamingResponse(iter(anthropic_frames), media_type="text/event-stream")
        return JSONResponse(anthropic_whole)

    return Starlette(
        routes=[
            Route("/chat/completions", chat, methods=["POST"]),
            Route("/v1/messages", messages, methods=["POST"]),
        ]
    )


@pytest.mark.parametrize(
    ("kind", "cached", "written"), [(OpenAIProvider, 1536, 0), (AnthropicProvider, 1500, 300)]
)
async def test_prompt_cache_counts_are_the_same_streamed(
    kind: type[Provider], cached: int, written: int
) -> None:
    async with LoopbackServer(_cached_endpoint()) as server, kind(base_url=server.url) as provider:
        whole = await provider.complete(_request("any", stream=False))
        streamed = await provider.complete(_request("any", stream=True))
    assert streamed == whole
    assert streamed.message.content == "Hello"
    usage = streamed.usage
    assert (usage.cached_input_tokens, usage.cache_write_tokens, usage.output_tokens) == (
        cached,
        written,
        9,
    )
