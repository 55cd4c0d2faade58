"""The Responses API adapter (`kind: openai_responses`) against a loopback server that speaks
the Responses wire format, whose format the official `openai` SDK checks: its
`client.responses.create` reads the server's answers, and the SDK's own types validate both
the answers and the input items our adapter sends.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import openai
import pytest
from openai.types.responses import Response, ResponseInputParam
from pydantic import TypeAdapter, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from temporalio.client import Client

from orchestrator.exceptions import ProviderHTTPError, ProviderReportedError
from orchestrator.plans import parse_plan
from orchestrator.providers import (
    ChatMessage,
    ModelRequest,
    OpenAIResponsesProvider,
    ToolCall,
    ToolDefinition,
    Usage,
)
from orchestrator.runtime import Runtime
from orchestrator.scripted_model import LoopbackServer
from orchestrator.service import start_session
from orchestrator.settings import Settings
from orchestrator.store.records import EventKind, SessionStatus
from orchestrator.types import JsonObject
from orchestrator.worker import build_worker

KEY = "sk-responses-secret"
TOOL = ToolDefinition(
    name="tickets_get",
    description="Read a ticket.",
    parameters={
        "type": "object",
        "properties": {"ticket_id": {"type": "string"}},
        "required": ["ticket_id"],
    },
)
_ids = itertools.count(1)
INPUT: TypeAdapter[str | ResponseInputParam] = TypeAdapter(str | ResponseInputParam)
"""What the SDK's types allow as `input`: the fake refuses anything else with a 400."""


def message_item(text: str) -> JsonObject:
    return {
        "type": "message",
        "id": f"msg_{next(_ids)}",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def call_item(name: str, arguments: str, call_id: str = "call_1") -> JsonObject:
    return {
        "type": "function_call",
        "id": f"fc_{next(_ids)}",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": "completed",
    }


def response_body(
    body: JsonObject,
    output: list[JsonObject],
    *,
    status: str = "completed",
    incomplete: str | None = None,
    cached: int = 0,
) -> JsonObject:
    """A Responses API answer to the request `body`, as OpenAI sends it."""
    return {
        "id": f"resp_{next(_ids)}",
        "object": "response",
        "created_at": 1_767_225_600,
        "status": status,
        "error": None,
        "incomplete_details": {"reason": incomplete} if incomplete else None,
        "instructions": body.get("instructions"),
        "model": f"{body['model']}-2026-01-01",
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": body.get("tools", []),
        "temperature": body.get("temperature", 1.0),
        "top_p": 1.0,
        "max_output_tokens": body.get("max_output_tokens"),
        "store": body.get("store", True),
        "metadata": {},
        "usage": {
            "input_tokens": 1_200,
            "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
            "output_tokens": 40,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 1_240,
        },
    }


Answer = Callable[[JsonObject], tuple[int, JsonObject]]


def tool_then_text(body: JsonObject) -> tuple[int, JsonObject]:
    """A function call first; once its output is in the input, a text answer."""
    items = body["input"]
    if isinstance(items, list) and any(
        isinstance(i, dict) and i.get("type") == "function_call_output" for i in items
    ):
        return 200, response_body(
            body, [message_item("Ticket T-1001: broken kettle.")], cached=1_024
        )
    return 200, response_body(body, [call_item("tickets_get", '{"ticket_id": "T-1001"}')])


@dataclass
class FakeResponses:
    """`POST /v1/responses`: checks the input items with the SDK's types, then answers."""

    answer: Answer = tool_then_text
    bodies: list[JsonObject] = field(default_factory=list)

    async def create(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.bodies.append(body)
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return JSONResponse({"error": {"message": "bad key", "type": "auth"}}, status_code=401)
        try:
            INPUT.validate_python(body["input"])
        except ValidationError as exc:
            return JSONResponse({"error": {"message": str(exc)}}, status_code=400)
        status, answer = self.answer(body)
        return JSONResponse(answer, status_code=status)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/responses", self.create, methods=["POST"])])


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeResponses, str]]:
    server = FakeResponses()
    async with LoopbackServer(server.app()) as loop:
        yield server, f"{loop.url}/v1"


async def test_the_fake_speaks_the_responses_wire_as_the_sdk_reads_it(
    fake: tuple[FakeResponses, str],
) -> None:
    _, url = fake
    async with openai.AsyncOpenAI(base_url=url, api_key=KEY, max_retries=0) as sdk:
        first = await sdk.responses.create(
            model="gpt-r",
            input="What is T-1001 about?",
            tools=[
                {
                    "type": "function",
                    "name": TOOL.name,
                    "description": TOOL.description,
                    "parameters": TOOL.parameters,
                    "strict": False,
                }
            ],
        )
        (call,) = first.output
        assert call.type == "function_call" and call.name == "tickets_get"
        second = await sdk.responses.create(
            model="gpt-r",
            input=[
                {"role": "user", "content": "What is T-1001 about?"},
                {
                    "type": "function_call",
                    "call_id": call.call_id,
                    "name": call.name,
                    "arguments": call.arguments,
                },
                {"type": "function_call_output", "call_id": call.call_id, "output": "{}"},
            ],
        )
    assert second.output_text == "Ticket T-1001: broken kettle."
    assert second.usage is not None and second.usage.input_tokens_details.cached_tokens == 1_024
    # Strictly, not only as the SDK's lenient reader takes it.
    for body in (first.model_dump(mode="json"), second.model_dump(mode="json")):
        Response.model_validate(body, strict=True)


async def test_a_tool_loop_round_trips_through_input_items(
    fake: tuple[FakeResponses, str],
) -> None:
    server, url = fake
    messages = [
        ChatMessage(role="system", content="Be brief."),
        ChatMessage(role="user", content="What is T-1001 about?"),
    ]
    async with OpenAIResponsesProvider(base_url=url, api_key=KEY) as provider:
        first = await provider.complete(
            ModelRequest(
                model="gpt-r", messages=messages, tools=[TOOL], max_tokens=300, temperature=0
            )
        )
        assert first.finish_reason == "tool_calls" and first.message.content is None
        assert first.message.tool_calls == [
            ToolCall(
                id="call_1",
                name="tickets_get",
                arguments_json='{"ticket_id": "T-1001"}',
                arguments={"ticket_id": "T-1001"},
            )
        ]
        messages += [
            first.message,
            ChatMessage(role="tool", tool_call_id="call_1", name="tickets_get", content='{"a": 1}'),
        ]
        second = await provider.complete(
            ModelRequest(model="gpt-r", messages=messages, tools=[TOOL])
        )
    assert second.message.content == "Ticket T-1001: broken kettle."
    assert second.finish_reason == "stop" and second.provider_model == "gpt-r-2026-01-01"
    assert second.usage == Usage(input_tokens=1_200, output_tokens=40, cached_input_tokens=1_024)
    request = server.bodies[0]
    assert request["instructions"] == "Be brief."
    assert request["store"] is False
    assert (request["max_output_tokens"], request["temperature"]) == (300, 0)
    assert request["tools"] == [
        {
            "type": "function",
            "name": "tickets_get",
            "description": "Read a ticket.",
            "parameters": TOOL.parameters,
            "strict": False,
        }
    ]
    assert server.bodies[1]["input"] == [
        {"role": "user", "content": "What is T-1001 about?"},
        {
            "type": "function_call",
            "call_id": "call_1",
            "name": "tickets_get",
            "arguments": '{"ticket_id": "T-1001"}',
        },
        {"type": "function_call_output", "call_id": "call_1", "output": '{"a": 1}'},
    ]


async def test_an_incomplete_answer_reads_as_cut_off(fake: tuple[FakeResponses, str]) -> None:
    server, url = fake
    server.answer = lambda body: (
        200,
        response_body(
            body, [message_item("The policy")], status="incomplete", incomplete="max_output_tokens"
        ),
    )
    async with OpenAIResponsesProvider(base_url=url, api_key=KEY) as provider:
        response = await provider.complete(
            ModelRequest(model="gpt-r", messages=[ChatMessage(role="user", content="hi")])
        )
    assert response.truncated and response.finish_reason == "length"
    assert response.message.content == "The policy"


async def test_failures_are_typed(fake: tuple[FakeResponses, str]) -> None:
    server, url = fake
    request = ModelRequest(model="gpt-r", messages=[ChatMessage(role="user", content="hi")])

    def failed(body: JsonObject) -> tuple[int, JsonObject]:
        answer = response_body(body, [], status="failed")
        answer["error"] = {"code": "server_error", "message": "The model failed."}
        return 200, answer

    server.answer = failed
    async with OpenAIResponsesProvider(base_url=url, api_key=KEY) as provider:
        with pytest.raises(ProviderReportedError) as reported:
            await provider.complete(request)
        assert reported.value.provider_message == "The model failed."
        assert reported.value.code == "server_error" and reported.value.retryable
        server.answer = lambda body: (
            429,
            {"error": {"message": "Rate limit", "type": "requests", "code": "rate_limit_exceeded"}},
        )
        with pytest.raises(ProviderHTTPError) as limited:
            await provider.complete(request)
    assert limited.value.status_code == 429 and limited.value.retryable
    assert "Rate limit" in str(limited.value)


MODELS = """
providers:
  responses:
    {kind: openai_responses, base_url: "${FAKE_RESPONSES_URL}", api_key_env: FAKE_RESPONSES_KEY}
models:
  gpt-r:
    {provider: responses, model: gpt-r, input_price_per_mtok: 2,
     cached_input_price_per_mtok: 0.5, output_price_per_mtok: 8}
default_model: gpt-r
"""


async def test_a_session_runs_its_tool_loop_on_a_responses_deployment(
    fake: tuple[FakeResponses, str],
    settings: Settings,
    client: Client,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, url = fake
    monkeypatch.setenv("FAKE_RESPONSES_URL", url)
    monkeypatch.setenv("FAKE_RESPONSES_KEY", KEY)
    models = tmp_path / "models.yaml"
    models.write_text(MODELS)
    settings.models_file = models
    plan = parse_plan(
        "name: lookup\nsteps:\n"
        "  - {id: lookup, type: agent, goal: Read T-1001., skills: [tickets.get]}\n",
        "lookup.yaml",
    )
    runtime = await Runtime.open(settings)
    try:
        async with build_worker(client, runtime, task_queue=settings.task_queue):
            handle = await start_session(client, plan, {}, task_queue=settings.task_queue)
            result = await handle.result()
        assert result.status is SessionStatus.COMPLETED
        assert result.final_output == "Ticket T-1001: broken kettle."
        tools = await runtime.store.list_events(result.session_id, kind=EventKind.TOOL_CALL)
        assert [e.skill for e in tools] == ["tickets.get"]
        calls = await runtime.store.list_events(result.session_id, kind=EventKind.MODEL_CALL)
        # 1,200 prompt tokens and 40 out each; the second with 1,024 cached:
        # 1,200 x 2 + 40 x 8 = 2,720 and 176 x 2 + 1,024 x 0.5 + 40 x 8 = 1,184 per million.
        assert [e.cost_usd for e in calls] == [0.00272, 0.001184]
        assert [e.payload.get("cached_input_tokens") for e in calls] == [None, 1_024]
        assert result.cost_usd == pytest.approx(0.003904)
    finally:
        await runtime.close()
    assert len(server.bodies) == 2
