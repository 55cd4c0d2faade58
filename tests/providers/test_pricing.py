"""Prompt caching, priced: cache counts read off each wire over loopback, and exact costs."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from orchestrator.exceptions import ProviderResponseError
from orchestrator.providers import (
    AnthropicProvider,
    ChatMessage,
    ModelEntry,
    ModelRequest,
    OpenAIProvider,
    Usage,
)
from orchestrator.providers.usage import (
    anthropic_usage,
    anthropic_usage_wire,
    chat_usage,
    chat_usage_wire,
)
from orchestrator.scripted_model import LoopbackServer
from orchestrator.types import JsonObject

REQUEST = ModelRequest(model="m", messages=[ChatMessage(role="user", content="hi")])

OPENAI_CACHED: JsonObject = {
    "model": "gpt-4o",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}],
    "usage": {
        "prompt_tokens": 10_000,
        "completion_tokens": 500,
        "prompt_tokens_details": {"cached_tokens": 8_000, "audio_tokens": 0},
    },
}
ANTHROPIC_CACHED: JsonObject = {
    "type": "message",
    "content": [{"type": "text", "text": "ok"}],
    "stop_reason": "end_turn",
    "usage": {
        "input_tokens": 100,
        "cache_creation_input_tokens": 2_000,
        "cache_read_input_tokens": 50_000,
        "output_tokens": 300,
    },
}


async def _usage(kind: str, body: JsonObject) -> Usage:
    async def answer(_: Request) -> JSONResponse:
        return JSONResponse(body)

    app = Starlette(routes=[Route("/v1/{rest:path}", answer, methods=["POST"])])
    async with LoopbackServer(app) as server:
        provider_type = OpenAIProvider if kind == "openai" else AnthropicProvider
        async with provider_type(base_url=f"{server.url}/v1") as provider:
            return (await provider.complete(REQUEST)).usage


async def test_openai_cached_tokens_are_read() -> None:
    usage = await _usage("openai", OPENAI_CACHED)
    assert usage == Usage(input_tokens=10_000, output_tokens=500, cached_input_tokens=8_000)


async def test_anthropic_cache_reads_and_writes_count_in_the_prompt() -> None:
    usage = await _usage("anthropic", ANTHROPIC_CACHED)
    assert usage == Usage(
        input_tokens=52_100, output_tokens=300, cached_input_tokens=50_000, cache_write_tokens=2_000
    )


async def test_a_bad_cache_count_is_named() -> None:
    body: JsonObject = {**OPENAI_CACHED, "usage": {"prompt_tokens_details": {"cached_tokens": "x"}}}
    with pytest.raises(ProviderResponseError, match=r"usage.prompt_tokens_details.cached_tokens"):
        await _usage("openai", body)


def _entry(**prices: float) -> ModelEntry:
    return ModelEntry(provider="p", model="m", **prices)  # type: ignore[arg-type]


def test_openai_cached_tokens_at_the_cached_price() -> None:
    entry = _entry(
        input_price_per_mtok=2.5, cached_input_price_per_mtok=1.25, output_price_per_mtok=10
    )
    # 2,000 fresh x 2.5 + 8,000 cached x 1.25 + 500 out x 10 = 20,000 per million.
    assert (
        entry.usage_cost(Usage(input_tokens=10_000, output_tokens=500, cached_input_tokens=8_000))
        == 0.02
    )


def test_anthropic_cache_writes_and_reads_at_their_prices() -> None:
    entry = _entry(
        input_price_per_mtok=3,
        cache_write_price_per_mtok=3.75,
        cached_input_price_per_mtok=0.3,
        output_price_per_mtok=15,
    )
    usage = Usage(
        input_tokens=52_100, output_tokens=300, cached_input_tokens=50_000, cache_write_tokens=2_000
    )
    # 100 x 3 + 2,000 x 3.75 + 50,000 x 0.3 + 300 x 15 = 27,300 per million, exactly.
    assert entry.usage_cost(usage) == 0.0273


def test_undeclared_cache_prices_fall_back_to_the_input_price() -> None:
    entry = _entry(input_price_per_mtok=3, output_price_per_mtok=15)
    cached = Usage(
        input_tokens=1_000, output_tokens=0, cached_input_tokens=900, cache_write_tokens=100
    )
    assert entry.usage_cost(cached) == entry.cost(1_000, 0) == 0.003


def test_decimal_prices_add_up_as_written() -> None:
    entry = _entry(input_price_per_mtok=0.1, output_price_per_mtok=0.2)
    # In binary floats (0.1 + 0.2) / 1e6 is 3.0000000000000004e-07.
    assert entry.cost(1, 1) == 3e-07
    assert entry.cost(1_000_000, 1_000_000) == 0.3


@pytest.mark.parametrize(
    "usage",
    [
        Usage(input_tokens=10, output_tokens=2),
        Usage(input_tokens=10_000, output_tokens=500, cached_input_tokens=8_000),
        Usage(
            input_tokens=52_100,
            output_tokens=3,
            cached_input_tokens=50_000,
            cache_write_tokens=2_000,
        ),
    ],
)
def test_usage_written_for_a_client_reads_back_the_same(usage: Usage) -> None:
    # The gateway answers in each wire's own terms: Anthropic counts the cache apart.
    assert chat_usage("e", chat_usage_wire(usage)) == usage
    assert anthropic_usage("e", anthropic_usage_wire(usage)) == usage
    assert anthropic_usage_wire(usage)["input_tokens"] == (
        usage.input_tokens - usage.cached_input_tokens - usage.cache_write_tokens
    )
