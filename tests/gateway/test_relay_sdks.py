"""Agent frameworks' tool loops through the gateway take the forwarding path, unchanged.

The OpenAI Agents SDK and pydantic-ai each run a tool loop through the gateway to a
chat-completions deployment twice: as served, and with forwarding turned off (every call
then takes the full path: parse, write back, read the answer into `ModelResponse`). Every
call of the first run must be forwarded (`Upstreams.relay`), and the runs must be the
same: the deployment sent the same JSON, the framework got the same result, the audit
rows say the same.
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
from pydantic_ai import Agent as PydanticAgent
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider
from pydantic_ai.settings import ModelSettings as PydanticSettings
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


async def _pydantic_ai(client: AsyncOpenAI, looked_up: list[str]) -> str:
    model = OpenAIChatModel("auto", provider=OpenAIProvider(openai_client=client))
    settings = PydanticSettings(temperature=0.2, max_tokens=256, parallel_tool_calls=True)
    agent = PydanticAgent(model, instructions="You refund orders.", model_settings=settings)

    @agent.tool_plain
    def get_order(order_id: str) -> str:
        """Read an order."""
        looked_up.append(order_id)
        return '{"status": "paid"}'

    result = await agent.run("Refund order 7")
    return result.output


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


@pytest.mark.parametrize("framework", [_agents_sdk, _pydantic_ai], ids=["agents", "pydantic-ai"])
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
    # What the frameworks send but the full path drops is not sent on either way.
    first = json.loads(forwarded["sent"][0])
    assert first["temperature"] == 0.2 and first["max_tokens"] == 256
    assert "tool_choice" not in first and "strict" not in first["tools"][0]["function"]
    assert runs[True] == runs[False]
