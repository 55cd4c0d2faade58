"""Prompt caching through the gateway: a client's `cache_control` reaches an Anthropic
deployment unchanged and is dropped on a route translated to an OpenAI one; the cache
usage comes back in the client's shape (Anthropic's fields, or OpenAI's
`prompt_tokens_details.cached_tokens`) and into the call's audit event."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from anthropic import AsyncAnthropic
from gw_harness import TOKEN, serve_gateway
from openai import AsyncOpenAI

from orchestrator.gateway.anthropic_wire import parse_messages
from orchestrator.providers.anthropic import _request_to_wire as anthropic_wire
from orchestrator.providers.openai import _request_to_wire as openai_wire
from orchestrator.providers.registry import ModelRegistry
from orchestrator.scripted_model import ReplayScript
from orchestrator.store.records import EventKind

SCRIPT = ReplayScript.model_validate(
    {
        "conversations": [
            {
                "name": "answer",
                "match": {"contains": "Step: answer"},
                "turns": [{"content": "Order 7 is paid."}],
                "after_last": "repeat_last",
            }
        ]
    }
)
HOUR = {"type": "ephemeral", "ttl": "1h"}
SYSTEM: Any = [
    {"type": "text", "text": "You answer about orders. " * 40},
    {"type": "text", "text": "Step: answer", "cache_control": HOUR},
    {"type": "text", "text": " Be brief."},
]
TOOLS: Any = [
    {
        "name": "orders_get",
        "input_schema": {"type": "object"},
        "cache_control": {"type": "ephemeral"},
    }
]
MESSAGES: Any = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "Is order 7 paid?", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": " Thanks."},
        ],
    }
]


def _registry(base_url: str) -> ModelRegistry:
    return ModelRegistry.model_validate(
        {
            "providers": {
                "claude": {"kind": "anthropic", "base_url": base_url, "timeout_seconds": 5},
                "gpt": {"kind": "openai", "base_url": base_url, "timeout_seconds": 5},
            },
            "models": {
                "sonnet": {
                    "provider": "claude",
                    "model": "claude-x",
                    "input_price_per_mtok": 3.0,
                    "output_price_per_mtok": 15.0,
                    "cached_input_price_per_mtok": 0.3,
                    "cache_write_price_per_mtok": 3.75,
                },
                "mini": {"provider": "gpt", "model": "gpt-x", "input_price_per_mtok": 0.15},
            },
            "default_model": "sonnet",
        }
    )


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"


def test_a_clients_breakpoints_reach_an_anthropic_deployment_where_they_stood() -> None:
    body: Any = {"model": "sonnet", "max_tokens": 50, "system": SYSTEM, "tools": TOOLS}
    call = parse_messages({**body, "messages": MESSAGES})
    wire: Any = anthropic_wire(call.request)
    texts = [b["text"] for b in wire["system"]]
    assert "".join(texts) == "".join(b["text"] for b in SYSTEM)
    assert wire["system"][0]["cache_control"] == HOUR
    assert texts[0].endswith("Step: answer") and "cache_control" not in wire["system"][1]
    assert wire["tools"][0]["cache_control"] == {"type": "ephemeral"}
    user = wire["messages"][0]["content"]
    assert user[0] == {
        "type": "text",
        "text": "Is order 7 paid?",
        "cache_control": {"type": "ephemeral"},
    }
    assert user[1] == {"type": "text", "text": " Thanks."}
    # Translated to an OpenAI deployment the breakpoints are dropped; the text is kept.
    translated = openai_wire(call.request)
    assert "cache_control" not in str(translated)
    assert "Step: answer" in str(translated)


@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_client_gets_the_cache_usage_of_an_anthropic_route(
    store_url: str, stream: bool
) -> None:
    async with (
        serve_gateway(SCRIPT, store_url, registry=_registry) as served,
        AsyncAnthropic(base_url=served.server.url, api_key=TOKEN, max_retries=0) as client,
    ):
        usages = []
        for _ in range(2):
            kwargs: Any = {
                "model": "sonnet",
                "max_tokens": 50,
                "system": SYSTEM,
                "tools": TOOLS,
                "messages": MESSAGES,
                "extra_headers": {"x-session-id": f"cache-{stream}"},
            }
            if stream:
                async with client.messages.stream(**kwargs) as events:
                    usages.append((await events.get_final_message()).usage)
            else:
                usages.append((await client.messages.create(**kwargs)).usage)
        events = await served.store.list_events(f"gw:acme:cache-{stream}")
    first, second = usages
    assert first.cache_creation_input_tokens and first.cache_creation_input_tokens > 200
    assert not first.cache_read_input_tokens
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert not second.cache_creation_input_tokens
    calls = [e for e in events if e.kind is EventKind.MODEL_CALL]
    assert calls[0].payload["cache_write_tokens"] == first.cache_creation_input_tokens
    assert calls[1].payload["cached_input_tokens"] == second.cache_read_input_tokens
    # Priced at the read rate: 0.3 a million instead of 3.
    read = second.cache_read_input_tokens or 0
    fresh = second.input_tokens
    assert calls[1].cost_usd == pytest.approx(
        (fresh * 3.0 + read * 0.3 + second.output_tokens * 15.0) / 1_000_000
    )


async def test_a_translated_route_drops_the_breakpoints(store_url: str) -> None:
    async with (
        serve_gateway(SCRIPT, store_url, registry=_registry) as served,
        AsyncAnthropic(base_url=served.server.url, api_key=TOKEN, max_retries=0) as client,
    ):
        answers = [
            await client.messages.create(
                model="mini", max_tokens=50, system=SYSTEM, tools=TOOLS, messages=MESSAGES
            )
            for _ in range(2)
        ]
    assert [a.content[0].text for a in answers] == ["Order 7 is paid."] * 2  # type: ignore[union-attr]
    assert [r.api for r in served.replay.requests] == ["openai", "openai"]
    assert not answers[1].usage.cache_read_input_tokens


async def test_openai_client_sees_cached_tokens_of_an_anthropic_deployment(
    store_url: str,
) -> None:
    """The gateway marks the prefix itself (the deployment declares cache prices)."""
    messages: Any = [
        {"role": "system", "content": "You answer about orders. " * 40 + "Step: answer"},
        {"role": "user", "content": "Is order 7 paid?"},
    ]
    async with (
        serve_gateway(SCRIPT, store_url, registry=_registry) as served,
        AsyncOpenAI(base_url=served.base_url, api_key=TOKEN, max_retries=0) as client,
    ):
        first = await client.chat.completions.create(model="sonnet", messages=messages)
        second = await client.chat.completions.create(model="sonnet", messages=messages)
    assert first.usage is not None and second.usage is not None
    details = second.usage.prompt_tokens_details
    assert details is not None and details.cached_tokens and details.cached_tokens > 200
    assert details.cached_tokens < second.usage.prompt_tokens
