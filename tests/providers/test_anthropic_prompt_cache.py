"""Anthropic prompt caching: the adapter's `cache_control` breakpoints, the scripted model
server's cache usage (read by the official `anthropic` SDK and by the adapter), and the
cost of a call priced at the declared cache read and write rates."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from anthropic import AsyncAnthropic

from orchestrator.providers import AnthropicProvider, ChatMessage, ModelRequest, ToolDefinition
from orchestrator.providers.anthropic import _request_to_wire
from orchestrator.providers.messages import CacheMark, ToolCall
from orchestrator.providers.registry import ModelEntry
from orchestrator.scripted_model import ReplayScript, ScriptedModelServer

SCRIPT = ReplayScript.model_validate(
    {
        "conversations": [
            {
                "name": "loop",
                "match": {"contains": "Step: look"},
                "turns": [
                    {"tool_calls": [{"name": "orders_get", "arguments": {"id": "7"}}]},
                    {"content": "Order 7 is paid."},
                ],
            }
        ]
    }
)
TOOLS = [
    ToolDefinition(name="orders_list", description="List orders", parameters={"type": "object"}),
    ToolDefinition(name="orders_get", description="Read an order", parameters={"type": "object"}),
]
EPHEMERAL = {"type": "ephemeral"}


@pytest.fixture
async def replay() -> AsyncIterator[ScriptedModelServer]:
    async with ScriptedModelServer(SCRIPT) as server:
        yield server


def _first(prompt_cache: bool = True) -> ModelRequest:
    return ModelRequest(
        model="claude-x",
        messages=[
            ChatMessage(role="system", content="You are careful. " * 60 + "\nStep: look"),
            ChatMessage(role="user", content="Is order 7 paid?"),
        ],
        tools=TOOLS,
        prompt_cache=prompt_cache,
    )


def _second(first: ModelRequest) -> ModelRequest:
    call = ToolCall(id="toolu_loop_0_0", name="orders_get", arguments_json='{"id": "7"}')
    return first.model_copy(
        update={
            "messages": [
                *first.messages,
                ChatMessage(role="assistant", tool_calls=[call]),
                ChatMessage(role="tool", tool_call_id=call.id, content='{"paid": true}'),
            ]
        }
    )


def test_breakpoints_on_the_last_tool_the_system_text_and_the_last_message() -> None:
    wire = _request_to_wire(_second(_first()))
    tools: Any = wire["tools"]
    assert "cache_control" not in tools[0] and tools[1]["cache_control"] == EPHEMERAL
    system: Any = wire["system"]
    assert len(system) == 1 and system[0]["cache_control"] == EPHEMERAL
    assert system[0]["text"].endswith("Step: look")
    messages: Any = wire["messages"]
    marked = [b for m in messages for b in m["content"] if "cache_control" in b]
    # The last message only (Anthropic allows four breakpoints; this uses three).
    assert marked == [messages[-1]["content"][-1]]
    assert marked[0]["type"] == "tool_result"


def test_no_breakpoints_unless_the_deployment_caches_prompts() -> None:
    wire = _request_to_wire(_first(prompt_cache=False))
    assert isinstance(wire["system"], str)
    assert "cache_control" not in str(wire)


def test_a_clients_own_breakpoints_are_sent_unchanged_and_none_added() -> None:
    hour = {"type": "ephemeral", "ttl": "1h"}
    request = _first().model_copy(
        update={"cache_marks": [CacheMark(where="message", at=0, control=hour)]}
    )
    wire = _request_to_wire(request)
    system: Any = wire["system"]
    assert system[0]["cache_control"] == hour
    tools: Any = wire["tools"]
    messages: Any = wire["messages"]
    assert all("cache_control" not in t for t in tools)
    assert all("cache_control" not in b for m in messages for b in m["content"])


def test_deployment_option_defaults_to_declared_cache_prices() -> None:
    plain = ModelEntry(provider="p", model="m", input_price_per_mtok=3)
    priced = plain.model_copy(update={"cached_input_price_per_mtok": 0.3})
    assert not plain.caches_prompts and priced.caches_prompts
    assert not priced.model_copy(update={"prompt_cache": False}).caches_prompts
    assert plain.model_copy(update={"prompt_cache": True}).caches_prompts


@pytest.mark.parametrize("stream", [False, True])
async def test_official_sdk_reads_the_scripted_cache_usage(
    replay: ScriptedModelServer, stream: bool
) -> None:
    system: Any = [
        {"type": "text", "text": "You are careful. " * 60 + "\nStep: look"},
        {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}},
    ]
    messages: Any = [{"role": "user", "content": "Is order 7 paid?"}]
    async with AsyncAnthropic(base_url=replay.url, api_key="k", max_retries=0) as client:
        usages = []
        for _ in range(2):
            if stream:
                async with client.messages.stream(
                    model="claude-x", max_tokens=100, system=system, messages=messages
                ) as events:
                    usages.append((await events.get_final_message()).usage)
            else:
                answer = await client.messages.create(
                    model="claude-x", max_tokens=100, system=system, messages=messages
                )
                usages.append(answer.usage)
        plain = await client.messages.create(
            model="claude-x", max_tokens=100, system="Step: look", messages=messages
        )
    first, second = usages
    assert first.cache_creation_input_tokens and first.cache_creation_input_tokens > 200
    assert first.cache_read_input_tokens == 0
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert second.cache_creation_input_tokens == 0
    assert second.input_tokens == first.input_tokens  # what follows the breakpoint
    assert plain.usage.cache_read_input_tokens == 0
    assert plain.usage.cache_creation_input_tokens == 0


@pytest.mark.parametrize("stream", [False, True])
async def test_the_second_round_of_a_loop_reads_the_first_and_is_priced_so(
    replay: ScriptedModelServer, stream: bool
) -> None:
    entry = ModelEntry(
        provider="p",
        model="claude-x",
        input_price_per_mtok=3.0,
        output_price_per_mtok=15.0,
        cached_input_price_per_mtok=0.3,
        cache_write_price_per_mtok=3.75,
    )
    first_request = _first().model_copy(update={"stream": stream})
    async with AnthropicProvider(base_url=replay.url, api_key="k") as provider:
        first = await provider.complete(first_request)
        second = await provider.complete(_second(first_request))
    assert first.message.tool_calls and second.message.content == "Order 7 is paid."
    assert first.usage.cached_input_tokens == 0 and first.usage.cache_write_tokens > 200
    # The second round reads the whole first prompt and writes only what it adds.
    assert second.usage.cached_input_tokens == first.usage.cache_write_tokens
    assert 0 < second.usage.cache_write_tokens < 40
    usage = second.usage
    fresh = usage.input_tokens - usage.cached_input_tokens - usage.cache_write_tokens
    expected = (
        fresh * 3.0
        + usage.cached_input_tokens * 0.3
        + usage.cache_write_tokens * 3.75
        + usage.output_tokens * 15.0
    ) / 1_000_000
    assert entry.usage_cost(usage) == pytest.approx(expected)
    assert entry.usage_cost(usage) < entry.cost(usage.input_tokens, usage.output_tokens)
