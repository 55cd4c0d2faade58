"""Chat completions to chat completions: the forwarded body and the relayed answer.

The fast path must send what the full path sends and answer what it answers: a body is
forwarded only when the full path would write the same JSON, the facts read in its pass
(session opening, tool loop, last user text) are those of the parsed conversation, and a
relayed answer renders as the adapter's `ModelResponse` renders. Served end to end, the
same upstream answer reaches the client the same through both paths, streamed or not, and
a deployment of the other API still gets its own format.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from gw_harness import TOKEN, one_deployment
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from orchestrator.exceptions import ProviderResponseError
from orchestrator.gateway.openai_wire import _request, parse_chat, render_chat
from orchestrator.gateway.relay import Relayed, asks_tools, forwardable, read_answer
from orchestrator.gateway.routed import _last_user_text
from orchestrator.gateway.sessions import in_tool_loop, opening
from orchestrator.providers.openai import _request_to_wire, _response_from_wire, _Shape
from orchestrator.store import Store
from orchestrator.store.records import EventKind

texts = st.sampled_from(["", "hi", "Find it.", "x" * 40, "é✓"])
ids = st.sampled_from(["call_1", "call_2", "c3"])


def _call() -> st.SearchStrategy[Any]:
    plain = st.fixed_dictionaries(
        {
            "id": ids,
            "type": st.just("function"),
            "function": st.fixed_dictionaries(
                {"name": st.just("lookup"), "arguments": st.sampled_from(["", "{}", '{"n": 1}'])}
            ),
        }
    )
    odd = st.sampled_from(
        [
            {"id": "call_1", "function": {"name": "lookup", "arguments": "{}"}},
            {"id": "call_1", "type": "function", "function": {"name": "lookup"}},
            {"id": 7, "type": "function", "function": {"name": "lookup", "arguments": ""}},
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}},
        ]
    )
    return st.one_of(plain, plain, plain, odd)


def _message() -> st.SearchStrategy[Any]:
    spoken = st.builds(
        lambda role, text, name: {"role": role, "content": text, **name},
        st.sampled_from(["system", "user"]),
        texts,
        st.sampled_from([{}, {}, {"name": "ann"}]),
    )
    assistant = st.builds(
        lambda text, calls: {"role": "assistant", "content": text, **calls},
        st.one_of(st.none(), texts),
        st.one_of(st.just({}), st.lists(_call(), max_size=2).map(lambda c: {"tool_calls": c})),
    )
    tool = st.builds(
        lambda call_id, text: {"role": "tool", "tool_call_id": call_id, "content": text},
        ids,
        texts,
    )
    odd = st.sampled_from(
        [
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "parts"}]},
            {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function"}]},
            {"role": "user"},
            {"role": "user", "content": "hi", "name": 3},
            {"role": "tool", "tool_call_id": "call_1", "content": "ok", "name": "lookup"},
            {"role": "user", "content": None},
        ]
    )
    return st.one_of(spoken, assistant, tool, tool, st.one_of(odd))


_TOOL: Any = {
    "type": "function",
    "function": {"name": "lookup", "description": "Look up", "parameters": {"type": "object"}},
}
_EXTRAS = st.sampled_from(
    [
        {},
        {},
        {"max_tokens": 64},
        {"temperature": 0},
        {"temperature": 0.5, "max_tokens": 8},
        {"tools": [_TOOL]},
        {"stream": False},
        {"stream": True, "stream_options": {"include_usage": True}},
        {"stream": "yes"},
        {"tools": []},
        {"tools": [{"type": "function", "function": {"name": "f"}}]},
        {"max_completion_tokens": 8},
        {"stream": True},
        {"stream_options": None},
        {"user": "ann"},
    ]
)


def _asking(call_id: str) -> Any:
    call = {"id": call_id, "type": "function", "function": {"name": "f", "arguments": "{}"}}
    return {"role": "assistant", "content": None, "tool_calls": [call]}


_TAILS: Any = [
    [],
    [_asking("call_1"), {"role": "tool", "tool_call_id": "call_1", "content": "ok"}],
    [_asking("call_2"), {"role": "tool", "tool_call_id": "call_1", "content": "ok"}],
    [_asking("call_1")],
]
"""Conversation ends: an open tool loop, a result for another call, a call not answered."""


def _body() -> st.SearchStrategy[Any]:
    return st.builds(
        lambda messages, tail, extras: {"model": "pair", "messages": messages + tail, **extras},
        st.lists(_message(), min_size=1, max_size=8),
        st.sampled_from(_TAILS),
        _EXTRAS,
    )


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_body())
def test_a_forwarded_body_is_what_the_full_path_would_send(body: Any) -> None:
    forward = forwardable(body)
    try:
        _, request = _request(body)
    except Exception:
        assert forward is None
        return
    if forward is None:
        return
    wire = _request_to_wire(request.model_copy(update={"model": "served"}))
    assert {**forward.body, "model": "served"} == wire
    assert forward.looping == in_tool_loop(request.messages)
    assert forward.opening == opening(request.messages)
    assert forward.prompt == _last_user_text(request.messages)
    call = parse_chat(body)
    assert call.forward == forward
    assert call.request == request
    assert "stream" not in forward.body and "stream_options" not in forward.body
    stream = body.get("stream") is True
    assert (call.requested, call.stream, call.previous_response_id) == ("pair", stream, None)


@pytest.mark.parametrize(
    "body",
    [
        {"model": "m", "messages": [{"role": "developer", "content": "x"}]},
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": 1},
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": None},
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": True},
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": []},
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 2},
        {"model": "m", "messages": [{"role": "assistant", "tool_calls": []}]},
        {"model": "", "messages": [{"role": "user", "content": "x"}]},
        {"model": "m", "messages": []},
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "previous_response_id": "r"},
    ],
)
def test_what_the_full_path_rewrites_or_refuses_is_not_forwarded(body: Any) -> None:
    assert forwardable(body) is None


def _answer() -> st.SearchStrategy[Any]:
    call = st.one_of(
        st.builds(
            lambda i, args: {"id": i, "type": "function", "function": {"name": "f", **args}},
            ids,
            st.sampled_from([{}, {"arguments": None}, {"arguments": '{"a":1}'}]),
        ),
        st.sampled_from(
            [
                {"id": "", "function": {"name": "f", "arguments": ""}},
                {"id": "c", "function": {"name": "f", "arguments": {"a": 1}}},
                {"id": "c", "function": {"arguments": ""}},
                "call",
            ]
        ),
    )
    message = st.builds(
        lambda content, calls: {"role": "assistant", "content": content, **calls},
        st.one_of(st.none(), texts, st.just([{"type": "text", "text": "a"}]), st.just(3)),
        st.one_of(
            st.just({}),
            st.just({"tool_calls": None}),
            st.lists(call, max_size=2).map(lambda c: {"tool_calls": c}),
        ),
    )
    usage = st.sampled_from(
        [
            None,
            {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
            {"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 4}},
            {"prompt_tokens": "10"},
        ]
    )
    return st.builds(
        lambda message, reason, usage, model: {
            "id": "x",
            "object": "chat.completion",
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": reason}],
            "usage": usage,
            "system_fingerprint": "fp",
        },
        message,
        st.sampled_from([None, "stop", "length", "tool_calls", "max_tokens", 5]),
        usage,
        st.sampled_from(["replay-a", None, 4]),
    )


@settings(max_examples=600, deadline=None)
@given(_answer())
def test_a_relayed_answer_renders_as_the_full_readers(answer: Any) -> None:
    try:
        full = _response_from_wire(_Shape("e"), answer)
    except ProviderResponseError as exc:
        try:
            relayed = read_answer("e", answer)
        except ProviderResponseError as mine:
            assert str(mine) == str(exc)
            return
        assert relayed is None
        return
    relayed = read_answer("e", answer)
    if relayed is None:
        return
    assert isinstance(relayed, Relayed)
    rendered = {"deployment": "a", "call_id": "chatcmpl-1", "created": 1}
    assert render_chat(relayed, **rendered) == render_chat(full, **rendered)
    assert relayed.usage == full.usage
    assert asks_tools(relayed) == asks_tools(full)


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"


_UPSTREAM_ANSWER: Any = {
    "id": "up-1",
    "object": "chat.completion",
    "created": 5,
    "model": "gpt-x-2026",
    "system_fingerprint": "fp_1",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "tool_calls": [
                    {
                        "id": "call_9",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": '{"n": 9}'},
                    }
                ],
            },
            "finish_reason": "tool_calls",
            "logprobs": None,
        }
    ],
    "usage": {
        "prompt_tokens": 120,
        "completion_tokens": 9,
        "total_tokens": 129,
        "prompt_tokens_details": {"cached_tokens": 64},
    },
}


async def _chat(request: Request) -> JSONResponse:
    """A chat-completions endpoint that keeps each body and always gives the same answer."""
    request.app.state.bodies.append(await request.json())
    return JSONResponse(_UPSTREAM_ANSWER)


_CONVERSATION: Any = [
    {"role": "system", "content": "You look things up."},
    {"role": "user", "content": "Find it."},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_0", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
        ],
    },
    {"role": "tool", "tool_call_id": "call_0", "content": "ok"},
]


def _events(raw: bytes) -> list[Any]:
    """An SSE answer's events, without the two fields each answer has of its own."""
    out: list[Any] = []
    for line in raw.decode().splitlines():
        if line.startswith("data: {"):
            event = json.loads(line[6:])
            out.append({k: v for k, v in event.items() if k not in ("id", "created")})
        elif line.startswith("data: "):
            out.append(line)
    return out


async def test_both_paths_send_and_answer_the_same_streamed_or_not(store_url: str) -> None:
    upstream = Starlette(routes=[Route("/v1/chat/completions", _chat, methods=["POST"])])
    upstream.state.bodies = []
    fast: Any = {"model": "auto", "messages": _CONVERSATION, "tools": [_TOOL], "max_tokens": 64}
    # The same conversation with the user's text as content parts: the full path joins them.
    parts = [{"type": "text", "text": "Find"}, {"type": "text", "text": " it."}]
    slow: Any = {**fast, "messages": [_CONVERSATION[0], {"role": "user", "content": parts}]}
    slow["messages"] += _CONVERSATION[2:]
    streamed = {"stream": True, "stream_options": {"include_usage": True}}
    assert forwardable(fast) is not None and forwardable({**fast, **streamed}) is not None
    assert forwardable(slow) is None and forwardable({**slow, **streamed}) is None
    async with (
        await Store.open(store_url) as store,
        one_deployment(upstream, store, "openai", "gpt", "gpt-x") as client,
    ):
        base = str(client.base_url)
        headers = {"authorization": f"Bearer {TOKEN}", "x-session-id": "s"}
        async with httpx.AsyncClient(base_url=base, headers=headers) as http:
            answers = [(await http.post("chat/completions", json=b)) for b in (fast, slow)]
            streams = [
                (await http.post("chat/completions", json={**b, **streamed})) for b in (fast, slow)
            ]
    sent = upstream.state.bodies
    assert sent[0] == {**fast, "model": "gpt-x"}
    assert sent[1] == sent[0]
    assert sent[2] == {**sent[0], **streamed} == sent[3]
    assert [a.status_code for a in answers + streams] == [200] * 4
    assert [a.headers["x-orchestrator-deployment"] for a in answers + streams] == ["gpt"] * 4
    boundaries = [a.headers["x-orchestrator-boundary"] for a in answers + streams]
    assert boundaries == ["session_start", "tool_loop", "tool_loop", "tool_loop"]
    bodies = [a.json() for a in answers]
    for body in bodies:
        assert body.pop("id").startswith("chatcmpl-")
        assert isinstance(body.pop("created"), int)
    assert bodies[0] == bodies[1]
    assert bodies[0]["model"] == "gpt"
    assert bodies[0]["choices"][0]["message"] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [_UPSTREAM_ANSWER["choices"][0]["message"]["tool_calls"][0]],
    }
    assert bodies[0]["usage"] == {
        "prompt_tokens": 120,
        "completion_tokens": 9,
        "total_tokens": 129,
        "prompt_tokens_details": {"cached_tokens": 64, "cache_write_tokens": 0},
    }
    events = [_events(s.content) for s in streams]
    assert events[0] == events[1]
    assert events[0][-1] == "data: [DONE]"
    assert {e["model"] for e in events[0][:-1]} == {"gpt"}
    assert events[0][-2]["usage"] == bodies[0]["usage"]
    deltas = [e["choices"][0]["delta"] for e in events[0][:-1] if e["choices"]]
    assert [d["tool_calls"][0]["function"] for d in deltas if "tool_calls" in d] == [
        {"name": "lookup", "arguments": '{"n": 9}'}
    ]
    rows = await _audited(store_url)
    assert [r["api"] for r in rows] == ["openai"] * 4
    assert [r["stream"] for r in rows] == [False, False, True, True]
    assert [(r["input_tokens"], r["output_tokens"]) for r in rows] == [(120, 9)] * 4
    assert [r["cached_input_tokens"] for r in rows] == [64] * 4


async def _audited(store_url: str) -> list[dict[str, Any]]:
    """The audit rows of the gateway's model calls, their payload and token counts."""
    async with await Store.open(store_url) as store:
        events = await store.list_events("gw:acme:s", kind=EventKind.MODEL_CALL)
    return [
        {**e.payload, "input_tokens": e.input_tokens, "output_tokens": e.output_tokens}
        for e in events
    ]


async def _messages(request: Request) -> JSONResponse:
    body = await request.json()
    request.app.state.bodies.append(body)
    return JSONResponse(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [{"type": "text", "text": "Found."}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 10, "output_tokens": 2},
        }
    )


async def test_a_forwardable_body_to_the_other_api_is_translated(store_url: str) -> None:
    upstream = Starlette(routes=[Route("/v1/messages", _messages, methods=["POST"])])
    upstream.state.bodies = []
    body: Any = {"model": "auto", "messages": _CONVERSATION, "max_tokens": 64}
    assert forwardable(body) is not None
    async with (
        await Store.open(store_url) as store,
        one_deployment(upstream, store, "anthropic", "sonnet", "claude-x") as client,
    ):
        answer = await client.chat.completions.create(**body)
    sent = upstream.state.bodies[0]
    assert sent["model"] == "claude-x"
    assert sent["system"] == "You look things up."
    assert sent["messages"][1]["content"][0]["type"] == "tool_use"
    assert sent["messages"][2]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": "call_0",
        "content": "ok",
    }
    assert answer.model == "sonnet"
    assert answer.choices[0].message.content == "Found."
