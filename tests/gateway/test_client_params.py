"""A client's sampling and tool parameters reach the model, or the request is refused.

Official SDKs as clients, through the gateway to a loopback endpoint that keeps what it is
sent: the `openai` SDK's `tool_choice`, `response_format`, `stop`, `seed` (and the rest)
reach a chat-completions deployment as sent, whether the body is forwarded or rewritten;
the `anthropic` SDK's `tool_choice` and `stop_sequences` reach it translated; the OpenAI
Agents SDK's `output_type` reaches it as a `json_schema` `response_format`. A parameter the
deployment's API has no equivalent of (a JSON schema for Anthropic, `top_k` for OpenAI) is
refused with a 400 in the client's own error format, and nothing is sent or stored.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from agents import Agent, OpenAIChatCompletionsModel, Runner, set_tracing_disabled
from gw_harness import TOKEN, keys, one_deployment
from pydantic import BaseModel
from relay_paths import paths_taken
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from orchestrator.gateway import Gateway, GatewaySettings
from orchestrator.gateway.server import gateway_server
from orchestrator.providers.registry import ModelRegistry
from orchestrator.scripted_model import LoopbackServer
from orchestrator.store import Store
from orchestrator.store.records import EventKind

_ANSWER = '{"order_id": "7", "refunded": true}'


@contextlib.asynccontextmanager
async def _anthropic_to(
    store_url: str, upstream: Starlette, kind: str, name: str, model: str
) -> AsyncIterator[tuple[Store, anthropic.AsyncAnthropic]]:
    """The store and an `anthropic` client of a gateway whose one deployment is `upstream`."""
    async with (
        await Store.open(store_url) as store,
        one_deployment(upstream, store, kind, name, model) as client,
    ):
        root = str(client.base_url).removesuffix("/v1/")
        async with anthropic.AsyncAnthropic(base_url=root, api_key=TOKEN, max_retries=0) as ac:
            yield store, ac


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"


_CHAT: Any = {
    "id": "up",
    "object": "chat.completion",
    "created": 1,
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": _ANSWER}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29},
}
_MESSAGE: Any = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "content": [{"type": "text", "text": _ANSWER}],
    "stop_reason": "end_turn",
    "usage": {"input_tokens": 10, "output_tokens": 4},
}


async def _answer(request: Request) -> JSONResponse:
    """Chat completions or Messages, as the path says, answering JSON text; the endpoint
    keeps every body it is sent. Model `down` fails."""
    body = await request.json()
    request.app.state.bodies.append(body)
    request.app.state.betas.append(request.headers.get("anthropic-beta"))
    if body["model"] == "down":
        return JSONResponse({"error": {"message": "down"}}, status_code=500)
    shape = _MESSAGE if request.url.path.endswith("/messages") else _CHAT
    return JSONResponse({**shape, "model": body["model"]})


def _upstream(*paths: str) -> Starlette:
    app = Starlette(routes=[Route(f"/v1/{path}", _answer, methods=["POST"]) for path in paths])
    app.state.bodies = []
    app.state.betas = []
    return app


_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Look an order up.",
        "parameters": {"type": "object", "properties": {"id": {"type": "string"}}},
        "strict": True,
    },
}
_SCHEMA: Any = {
    "type": "json_schema",
    "json_schema": {
        "name": "Refund",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"order_id": {"type": "string"}, "refunded": {"type": "boolean"}},
            "required": ["order_id", "refunded"],
            "additionalProperties": False,
        },
    },
}
_ASKED: Any = [{"role": "user", "content": "Refund order 7"}]
_JSON_MODE: Any = {"type": "json_object"}


async def test_openai_sdk_parameters_reach_a_chat_completions_deployment_on_both_paths(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    upstream = _upstream("chat/completions")
    taken = paths_taken(monkeypatch)
    sent: Any = {
        "tool_choice": "required",
        "response_format": _SCHEMA,
        "stop": ["\n\n", "END"],
        "seed": 42,
        "top_p": 0.5,
        "parallel_tool_calls": False,
        "user": "ann",
        "frequency_penalty": 0.25,
        "presence_penalty": -0.5,
        "reasoning_effort": "minimal",
        "metadata": {"team": "refunds"},
        "store": True,
        "service_tier": "flex",
        "logit_bias": {"50256": -100, "11": 2.5},
        "max_completion_tokens": 99,
        "prompt_cache_key": "refunds-v1",
        "safety_identifier": "user-4f2a",
        "verbosity": "low",
    }
    async with (
        await Store.open(store_url) as store,
        one_deployment(upstream, store, "openai", "gpt", "gpt-x") as client,
    ):
        for extra in ({}, {"n": 1}):  # `n` is read by the full path only: not forwarded
            answer = await client.chat.completions.create(
                model="gpt", messages=_ASKED, tools=[_TOOL], extra_body=extra, **sent
            )
            assert answer.choices[0].message.content == _ANSWER
        named = {"type": "function", "function": {"name": "lookup"}}
        await client.chat.completions.create(
            model="gpt", messages=_ASKED, tools=[_TOOL], tool_choice=named, stop="END"
        )
    assert taken == ["relay", "complete", "relay"]
    forwarded, rewritten, third = upstream.state.bodies
    assert forwarded == rewritten
    assert {k: forwarded[k] for k in sent} == sent
    assert "max_tokens" not in forwarded
    assert forwarded["tools"] == [_TOOL]
    assert third["tool_choice"] == named
    assert third["stop"] == ["END"]


async def test_anthropic_sdk_tool_choice_and_stop_sequences_reach_an_openai_deployment(
    store_url: str,
) -> None:
    upstream = _upstream("chat/completions")
    tool: Any = {
        "name": "lookup",
        "description": "Look an order up.",
        "input_schema": {"type": "object", "properties": {"id": {"type": "string"}}},
    }
    async with _anthropic_to(store_url, upstream, "openai", "gpt", "gpt-x") as (_store, ac):
        answer = await ac.messages.create(
            model="gpt",
            max_tokens=64,
            messages=_ASKED,
            tools=[tool],
            tool_choice={"type": "any"},
            stop_sequences=["END"],
            metadata={"user_id": "ann"},
            extra_body={"top_p": 0.5},  # not a keyword of this SDK's version
        )
        await ac.messages.create(
            model="gpt",
            max_tokens=64,
            messages=_ASKED,
            tools=[tool],
            tool_choice={"type": "tool", "name": "lookup", "disable_parallel_tool_use": True},
        )
    assert answer.content[0].type == "text"
    first, second = upstream.state.bodies
    assert first["tool_choice"] == "required"
    assert (first["stop"], first["top_p"], first["user"]) == (["END"], 0.5, "ann")
    assert "parallel_tool_calls" not in first
    assert second["tool_choice"] == {"type": "function", "function": {"name": "lookup"}}
    assert second["parallel_tool_calls"] is False


async def test_openai_sdk_parameters_reach_an_anthropic_deployment_translated(
    store_url: str,
) -> None:
    upstream = _upstream("messages")
    async with (
        await Store.open(store_url) as store,
        one_deployment(upstream, store, "anthropic", "sonnet", "claude-x") as client,
    ):
        await client.chat.completions.create(
            model="sonnet",
            messages=_ASKED,
            tools=[_TOOL],
            tool_choice="required",
            parallel_tool_calls=False,
            stop="END",
            top_p=0.5,
            user="ann",
        )
    (body,) = upstream.state.bodies
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert (body["stop_sequences"], body["top_p"]) == (["END"], 0.5)
    assert body["metadata"] == {"user_id": "ann"}
    assert body["tools"][0]["strict"] is True


async def _refused_messages(
    store_url: str, upstream: Starlette, kind: str, beta: bool = False, **asked: Any
) -> tuple[str, list[Any]]:
    """The message of the 400 an `anthropic` client (its beta API's, with `beta`) gets for
    `asked`, in Anthropic's error shape, and the events stored."""
    async with _anthropic_to(store_url, upstream, kind, "dep", "model-x") as (store, ac):
        create: Any = ac.beta.messages.create if beta else ac.messages.create
        with pytest.raises(anthropic.BadRequestError) as caught:
            await create(model="dep", max_tokens=64, messages=_ASKED, **asked)
        events = await store.reports.events(list(EventKind))
    body: Any = caught.value.body
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    return str(body["error"]["message"]), list(events)


def _refused(message: str) -> str:
    """The parameters a refusal names: its text between "no equivalent of " and ":"."""
    return message.split("no equivalent of ")[1].split(":")[0]


_NO_EQUIVALENT: Any = {
    "response_format": {"type": "json_object"},
    "seed": 7,
    "reasoning_effort": "minimal",
    "metadata": {"team": "refunds"},
    "store": True,
    "service_tier": "flex",
    "logit_bias": {"11": 1},
    "verbosity": "low",
}
"""What Anthropic's Messages API has no equivalent of (in `params.PARAMS`' order): JSON
mode (a schema it has), `seed`, the `minimal` effort, tags on a stored completion (it
stores none), the flex tier, token biases, GPT-5's verbosity."""


async def test_what_anthropic_has_no_equivalent_of_is_refused_in_openais_shape(
    store_url: str,
) -> None:
    upstream = _upstream("messages")
    async with (
        await Store.open(store_url) as store,
        one_deployment(upstream, store, "anthropic", "sonnet", "claude-x") as client,
    ):
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(model="sonnet", messages=_ASKED, **_NO_EQUIVALENT)
        events = await store.reports.events(list(EventKind))
    error: Any = caught.value.body
    assert caught.value.status_code == 400 and error["type"] == "invalid_request_error"
    message = error["message"]
    assert "'sonnet'" in message and "Anthropic Messages API" in message
    said = _refused(message)
    assert said.split(", ") == list(_NO_EQUIVALENT)
    assert "without them" in message
    assert upstream.state.bodies == []
    assert events == []


async def test_top_k_for_an_openai_deployment_is_refused_in_anthropics_shape(
    store_url: str,
) -> None:
    upstream = _upstream("chat/completions")
    message, events = await _refused_messages(
        store_url, upstream, "openai", extra_body={"top_k": 5}, inference_geo="eu", speed="fast"
    )
    said = _refused(message)
    assert said == "top_k, inference_geo, speed" and "'dep'" in message
    assert upstream.state.bodies == []
    assert events == []


async def test_anthropic_metadata_other_than_user_id_is_refused_not_dropped(
    store_url: str,
) -> None:
    upstream = _upstream("chat/completions")
    async with _anthropic_to(store_url, upstream, "openai", "gpt", "gpt-x") as (_store, ac):
        tags: Any = {"user_id": "ann", "team": "refunds"}
        with pytest.raises(anthropic.BadRequestError) as caught:
            await ac.messages.create(model="gpt", max_tokens=64, messages=_ASKED, metadata=tags)
    body: Any = caught.value.body
    assert body["error"]["message"].startswith("body.metadata.team: ")
    assert upstream.state.bodies == []


class Refund(BaseModel):
    order_id: str
    refunded: bool


async def test_an_agents_sdk_output_type_reaches_the_deployment_as_its_json_schema(
    store_url: str,
) -> None:
    set_tracing_disabled(True)
    upstream = _upstream("chat/completions")
    async with (
        await Store.open(store_url) as store,
        one_deployment(upstream, store, "openai", "gpt", "gpt-x") as client,
    ):
        agent = Agent(
            name="refunds",
            instructions="You refund orders.",
            model=OpenAIChatCompletionsModel(model="gpt", openai_client=client),
            output_type=Refund,
        )
        result = await Runner.run(agent, "Refund order 7")
    assert result.final_output == Refund(order_id="7", refunded=True)
    (body,) = upstream.state.bodies
    wanted = body["response_format"]
    assert wanted["type"] == "json_schema"
    assert wanted["json_schema"]["schema"]["required"] == ["order_id", "refunded"]
    assert wanted["json_schema"]["strict"] is True


async def test_the_router_and_failover_pass_over_a_deployment_that_cannot_take_them(
    store_url: str,
) -> None:
    """`best` always fails; `sonnet` (Anthropic) is the next best, but has no JSON mode:
    a request for it fails over to `gpt` instead, and `sonnet` is never sent it."""
    both = _upstream("chat/completions", "messages")
    async with LoopbackServer(both) as fake, await Store.open(store_url) as store:
        registry = ModelRegistry.model_validate(
            {
                "providers": {
                    "a": {"kind": "anthropic", "base_url": f"{fake.url}/v1"},
                    "o": {"kind": "openai", "base_url": f"{fake.url}/v1"},
                },
                "models": {
                    "best": {"provider": "o", "model": "down", "quality": {"default": 1.0}},
                    "sonnet": {"provider": "a", "model": "claude-x", "quality": {"default": 0.9}},
                    "gpt": {"provider": "o", "model": "gpt-x", "quality": {"default": 0.1}},
                },
                "aliases": {"pair": {"deployments": ["sonnet", "gpt"]}},
                "default_model": "sonnet",
            }
        )
        gateway = Gateway(registry, keys(), store, GatewaySettings(retry_backoff_seconds=0.0))
        try:
            async with (
                gateway_server(gateway) as server,
                openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key=TOKEN) as client,
            ):
                answers = [
                    await client.chat.completions.with_raw_response.create(
                        model=model, messages=_ASKED, **extra
                    )
                    for model, extra in [
                        ("pair", {}),
                        ("pair", {"response_format": _JSON_MODE}),
                        ("auto", {"response_format": _JSON_MODE}),
                    ]
                ]
        finally:
            await gateway.aclose()
    deployments = [a.headers["x-orchestrator-deployment"] for a in answers]
    assert deployments == ["sonnet", "gpt", "gpt"]
    assert answers[2].headers["x-orchestrator-failover-from"] == "best"
    to = [b["model"] for b in both.state.bodies]
    assert to.count("claude-x") == 1 and to.count("gpt-x") == 2
    assert all(
        b["response_format"] == _JSON_MODE for b in both.state.bodies if b["model"] != "claude-x"
    )


@pytest.mark.parametrize(
    "asked",
    [
        {"n": 2},
        {"logprobs": True, "top_logprobs": 2},
        {"functions": [_TOOL["function"]]},
        {"function_call": "auto"},
        {"modalities": ["text", "audio"], "audio": {"voice": "alloy", "format": "wav"}},
        {"prediction": {"type": "content", "content": "Order 7"}},
        {"web_search_options": {}},
    ],
)
async def test_what_the_gateway_does_not_carry_of_the_answer_is_refused(
    store_url: str, asked: dict[str, Any]
) -> None:
    upstream = _upstream("chat/completions")
    async with (
        await Store.open(store_url) as store,
        one_deployment(upstream, store, "openai", "gpt", "gpt-x") as client,
    ):
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(model="gpt", messages=_ASKED, **asked)
        await client.chat.completions.create(model="gpt", messages=_ASKED, n=1, logprobs=False)
    error: Any = caught.value.body
    assert error["message"].startswith(f"body.{next(iter(asked))}: the gateway")
    assert len(upstream.state.bodies) == 1


async def test_openai_sdk_schema_effort_and_tier_reach_an_anthropic_deployment_translated(
    store_url: str,
) -> None:
    upstream = _upstream("messages")
    async with (
        await Store.open(store_url) as store,
        one_deployment(upstream, store, "anthropic", "sonnet", "claude-x") as client,
    ):
        answer = await client.chat.completions.create(
            model="sonnet",
            messages=_ASKED,
            response_format=_SCHEMA,
            reasoning_effort="high",
            service_tier="default",
            store=False,
            metadata={},
            max_completion_tokens=300,
            safety_identifier="user-4f2a",
            prompt_cache_key="refunds-v1",
        )
        await client.chat.completions.create(
            model="sonnet", messages=_ASKED, reasoning_effort="none", service_tier="auto"
        )
    assert answer.choices[0].message.content == _ANSWER
    first, second = upstream.state.bodies
    schema = _SCHEMA["json_schema"]["schema"]
    assert first["output_config"] == {
        "format": {"type": "json_schema", "schema": schema},
        "effort": "high",
    }
    assert (first["service_tier"], first["max_tokens"]) == ("standard_only", 300)
    # The end user's id is Anthropic's; it caches at the breakpoints, with no key.
    assert first["metadata"] == {"user_id": "user-4f2a"}
    for absent in ("response_format", "store", "thinking", "reasoning_effort", "prompt_cache_key"):
        assert absent not in first
    assert second["thinking"] == {"type": "disabled"} and "output_config" not in second
    assert second["service_tier"] == "auto"


_OUTPUT: Any = {
    "type": "object",
    "properties": {"order_id": {"type": "string"}},
    "required": ["order_id"],
    "additionalProperties": False,
}


async def test_anthropic_sdk_schema_thinking_and_tier_reach_an_openai_deployment_translated(
    store_url: str,
) -> None:
    upstream = _upstream("chat/completions")
    async with _anthropic_to(store_url, upstream, "openai", "gpt", "gpt-x") as (_store, ac):
        await ac.messages.create(
            model="gpt",
            max_tokens=20000,
            messages=_ASKED,
            output_config={"format": {"type": "json_schema", "schema": _OUTPUT}},
            thinking={"type": "enabled", "budget_tokens": 8000},
            service_tier="standard_only",
            cache_control={"type": "ephemeral"},
        )
        await ac.messages.create(
            model="gpt",
            max_tokens=64,
            messages=_ASKED,
            output_config={"effort": "xhigh"},
            thinking={"type": "adaptive"},
        )
        await ac.messages.create(
            model="gpt", max_tokens=64, messages=_ASKED, thinking={"type": "adaptive"}
        )
        with pytest.raises(anthropic.BadRequestError) as caught:
            await ac.messages.create(
                model="gpt", max_tokens=64, messages=_ASKED, thinking={"type": "disabled"}
            )
    first, second, third = upstream.state.bodies
    assert first["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": _OUTPUT, "strict": True},
    }
    # A budget of 8,000 thinking tokens is the `medium` band; a reasoning model takes its
    # limit only as `max_completion_tokens`.
    assert (first["reasoning_effort"], first["service_tier"]) == ("medium", "default")
    assert first["max_completion_tokens"] == 20000 and "max_tokens" not in first
    assert "thinking" not in first and "output_config" not in first
    assert "cache_control" not in first  # OpenAI caches by itself
    assert second["reasoning_effort"] == "xhigh"
    assert "reasoning_effort" not in third and third["max_tokens"] == 64
    body: Any = caught.value.body
    assert "thinking" in body["error"]["message"] and "'gpt'" in body["error"]["message"]


_THOUGHT: Any = {
    "type": "thinking",
    "thinking": "Order 7 first: look it up.",
    "signature": "EqQBCkYIARgCIkD0sig==",
}
_REDACTED: Any = {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"}


async def _thinks(request: Request) -> JSONResponse:
    """A Messages endpoint that thinks before it calls `lookup`, then answers: it keeps
    every body it is sent, and answers each with thinking blocks first, as Anthropic does."""
    body = await request.json()
    request.app.state.bodies.append(body)
    looked = any(
        isinstance(turn["content"], list)
        and any(b.get("type") == "tool_result" for b in turn["content"])
        for turn in body["messages"]
    )
    answer: list[Any] = [_THOUGHT]
    if looked:
        answer.append({"type": "text", "text": "Refunded."})
    else:
        answer += [
            _REDACTED,
            {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"id": "7"}},
        ]
    return JSONResponse(
        {
            **_MESSAGE,
            "model": body["model"],
            "content": answer,
            "stop_reason": "end_turn" if looked else "tool_use",
        }
    )


async def _ask(ac: anthropic.AsyncAnthropic, streamed: bool, **asked: Any) -> Any:
    """One Messages call, streamed (the message the SDK assembles) or not."""
    if not streamed:
        return await ac.messages.create(**asked)
    async with ac.messages.stream(**asked) as stream:
        return await stream.get_final_message()


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
async def test_thinking_blocks_survive_an_anthropic_clients_tool_loop(
    store_url: str, streamed: bool
) -> None:
    """The answer's thinking blocks reach the client with their signatures, and the client
    sends them back beside its tool call: the deployment is sent them unchanged, first in
    the assistant turn, as Anthropic requires with thinking on. `thinking` and an effort
    go on as they came. Streamed, they come after the other blocks (the adapter folds
    them), and go back first all the same."""
    upstream = Starlette(routes=[Route("/v1/messages", _thinks, methods=["POST"])])
    upstream.state.bodies = []
    tool: Any = {"name": "lookup", "description": "Look an order up.", "input_schema": {}}
    thinking: Any = {"type": "enabled", "budget_tokens": 2048}
    asked: Any = {"model": "sonnet", "max_tokens": 4096, "tools": [tool], "thinking": thinking}
    async with _anthropic_to(store_url, upstream, "anthropic", "sonnet", "claude-x") as (
        _store,
        ac,
    ):
        conversation: Any = list(_ASKED)
        first = await _ask(
            ac,
            streamed,
            **asked,
            messages=conversation,
            output_config={"effort": "low"},
            inference_geo="eu",
            speed="fast",
            cache_control={"type": "ephemeral", "ttl": "1h"},
        )
        conversation += [
            {"role": "assistant", "content": [b.model_dump() for b in first.content]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "paid"}],
            },
        ]
        second = await _ask(ac, streamed, **asked, messages=conversation)
    blocks = [b.model_dump() for b in first.content]
    thoughts = [b for b in blocks if b["type"] != "tool_use"]
    assert thoughts == [_THOUGHT, _REDACTED]
    assert [b["type"] for b in blocks].index("tool_use") == (0 if streamed else 2)
    assert sorted(b.type for b in second.content) == ["text", "thinking"]
    sent_first, sent_second = upstream.state.bodies
    assert sent_first["thinking"] == thinking and sent_first["output_config"] == {"effort": "low"}
    assert (sent_first["inference_geo"], sent_first["speed"]) == ("eu", "fast")
    assert sent_first["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert "cache_control" not in sent_second
    assistant = sent_second["messages"][1]
    assert assistant["role"] == "assistant"
    assert assistant["content"][:2] == [_THOUGHT, _REDACTED]
    assert assistant["content"][2]["type"] == "tool_use"


async def test_an_openai_client_is_not_sent_thinking_and_does_not_send_it_back(
    store_url: str,
) -> None:
    """Chat completions has no place for Anthropic's signed thinking: the OpenAI client
    gets the answer's text and tool calls, and its next call reaches the deployment
    without thinking blocks (Anthropic takes a turn without them when thinking is off)."""
    upstream = Starlette(routes=[Route("/v1/messages", _thinks, methods=["POST"])])
    upstream.state.bodies = []
    async with (
        await Store.open(store_url) as store,
        one_deployment(upstream, store, "anthropic", "sonnet", "claude-x") as client,
    ):
        first = await client.chat.completions.create(model="sonnet", messages=_ASKED, tools=[_TOOL])
        message = first.choices[0].message
        assert message.tool_calls and message.content is None
        await client.chat.completions.create(
            model="sonnet",
            messages=[
                *_ASKED,
                message.model_dump(exclude_none=True),
                {"role": "tool", "tool_call_id": "toolu_1", "content": "paid"},
            ],
            tools=[_TOOL],
        )
    assistant = upstream.state.bodies[1]["messages"][1]
    assert [b["type"] for b in assistant["content"]] == ["tool_use"]


async def _refused_chat(
    store_url: str, upstream: Starlette, kind: str, **asked: Any
) -> tuple[str, list[Any]]:
    """The message of the 400 an `openai` client gets for `asked`, and the events stored."""
    async with (
        await Store.open(store_url) as store,
        one_deployment(upstream, store, kind, "dep", "model-x") as client,
    ):
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(model="dep", messages=_ASKED, **asked)
        events = await store.reports.events(list(EventKind))
    error: Any = caught.value.body
    return str(error["message"]), list(events)


_CACHE: Any = {"prompt_cache_retention": "24h", "prompt_cache_options": {"mode": "explicit"}}


async def test_prompt_cache_options_reach_a_chat_completions_deployment_on_both_paths(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    upstream = _upstream("chat/completions")
    taken = paths_taken(monkeypatch)
    async with (
        await Store.open(store_url) as store,
        one_deployment(upstream, store, "openai", "gpt", "gpt-x") as client,
    ):
        for extra in ({}, {"n": 1}):  # `n` is read by the full path only: not forwarded
            await client.chat.completions.create(
                model="gpt", messages=_ASKED, prompt_cache_key="k", extra_body=extra, **_CACHE
            )
    assert taken == ["relay", "complete"]
    forwarded, rewritten = upstream.state.bodies
    assert forwarded == rewritten
    assert {k: forwarded[k] for k in _CACHE} == _CACHE


async def test_prompt_cache_retention_for_an_anthropic_deployment_is_refused(
    store_url: str,
) -> None:
    upstream = _upstream("messages")
    message, events = await _refused_chat(store_url, upstream, "anthropic", **_CACHE)
    said = _refused(message)
    assert said == "prompt_cache_retention, prompt_cache_options"
    assert upstream.state.bodies == []
    assert events == []


@pytest.mark.parametrize(
    ("asked", "why"),
    [
        ({"top_logprobs": 2}, "the gateway does not return log probabilities"),
        ({"moderation": {"model": "omni-moderation-latest"}}, "the gateway does not carry it"),
        ({"top_k": 5}, "a field of Anthropic's Messages API"),
        ({"thinking": {"type": "adaptive"}}, "a field of Anthropic's Messages API"),
        ({"context_management": {"edits": []}}, "a field of Anthropic's Messages API"),
    ],
)
async def test_a_chat_field_the_gateway_does_not_carry_is_refused_by_name(
    store_url: str, asked: dict[str, Any], why: str
) -> None:
    upstream = _upstream("chat/completions")
    message, events = await _refused_chat(store_url, upstream, "openai", extra_body=asked)
    assert message.startswith(f"body.{next(iter(asked))}: {why}")
    assert upstream.state.bodies == []
    assert events == []


async def test_a_vendor_extra_neither_api_defines_is_ignored(store_url: str) -> None:
    upstream = _upstream("chat/completions")
    async with (
        await Store.open(store_url) as store,
        one_deployment(upstream, store, "openai", "gpt", "gpt-x") as client,
    ):
        await client.chat.completions.create(
            model="gpt", messages=_ASKED, extra_body={"vendor_hint": 1}
        )
    (body,) = upstream.state.bodies
    assert "vendor_hint" not in body and body["messages"] == _ASKED


_BETA: Any = {
    "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]},
    "container": "container_1",
    "mcp_servers": [{"type": "url", "url": "https://mcp.example/sse", "name": "docs"}],
}
"""Beta Messages fields (`client.beta.messages.create`) that only Anthropic has."""


async def test_anthropic_beta_fields_reach_an_anthropic_deployment_as_sent(
    store_url: str,
) -> None:
    upstream = _upstream("messages")
    async with _anthropic_to(store_url, upstream, "anthropic", "dep", "claude-x") as (_, ac):
        answer = await ac.beta.messages.create(
            model="dep", max_tokens=64, messages=_ASKED, extra_body={"vendor_hint": 1}, **_BETA
        )
    assert answer.content[0].type == "text"
    (body,) = upstream.state.bodies
    assert {k: body[k] for k in _BETA} == _BETA
    assert "vendor_hint" not in body


async def test_an_anthropic_clients_betas_reach_an_anthropic_deployment(
    store_url: str,
) -> None:
    """Anthropic refuses a beta field without its beta: the client's `anthropic-beta`
    header goes on with the fields it is for (and no header when it named none)."""
    upstream = _upstream("messages", "chat/completions")
    betas = ["context-management-2025-06-27", "mcp-client-2025-04-04"]
    async with _anthropic_to(store_url, upstream, "anthropic", "dep", "claude-x") as (_, ac):
        await ac.beta.messages.create(
            model="dep", max_tokens=64, messages=_ASKED, betas=betas, **_BETA
        )
        await ac.messages.create(model="dep", max_tokens=64, messages=_ASKED)
    assert upstream.state.betas == [",".join(betas), None]
    async with _anthropic_to(store_url, upstream, "openai", "dep", "gpt-x") as (_, ac):
        await ac.beta.messages.create(model="dep", max_tokens=64, messages=_ASKED, betas=betas)
    assert upstream.state.betas[-1] is None  # Anthropic's feature names: not OpenAI's


async def test_anthropic_beta_fields_for_an_openai_deployment_are_refused_by_name(
    store_url: str,
) -> None:
    upstream = _upstream("chat/completions")
    message, events = await _refused_messages(store_url, upstream, "openai", beta=True, **_BETA)
    assert "'dep'" in message and "OpenAI" in message
    said = _refused(message)
    assert said == "container, context_management, mcp_servers"
    assert upstream.state.bodies == []
    assert events == []


async def test_a_chat_completions_field_sent_to_messages_is_refused_by_name(
    store_url: str,
) -> None:
    upstream = _upstream("messages")
    message, events = await _refused_messages(
        store_url, upstream, "anthropic", extra_body={"seed": 7}
    )
    assert message.startswith("body.seed: a field of OpenAI's chat completions")
    assert upstream.state.bodies == []
    assert events == []
