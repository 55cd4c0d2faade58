"""Faults a model script injects, met by the real OpenAI provider over loopback HTTP.

Each fault must reach the provider as the failure it imitates, mapped to the right
`ProviderError` (retryable or not), and `times` must run out so the answer follows.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from orchestrator.exceptions import (
    ConfigError,
    ProviderConnectionError,
    ProviderError,
    ProviderHTTPError,
    ProviderResponseError,
    ProviderTimeoutError,
)
from orchestrator.providers.messages import ChatMessage, ModelRequest
from orchestrator.providers.openai import OpenAIProvider
from orchestrator.scripted_model import ReplayScript, ScriptedModelServer, load_model_script

SCRIPT = ReplayScript.model_validate(
    {
        "conversations": [
            {
                "name": kind,
                "match": {"contains": f"fault {kind}"},
                "turns": [{"content": f"ok after {kind}", "fault": fault}],
            }
            for kind, fault in [
                ("s429", {"kind": "status", "status": 429, "retry_after": 1.5, "times": 1}),
                ("s500", {"kind": "status", "status": 500, "times": 2}),
                ("s400", {"kind": "status", "status": 400, "message": "bad request here"}),
                ("timeout", {"kind": "timeout", "times": 1}),
                ("reset", {"kind": "reset", "times": 1}),
                ("cut", {"kind": "cut", "times": 1}),
                ("truncated", {"kind": "bad_json", "times": 1}),
                ("garbage", {"kind": "bad_json", "body": "{]not json"}),
                ("onemodel", {"kind": "status", "status": 503, "model": "m-down"}),
                (
                    "gateway",
                    {
                        "kind": "status",
                        "status": 429,
                        "headers": {"llm_provider-retry-after": "120", "x-should-retry": "false"},
                    },
                ),
            ]
        ]
        + [
            {
                "name": "plain",
                "match": {"contains": "plain"},
                "turns": [{"content": "plain answer"}],
                "after_last": "repeat_last",
            },
            {
                "name": "huge",
                "match": {"contains": "fault huge"},
                "turns": [
                    {"tool_calls": [{"name": "t", "arguments": {"a": 1}, "pad_to": 3_000_000}]}
                ],
            },
        ]
    }
)


@pytest.fixture
async def replay() -> AsyncIterator[ScriptedModelServer]:
    async with ScriptedModelServer(SCRIPT) as server:
        yield server


def _ask(kind: str, model: str = "m") -> ModelRequest:
    return ModelRequest(model=model, messages=[ChatMessage(role="user", content=f"fault {kind}")])


async def _fails(replay: ScriptedModelServer, kind: str, *, timeout: float = 5.0) -> ProviderError:
    async with OpenAIProvider(base_url=replay.base_url, timeout=timeout) as provider:
        with pytest.raises(ProviderError) as caught:
            await provider.complete(_ask(kind))
    return caught.value


async def _answers(replay: ScriptedModelServer, kind: str, model: str = "m") -> str | None:
    async with OpenAIProvider(base_url=replay.base_url, timeout=5) as provider:
        response = await provider.complete(_ask(kind, model))
    return response.message.content


async def test_429_carries_retry_after_then_the_answer(replay: ScriptedModelServer) -> None:
    error = await _fails(replay, "s429")
    assert isinstance(error, ProviderHTTPError)
    assert (error.status_code, error.retry_after, error.retryable) == (429, 1.5, True)
    assert await _answers(replay, "s429") == "ok after s429"
    assert [(r.status, r.fault) for r in replay.requests] == [(429, "status"), (200, None)]


async def test_a_gateways_headers_reach_the_provider(replay: ScriptedModelServer) -> None:
    error = await _fails(replay, "gateway")
    assert isinstance(error, ProviderHTTPError)
    assert (error.retry_after, error.should_retry, error.retryable) == (120, False, False)


async def test_times_counts_down_then_the_answer_follows(replay: ScriptedModelServer) -> None:
    for _ in range(2):
        error = await _fails(replay, "s500")
        assert isinstance(error, ProviderHTTPError) and error.retryable
    assert await _answers(replay, "s500") == "ok after s500"


async def test_a_fault_without_times_never_lets_up(replay: ScriptedModelServer) -> None:
    for _ in range(3):
        error = await _fails(replay, "s400")
        assert isinstance(error, ProviderHTTPError) and not error.retryable
        assert "HTTP 400: bad request here" in str(error)


async def test_a_fault_for_one_model_spares_the_others(replay: ScriptedModelServer) -> None:
    async with OpenAIProvider(base_url=replay.base_url, timeout=5) as provider:
        with pytest.raises(ProviderHTTPError, match="HTTP 503"):
            await provider.complete(_ask("onemodel", "m-down"))
    assert await _answers(replay, "onemodel", "m-up") == "ok after onemodel"


async def test_timeout_holds_until_the_client_gives_up(replay: ScriptedModelServer) -> None:
    error = await _fails(replay, "timeout", timeout=0.3)
    assert isinstance(error, ProviderTimeoutError) and error.retryable
    assert await _answers(replay, "timeout") == "ok after timeout"


@pytest.mark.parametrize("kind", ["reset", "cut"])
async def test_a_broken_connection_is_a_retryable_connection_error(
    replay: ScriptedModelServer, kind: str
) -> None:
    error = await _fails(replay, kind)
    assert isinstance(error, ProviderConnectionError) and error.retryable
    assert await _answers(replay, kind) == f"ok after {kind}"
    assert replay.requests[0].fault == kind


@pytest.mark.parametrize("kind", ["truncated", "garbage"])
async def test_a_body_that_is_not_json_is_a_response_error(
    replay: ScriptedModelServer, kind: str
) -> None:
    error = await _fails(replay, kind)
    assert isinstance(error, ProviderResponseError) and not error.retryable
    assert "response is not JSON (HTTP 200" in str(error)


async def test_pad_to_makes_oversized_arguments(replay: ScriptedModelServer) -> None:
    async with OpenAIProvider(base_url=replay.base_url, timeout=5) as provider:
        response = await provider.complete(_ask("huge"))
    (call,) = response.message.tool_calls
    assert len(call.arguments_json) == 3_000_000
    assert call.arguments is not None and call.arguments["a"] == 1


async def test_the_latest_tool_results_are_recorded(replay: ScriptedModelServer) -> None:
    async with OpenAIProvider(base_url=replay.base_url, timeout=5) as provider:
        await provider.complete(
            ModelRequest(
                model="m",
                messages=[
                    ChatMessage(role="user", content="plain"),
                    ChatMessage(role="assistant", content="first round"),
                    ChatMessage(role="tool", tool_call_id="c1", content="an earlier result"),
                    ChatMessage(role="assistant", content="second round"),
                    ChatMessage(role="tool", tool_call_id="c2", content="ERROR: " + "e" * 5000),
                    ChatMessage(role="tool", tool_call_id="c3", content="{}"),
                ],
            )
        )
    (served,) = replay.requests
    assert served.tool_results == ["ERROR: " + "e" * 1993, "{}"]


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ({"kind": "status"}, "a status fault needs status"),
        ({"kind": "reset", "status": 500}, "status applies to status faults, not reset"),
        ({"kind": "status", "status": 503, "seconds": 2}, "seconds applies to timeout faults"),
        ({"kind": "bad_json", "retry_after": 1}, "retry_after applies to status faults"),
        ({"kind": "reset", "headers": {"a": "b"}}, "headers applies to status faults"),
        ({"kind": "status", "status": 200}, "greater than or equal to 400"),
        ({"kind": "flood"}, "Input should be 'status', 'timeout'"),
        ({"kind": "cut", "times": 0}, "greater than or equal to 1"),
    ],
)
def test_bad_faults_are_refused_naming_the_field(
    tmp_path: Path, fault: dict[str, object], message: str
) -> None:
    path = tmp_path / "faults.yaml"
    script = {"conversations": [{"name": "a", "turns": [{"content": "x", "fault": fault}]}]}
    path.write_text(json.dumps(script), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_model_script(path)
    assert str(caught.value).startswith(f"{path}: conversations.0.turns.0.fault")
    assert message in str(caught.value)


def test_pad_to_needs_structured_arguments(tmp_path: Path) -> None:
    path = tmp_path / "pad.yaml"
    call = {"name": "t", "arguments_raw": "{}", "pad_to": 10}
    script = {"conversations": [{"name": "a", "turns": [{"tool_calls": [call]}]}]}
    path.write_text(json.dumps(script), encoding="utf-8")
    with pytest.raises(ConfigError, match="pad_to needs arguments"):
        load_model_script(path)
