"""The scripted model server read by the official `openai` and `anthropic` SDKs, as a real API is.

A streamed answer that the SDK reassembles must equal the non-streamed one (text, tool
calls, usage, finish reason); errors must parse into the SDK's typed exceptions with the
envelope's fields; `GET /v1/models` must list the scripted models.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from orchestrator.scripted_model import ReplayScript, ScriptedModelServer

LONG_TEXT = "The refund of 42.50 EUR for order A-1001 is approved under policy R-7. " * 5

SCRIPT = ReplayScript.model_validate(
    {
        "conversations": [
            {
                "name": "text",
                "match": {"model": "scripted-strong", "contains": "Step: text"},
                "turns": [{"content": LONG_TEXT}],
            },
            {
                "name": "tools",
                "match": {"model": "scripted-strong", "contains": "Step: tools"},
                "turns": [
                    {
                        "tool_calls": [
                            {"name": "tickets_get", "arguments": {"ticket_id": "T-1001"}},
                            {
                                "name": "orders_get",
                                "arguments": {"order_id": "A-1001", "note": "x" * 120},
                            },
                        ],
                        "usage": {"input_tokens": 321, "output_tokens": 45},
                    }
                ],
            },
            {
                "name": "limited",
                "match": {"model": "scripted-fast", "contains": "Step: limited"},
                "turns": [
                    {
                        "content": "later",
                        "fault": {"kind": "status", "status": 429, "retry_after": 7},
                    }
                ],
            },
            {
                "name": "down",
                "match": {"model": "scripted-fast", "contains": "Step: down"},
                "turns": [{"content": "never", "fault": {"kind": "status", "status": 503}}],
            },
        ]
    }
)

OPENAI_TOOLS: Any = [
    {
        "type": "function",
        "function": {"name": name, "description": name, "parameters": {"type": "object"}},
    }
    for name in ("tickets_get", "orders_get")
]
ANTHROPIC_TOOLS: Any = [
    {"name": name, "description": name, "input_schema": {"type": "object"}}
    for name in ("tickets_get", "orders_get")
]


def _openai_messages(step: str) -> Any:
    return [
        {"role": "system", "content": f"Step: {step}"},
        {"role": "user", "content": "Customer T-1001 wants a refund."},
    ]


def _anthropic_args(step: str, model: str = "scripted-strong") -> Any:
    return {
        "model": model,
        "max_tokens": 1024,
        "system": f"Step: {step}",
        "messages": [{"role": "user", "content": "Customer T-1001 wants a refund."}],
        "tools": ANTHROPIC_TOOLS,
    }


@pytest.fixture
async def replay() -> AsyncIterator[ScriptedModelServer]:
    async with ScriptedModelServer(SCRIPT, api_key="replay-key") as server:
        yield server


@pytest.fixture
async def oai(replay: ScriptedModelServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=replay.base_url, api_key="replay-key", max_retries=0
    ) as client:
        yield client


@pytest.fixture
async def claude(replay: ScriptedModelServer) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        base_url=replay.url, api_key="replay-key", max_retries=0
    ) as client:
        yield client


def _openai_view(completion: Any) -> Any:
    choice = completion.choices[0]
    calls = [
        (call.id, call.type, call.function.name, call.function.arguments)
        for call in choice.message.tool_calls or []
    ]
    usage = completion.usage
    return (
        choice.message.content,
        calls,
        choice.finish_reason,
        (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens),
        completion.model,
    )


@pytest.mark.parametrize("step", ["text", "tools"])
async def test_openai_sdk_stream_equals_the_whole_answer(
    oai: openai.AsyncOpenAI, replay: ScriptedModelServer, step: str
) -> None:
    kwargs: Any = {"model": "scripted-strong", "messages": _openai_messages(step)}
    whole = await oai.chat.completions.create(**kwargs, tools=OPENAI_TOOLS)
    async with oai.chat.completions.stream(
        **kwargs, tools=OPENAI_TOOLS, stream_options={"include_usage": True}
    ) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_completion()
    assert _openai_view(final) == _openai_view(whole)
    assert replay.requests[-1].stream
    # The answer really arrived in pieces.
    piece = "content.delta" if step == "text" else "tool_calls.function.arguments.delta"
    assert kinds.count(piece) > 3
    assert final.id != whole.id


async def test_openai_chunks_end_with_a_usage_chunk(oai: openai.AsyncOpenAI) -> None:
    stream = await oai.chat.completions.create(
        model="scripted-strong",
        messages=_openai_messages("tools"),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    headers = [c.choices[0].delta.tool_calls for c in chunks if c.choices]
    first_fragments = [calls[0] for calls in headers if calls and calls[0].id]
    assert [(c.index, c.id, c.function and c.function.name) for c in first_fragments] == [
        (0, "call_tools_0_0", "tickets_get"),
        (1, "call_tools_0_1", "orders_get"),
    ]
    assert chunks[-2].choices[0].finish_reason == "tool_calls"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (321, 45)
    assert all(c.usage is None for c in chunks[:-1])
    assert len({c.id for c in chunks}) == 1


async def test_openai_stream_without_usage_option_has_no_usage_chunk(
    oai: openai.AsyncOpenAI,
) -> None:
    stream = await oai.chat.completions.create(
        model="scripted-strong", messages=_openai_messages("text"), stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == LONG_TEXT


@pytest.mark.parametrize("step", ["text", "tools"])
async def test_anthropic_sdk_stream_equals_the_whole_message(
    claude: anthropic.AsyncAnthropic, replay: ScriptedModelServer, step: str
) -> None:
    whole = await claude.messages.create(**_anthropic_args(step))
    async with claude.messages.stream(**_anthropic_args(step)) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_message()
    assert final.model_dump(exclude={"id"}) == whole.model_dump(exclude={"id"})
    assert final.id != whole.id
    assert [r.api for r in replay.requests] == ["anthropic", "anthropic"]
    assert replay.requests[-1].stream
    assert kinds[0] == "message_start"
    assert kinds[-1] == "message_stop"
    assert kinds.count("content_block_delta") > 3
    if step == "tools":
        assert [b.type for b in final.content] == ["tool_use", "tool_use"]
        assert final.stop_reason == "tool_use"
        assert (final.usage.input_tokens, final.usage.output_tokens) == (321, 45)
    else:
        assert final.content[0].type == "text"
        assert final.content[0].text == LONG_TEXT
        assert final.stop_reason == "end_turn"


async def test_both_sdks_list_the_scripted_models(
    oai: openai.AsyncOpenAI, claude: anthropic.AsyncAnthropic
) -> None:
    openai_ids = [model.id async for model in oai.models.list()]
    anthropic_ids = [model.id async for model in claude.models.list()]
    assert openai_ids == anthropic_ids == ["scripted-fast", "scripted-strong"]


async def test_ids_are_unique_and_created_is_now(oai: openai.AsyncOpenAI) -> None:
    answers = [
        await oai.chat.completions.create(
            model="scripted-strong", messages=_openai_messages("text")
        )
        for _ in range(3)
    ]
    assert len({a.id for a in answers}) == 3
    assert all(abs(a.created - time.time()) < 3600 for a in answers)


async def test_openai_sdk_reads_every_error_envelope(
    oai: openai.AsyncOpenAI, replay: ScriptedModelServer
) -> None:
    lost = openai.AsyncOpenAI(base_url=f"{replay.url}/v2", api_key="replay-key", max_retries=0)
    with pytest.raises(openai.NotFoundError) as not_found:
        await lost.models.list()
    assert not_found.value.code == "not_found"
    assert not_found.value.body == {
        "message": "scripted model: GET /v2/models: no such endpoint (it serves"
        " /v1/chat/completions, /v1/messages and /v1/models)",
        "type": "invalid_request_error",
        "param": None,
        "code": "not_found",
    }
    await lost.close()

    with pytest.raises(openai.BadRequestError) as unmatched:
        await oai.chat.completions.create(
            model="scripted-strong", messages=[{"role": "user", "content": "nothing matches"}]
        )
    assert unmatched.value.code == "invalid_request"
    assert unmatched.value.param is None
    assert "no conversation matches" in unmatched.value.message

    with pytest.raises(openai.BadRequestError) as malformed:
        await oai.chat.completions.create(model="scripted-strong", messages=[])
    assert "malformed chat-completions request" in malformed.value.message

    wrong_key = openai.AsyncOpenAI(base_url=replay.base_url, api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as refused:
        await wrong_key.chat.completions.create(
            model="scripted-strong", messages=_openai_messages("text")
        )
    assert refused.value.code == "invalid_api_key"
    await wrong_key.close()

    with pytest.raises(openai.RateLimitError) as limited:
        await oai.chat.completions.create(
            model="scripted-fast", messages=_openai_messages("limited")
        )
    assert limited.value.code == "rate_limit_exceeded"
    assert limited.value.response.headers["retry-after"] == "7"

    with pytest.raises(openai.InternalServerError) as down:
        await oai.chat.completions.create(model="scripted-fast", messages=_openai_messages("down"))
    assert down.value.status_code == 503
    assert down.value.code == "server_error"

    async with httpx.AsyncClient(base_url=replay.url) as http:
        wrong_method = await http.get("/v1/chat/completions")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"


async def test_anthropic_sdk_reads_its_error_envelope(
    claude: anthropic.AsyncAnthropic, replay: ScriptedModelServer
) -> None:
    with pytest.raises(anthropic.RateLimitError) as limited:
        await claude.messages.create(**_anthropic_args("limited", model="scripted-fast"))
    assert limited.value.body == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "injected fault"},
    }
    with pytest.raises(anthropic.BadRequestError, match="no conversation matches"):
        await claude.messages.create(**_anthropic_args("nothing", model="unknown-model"))
    lost = anthropic.AsyncAnthropic(base_url=f"{replay.url}/v2", api_key="k", max_retries=0)
    with pytest.raises(anthropic.NotFoundError) as not_found:
        await lost.models.list()
    assert isinstance(not_found.value.body, dict)
    assert not_found.value.body["error"]["type"] == "not_found_error"
    await lost.close()
    wrong_key = anthropic.AsyncAnthropic(base_url=replay.url, api_key="nope", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        await wrong_key.messages.create(**_anthropic_args("text"))
    await wrong_key.close()
