"""A session whose deployment speaks Anthropic's Messages API: the tool loop round-trips
`tool_use` and `tool_result` blocks through the runtime, on a real dev server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import worker_with_models
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from temporalio.client import Client

from orchestrator.plans import parse_plan
from orchestrator.scripted_model import LoopbackServer, ReplayScript, ScriptedModelServer
from orchestrator.service import start_session
from orchestrator.settings import Settings
from orchestrator.store.records import EventKind, SessionStatus
from orchestrator.types import JsonObject

MODELS = """
providers:
  claude: {kind: anthropic, base_url: "${ANTHROPIC_FAKE_URL}", api_key_env: ANTHROPIC_FAKE_KEY}
models:
  claude-test: {provider: claude, model: claude-test-1, input_price_per_mtok: 3,
                output_price_per_mtok: 15, quality: {default: 0.9}}
default_model: claude-test
"""

PLAN = parse_plan(
    """
name: lookup
steps:
  - id: lookup
    type: agent
    goal: Find what ticket T-1001 is about.
    skills: [tickets.get]
""",
    "lookup.yaml",
)


class FakeClaude:
    """Answers by how many assistant turns the request holds: a tool_use, then text."""

    def __init__(self) -> None:
        self.bodies: list[JsonObject] = []

    async def messages(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.bodies.append(body)
        turns = sum(1 for m in body["messages"] if m["role"] == "assistant")
        if turns == 0:
            content: list[JsonObject] = [
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "tickets_get",
                    "input": {"ticket_id": "T-1001"},
                }
            ]
            stop = "tool_use"
        else:
            content, stop = [{"type": "text", "text": "It is about a broken kettle."}], "end_turn"
        return JSONResponse(
            {
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": content,
                "stop_reason": stop,
                "usage": {"input_tokens": 40, "output_tokens": 10},
            }
        )


@pytest.fixture
async def claude(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeClaude]:
    fake = FakeClaude()
    app = Starlette(routes=[Route("/v1/messages", fake.messages, methods=["POST"])])
    async with LoopbackServer(app) as server:
        monkeypatch.setenv("ANTHROPIC_FAKE_URL", f"{server.url}/v1")
        monkeypatch.setenv("ANTHROPIC_FAKE_KEY", "sk-ant-fake")
        yield fake


async def test_a_tool_loop_on_an_anthropic_deployment(
    settings: Settings, client: Client, tmp_path: Path, claude: FakeClaude
) -> None:
    async with worker_with_models(settings, client, MODELS, tmp_path) as runtime:
        handle = await start_session(client, PLAN, {}, task_queue=settings.task_queue)
        result = await handle.result()
        assert result.status is SessionStatus.COMPLETED
        assert result.final_output == "It is about a broken kettle."
        assert [p.model for p in result.model_timeline] == ["claude-test"]
        second = claude.bodies[1]["messages"]
        assert isinstance(second, list)
        assert second[1]["content"][0]["type"] == "tool_use"  # type: ignore[index]
        result_block = second[2]["content"][0]  # type: ignore[index]
        assert result_block["type"] == "tool_result" and result_block["tool_use_id"] == "toolu_1"
        assert "T-1001" in result_block["content"]
        events = await runtime.store.list_events(result.session_id, kind=EventKind.TOOL_CALL)
        assert [e.skill for e in events] == ["tickets.get"]


CACHED_MODELS = """
providers:
  claude: {kind: anthropic, base_url: "${ANTHROPIC_FAKE_URL}", api_key_env: ANTHROPIC_FAKE_KEY}
models:
  claude-test: {provider: claude, model: claude-test-1, input_price_per_mtok: 3,
                output_price_per_mtok: 15, cached_input_price_per_mtok: 0.3,
                cache_write_price_per_mtok: 3.75, quality: {default: 0.9}}
default_model: claude-test
"""

LOOKUP_SCRIPT = ReplayScript.model_validate(
    {
        "conversations": [
            {
                "name": "lookup",
                "match": {"model": "claude-test-1", "contains": "T-1001"},
                "turns": [
                    {"tool_calls": [{"name": "tickets_get", "arguments": {"ticket_id": "T-1001"}}]},
                    {"content": "It is about a broken kettle."},
                ],
            }
        ]
    }
)


async def test_the_loops_second_round_reads_the_prompt_cache_and_is_priced_so(
    settings: Settings, client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deployment declares cache prices, so the adapter sends breakpoints: the scripted
    server (answering as Anthropic's cache would) writes the first round's prompt and the
    second round reads it; the model_call event records both, its cost at their rates."""
    async with ScriptedModelServer(LOOKUP_SCRIPT) as replay:
        monkeypatch.setenv("ANTHROPIC_FAKE_URL", replay.url)
        monkeypatch.setenv("ANTHROPIC_FAKE_KEY", "sk-ant-fake")
        async with worker_with_models(settings, client, CACHED_MODELS, tmp_path) as runtime:
            handle = await start_session(client, PLAN, {}, task_queue=settings.task_queue)
            result = await handle.result()
            assert result.status is SessionStatus.COMPLETED
            assert result.final_output == "It is about a broken kettle."
            calls = await runtime.store.list_events(result.session_id, kind=EventKind.MODEL_CALL)
    first, second = sorted(calls, key=lambda e: int(e.payload["round"]))  # type: ignore[arg-type]
    assert "cached_input_tokens" not in first.payload
    written = int(first.payload["cache_write_tokens"])  # type: ignore[arg-type]
    assert written > 0
    read = int(second.payload["cached_input_tokens"])  # type: ignore[arg-type]
    assert read == written
    wrote = int(second.payload.get("cache_write_tokens", 0))  # type: ignore[arg-type]
    assert second.input_tokens is not None and second.output_tokens is not None
    fresh = second.input_tokens - read - wrote
    assert second.cost_usd == pytest.approx(
        (fresh * 3 + read * 0.3 + wrote * 3.75 + second.output_tokens * 15) / 1_000_000
    )
