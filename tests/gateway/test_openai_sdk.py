"""The official `openai` SDK runs a tool loop through the gateway: pinned, then switched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from gw_harness import NARROW, TOKEN, serve_gateway
from openai import AsyncOpenAI, AuthenticationError, NotFoundError, PermissionDeniedError

from orchestrator.store.records import EventKind

HERE = Path(__file__).parent
TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "get_order",
            "description": "Read an order",
            "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}},
        },
    }
]


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"


async def test_tool_loop_stays_pinned_and_switches_at_the_next_user_turn(store_url: str) -> None:
    async with (
        serve_gateway(HERE / "refund.yaml", store_url) as served,
        AsyncOpenAI(base_url=served.base_url, api_key=TOKEN, max_retries=0) as client,
    ):
        messages: list[Any] = [{"role": "user", "content": "Refund order 7"}]
        session = {"x-session-id": "conv-1"}

        # A hard first request: the rule sends it to `strong`, which asks for a tool.
        first = await client.chat.completions.with_raw_response.create(
            model="auto",
            messages=messages,
            tools=TOOLS,
            extra_headers={**session, "x-task": "hard"},
        )
        answer = first.parse()
        assert answer.model == "strong"
        assert first.headers["x-orchestrator-deployment"] == "strong"
        assert first.headers["x-orchestrator-boundary"] == "session_start"
        assert first.headers["x-orchestrator-session"] == "gw:acme:conv-1"
        call = answer.choices[0].message.tool_calls[0]  # type: ignore[index]
        assert answer.choices[0].finish_reason == "tool_calls"

        # The tool result, without the header: the router alone would pick `fast`, but the
        # loop is open, so the pin answers.
        messages += [
            answer.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": '{"status": "paid"}'},
        ]
        second = await client.chat.completions.with_raw_response.create(
            model="auto", messages=messages, tools=TOOLS, extra_headers=session
        )
        assert second.headers["x-orchestrator-boundary"] == "tool_loop"
        final = second.parse()
        assert final.model == "strong"
        assert final.choices[0].message.content == "Order 7 refunded."

        # A new user turn after the final answer is a safe boundary: the policy moves on.
        messages += [
            final.choices[0].message.model_dump(exclude_none=True),
            {"role": "user", "content": "Thanks. Anything else?"},
        ]
        third = await client.chat.completions.with_raw_response.create(
            model="auto", messages=messages, tools=TOOLS, extra_headers=session
        )
        assert third.headers["x-orchestrator-boundary"] == "user_turn"
        assert third.parse().model == "fast"

        assert [r.model for r in served.replay.requests] == [
            "replay-strong",
            "replay-strong",
            "replay-fast",
        ]
        events = await served.store.list_events("gw:acme:conv-1")
        calls = [e for e in events if e.kind is EventKind.MODEL_CALL]
        assert [(e.model, e.payload["boundary"]) for e in calls] == [
            ("strong", "session_start"),
            ("strong", "tool_loop"),
            ("fast", "user_turn"),
        ]
        pins = [e.payload for e in events if e.kind is EventKind.MODEL_PINNED]
        assert [(p["from"], p["to"], p["forced"]) for p in pins] == [
            (None, "strong", False),
            ("strong", "fast", False),
        ]
        session_row = await served.store.get_session("gw:acme:conv-1")
        assert session_row is not None and session_row.tenant == "acme"


async def test_models_lists_what_the_key_may_use_and_refusals_are_typed(store_url: str) -> None:
    async with (
        serve_gateway(HERE / "refund.yaml", store_url) as served,
        AsyncOpenAI(base_url=served.base_url, api_key=TOKEN, max_retries=0) as client,
        AsyncOpenAI(base_url=served.base_url, api_key=NARROW, max_retries=0) as narrow,
        AsyncOpenAI(base_url=served.base_url, api_key="sk-unknown", max_retries=0) as stranger,
    ):
        names = [m.id async for m in client.models.list()]
        assert names == ["auto", "smart", "cheap", "strong", "fast"]
        assert [m.id async for m in narrow.models.list()] == ["cheap"]
        with pytest.raises(PermissionDeniedError, match="may not use model 'smart'"):
            await narrow.chat.completions.create(
                model="smart", messages=[{"role": "user", "content": "hi"}]
            )
        with pytest.raises(NotFoundError, match="model 'nope' does not exist"):
            await client.chat.completions.create(
                model="nope", messages=[{"role": "user", "content": "hi"}]
            )
        with pytest.raises(AuthenticationError, match="unknown API key"):
            await stranger.chat.completions.create(
                model="auto", messages=[{"role": "user", "content": "hi"}]
            )
        assert served.replay.requests == []
        assert await served.store.list_sessions() == []
