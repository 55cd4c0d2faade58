"""A streamed tool call has OpenAI's chunk shape, read by the `openai` SDK's stream helper.

OpenAI puts a tool call's `id`, `type` and `function.name` in the call's first chunk
only; later chunks hold `index` and `function.arguments`. Clients fold the chunks by
joining every string field they see: the `openai` SDK's `accumulate_delta` (behind
`client.chat.completions.stream()`) and pydantic-ai both do. The gateway used to repeat
id and name in every chunk of a call, so such a client read the tool's name as
`get_orderget_orderget_order` and failed with an unknown tool.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from anthropic import AsyncAnthropic
from gw_harness import TOKEN, registry_raw, serve_gateway
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionChunk

from orchestrator.gateway.sse import OpenAIStream
from orchestrator.providers.registry import ModelRegistry
from orchestrator.providers.streaming import ModelDelta
from orchestrator.scripted_model import ReplayScript

TOOLS: Any = [
    {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}
    for name in ("get_order", "refund_order")
]
ARGUMENTS = [{"order_id": "7", "note": "the customer asked twice"}, {"order_id": "7"}]
SCRIPT = ReplayScript.model_validate(
    {
        "conversations": [
            {
                "name": "calls",
                "turns": [
                    {
                        "tool_calls": [
                            {"name": "get_order", "arguments": ARGUMENTS[0]},
                            {"name": "refund_order", "arguments": ARGUMENTS[1]},
                        ]
                    }
                ],
                "after_last": "repeat_last",
            }
        ]
    }
)


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"


def _registry(kind: str) -> Any:
    def registry(base_url: str) -> ModelRegistry:
        raw = registry_raw(base_url)
        raw["providers"] = {"replay": {"kind": kind, "base_url": base_url, "timeout_seconds": 5}}
        return ModelRegistry.model_validate(raw)

    return registry


@pytest.mark.parametrize("upstream", ["openai", "anthropic"])
async def test_a_tool_calls_id_and_name_come_once_and_the_sdk_reads_them(
    store_url: str, upstream: str
) -> None:
    chunks: list[ChatCompletionChunk] = []
    async with (
        serve_gateway(SCRIPT, store_url, registry=_registry(upstream)) as served,
        AsyncOpenAI(base_url=served.base_url, api_key=TOKEN, max_retries=0) as client,
        client.chat.completions.stream(
            model="auto",
            messages=[{"role": "user", "content": "Refund order 7"}],
            tools=TOOLS,
            extra_headers={"x-session-id": f"tc-{upstream}"},
        ) as stream,
    ):
        async for event in stream:
            if event.type == "chunk":
                chunks.append(event.chunk)
        final = await stream.get_final_completion()
    assert served.replay.requests[-1].stream

    # The SDK's own accumulation: one name and one id per call, whole arguments.
    calls = final.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_order", "refund_order"]
    assert [json.loads(c.function.arguments) for c in calls] == ARGUMENTS
    assert all(c.type == "function" for c in calls)

    # The chunks as sent: id, type and name in each call's first chunk only.
    pieces: dict[int, list[dict[str, Any]]] = {}
    for chunk in chunks:
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            pieces.setdefault(call.index, []).append(call.to_dict())
    assert sorted(pieces) == [0, 1]
    for index, sent in pieces.items():
        assert len(sent) > 1, "the arguments came in one piece: nothing to repeat"
        first, *later = sent
        assert first["id"] == calls[index].id and first["id"]
        assert first["type"] == "function"
        assert first["function"]["name"] == calls[index].function.name
        assert [set(c) for c in later] == [{"index", "function"}] * len(later)
        assert [set(c["function"]) for c in later] == [{"arguments"}] * len(later)


@pytest.mark.parametrize("upstream", ["openai", "anthropic"])
async def test_an_anthropic_client_gets_each_tool_use_block_once(
    store_url: str, upstream: str
) -> None:
    """Anthropic's events name a call once, in `content_block_start`, whatever the upstream."""
    tools: Any = [
        {"name": t["function"]["name"], "input_schema": {"type": "object"}} for t in TOOLS
    ]
    starts: list[Any] = []
    async with (
        serve_gateway(SCRIPT, store_url, registry=_registry(upstream)) as served,
        AsyncAnthropic(base_url=served.server.url, api_key=TOKEN, max_retries=0) as client,
        client.messages.stream(
            model="auto",
            max_tokens=100,
            messages=[{"role": "user", "content": "Refund order 7"}],
            tools=tools,
            extra_headers={"x-session-id": f"ta-{upstream}"},
        ) as stream,
    ):
        async for event in stream:
            if event.type == "content_block_start":
                starts.append(event.content_block)
        final = await stream.get_final_message()
    uses = [block for block in final.content if block.type == "tool_use"]
    assert [(u.name, u.input) for u in uses] == list(
        zip(["get_order", "refund_order"], ARGUMENTS, strict=True)
    )
    assert [(s.id, s.name) for s in starts] == [(u.id, u.name) for u in uses]


def _tool_delta(index: int, text: str, call_id: str | None, name: str | None) -> ModelDelta:
    return ModelDelta(kind="tool_call_args", text=text, index=index, call_id=call_id, name=name)


def test_interleaved_calls_are_each_named_once_and_a_late_id_still_goes_out() -> None:
    """Parallel calls' fragments may alternate; a provider may learn a call's id late."""
    encoder = OpenAIStream("fast", "chatcmpl-1", 0, include_usage=False)
    deltas = [
        _tool_delta(0, '{"a"', "call_a", "get_order"),
        _tool_delta(1, '{"b"', None, "refund_order"),
        _tool_delta(0, ": 1}", "call_a", "get_order"),
        _tool_delta(1, ": 2}", "call_b", "refund_order"),
    ]
    sent = [
        json.loads(frame.removeprefix(b"data: "))["choices"][0]["delta"]["tool_calls"][0]
        for delta in deltas
        for frame in encoder.delta(delta)
    ]
    assert sent == [
        {
            "index": 0,
            "id": "call_a",
            "type": "function",
            "function": {"name": "get_order", "arguments": '{"a"'},
        },
        {"index": 1, "type": "function", "function": {"name": "refund_order", "arguments": '{"b"'}},
        {"index": 0, "function": {"arguments": ": 1}"}},
        {"index": 1, "id": "call_b", "function": {"arguments": ": 2}"}},
    ]
