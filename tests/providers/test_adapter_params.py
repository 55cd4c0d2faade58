"""Each adapter writes a request's optional parameters in its own API's words.

A session sets none of them: its requests must be the bytes they were, so each adapter's
body of a request without them has exactly the keys it had. With them, each adapter
writes its API's equivalent, and `params.unsupported` names those it has none of.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchestrator.cache.keys import key_of
from orchestrator.providers import anthropic, openai, openai_responses
from orchestrator.providers._anthropic_stream import MessageAssembler
from orchestrator.providers._sse import SSEEvent
from orchestrator.providers.messages import (
    ChatMessage,
    ModelRequest,
    ToolCall,
    ToolChoice,
    ToolDefinition,
)
from orchestrator.providers.params import PARAMS, asks, effort_of, unsupported

_TOOLS = [
    ToolDefinition(name="lookup", description="Look up", parameters={"type": "object"}),
    ToolDefinition(name="other", description="", parameters={"type": "object"}),
]
_PLAIN = ModelRequest(
    model="m",
    messages=[
        ChatMessage(role="system", content="Be brief."),
        ChatMessage(role="user", content="hi"),
    ],
    tools=_TOOLS,
    temperature=0.2,
    max_tokens=64,
)
_ALL = _PLAIN.model_copy(
    update={
        "tool_choice": ToolChoice(mode="required"),
        "parallel_tool_calls": False,
        "strict_tools": [True, None],
        "response_format": {"type": "json_object"},
        "stop": ["END"],
        "seed": 7,
        "top_p": 0.5,
        "top_k": 20,
        "frequency_penalty": 0.1,
        "presence_penalty": 0.2,
        "user": "ann",
        "reasoning_effort": "medium",
        "metadata": {"team": "refunds"},
        "store": True,
        "service_tier": "flex",
        "logit_bias": {"11": -100},
        "prompt_cache_key": "k",
        "safety_identifier": "u-1",
        "verbosity": "low",
    }
)
_WRITERS: Any = {
    "openai": openai._request_to_wire,
    "anthropic": anthropic._request_to_wire,
    "openai_responses": openai_responses._request_to_wire,
}
_BEFORE = {
    "openai": {"model", "messages", "tools", "temperature", "max_tokens"},
    "anthropic": {"model", "max_tokens", "messages", "system", "tools", "temperature"},
    "openai_responses": {
        "model",
        "input",
        "store",
        "instructions",
        "tools",
        "max_output_tokens",
        "temperature",
    },
}


@pytest.mark.parametrize("kind", sorted(_WRITERS))
def test_a_request_without_them_is_written_as_before(kind: str) -> None:
    wire = _WRITERS[kind](_PLAIN)
    assert set(wire) == _BEFORE[kind]
    assert "strict" not in json.dumps(wire) or kind == "openai_responses"
    assert not asks(_PLAIN)
    assert unsupported(_PLAIN, kind) == []


def test_chat_completions_takes_them_under_their_own_names() -> None:
    wire = openai._request_to_wire(_ALL)
    assert wire["tool_choice"] == "required"
    assert (wire["parallel_tool_calls"], wire["stop"], wire["seed"]) == (False, ["END"], 7)
    assert (wire["top_p"], wire["frequency_penalty"], wire["presence_penalty"]) == (0.5, 0.1, 0.2)
    assert (wire["user"], wire["response_format"]) == ("ann", {"type": "json_object"})
    assert [t["function"].get("strict") for t in wire["tools"]] == [True, None]
    assert (wire["reasoning_effort"], wire["metadata"]) == ("medium", {"team": "refunds"})
    assert (wire["store"], wire["service_tier"], wire["logit_bias"]) == (True, "flex", {"11": -100})
    assert (wire["prompt_cache_key"], wire["safety_identifier"], wire["verbosity"]) == (
        "k",
        "u-1",
        "low",
    )
    # The client named neither limit: with an effort, the one reasoning models take.
    assert wire["max_completion_tokens"] == 64 and "max_tokens" not in wire
    assert "top_k" not in wire
    assert unsupported(_ALL, "openai") == ["top_k"]
    named = _PLAIN.model_copy(update={"tool_choice": ToolChoice(mode="tool", name="lookup")})
    assert openai._request_to_wire(named)["tool_choice"] == {
        "type": "function",
        "function": {"name": "lookup"},
    }


@pytest.mark.parametrize(
    ("choice", "parallel", "wanted"),
    [
        (ToolChoice(mode="required"), None, {"type": "any"}),
        (ToolChoice(mode="auto"), None, {"type": "auto"}),
        (ToolChoice(mode="none"), False, {"type": "none"}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        (None, True, None),
        (
            ToolChoice(mode="tool", name="lookup"),
            False,
            {"type": "tool", "name": "lookup", "disable_parallel_tool_use": True},
        ),
    ],
)
def test_anthropic_tool_choice(choice: Any, parallel: Any, wanted: Any) -> None:
    request = _PLAIN.model_copy(update={"tool_choice": choice, "parallel_tool_calls": parallel})
    assert anthropic._request_to_wire(request).get("tool_choice") == wanted


def test_anthropic_takes_its_equivalents_and_names_the_rest() -> None:
    wire = anthropic._request_to_wire(_ALL)
    assert (wire["stop_sequences"], wire["top_p"], wire["top_k"]) == (["END"], 0.5, 20)
    assert wire["metadata"] == {"user_id": "u-1"}  # the safety identifier, over `user`
    assert [t.get("strict") for t in wire["tools"]] == [True, None]
    assert wire["output_config"] == {"effort": "medium"}
    assert "prompt_cache_key" not in wire and "verbosity" not in wire
    for absent in ("seed", "response_format", "frequency_penalty", "presence_penalty", "user"):
        assert absent not in wire
    for absent in ("logit_bias", "store", "reasoning_effort", "thinking"):
        assert absent not in wire
    assert unsupported(_ALL, "anthropic") == [
        "response_format",
        "seed",
        "frequency_penalty",
        "presence_penalty",
        "metadata",
        "store",
        "service_tier",
        "logit_bias",
        "verbosity",
    ]
    taken = _PLAIN.model_copy(
        update={
            "response_format": {"type": "json_schema", "json_schema": {"name": "x"}},
            "reasoning_effort": "max",
            "store": False,
            "metadata": {},
            "service_tier": "default",
        }
    )
    assert unsupported(taken, "anthropic") == []
    assert anthropic._request_to_wire(taken)["output_config"] == {
        "format": {"type": "json_schema", "schema": {}},
        "effort": "max",
    }
    assert anthropic._request_to_wire(taken)["service_tier"] == "standard_only"
    text = _PLAIN.model_copy(update={"response_format": {"type": "text"}})
    assert unsupported(text, "anthropic") == []
    assert "output_config" not in anthropic._request_to_wire(text)


def test_the_responses_api_takes_a_json_schema_as_its_text_format() -> None:
    schema = {"name": "Out", "schema": {"type": "object"}, "strict": True}
    request = _ALL.model_copy(
        update={
            "response_format": {"type": "json_schema", "json_schema": schema},
            "tool_choice": ToolChoice(mode="tool", name="lookup"),
        }
    )
    wire = openai_responses._request_to_wire(request)
    assert wire["text"] == {"format": {"type": "json_schema", **schema}, "verbosity": "low"}
    assert (wire["prompt_cache_key"], wire["safety_identifier"]) == ("k", "u-1")
    assert wire["tool_choice"] == {"type": "function", "name": "lookup"}
    assert (wire["parallel_tool_calls"], wire["top_p"], wire["user"]) == (False, 0.5, "ann")
    assert [t["strict"] for t in wire["tools"]] == [True, False]
    assert (wire["reasoning"], wire["metadata"]) == ({"effort": "medium"}, {"team": "refunds"})
    assert (wire["store"], wire["service_tier"]) == (True, "flex")
    assert unsupported(request, "openai_responses") == [
        "stop",
        "seed",
        "top_k",
        "frequency_penalty",
        "presence_penalty",
        "logit_bias",
    ]
    assert set(PARAMS) <= set(ModelRequest.model_fields)


def test_the_response_caches_key_tells_them_apart_and_keeps_the_old_one_without() -> None:
    plain = key_of("t", "m", _PLAIN)
    assert key_of("t", "m", _PLAIN.model_copy(update={"stop": None})) == plain
    schema = _PLAIN.model_copy(update={"response_format": {"type": "json_object"}})
    assert key_of("t", "m", schema).frame != plain.frame
    assert key_of("t", "m", schema) == key_of("t", "m", schema.model_copy())


@pytest.mark.parametrize(
    ("thinking", "effort", "wanted"),
    [
        ({"type": "enabled", "budget_tokens": 1024}, None, "low"),
        ({"type": "enabled", "budget_tokens": 4096}, None, "medium"),
        ({"type": "enabled", "budget_tokens": 16383}, None, "medium"),
        ({"type": "enabled", "budget_tokens": 16384}, None, "high"),
        ({"type": "enabled", "budget_tokens": 2000}, "xhigh", "xhigh"),
        ({"type": "adaptive"}, None, None),
    ],
)
def test_anthropic_thinking_is_an_openai_reasoning_effort(
    thinking: Any, effort: Any, wanted: Any
) -> None:
    request = _PLAIN.model_copy(update={"thinking": thinking, "reasoning_effort": effort})
    assert effort_of(request) == wanted
    chat, responses = openai._request_to_wire(request), openai_responses._request_to_wire(request)
    assert chat.get("reasoning_effort") == wanted
    assert responses.get("reasoning") == (None if wanted is None else {"effort": wanted})
    assert "thinking" not in chat and "thinking" not in responses
    assert unsupported(request, "openai") == unsupported(request, "openai_responses") == []
    assert anthropic._request_to_wire(request)["thinking"] == thinking
    off = _PLAIN.model_copy(update={"thinking": {"type": "disabled"}})
    assert unsupported(off, "openai") == unsupported(off, "openai_responses") == ["thinking"]


def test_thinking_blocks_go_back_to_anthropic_first_and_nowhere_else() -> None:
    signed = {"type": "thinking", "thinking": "Look it up.", "signature": "c2ln"}
    call = ToolCall(id="t1", name="lookup", arguments_json="{}", arguments={})
    answered = ChatMessage(
        role="assistant", content="On it.", tool_calls=[call], thinking_blocks=[signed]
    )
    request = _PLAIN.model_copy(update={"messages": [*_PLAIN.messages, answered]})
    (turn,) = [
        t for t in anthropic._request_to_wire(request)["messages"] if t["role"] == "assistant"
    ]
    assert [b["type"] for b in turn["content"]] == ["thinking", "text", "tool_use"]
    assert turn["content"][0] == signed
    assert "thinking" not in json.dumps(openai._request_to_wire(request)["messages"])
    assert "thinking" not in json.dumps(openai_responses._request_to_wire(request)["input"])
    # Without any, a message dumps (and keys caches) as it always did.
    assert "thinking_blocks" not in ChatMessage(role="assistant", content="x").model_dump()


async def test_a_streamed_thinking_block_is_folded_whole() -> None:
    events = [
        {"type": "message_start", "message": {"id": "m", "role": "assistant", "content": []}},
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "thinking", "thinking": "", "signature": ""},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "Look "},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "it up."},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "signature_delta", "signature": "c2ln"},
        },
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "text_delta", "text": "Done."},
        },
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 3},
        },
        {"type": "message_stop"},
    ]
    assembler = MessageAssembler("test")
    for event in events:
        await assembler.feed(SSEEvent(event=str(event["type"]), data=json.dumps(event)))
    answer = anthropic._response_from_wire("test", assembler.body())
    assert answer.message.thinking_blocks == [
        {"type": "thinking", "thinking": "Look it up.", "signature": "c2ln"}
    ]
    assert answer.message.content == "Done."


def test_each_api_is_sent_its_own_fields_and_refuses_the_others() -> None:
    """OpenAI's cache retention and options go to both OpenAI APIs as they came, Anthropic's
    own Messages fields to Anthropic; each other API names them as having no equivalent."""
    own: Any = {"container": "c_1", "context_management": {"edits": []}, "mcp_servers": []}
    cache: Any = {"prompt_cache_retention": "24h", "prompt_cache_options": {"mode": "explicit"}}
    request = _PLAIN.model_copy(update={**cache, "anthropic_fields": own})
    for kind in ("openai", "openai_responses"):
        wire = _WRITERS[kind](request)
        assert {k: wire[k] for k in cache} == cache
        assert not set(own) & set(wire)
        assert unsupported(request, kind) == ["container", "context_management", "mcp_servers"]
    wire = anthropic._request_to_wire(request)
    assert {k: wire[k] for k in own} == own
    assert not set(cache) & set(wire)
    assert unsupported(request, "anthropic") == list(cache)
    without = request.model_copy(update={"anthropic_fields": None})
    assert key_of("t", "m", request) != key_of("t", "m", without)
