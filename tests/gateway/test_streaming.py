"""Streaming through the gateway, read by the official SDKs' own stream parsers.

LiteLLM #31067: a fallback in the middle of a stream turned tool calls into prose. Here a
failure before the first relayed byte is retried or failed over unseen; a failure after
it ends the stream with an error, and no other model continues it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from anthropic import AsyncAnthropic
from gw_harness import TOKEN, serve_gateway
from openai import AsyncOpenAI

from orchestrator.exceptions import ProviderConnectionError
from orchestrator.gateway import GatewaySettings
from orchestrator.gateway.recovery import StreamCut, answer
from orchestrator.providers.messages import ChatMessage, ModelResponse, Usage

HERE = Path(__file__).parent
OPENAI_TOOLS: Any = [
    {"type": "function", "function": {"name": "get_order", "parameters": {"type": "object"}}}
]
ANTHROPIC_TOOLS: Any = [{"name": "get_order", "input_schema": {"type": "object"}}]


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"


async def test_openai_stream_carries_the_tool_call_and_names_the_deployment(
    store_url: str,
) -> None:
    async with (
        serve_gateway(HERE / "refund.yaml", store_url) as served,
        AsyncOpenAI(base_url=served.base_url, api_key=TOKEN, max_retries=0) as client,
    ):
        raw = await client.chat.completions.with_raw_response.create(
            model="auto",
            messages=[{"role": "user", "content": "Refund order 7"}],
            tools=OPENAI_TOOLS,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers={"x-session-id": "st-1", "x-task": "hard"},
        )
        assert raw.headers["x-orchestrator-deployment"] == "strong"
        assert raw.headers["content-type"].startswith("text/event-stream")
        chunks = [chunk async for chunk in raw.parse()]
    assert {c.model for c in chunks} == {"strong"}
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert calls[0].function is not None and calls[0].function.name == "get_order"
    arguments = "".join(tc.function.arguments or "" for tc in calls if tc.function)
    assert arguments == '{"order_id": "7"}'
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "tool_calls"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    # The deployment's own answer was streamed to the gateway, not fetched whole.
    assert served.replay.requests[-1].stream


async def test_anthropic_stream_fails_over_before_the_first_byte(store_url: str) -> None:
    async with (
        serve_gateway(HERE / "failover.yaml", store_url) as served,
        AsyncAnthropic(base_url=served.server.url, api_key=TOKEN, max_retries=0) as client,
    ):
        session = {"x-session-id": "st-2"}
        first = await client.messages.create(
            model="smart",
            max_tokens=100,
            messages=[{"role": "user", "content": "Refund order 7"}],
            tools=ANTHROPIC_TOOLS,
            extra_headers={**session, "x-task": "hard"},
        )
        use = first.content[0]
        assert use.type == "tool_use"
        async with client.messages.stream(
            model="smart",
            max_tokens=100,
            tools=ANTHROPIC_TOOLS,
            messages=[
                {"role": "user", "content": "Refund order 7"},
                {"role": "assistant", "content": [b.model_dump() for b in first.content]},
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "paid"}],
                },
            ],
            extra_headers=session,
        ) as stream:
            texts = [text async for text in stream.text_stream]
            final = await stream.get_final_message()
    assert "".join(texts) == "Order 7 refunded (fast)."
    assert final.model == "fast"
    assert final.stop_reason == "end_turn"
    assert [r.model for r in served.replay.requests][-1] == "replay-fast"
    assert served.replay.requests[-1].stream


async def test_a_stream_cut_after_it_started_is_not_continued_elsewhere() -> None:
    calls: list[str] = []

    async def call(deployment: str) -> ModelResponse:
        calls.append(deployment)
        raise ProviderConnectionError(f"{deployment}: connection reset mid-stream")

    def next_deployment(failed: dict[str, str]) -> str | None:
        return "fast"

    with pytest.raises(StreamCut, match="cut after it started"):
        await answer(
            "strong",
            call,
            next_deployment,
            GatewaySettings(retry_backoff_seconds=0.0),
            lambda d, e: None,
            committed=lambda: True,
        )
    assert calls == ["strong"]

    # Before anything was relayed, the same failure is retried and then failed over.
    calls.clear()

    async def flaky(deployment: str) -> ModelResponse:
        calls.append(deployment)
        if deployment == "strong":
            raise ProviderConnectionError("strong: connection reset")
        return ModelResponse(message=ChatMessage(role="assistant", content="ok"), usage=Usage())

    answered = await answer(
        "strong",
        flaky,
        next_deployment,
        GatewaySettings(retry_backoff_seconds=0.0),
        lambda d, e: None,
    )
    assert (answered.deployment, answered.forced_from) == ("fast", "strong")
    assert calls == ["strong", "strong", "fast"]
