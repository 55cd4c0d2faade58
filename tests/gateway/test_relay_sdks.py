"""Agent frameworks' tool loops through the gateway take the forwarding path, unchanged.

The OpenAI Agents SDK, and a hand-written `openai` SDK loop as its docs write one, each
run a tool loop through the gateway to a chat-completions deployment twice: as served, and
with forwarding turned off (every call then takes the full path: parse, write back, read
the answer into `ModelResponse`). Every call of the first run must be forwarded
(`Upstreams.relay`), and the runs must be the same: the deployment sent the same JSON, the
framework got the same result, the audit rows say the same. (pydantic-ai is a bench-only
dependency; the bodies it sends are in `sdk_bodies.json`, checked in test_relay.py.)
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from agents import (
    Agent,
    ModelSettings,
    OpenAIChatCompletionsModel,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from gw_harness import one_deployment
from openai import AsyncOpenAI
from relay_paths import paths_taken
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from orchestrator.store import Store
from orchestrator.store.records import EventKind


async def _chat(request: Request) -> JSONResponse:
    """A deployment that asks for `get_order` until a tool result follows the last user
    message, then answers; it keeps every body it was sent."""
    body = await request.json()
    request.app.state.bodies.append(body)
    roles = [m["role"] for m in body["messages"]]
    answered = "tool" in roles[len(roles) - roles[::-1].index("user") :]
    message: Any = {"role": "assistant", "content": "Order 7 refunded."}
    if not answered:
        call = {"name": "get_order", "arguments": '{"order_id": "7"}'}
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "call_7", "type": "function", "function": call}],
        }
    return JSONResponse(
        {
            "id": "up",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-x-2026",
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "stop" if answered else "tool_calls",
                }
            ],
            "usage": {"prompt_tokens": 50 * len(roles), "completion_tokens": 7, "total_tokens": 0},
        }
    )


async def _agents_sdk(client: AsyncOpenAI, looked_up: list[str]) -> str:
    set_tracing_disabled(True)

    @function_tool
    def get_order(order_id: str) -> str:
        """Read an order."""
        looked_up.append(order_id)
        return '{"status": "paid"}'

    settings = ModelSettings(
        temperature=0.2,
        top_p=0.9,
        max_tokens=256,
        parallel_tool_calls=True,
        tool_choice="auto",
        store=False,
    )
    agent = Agent(
        name="refunds",
        instructions="You refund orders.",
        model=OpenAIChatCompletionsModel(model="auto", openai_client=client),
        tools=[get_order],
        model_settings=settings,
    )
    result = await Runner.run(agent, "Refund order 7")
    return str(result.final_output)


async def _openai_sdk(client: AsyncOpenAI, looked_up: list[str]) -> str:
    """A loop on the `openai` SDK: each answer's message sent back as the SDK dumps it
    (`exclude_none`: no `content` beside tool calls), with pydantic-ai's usual settings."""
    tools: Any = [
        {
            "type": "function",
            "function": {
                "name": "get_order",
                "description": "Read an order.",
                "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}},
                "strict": True,
            },
        }
    ]
    messages: list[Any] = [
        {"role": "system", "content": "You refund orders."},
        {"role": "user", "content": [{"type": "text", "text": "Refund order 7"}]},
    ]
    while True:
        answer = await client.chat.completions.create(
            model="auto",
            messages=messages,
            tools=tools,
            tool_choice="auto",
            parallel_tool_calls=True,
            temperature=0.2,
            top_p=0.9,
            max_completion_tokens=256,
        )
        message = answer.choices[0].message
        if not message.tool_calls:
            return message.content or ""
        messages.append(message.model_dump(exclude_none=True))
        for call in message.tool_calls:
            assert call.type == "function"
            looked_up.append(json.loads(call.function.arguments)["order_id"])
            messages.append({"role": "tool", "tool_call_id": call.id, "content": "paid"})


async def _run(
    folder: Path, framework: Callable[[AsyncOpenAI, list[str]], Awaitable[str]]
) -> dict[str, Any]:
    """One run of the framework through the gateway: what each side saw of it."""
    upstream = Starlette(routes=[Route("/v1/chat/completions", _chat, methods=["POST"])])
    upstream.state.bodies = []
    looked_up: list[str] = []
    url = f"sqlite+aiosqlite:///{folder / 'gw.db'}"
    async with await Store.open(url) as store:
        async with one_deployment(upstream, store, "openai", "gpt", "gpt-x") as client:
            output = await framework(client, looked_up)
        (session,) = await store.list_sessions()
        events = await store.list_events(session.session_id, kind=EventKind.MODEL_CALL)
    return {
        "output": output,
        "looked_up": looked_up,
        "sent": [json.dumps(b, sort_keys=True) for b in upstream.state.bodies],
        "session": session.session_id,
        "audit": [(e.model, e.payload, e.input_tokens, e.output_tokens) for e in events],
    }


@pytest.mark.parametrize("framework", [_agents_sdk, _openai_sdk], ids=["agents", "openai"])
async def test_a_frameworks_tool_loop_is_forwarded_and_ends_as_on_the_full_path(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    framework: Callable[[AsyncOpenAI, list[str]], Awaitable[str]],
) -> None:
    runs: dict[bool, dict[str, Any]] = {}
    paths: dict[bool, list[str]] = {}
    for forwarding in (True, False):
        with monkeypatch.context() as patched:
            paths[forwarding] = paths_taken(patched, forwarding)
            folder = tmp_path / str(forwarding)
            folder.mkdir()
            runs[forwarding] = await _run(folder, framework)
    assert paths == {True: ["relay", "relay"], False: ["complete", "complete"]}
    forwarded = runs[True]
    assert forwarded["output"] == "Order 7 refunded."
    assert forwarded["looked_up"] == ["7"]
    assert [e[1]["boundary"] for e in forwarded["audit"]] == ["session_start", "tool_loop"]
    assert [e[2:] for e in forwarded["audit"]] == [(100, 7), (200, 7)]
    # The frameworks' parameters reach the deployment either way, `store` too.
    first = json.loads(forwarded["sent"][0])
    limit = "max_tokens" if framework is _agents_sdk else "max_completion_tokens"
    assert first["temperature"] == 0.2 and first[limit] == 256
    assert (first["tool_choice"], first["parallel_tool_calls"], first["top_p"]) == (
        "auto",
        True,
        0.9,
    )
    assert first["tools"][0]["function"]["strict"] is True
    assert first.get("store") is (False if framework is _agents_sdk else None)
    assert runs[True] == runs[False]
