"""At a user turn the gateway tells the router what the pin holds warm: through `openai`.

`keeper` reads its prompt cache for free but lists dearer than `lister`. A conversation's
first turn is pinned on `keeper` (named); its second turn names both, and `keeper`, which
served everything before the new turn, stays. The same second turn after the cache has
expired (an idle session) is routed at list prices and moves to `lister`. The audit trail
records `warm_input_tokens` and `expected_calls` with each decision.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from gw_harness import TOKEN, serve_gateway
from openai import AsyncOpenAI

from orchestrator.gateway import GatewaySettings
from orchestrator.providers.registry import ModelRegistry
from orchestrator.routing.scoring import MIN_CACHED_TOKENS
from orchestrator.scripted_model import ReplayScript
from orchestrator.store.records import EventKind
from orchestrator.store.store import Store

SCRIPT = ReplayScript.model_validate(
    {
        "conversations": [
            {
                "name": name,
                "match": {"model": f"m-{name}"},
                "turns": [{"content": "Noted."}],
                "after_last": "repeat_last",
            }
            for name in ("keeper", "lister")
        ]
    }
)
SYSTEM = "You are the support desk's assistant. Answer briefly and politely. " * 80


def registry(base_url: str) -> ModelRegistry:
    def deployment(model: str, **prices: float) -> dict[str, Any]:
        return {"provider": "p", "model": model, "quality": {"default": 0.8}, **prices}

    return ModelRegistry.model_validate(
        {
            "providers": {"p": {"kind": "openai", "base_url": base_url}},
            "models": {
                "keeper": deployment(
                    "m-keeper",
                    input_price_per_mtok=1.1,
                    cached_input_price_per_mtok=0.0,
                    output_price_per_mtok=4.0,
                ),
                "lister": deployment(
                    "m-lister", input_price_per_mtok=1.0, output_price_per_mtok=4.0
                ),
            },
            "aliases": {"both": {"deployments": ["keeper", "lister"]}},
            "default_model": "both",
            "routing": {
                "default_policy": "cost",
                "policies": {
                    "cost": {
                        "weights": {"quality": 1.0, "cost": 1.0, "latency": 0.0},
                        "stickiness": 0.0,
                    }
                },
            },
        }
    )


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"


async def two_turns(base_url: str, session: str) -> list[str]:
    async with AsyncOpenAI(base_url=base_url, api_key=TOKEN, max_retries=0) as client:
        served = []
        messages: list[Any] = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "Where is order 7?"},
        ]
        for model in ("keeper", "both"):
            raw = await client.chat.completions.with_raw_response.create(
                model=model,
                messages=messages,
                max_tokens=10,
                extra_headers={"x-session-id": session},
            )
            served.append(raw.headers["x-orchestrator-deployment"])
            answer = raw.parse().choices[0].message.content
            messages += [
                {"role": "assistant", "content": answer},
                {"role": "user", "content": "And order 8?"},
            ]
    return served


async def routing(store: Store, session: str) -> dict[str, Any]:
    events = await store.list_events(f"gw:acme:{session}", kind=EventKind.MODEL_CALL)
    record: dict[str, Any] = events[-1].payload["routing"]
    return record


async def test_a_warm_pin_keeps_the_next_user_turn_where_list_prices_would_move_it(
    store_url: str,
) -> None:
    fresh = GatewaySettings(retry_backoff_seconds=0.0)
    async with serve_gateway(SCRIPT, store_url, settings=fresh, registry=registry) as gw:
        assert await two_turns(gw.base_url, "warm") == ["keeper", "keeper"]
        warm = await routing(gw.store, "warm")
    # Everything before the new turn (the system prompt above all) was served by keeper.
    assert warm["warm_input_tokens"] >= MIN_CACHED_TOKENS and warm["expected_calls"] == 1.0
    # The cache outlives no pause here: the second turn is idle, nothing warm, list prices.
    expired = GatewaySettings(retry_backoff_seconds=0.0, cache_idle_seconds=1e-6)
    async with serve_gateway(SCRIPT, store_url, settings=expired, registry=registry) as gw:
        assert await two_turns(gw.base_url, "cold") == ["keeper", "lister"]
        cold = await routing(gw.store, "cold")
    assert (cold["warm_input_tokens"], cold["expected_calls"]) == (0, 1.0)
