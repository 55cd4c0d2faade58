"""Streaming providers against the replay server over loopback: deltas, and the same result."""

from __future__ import annotations

import pytest

from orchestrator.providers import (
    ChatMessage,
    ModelDelta,
    ModelRequest,
    OpenAIProvider,
)
from orchestrator.replay import ReplayScript, ReplayServer

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
                            {"name": "orders_get", "arguments": {"order_id": "A-1001"}},
                        ]
                    },
                ],
            },
            {
                "name": "text",
                "match": {"contains": "Step: text"},
                "turns": [{"content": "Refund approved for A-1001, within the policy."}],
            },
        ]
    }
)


def _request(step: str, *, stream: bool = False) -> ModelRequest:
    return ModelRequest(
        model="scripted-strong",
        messages=[
            ChatMessage(role="system", content=f"Step: {step}"),
            ChatMessage(role="user", content="Customer T-1001 wants a refund."),
        ],
        stream=stream,
    )


async def test_a_non_streamed_answer_reaches_the_sink_whole() -> None:
    deltas: list[ModelDelta] = []

    async def sink(delta: ModelDelta) -> None:
        deltas.append(delta)

    async with ReplayServer(SCRIPT) as replay, OpenAIProvider(base_url=replay.base_url) as llm:
        text = await llm.complete(_request("text"), on_delta=sink)
        tools = await llm.complete(_request("tools"), on_delta=sink)
    assert deltas[0] == ModelDelta(kind="text", text=text.message.content or "")
    calls = tools.message.tool_calls
    assert deltas[1:] == [
        ModelDelta(
            kind="tool_call_args",
            text=call.arguments_json,
            index=i,
            call_id=call.id,
            name=call.name,
        )
        for i, call in enumerate(calls)
    ]
    assert [d.name for d in deltas[1:]] == ["tickets_get", "orders_get"]


def test_a_delta_is_frozen() -> None:
    delta = ModelDelta(kind="text", text="hi")
    with pytest.raises(ValueError, match="frozen"):
        delta.text = "changed"  # type: ignore[misc]
