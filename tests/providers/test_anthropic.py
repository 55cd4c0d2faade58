"""AnthropicProvider against a small loopback app that speaks the Messages API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from orchestrator.exceptions import ProviderHTTPError, ProviderResponseError
from orchestrator.providers import (
    AnthropicProvider,
    ChatMessage,
    ModelRequest,
    ToolCall,
    ToolDefinition,
)
from orchestrator.scripted_model import LoopbackServer
from orchestrator.types import JsonObject

KEY = "sk-ant-test-secret"


class FakeAnthropic:
    """Records each request body and answers with what the test queued."""

    def __init__(self) -> None:
        self.bodies: list[JsonObject] = []
        self.headers: list[dict[str, str]] = []
        self.answers: list[tuple[int, JsonObject, dict[str, str]]] = []

    async def messages(self, request: Request) -> JSONResponse:
        self.bodies.append(await request.json())
        self.headers.append(dict(request.headers))
        status, body, headers = self.answers.pop(0)
        return JSONResponse(body, status_code=status, headers=headers)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/messages", self.messages, methods=["POST"])])


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeAnthropic, AnthropicProvider]]:
    server = FakeAnthropic()
    async with (
        LoopbackServer(server.app()) as loop,
        AnthropicProvider(base_url=f"{loop.url}/v1", api_key=KEY) as provider,
    ):
        yield server, provider


TOOL = ToolDefinition(
    name="tickets_get",
    description="Read a ticket",
    parameters={"type": "object", "properties": {"ticket_id": {"type": "string"}}},
)


async def test_tool_use_round_trip(fake: tuple[FakeAnthropic, AnthropicProvider]) -> None:
    server, provider = fake
    server.answers.append(
        (
            200,
            {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "claude-test",
                "content": [
                    {"type": "text", "text": "Reading it."},
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "tickets_get",
                        "input": {"ticket_id": "T-1"},
                    },
                ],
                "stop_reason": "tool_use",
                "usage": {"input_tokens": 50, "output_tokens": 12},
            },
            {},
        )
    )
    response = await provider.complete(
        ModelRequest(
            model="claude-test",
            messages=[
                ChatMessage(role="system", content="Plan: x"),
                ChatMessage(role="user", content="Look at T-1"),
            ],
            tools=[TOOL],
        )
    )
    assert response.finish_reason == "tool_use"
    assert response.message.content == "Reading it."
    assert response.message.tool_calls[0].name == "tickets_get"
    assert response.message.tool_calls[0].arguments == {"ticket_id": "T-1"}
    assert (response.usage.input_tokens, response.usage.output_tokens) == (50, 12)
    body, headers = server.bodies[0], server.headers[0]
    assert body["system"] == "Plan: x"
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Look at T-1"}]}
    ]
    assert body["tools"] == [
        {"name": "tickets_get", "description": "Read a ticket", "input_schema": TOOL.parameters}
    ]
    assert headers["x-api-key"] == KEY and headers["anthropic-version"] == "2023-06-01"
    assert body["max_tokens"] == 4096


async def test_tool_results_merge_into_one_user_turn(
    fake: tuple[FakeAnthropic, AnthropicProvider],
) -> None:
    server, provider = fake
    server.answers.append(
        (
            200,
            {
                "content": [{"type": "text", "text": "Done."}],
                "stop_reason": "end_turn",
                "usage": {"input_tokens": 9, "output_tokens": 2},
            },
            {},
        )
    )
    calls = [
        ToolCall(id="t1", name="a", arguments_json='{"x": 1}', arguments={"x": 1}),
        ToolCall(id="t2", name="b", arguments_json="{}", arguments={}),
    ]
    response = await provider.complete(
        ModelRequest(
            model="claude-test",
            messages=[
                ChatMessage(role="user", content="go"),
                ChatMessage(role="assistant", tool_calls=calls),
                ChatMessage(role="tool", tool_call_id="t1", content="one"),
                ChatMessage(role="tool", tool_call_id="t2", content="two"),
            ],
        )
    )
    assert response.message.content == "Done." and not response.message.tool_calls
    turns = server.bodies[0]["messages"]
    assert isinstance(turns, list) and len(turns) == 3
    assert turns[1] == {
        "role": "assistant",
        "content": [
            {"type": "tool_use", "id": "t1", "name": "a", "input": {"x": 1}},
            {"type": "tool_use", "id": "t2", "name": "b", "input": {}},
        ],
    }
    assert turns[2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": "one"},
            {"type": "tool_result", "tool_use_id": "t2", "content": "two"},
        ],
    }


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (429, "rate_limit_error", True),
        (529, "overloaded_error", True),
        (400, "invalid_request_error", False),
    ],
)
async def test_errors_map_to_provider_errors(
    fake: tuple[FakeAnthropic, AnthropicProvider], status: int, kind: str, retryable: bool
) -> None:
    server, provider = fake
    server.answers.append(
        (
            status,
            {"type": "error", "error": {"type": kind, "message": f"bad {KEY}"}},
            {"retry-after": "7"},
        )
    )
    with pytest.raises(ProviderHTTPError) as info:
        await provider.complete(
            ModelRequest(model="m", messages=[ChatMessage(role="user", content="hi")])
        )
    assert info.value.status_code == status and info.value.retryable is retryable
    assert info.value.retry_after == 7
    assert kind in str(info.value) and KEY not in str(info.value)


async def test_a_body_without_content_is_a_response_error(
    fake: tuple[FakeAnthropic, AnthropicProvider],
) -> None:
    server, provider = fake
    server.answers.append((200, {"type": "message"}, {}))
    with pytest.raises(ProviderResponseError, match="no content list"):
        await provider.complete(
            ModelRequest(model="m", messages=[ChatMessage(role="user", content="hi")])
        )
