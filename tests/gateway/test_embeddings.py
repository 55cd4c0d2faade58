"""`/v1/embeddings` through the gateway to an OpenAI-compatible endpoint, with the SDK."""

from __future__ import annotations

from pathlib import Path

import pytest
from gw_harness import TOKEN, keys
from openai import AsyncOpenAI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from orchestrator.gateway import Gateway, gateway_app
from orchestrator.providers.registry import ModelRegistry
from orchestrator.replay import LoopbackServer
from orchestrator.store import Store
from orchestrator.store.records import EventKind


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"


async def test_embeddings_reach_the_deployment_under_its_own_model_id(store_url: str) -> None:
    seen: list[dict[str, object]] = []

    async def embeddings(request: Request) -> JSONResponse:
        body = await request.json()
        seen.append(body)
        return JSONResponse(
            {
                "object": "list",
                "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.5]}],
                "model": body["model"],
                "usage": {"prompt_tokens": 3, "total_tokens": 3},
            }
        )

    upstream = Starlette(routes=[Route("/v1/embeddings", embeddings, methods=["POST"])])
    async with LoopbackServer(upstream) as fake, await Store.open(store_url) as store:
        registry = ModelRegistry.model_validate(
            {
                "providers": {"emb": {"kind": "openai", "base_url": f"{fake.url}/v1"}},
                "models": {"embed-small": {"provider": "emb", "model": "text-embed-3"}},
                "default_model": "embed-small",
            }
        )
        gateway = Gateway(registry, keys(), store)
        app = Starlette(routes=[Mount("/v1", app=gateway_app(gateway))])
        async with (
            LoopbackServer(app) as server,
            AsyncOpenAI(base_url=f"{server.url}/v1", api_key=TOKEN, max_retries=0) as client,
        ):
            result = await client.embeddings.create(model="embed-small", input="hello")
        await gateway.aclose()
        calls = await store.reports.events([EventKind.MODEL_CALL])
    assert result.data[0].embedding == [0.25, -0.5]
    assert result.model == "embed-small"
    assert [(s["model"], s["input"]) for s in seen] == [("text-embed-3", "hello")]
    assert [(c.model, c.input_tokens, c.payload["api"]) for c in calls] == [
        ("embed-small", 3, "embeddings")
    ]
