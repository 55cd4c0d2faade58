"""Chat completions to chat completions: the forwarded body and the relayed answer.

The fast path must send what the full path sends and answer what it answers: a forwarded
body is the JSON the full path would write (the client's own where the full path writes it
so, the fields it drops or rewrites dropped or rewritten alike), the facts read in its
pass (session opening, tool loop, last user text) are those of the parsed conversation,
and a relayed answer renders as the adapter's `ModelResponse` renders. Bodies the `openai`
SDK, LiteLLM, the Agents SDK and pydantic-ai sent through the gateway (`sdk_bodies.json`) are
forwarded. Served end to end, the same upstream answer reaches the client the same through
both paths, streamed or not, and a deployment of the other API still gets its own format.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from gw_harness import TOKEN, one_deployment
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from relay_paths import paths_taken
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


_PLAIN_CALL: Any = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}
_CALLS: Any = {"tool_calls": [_PLAIN_CALL]}


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
            # What SDKs send back of an answer: no `content`, or the fields it left null.
            {"role": "assistant", "tool_calls": [_PLAIN_CALL]},
            {"role": "assistant", "content": "sure", "name": "bot"},
            {"role": "assistant", "content": None, "refusal": None, "audio": None, **_CALLS},
            {"role": "assistant", "content": None, "annotations": None, "function_call": None},
            {"role": "assistant", "content": "x", "tool_calls": None},
            {"role": "assistant", "content": "x", "tool_calls": []},
            {"role": "assistant", "content": [{"type": "text", "text": "a"}], **_CALLS},
            {"role": "assistant", "content": None, "refusal": "no", **_CALLS},
            {"role": "assistant", "content": None, "function_call": {"name": "f"}},
            {"role": "assistant", "content": None, "tool_calls": "x"},
            {"role": "assistant", "content": 3},
            {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "ok"}]},
            {"role": "tool", "tool_call_id": "call_1"},
            {"role": "tool", "tool_call_id": "call_1", "content": "ok", "name": 3},
            {"role": "system", "content": [{"type": "text", "text": "a", "cache_control": {}}]},
            {"role": "user", "content": []},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
            {"role": "user", "content": [{"type": "text", "text": 3}]},
            {"role": "developer", "content": [{"type": "text", "text": "be brief"}], "name": "d"},
            {"role": "developer", "content": "x", "tool_calls": []},
            {"role": ["user"], "content": "x"},
        ]
    )
    return st.one_of(spoken, assistant, tool, tool, st.one_of(odd), st.one_of(odd))


_TOOL: Any = {
    "type": "function",
    "function": {"name": "lookup", "description": "Look up", "parameters": {"type": "object"}},
}
_STRICT: Any = {
    "type": "function",
    "function": {**_TOOL["function"], "strict": True},
}
_EXTRA: list[dict[str, Any]] = [
    {"max_tokens": 64},
    {"temperature": 0},
    {"temperature": 0.5, "max_tokens": 8},
    {"tools": [_TOOL]},
    {"stream": False},
    {"stream": True, "stream_options": {"include_usage": True}},
    {"stream": "yes"},
    {"tools": []},
    {"tools": None},
    {"tools": [{"type": "function", "function": {"name": "f"}}]},
    {"max_completion_tokens": 8},
    {"stream": True},
    {"stream_options": None},
    {"user": "ann"},
    # What agent frameworks send (sdk_bodies.json), and what comes near it.
    {"tools": [_STRICT, _TOOL]},
    {"tools": [_TOOL, {"type": "function", "function": {"name": "f", "strict": False}}]},
    {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]},
    {"tools": [{"type": "function", "function": {"name": "f", "description": None}}]},
    {"tools": [{"type": "function", "function": {**_TOOL["function"], "strict": "yes"}}]},
    {"tools": [{"type": "function", "function": {**_TOOL["function"], "parameters": "x"}}]},
    {"tools": [{"type": "function", "function": {**_TOOL["function"], "description": 3}}]},
    {"tools": [{"function": _TOOL["function"]}]},
    {"tool_choice": "auto"},
    {"tool_choice": {"type": "function", "function": {"name": "lookup"}}},
    {"parallel_tool_calls": True},
    {"store": False},
    {"top_p": 0.9},
    {"response_format": {"type": "json_object"}},
    {"max_completion_tokens": 256, "max_tokens": 64},
    {"max_completion_tokens": None, "max_tokens": 64},
    {"max_completion_tokens": 0},
    {"max_tokens": None},
    {"max_tokens": True},
    {"temperature": None},
    {"temperature": 1},
    {"temperature": "hot"},
    {"seed": 7, "stop": ["\n"], "metadata": {"k": "v"}},
    {"n": 1},
    {"previous_response_id": "resp_1"},
    # The parameters the full path carries, in the shapes it accepts and some it does not.
    {"tool_choice": "required", "parallel_tool_calls": False},
    {"tool_choice": "none"},
    {"tool_choice": "any"},
    {"tool_choice": {"type": "function", "function": {"name": "f"}, "x": 1}},
    {"tool_choice": {"type": "function", "function": {"name": 3}}},
    {"parallel_tool_calls": "no"},
    {"response_format": {"type": "json_schema", "json_schema": {"name": "Out", "strict": True}}},
    {"response_format": {"type": "json_schema"}},
    {"response_format": {"type": "xml"}},
    {"response_format": {"type": "text"}},
    {"stop": "\n"},
    {"stop": []},
    {"stop": ["a", 3]},
    {"seed": True},
    {"seed": -3},
    {"seed": 1.5},
    {"top_p": 1, "frequency_penalty": 0.5, "presence_penalty": -1},
    {"top_p": "x"},
    {"user": 3},
    {"tools": [{"type": "function", "function": {"name": "f", "strict": None}}]},
]
_EXTRAS = st.lists(st.sampled_from(_EXTRA), max_size=3).map(
    lambda extras: {k: v for extra in extras for k, v in extra.items()}
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
    sent = copy.deepcopy(body)
    forward = forwardable(body)
    assert body == sent
    try:
        _request(body)
    except Exception:
        assert forward is None
        return
    if forward is None:
        return
    _same_as_the_full_paths(body, forward)


def _same_as_the_full_paths(body: Any, forward: Any) -> None:
    """The forwarded body is the full path's upstream JSON (up to the order of its keys:
    the numbers' types too), and the facts read in its pass are the parsed request's."""
    _, request = _request(body)
    wire = _request_to_wire(request.model_copy(update={"model": "served"}))
    forwarded = {**forward.body, "model": "served"}
    assert json.dumps(forwarded, sort_keys=True) == json.dumps(wire, sort_keys=True)
    assert forward.looping == in_tool_loop(request.messages)
    assert forward.opening == opening(request.messages)
    assert forward.prompt == _last_user_text(request.messages)
    call = parse_chat(body)
    assert call.forward == forward
    assert call.request == request
    assert "stream" not in forward.body and "stream_options" not in forward.body
    stream = body.get("stream") is True
    assert (call.requested, call.stream, call.previous_response_id) == (body["model"], stream, None)


_SAID: Any = [{"role": "user", "content": "x"}]


@pytest.mark.parametrize(
    "body",
    [
        {"model": "m", "messages": _SAID, "stream": 1},
        {"model": "m", "messages": _SAID, "temperature": True},
        {"model": "m", "messages": _SAID, "n": 2},
        {"model": "m", "messages": _SAID, "logprobs": True},
        {"model": "m", "messages": [{"role": "user", "content": None}]},
        {"model": "m", "messages": [{"role": "assistant", "content": None, "refusal": "no"}]},
        {"model": "m", "messages": [{"role": "assistant", "content": None, "audio": {"id": "a"}}]},
        {"model": "m", "messages": [{"role": "tool", "tool_call_id": "c", "content": None}]},
        {"model": "", "messages": _SAID},
        {"model": "m", "messages": []},
        {"model": "m", "messages": _SAID, "previous_response_id": "r"},
    ],
)
def test_what_the_full_path_reads_otherwise_or_refuses_is_not_forwarded(body: Any) -> None:
    assert forwardable(body) is None


_SDK_BODIES: Any = json.loads((Path(__file__).parent / "sdk_bodies.json").read_text())


@pytest.mark.parametrize("sent", _SDK_BODIES, ids=[b["client"][:40] for b in _SDK_BODIES])
def test_what_agent_frameworks_send_is_forwarded_as_the_full_path_would_send_it(
    sent: Any,
) -> None:
    body = sent["body"]
    forward = forwardable(body)
    assert forward is not None
    _same_as_the_full_paths(body, forward)
    assert forward.body["messages"] is body["messages"] or any(
        "content" not in m or "refusal" in m for m in body["messages"]
    )


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


async def test_both_paths_send_and_answer_the_same_streamed_or_not(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    upstream = Starlette(routes=[Route("/v1/chat/completions", _chat, methods=["POST"])])
    upstream.state.bodies = []
    strict: Any = {"type": "function", "function": {**_TOOL["function"], "strict": True}}
    carried: Any = {"tool_choice": "auto", "parallel_tool_calls": True, "tools": [strict]}
    fast: Any = {"model": "auto", "messages": _CONVERSATION, **carried, "max_tokens": 64}
    # The same conversation as agent frameworks write it: text parts (joined by the full
    # path), the assistant's message without `content`, `store`, `max_completion_tokens`.
    parts = [{"type": "text", "text": "Find"}, {"type": "text", "text": " it."}]
    asked = {k: v for k, v in _CONVERSATION[2].items() if k != "content"}
    sdk: Any = {
        "model": "auto",
        "stream": False,
        "messages": [
            {"content": [{"type": "text", "text": "You look things up."}], "role": "system"},
            {"role": "user", "content": parts},
            asked,
            _CONVERSATION[3],
        ],
        **carried,
        "store": False,
        "max_completion_tokens": 64,
    }
    # A field the full path drops and the forwarding pass does not know: the full path.
    slow: Any = {**fast, "n": 1}
    streamed: Any = {"stream": True, "stream_options": {"include_usage": True}}
    for body in (fast, sdk):
        assert forwardable(body) is not None and forwardable({**body, **streamed}) is not None
    assert forwardable(slow) is None and forwardable({**slow, **streamed}) is None
    taken = paths_taken(monkeypatch)
    async with (
        await Store.open(store_url) as store,
        one_deployment(upstream, store, "openai", "gpt", "gpt-x") as client,
    ):
        base = str(client.base_url)
        headers = {"authorization": f"Bearer {TOKEN}", "x-session-id": "s"}
        async with httpx.AsyncClient(base_url=base, headers=headers) as http:
            answers = [(await http.post("chat/completions", json=b)) for b in (fast, sdk, slow)]
            streams = [
                (await http.post("chat/completions", json={**b, **streamed}))
                for b in (fast, sdk, slow)
            ]
    assert taken == ["relay", "relay", "complete"] * 2
    sent = upstream.state.bodies
    assert sent[0] == {**fast, "model": "gpt-x"} == sent[2]
    # The SDK's limit goes under the name it gave, and its `store` goes on.
    limited = {k: v for k, v in sent[0].items() if k != "max_tokens"}
    assert sent[1] == {**limited, "max_completion_tokens": 64, "store": False}
    assert sent[3] == {**sent[0], **streamed} == sent[5]
    assert sent[4] == {**sent[1], **streamed}
    assert len({json.dumps(b, sort_keys=True) for b in sent[:3:2]}) == 1
    assert [a.status_code for a in answers + streams] == [200] * 6
    assert [a.headers["x-orchestrator-deployment"] for a in answers + streams] == ["gpt"] * 6
    boundaries = [a.headers["x-orchestrator-boundary"] for a in answers + streams]
    assert boundaries == ["session_start"] + ["tool_loop"] * 5
    bodies = [a.json() for a in answers]
    for body in bodies:
        assert body.pop("id").startswith("chatcmpl-")
        assert isinstance(body.pop("created"), int)
    assert bodies[0] == bodies[1] == bodies[2]
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
    assert events[0] == events[1] == events[2]
    assert events[0][-1] == "data: [DONE]"
    assert {e["model"] for e in events[0][:-1]} == {"gpt"}
    assert events[0][-2]["usage"] == bodies[0]["usage"]
    deltas = [e["choices"][0]["delta"] for e in events[0][:-1] if e["choices"]]
    assert [d["tool_calls"][0]["function"] for d in deltas if "tool_calls" in d] == [
        {"name": "lookup", "arguments": '{"n": 9}'}
    ]
    rows = await _audited(store_url)
    assert [r["api"] for r in rows] == ["openai"] * 6
    assert [r["stream"] for r in rows] == [False] * 3 + [True] * 3
    assert [(r["input_tokens"], r["output_tokens"]) for r in rows] == [(120, 9)] * 6
    assert [r["cached_input_tokens"] for r in rows] == [64] * 6
    # The first opened the session; after it, the rows of both paths are the same.
    assert rows[1] == rows[2] and rows[3] == rows[4] == rows[5]


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
