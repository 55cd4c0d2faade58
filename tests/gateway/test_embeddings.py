"""`/v1/embeddings` through the gateway to an OpenAI-compatible endpoint, with the SDK."""

from __future__ import annotations

from pathlib import Path

import pytest
from gw_harness import one_deployment
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

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
    async with await Store.open(store_url) as store:
        async with one_deployment(upstream, store, "openai", "embed-small", "text-embed-3") as c:
            result = await c.embeddings.create(model="embed-small", input="hello")
        calls = await store.reports.events([EventKind.MODEL_CALL])
    assert result.data[0].embedding == [0.25, -0.5]
    assert result.model == "embed-small"
    assert [(s["model"], s["input"]) for s in seen] == [("text-embed-3", "hello")]
    assert [(c.model, c.input_tokens, c.payload["api"]) for c in calls] == [
        ("embed-small", 3, "embeddings")
    ]
