"""A session behind a gateway that retries by itself, as a LiteLLM proxy with
`num_retries: 3` does: two real servers on loopback, the gateway forwarding over HTTP to a
backend whose one deployment is dead.

Without `endpoint_retries`, each of the session's 5 attempts makes the gateway try the dead
backend 3 times: 15 requests before the step fails over. Declared, it is 3: one attempt,
then the next deployment.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from conftest import worker_with_models
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.client import Client

from orchestrator.plans import parse_plan
from orchestrator.scripted_model import LoopbackServer
from orchestrator.service import start_session
from orchestrator.session.types import Boundary
from orchestrator.settings import Settings
from orchestrator.types import JsonObject

GATEWAY_TRIES = 3

MODELS = """
providers:
  proxy: {kind: openai, base_url: "${GATEWAY_URL}"}
models:
  dead: {provider: proxy, model: gpt-dead, quality: {default: 0.9}ENDPOINT_RETRIES}
  alive: {provider: proxy, model: gpt-alive, quality: {default: 0.5}ENDPOINT_RETRIES}
aliases:
  chat: {deployments: [dead, alive]}
default_model: chat
"""

PLAN = parse_plan(
    "name: one\nsteps:\n  - {id: one, type: agent, goal: Answer., model: chat}\n", "one.yaml"
)


@dataclass
class Backend:
    """The provider behind the gateway: `gpt-dead` answers 503, the others answer."""

    hits: dict[str, int] = field(default_factory=dict)

    async def chat(self, request: Request) -> JSONResponse:
        body = await request.json()
        model = str(body["model"])
        self.hits[model] = self.hits.get(model, 0) + 1
        if model == "gpt-dead":
            return JSONResponse({"error": {"message": "backend down"}}, status_code=503)
        return JSONResponse(
            {
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "ok"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 5, "completion_tokens": 1},
            }
        )


def gateway_app(backend_url: str, client: httpx.AsyncClient) -> Starlette:
    """Forwards chat completions, retrying a 5xx `GATEWAY_TRIES` times in all."""

    async def chat(request: Request) -> Response:
        body = await request.body()
        for _ in range(GATEWAY_TRIES):
            upstream = await client.post(
                f"{backend_url}/v1/chat/completions",
                content=body,
                headers={"content-type": "application/json"},
            )
            if upstream.status_code < 500:
                break
        return Response(
            upstream.content, status_code=upstream.status_code, media_type="application/json"
        )

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


@pytest.fixture
async def gateway(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Backend]:
    backend = Backend()
    app = Starlette(routes=[Route("/v1/chat/completions", backend.chat, methods=["POST"])])
    async with contextlib.AsyncExitStack() as stack:
        back = await stack.enter_async_context(LoopbackServer(app))
        client = await stack.enter_async_context(httpx.AsyncClient())
        front = await stack.enter_async_context(LoopbackServer(gateway_app(back.url, client)))
        monkeypatch.setenv("GATEWAY_URL", f"{front.url}/v1")
        yield backend


@pytest.mark.parametrize(("declared", "backend_hits"), [(False, 15), (True, 3)])
async def test_retries_do_not_multiply_behind_a_retrying_gateway(
    gateway: Backend,
    settings: Settings,
    client: Client,
    tmp_path: Path,
    declared: bool,
    backend_hits: int,
) -> None:
    models = MODELS.replace("ENDPOINT_RETRIES", ", endpoint_retries: true" if declared else "")
    async with worker_with_models(settings, client, models, tmp_path):
        handle = await start_session(client, PLAN, {}, task_queue=settings.task_queue)
        result = await handle.result()
    assert [(p.model, p.boundary) for p in result.model_timeline] == [
        ("dead", Boundary.SESSION_START),
        ("alive", Boundary.FORCED_FAILOVER),
    ]
    assert result.final_output == "ok"
    expected: JsonObject = {"gpt-dead": backend_hits, "gpt-alive": 1}
    assert gateway.hits == expected
