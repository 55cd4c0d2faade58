"""A model call as a session makes it, on a real dev server against an OpenAI-compatible
endpoint on loopback: its activity timeout comes from the deployment.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from orchestrator.plans import parse_plan
from orchestrator.replay import LoopbackServer
from orchestrator.runtime import Runtime
from orchestrator.service import start_session
from orchestrator.session import names
from orchestrator.session.call_timeouts import CALL_MARGIN, model_call_options
from orchestrator.session.types import ActivityOptions
from orchestrator.settings import Settings
from orchestrator.types import JsonObject
from orchestrator.worker import build_worker

MODELS = """
providers:
  local: {kind: openai, base_url: "${FAKE_OPENAI_URL}", timeout_seconds: 600}
  fast: {kind: openai, base_url: "${FAKE_OPENAI_URL}", timeout_seconds: 20}
models:
  slow-local: {provider: local, model: llama-70b}
  quick: {provider: fast, model: small}
default_model: slow-local
"""

ONE_STEP = parse_plan(
    """
name: one
steps:
  - {id: one, type: agent, goal: Answer., model: slow-local}
  - {id: two, type: agent, goal: Answer again., model: quick}
""",
    "one.yaml",
)


def _answer(body: JsonObject, content: str = "done") -> JsonObject:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": body["model"],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 2},
    }


Answer = Callable[[JsonObject], JsonObject]


@dataclass
class Endpoint:
    """An OpenAI-compatible endpoint whose answers the test decides."""

    answer: Answer = _answer
    bodies: list[JsonObject] = field(default_factory=list)

    async def chat(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.bodies.append(body)
        return JSONResponse(self.answer(body))


@dataclass
class Env:
    client: Client
    settings: Settings
    runtime: Runtime
    endpoint: Endpoint


@pytest.fixture
async def session_env(
    settings: Settings, client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Callable[..., Awaitable[Env]]]:
    async with contextlib.AsyncExitStack() as stack:

        async def make(models: str = MODELS) -> Env:
            endpoint = Endpoint()
            app = Starlette(routes=[Route("/v1/chat/completions", endpoint.chat, methods=["POST"])])
            server = await stack.enter_async_context(LoopbackServer(app))
            monkeypatch.setenv("FAKE_OPENAI_URL", f"{server.url}/v1")
            path = tmp_path / "models.yaml"
            path.write_text(models)
            settings.models_file = path
            runtime = await Runtime.open(settings)
            stack.push_async_callback(runtime.close)
            await stack.enter_async_context(
                build_worker(client, runtime, task_queue=settings.task_queue)
            )
            return Env(client, settings, runtime, endpoint)

        yield make


def test_the_activity_timeout_follows_the_deployment() -> None:
    base = ActivityOptions(start_to_close=timedelta(seconds=120), max_attempts=3)
    slow = model_call_options(base, 600)
    assert slow.start_to_close == timedelta(seconds=600) + CALL_MARGIN
    assert slow.max_attempts == 3 and base.start_to_close == timedelta(seconds=120)
    assert model_call_options(base, 20) is base  # never shorter than the session's floor
    assert model_call_options(base, None) is base  # recorded before timeouts were known


async def test_a_slow_deployment_gets_its_own_timeout(
    session_env: Callable[..., Awaitable[Env]],
) -> None:
    env = await session_env()
    handle = await start_session(env.client, ONE_STEP, {}, task_queue=env.settings.task_queue)
    await handle.result()
    history = await handle.fetch_history()
    timeouts = [
        event.activity_task_scheduled_event_attributes.start_to_close_timeout.ToTimedelta()
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and event.activity_task_scheduled_event_attributes.activity_type.name == names.CALL_MODEL
    ]
    # slow-local waits up to 600 s for its endpoint: cutting it at 120 s would throw the
    # answer away and regenerate it on every retry. quick keeps the session's 120 s.
    assert timeouts == [timedelta(seconds=630), timedelta(seconds=120)]
