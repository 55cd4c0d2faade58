"""An OpenAI client answered by a deployment that speaks Anthropic's Messages API.

The gateway parses the chat-completions body, the Anthropic adapter writes it as a
Messages body (system on top, tool calls as `tool_use`, results as `tool_result` in a user
turn), and the answer comes back as a chat completion naming the deployment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from gw_harness import one_deployment
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from orchestrator.store import Store

TOOLS: Any = [
    {"type": "function", "function": {"name": "get_order", "parameters": {"type": "object"}}}
]


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"


async def _messages(request: Request) -> JSONResponse:
    """A Messages endpoint: a tool call for a fresh conversation, then a final answer."""
    body = await request.json()
    request.app.state.bodies.append(body)
    if len(body["messages"]) == 1:
        content: Any = [
            {"type": "tool_use", "id": "toolu_1", "name": "get_order", "input": {"id": "7"}}
        ]
        stop = "tool_use"
    else:
        content, stop = [{"type": "text", "text": "Refunded."}], "end_turn"
    return JSONResponse(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": stop,
            "usage": {"input_tokens": 10, "output_tokens": 4},
        }
    )


async def test_openai_client_through_an_anthropic_deployment(store_url: str) -> None:
    upstream = Starlette(routes=[Route("/v1/messages", _messages, methods=["POST"])])
    upstream.state.bodies = []
    async with (
        await Store.open(store_url) as store,
        one_deployment(upstream, store, "anthropic", "sonnet", "claude-sonnet-x") as client,
    ):
        conversation: Any = [
            {"role": "system", "content": "You refund orders."},
            {"role": "user", "content": "Refund order 7"},
        ]
        session = {"x-session-id": "x"}
        first = await client.chat.completions.create(
            model="auto", messages=conversation, tools=TOOLS, extra_headers=session
        )
        call: Any = first.choices[0].message.tool_calls[0]  # type: ignore[index]
        conversation += [
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "paid"},
        ]
        second = await client.chat.completions.create(
            model="auto", messages=conversation, tools=TOOLS, extra_headers=session
        )
    bodies = upstream.state.bodies
    assert first.model == "sonnet"
    assert first.choices[0].finish_reason == "tool_calls"
    assert (call.id, call.function.name, call.function.arguments) == (
        "toolu_1",
        "get_order",
        '{"id": "7"}',
    )
    assert second.choices[0].message.content == "Refunded."
    assert bodies[0]["system"] == "You refund orders."
    assert bodies[0]["model"] == "claude-sonnet-x"
    assert bodies[0]["tools"] == [
        {"name": "get_order", "description": "", "input_schema": {"type": "object"}}
    ]
    assert bodies[1]["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "get_order", "input": {"id": "7"}}
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "paid"}],
        },
    ]
