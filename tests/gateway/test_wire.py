"""Translation between the OpenAI and Anthropic formats: pure functions, round trips.

A client's body is parsed into the provider-neutral conversation; the provider adapters
write that conversation in the deployment's API. Parsing what an adapter wrote must give
the same conversation back, in both directions, so nothing is lost on the way.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.gateway import openai_wire
from orchestrator.gateway.anthropic_wire import parse_messages, render_messages
from orchestrator.gateway.errors import BadRequest
from orchestrator.gateway.openai_wire import parse_chat, render_chat
from orchestrator.providers import anthropic as anthropic_adapter
from orchestrator.providers import openai as openai_adapter
from orchestrator.providers.messages import ChatMessage, ModelResponse, ToolCall, Usage

OPENAI_BODY: Any = {
    "model": "auto",
    "messages": [
        {"role": "system", "content": "You refund orders."},
        {"role": "user", "content": "Refund order 7"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_order", "arguments": '{"order_id": "7"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "get_customer", "arguments": '{"id": "c1"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"status": "paid"}'},
        {"role": "tool", "tool_call_id": "call_2", "content": '{"name": "Ada"}'},
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "get_order",
                "description": "Read an order",
                "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}},
            },
        }
    ],
    "temperature": 0.2,
    "max_tokens": 300,
}

ANTHROPIC_BODY: Any = {
    "model": "auto",
    "max_tokens": 300,
    "system": "You refund orders.",
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "Refund order 7"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Looking it up."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_order",
                    "input": {"order_id": "7"},
                },
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "paid"}],
        },
    ],
    "tools": [
        {
            "name": "get_order",
            "description": "Read an order",
            "input_schema": {"type": "object", "properties": {"order_id": {"type": "string"}}},
        }
    ],
    "temperature": 0.2,
}


def test_openai_body_round_trips_through_the_openai_adapter() -> None:
    request = parse_chat(OPENAI_BODY).request
    assert openai_adapter._request_to_wire(request) == OPENAI_BODY


def test_anthropic_body_round_trips_through_the_anthropic_adapter() -> None:
    request = parse_messages(ANTHROPIC_BODY).request
    assert anthropic_adapter._request_to_wire(request) == ANTHROPIC_BODY


def test_openai_conversation_survives_a_trip_through_anthropic_format() -> None:
    neutral = parse_chat(OPENAI_BODY).request
    as_anthropic = anthropic_adapter._request_to_wire(neutral)
    back = parse_messages(as_anthropic).request
    assert back.messages == neutral.messages
    assert back.tools == neutral.tools
    # Both tool results land in one user turn, as the Messages API requires.
    assert [t["role"] for t in as_anthropic["messages"]] == ["user", "assistant", "user"]


def test_anthropic_conversation_survives_a_trip_through_openai_format() -> None:
    neutral = parse_messages(ANTHROPIC_BODY).request
    back = parse_chat(openai_adapter._request_to_wire(neutral)).request
    assert back.messages == neutral.messages


RESPONSE = ModelResponse(
    message=ChatMessage(
        role="assistant",
        content="Checking.",
        tool_calls=[
            ToolCall(
                id="call_9",
                name="get_order",
                arguments_json='{"order_id": "7"}',
                arguments={"order_id": "7"},
            )
        ],
    ),
    usage=Usage(input_tokens=12, output_tokens=5),
    finish_reason="tool_calls",
)


def test_responses_render_in_each_format_and_read_back_the_same() -> None:
    openai_body = render_chat(RESPONSE, deployment="strong", call_id="c", created=1)
    read = openai_adapter._response_from_wire(openai_adapter._Shape("x"), openai_body)
    assert (read.message, read.usage, read.provider_model) == (
        RESPONSE.message,
        RESPONSE.usage,
        "strong",
    )
    anthropic_body = render_messages(RESPONSE, deployment="strong", call_id="m")
    assert anthropic_body["stop_reason"] == "tool_use"
    read = anthropic_adapter._response_from_wire("x", anthropic_body)
    assert read.message.tool_calls[0].arguments == {"order_id": "7"}
    assert (read.message.content, read.usage) == ("Checking.", RESPONSE.usage)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "body: expected an object"),
        ({"messages": [{"role": "user", "content": "x"}]}, "body.model: required"),
        ({"model": "auto", "messages": []}, "body.messages: expected a non-empty list"),
        (
            {"model": "auto", "messages": [{"role": "wizard", "content": "x"}]},
            r"body.messages\[0\].role: unknown role 'wizard'",
        ),
        (
            {
                "model": "auto",
                "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}],
            },
            r"body.messages\[0\].content\[0\]: only text parts are supported",
        ),
    ],
)
def test_openai_bad_bodies_name_the_field(body: Any, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        parse_chat(body)


def test_anthropic_requires_max_tokens() -> None:
    with pytest.raises(BadRequest, match=r"body.max_tokens: required"):
        parse_messages({"model": "auto", "messages": [{"role": "user", "content": "x"}]})


_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5))
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
_CALLS = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "id": st.one_of(st.text(max_size=4), st.integers(), st.none()),
            "type": st.just("function"),
            "function": st.one_of(
                _VALUES,
                st.fixed_dictionaries(
                    {},
                    optional={
                        "name": st.one_of(st.text(max_size=4), st.none(), st.integers()),
                        "arguments": st.one_of(
                            st.sampled_from(["", '{"n": 1}', "[1]", "{bad", "{}"]), _VALUES
                        ),
                    },
                ),
            ),
        },
    ),
    max_size=2,
)
_MESSAGES = st.one_of(
    _VALUES,
    st.fixed_dictionaries(
        {},
        optional={
            "role": st.one_of(
                st.sampled_from(["system", "developer", "user", "assistant", "tool", "bot"]),
                _VALUES,
            ),
            "content": st.one_of(
                st.none(),
                st.text(max_size=5),
                st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": st.text()})),
                _VALUES,
            ),
            "tool_call_id": st.one_of(st.text(max_size=4), st.none(), st.integers()),
            "tool_calls": st.one_of(st.none(), _CALLS, _VALUES),
            "name": _VALUES,
        },
    ),
)


@settings(max_examples=400, deadline=None)
@given(_MESSAGES)
def test_the_plain_reading_of_a_message_is_the_checked_one(message: Any) -> None:
    """`_plain_message` reads what `_message` reads, the same way, and nothing it refuses."""
    plain = openai_wire._plain_message(message)
    try:
        checked = openai_wire._message(message, "body.messages[0]")
    except BadRequest:
        assert plain is None
        return
    assert plain is None or plain == checked
