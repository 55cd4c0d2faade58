"""The cost term prices prompt caching: `expected_cost` (pure) and the router's use of it.

A pinned deployment's warm prefix is billed at its cached-input price, a switch starts the
other deployment's cache cold, and a decision that binds a tool loop prices the loop's later
calls, which read the prompt before them from the cache.
"""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.providers.registry import ModelEntry, ModelRegistry
from orchestrator.routing import Router, RouteRequest
from orchestrator.routing.scoring import expected_cost

SONNET_PRICES: dict[str, Any] = {
    "input_price_per_mtok": 3.0,
    "cached_input_price_per_mtok": 0.3,
    "cache_write_price_per_mtok": 3.75,
    "output_price_per_mtok": 15.0,
}
GPT_PRICES: dict[str, Any] = {
    "input_price_per_mtok": 2.5,
    "cached_input_price_per_mtok": 1.25,
    "output_price_per_mtok": 10.0,
}
ANTHROPIC_STYLE = ModelEntry(provider="p", model="a", **SONNET_PRICES)
OPENAI_STYLE = ModelEntry(provider="p", model="o", **GPT_PRICES)
LIST_ONLY = ModelEntry(provider="p", model="l", input_price_per_mtok=1.0, output_price_per_mtok=4.0)


def test_without_cache_prices_it_is_the_list_price_of_each_call() -> None:
    assert expected_cost(LIST_ONLY, 2000, 300) == LIST_ONLY.cost(2000, 300)
    # Warm tokens change nothing where the cache is not priced.
    assert expected_cost(LIST_ONLY, 2000, 300, warm_tokens=1500) == LIST_ONLY.cost(2000, 300)
    # Each later call of a loop sends the prompt before it plus an answer and tool results.
    three = expected_cost(LIST_ONLY, 2000, 300, calls=3)
    assert three == pytest.approx(LIST_ONLY.cost(2000, 300) + 2 * LIST_ONLY.cost(2600, 300))


def test_one_call_reads_the_warm_prefix_and_pays_list_price_for_the_rest() -> None:
    # Cold, one call: the list price, whatever the deployment's cache prices.
    assert expected_cost(ANTHROPIC_STYLE, 2000, 300) == ANTHROPIC_STYLE.cost(2000, 300)
    warm = expected_cost(ANTHROPIC_STYLE, 2000, 300, warm_tokens=1200)
    assert warm == pytest.approx((1200 * 0.3 + 800 * 3.0 + 300 * 15.0) / 1e6)
    # More warm tokens than the prompt has: the whole prompt is warm, no more.
    whole = expected_cost(ANTHROPIC_STYLE, 2000, 300, warm_tokens=9999)
    assert whole == pytest.approx((2000 * 0.3 + 300 * 15.0) / 1e6)


def test_a_loop_writes_its_prompt_once_and_reads_it_back() -> None:
    # The first call writes its new tokens (1.25x on an Anthropic-style cache) because the
    # later calls, counted too, read them back at 0.1x.
    first = (800 * 3.75 + 1200 * 0.3 + 300 * 15.0) / 1e6
    later = (2000 * 0.3 + 600 * 3.75 + 300 * 15.0) / 1e6
    assert expected_cost(ANTHROPIC_STYLE, 2000, 300, warm_tokens=1200, calls=2.5) == pytest.approx(
        first + 1.5 * later
    )
    # An OpenAI-style cache charges nothing extra to write.
    assert expected_cost(OPENAI_STYLE, 2000, 300, calls=3) == pytest.approx(
        OPENAI_STYLE.cost(2000, 300) + 2 * (2000 * 1.25 + 600 * 2.5 + 300 * 10.0) / 1e6
    )


def test_the_cheaper_cache_wins_a_long_loop_that_list_prices_would_lose() -> None:
    # On list prices alone the OpenAI-style deployment is cheaper per call...
    assert expected_cost(OPENAI_STYLE, 8000, 300) < expected_cost(ANTHROPIC_STYLE, 8000, 300)
    # ...but a loop re-reads its prompt, at 0.1x on one and 0.5x on the other.
    assert expected_cost(ANTHROPIC_STYLE, 8000, 300, calls=6) < expected_cost(
        OPENAI_STYLE, 8000, 300, calls=6
    )


def registry() -> ModelRegistry:
    def deployment(**prices: Any) -> dict[str, Any]:
        return {"provider": "p", "model": "m", "quality": {"default": 0.8}, **prices}

    return ModelRegistry.model_validate(
        {
            "providers": {"p": {"base_url": "http://127.0.0.1:9/v1"}},
            "models": {
                "sonnet-ish": deployment(**SONNET_PRICES),
                "gpt-ish": deployment(**GPT_PRICES),
            },
            "default_model": "gpt-ish",
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


def ask(router: Router, **extra: Any) -> str:
    request = RouteRequest(expected_input_tokens=6000, expected_output_tokens=300, **extra)
    return router.decide(request).deployment


def test_a_warm_pin_is_kept_when_the_switch_would_lose_more_than_it_saves() -> None:
    router = Router(registry())
    # Cold everywhere, the cheaper list price wins, pinned or not.
    assert ask(router) == "gpt-ish"
    assert ask(router, current="sonnet-ish", boundary="step_change") == "gpt-ish"
    # The pin holds most of the prompt in its cache: staying is the cheaper call.
    kept = router.decide(
        RouteRequest(
            expected_input_tokens=6000,
            expected_output_tokens=300,
            current="sonnet-ish",
            boundary="step_change",
            warm_input_tokens=5000,
        )
    )
    assert kept.deployment == "sonnet-ish"
    terms = {c.deployment: c.terms for c in kept.candidates if c.terms}
    assert terms["sonnet-ish"].warm_tokens == 5000 and terms["gpt-ish"].warm_tokens == 0
    assert terms["sonnet-ish"].cost_usd == pytest.approx(
        expected_cost(router.registry.models["sonnet-ish"], 6000, 300, warm_tokens=5000)
    )
    # That ranking is the session's own: a cold request afterwards is not served from it.
    assert ask(router, current="sonnet-ish", boundary="step_change") == "gpt-ish"


def test_a_decision_that_binds_a_loop_prices_the_loop() -> None:
    router = Router(registry())
    assert ask(router) == "gpt-ish"
    assert ask(router, expected_calls=6.0) == "sonnet-ish"
