"""The official `anthropic` SDK through `/v1/messages`, answered by OpenAI-speaking deployments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from anthropic import AsyncAnthropic, AuthenticationError, BadRequestError
from gw_harness import TOKEN, serve_gateway

from orchestrator.store.records import EventKind

HERE = Path(__file__).parent
TOOLS: Any = [
    {
        "name": "get_order",
        "description": "Read an order",
        "input_schema": {"type": "object", "properties": {"order_id": {"type": "string"}}},
    }
]


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"


async def _loop_start(
    client: AsyncAnthropic, session: dict[str, str], metadata: Any = None
) -> list[Any]:
    """Ask the hard question; return the conversation with the tool's result appended."""
    messages: list[Any] = [{"role": "user", "content": "Refund order 7"}]
    first = await client.messages.create(
        model="smart",
        max_tokens=200,
        messages=messages,
        tools=TOOLS,
        extra_headers={**session, "x-task": "hard"},
        **({"metadata": metadata} if metadata is not None else {}),
    )
    assert first.model == "strong"
    assert first.stop_reason == "tool_use"
    use = first.content[0]
    assert use.type == "tool_use" and use.input == {"order_id": "7"}
    return [
        *messages,
        {"role": "assistant", "content": [block.model_dump() for block in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "paid"}],
        },
    ]


async def test_anthropic_client_runs_a_tool_loop_on_an_openai_deployment(store_url: str) -> None:
    async with (
        serve_gateway(HERE / "refund.yaml", store_url) as served,
        AsyncAnthropic(base_url=served.server.url, api_key=TOKEN, max_retries=0) as client,
    ):
        session = {"x-claude-code-session-id": "cc-42"}
        messages = await _loop_start(client, session)
        raw = await client.messages.with_raw_response.create(
            model="smart", max_tokens=200, messages=messages, tools=TOOLS, extra_headers=session
        )
        final = await raw.parse()
        assert raw.headers["x-orchestrator-boundary"] == "tool_loop"
        assert raw.headers["x-orchestrator-session"] == "gw:acme:cc-42"
        assert raw.headers["x-orchestrator-session-source"] == "header:x-claude-code-session-id"
        assert final.model == "strong"
        assert final.stop_reason == "end_turn"
        assert final.content[0].type == "text" and final.content[0].text == "Order 7 refunded."
        # The deployment saw the loop in its own (OpenAI) format: the tool result as a tool message.
        assert served.replay.requests[-1].tool_results == ["paid"]


async def test_claude_codes_metadata_user_id_keeps_its_loop_on_one_deployment(
    store_url: str,
) -> None:
    """No session header, only Claude Code's `metadata.user_id`: the loop stays pinned.

    The rule that chose `strong` needs `x-task: hard`, absent from the second call, so
    only the pin found through `metadata.user_id` keeps the loop on `strong`.
    """
    session_uuid = "9b2d6c1e-5f3a-4e8b-a7c9-0d1e2f3a4b5c"
    metadata: Any = {"user_id": f"user_{'b' * 64}_account__session_{session_uuid}"}
    async with (
        serve_gateway(HERE / "refund.yaml", store_url) as served,
        AsyncAnthropic(base_url=served.server.url, api_key=TOKEN, max_retries=0) as client,
    ):
        messages = await _loop_start(client, {}, metadata)
        raw = await client.messages.with_raw_response.create(
            model="smart", max_tokens=200, messages=messages, tools=TOOLS, metadata=metadata
        )
        final = await raw.parse()
        assert raw.headers["x-orchestrator-session"] == f"gw:acme:{session_uuid}"
        assert raw.headers["x-orchestrator-session-source"] == "metadata.user_id"
        assert raw.headers["x-orchestrator-boundary"] == "tool_loop"
        assert final.model == "strong"
        events = await served.store.list_events(f"gw:acme:{session_uuid}")
        assert [e.payload["session_source"] for e in events if e.kind is EventKind.MODEL_CALL] == [
            "metadata.user_id",
            "metadata.user_id",
        ]


async def test_a_503_mid_loop_fails_over_with_the_conversation_intact(store_url: str) -> None:
    async with (
        serve_gateway(HERE / "failover.yaml", store_url) as served,
        AsyncAnthropic(base_url=served.server.url, api_key=TOKEN, max_retries=0) as client,
    ):
        session = {"x-session-id": "s-503"}
        messages = await _loop_start(client, session)
        raw = await client.messages.with_raw_response.create(
            model="smart", max_tokens=200, messages=messages, tools=TOOLS, extra_headers=session
        )
        final = await raw.parse()
        assert final.model == "fast"
        assert final.content[0].type == "text"
        assert final.content[0].text == "Order 7 refunded (fast)."
        assert raw.headers["x-orchestrator-boundary"] == "failover"
        assert raw.headers["x-orchestrator-failover-from"] == "strong"
        served_models = [(r.model, r.status) for r in served.replay.requests]
        # One retry of the pinned deployment, then the whole conversation on the next one.
        assert served_models == [
            ("replay-strong", 200),
            ("replay-strong", 503),
            ("replay-strong", 503),
            ("replay-fast", 200),
        ]
        assert served.replay.requests[-1].message_count == 3
        assert served.replay.requests[-1].tool_results == ["paid"]
        events = await served.store.list_events("gw:acme:s-503")
        forced = [e.payload for e in events if e.kind is EventKind.MODEL_PINNED][-1]
        assert (forced["from"], forced["to"], forced["forced"]) == ("strong", "fast", True)
        assert "HTTP 503" in str(forced["cause"])


async def test_anthropic_errors_come_in_anthropic_shape(store_url: str) -> None:
    async with (
        serve_gateway(HERE / "refund.yaml", store_url) as served,
        AsyncAnthropic(base_url=served.server.url, api_key=TOKEN, max_retries=0) as client,
        AsyncAnthropic(base_url=served.server.url, api_key="wrong", max_retries=0) as stranger,
    ):
        with pytest.raises(AuthenticationError) as denied:
            await stranger.messages.create(
                model="smart", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
            )
        assert denied.value.body == {
            "type": "error",
            "error": {
                "type": "authentication_error",
                "message": "unknown API key: it is not in the gateway's keys file",
            },
        }
        with pytest.raises(
            BadRequestError, match=r"block type .image. is not supported in a user turn"
        ):
            await client.messages.create(
                model="smart",
                max_tokens=10,
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/png",
                                    "data": "AA==",
                                },
                            }
                        ],
                    }
                ],
            )
        assert served.replay.requests == []
