"""What real endpoints and gateways signal beyond the status line, over HTTP on loopback.

Retry hints in a gateway's headers, `x-should-retry`, an error inside a 200 body, and the
two spellings of Anthropic's base URL; for both adapters where the wire allows it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import anthropic
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orchestrator.exceptions import ProviderHTTPError, ProviderReportedError
from orchestrator.providers import AnthropicProvider, ChatMessage, ModelRequest, OpenAIProvider
from orchestrator.scripted_model import LoopbackServer
from orchestrator.types import JsonObject

KEY = "sk-test-secret-key"
REQUEST = ModelRequest(model="m", messages=[ChatMessage(role="user", content="hi")])


@contextlib.asynccontextmanager
async def _endpoint(
    status: int, body: JsonObject, headers: dict[str, str] | None = None
) -> AsyncIterator[tuple[str, list[str]]]:
    """A server that answers every POST with one response; yields its URL and the paths hit."""
    hits: list[str] = []

    async def answer(request: Request) -> Response:
        hits.append(request.url.path)
        return JSONResponse(body, status_code=status, headers=headers or {})

    app = Starlette(routes=[Route("/{path:path}", answer, methods=["POST"])])
    async with LoopbackServer(app) as server:
        yield server.url, hits


def _provider(kind: str, url: str) -> OpenAIProvider | AnthropicProvider:
    if kind == "openai":
        return OpenAIProvider(base_url=f"{url}/v1", api_key=KEY)
    return AnthropicProvider(base_url=f"{url}/v1", api_key=KEY)


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"llm_provider-retry-after": "120"}, 120.0),
        ({"x-ratelimit-reset-tokens": "6m0s", "x-ratelimit-remaining-tokens": "0"}, 360.0),
        ({"llm_provider-x-ratelimit-reset-requests": "20ms"}, 0.02),
    ],
)
async def test_a_gateways_retry_hint_is_read(
    kind: str, headers: dict[str, str], seconds: float
) -> None:
    body: JsonObject = {"error": {"message": "rate limited", "type": "rate_limit_error"}}
    async with _endpoint(429, body, headers) as (url, _), _provider(kind, url) as provider:
        with pytest.raises(ProviderHTTPError) as caught:
            await provider.complete(REQUEST)
    assert caught.value.retryable
    assert caught.value.retry_after == pytest.approx(seconds)


async def test_anthropic_reset_time_is_read() -> None:
    headers = {"anthropic-ratelimit-tokens-reset": "2999-01-01T00:00:00Z"}
    body: JsonObject = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}}
    async with _endpoint(429, body, headers) as (url, _), _provider("anthropic", url) as provider:
        with pytest.raises(ProviderHTTPError) as caught:
            await provider.complete(REQUEST)
    assert caught.value.retry_after is not None and caught.value.retry_after > 3600


@pytest.mark.parametrize(
    ("status", "header", "retryable"),
    [
        (503, "false", False),  # a gateway that has retried already
        (429, "false", False),
        (409, "true", True),  # the endpoint knows this 4xx passes
        (400, "maybe", False),  # not a verdict: the status decides
        (502, "maybe", True),
    ],
)
async def test_x_should_retry_overrides_the_status(
    status: int, header: str, retryable: bool
) -> None:
    body: JsonObject = {"error": {"message": "upstream failed"}}
    headers = {"x-should-retry": header}
    async with _endpoint(status, body, headers) as (url, _), _provider("openai", url) as provider:
        with pytest.raises(ProviderHTTPError) as caught:
            await provider.complete(REQUEST)
    assert caught.value.retryable is retryable
    assert caught.value.should_retry is {"true": True, "false": False}.get(header)


@pytest.mark.parametrize(
    ("kind", "body", "message", "error_type", "code", "retryable"),
    [
        (
            "openai",
            {
                "error": {
                    "message": f"Upstream quota for {KEY} exhausted",
                    "type": "insufficient_quota",
                    "code": "quota",
                }
            },
            "Upstream quota for [redacted] exhausted",
            "insufficient_quota",
            "quota",
            False,
        ),
        (
            "openai",  # OpenRouter: the backend failed after the 200 went out
            {"error": {"message": "Provider returned error", "code": 502}},
            "Provider returned error",
            None,
            502,
            True,
        ),
        ("openai", {"error": "model is loading"}, "model is loading", None, None, False),
        (
            "anthropic",
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
            "Overloaded",
            "overloaded_error",
            None,
            True,
        ),
    ],
)
async def test_an_error_in_a_200_body_is_surfaced(
    kind: str,
    body: JsonObject,
    message: str,
    error_type: str | None,
    code: str | int | None,
    retryable: bool,
) -> None:
    async with _endpoint(200, body) as (url, _), _provider(kind, url) as provider:
        with pytest.raises(ProviderReportedError) as caught:
            await provider.complete(REQUEST)
    error = caught.value
    assert error.provider_message == message
    assert (error.error_type, error.code, error.retryable) == (error_type, code, retryable)
    assert message in str(error) and KEY not in str(error)
    assert "HTTP 200 with an error instead of an answer" in str(error)


async def test_anthropic_sdk_and_adapter_post_to_the_same_path_for_a_bare_host() -> None:
    answer: JsonObject = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude",
        "content": [{"type": "text", "text": "hello"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 3, "output_tokens": 1},
    }
    async with _endpoint(200, answer) as (url, hits):
        async with anthropic.AsyncAnthropic(base_url=url, api_key=KEY, max_retries=0) as sdk:
            sdk_answer = await sdk.messages.create(
                model="claude", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
            )
        async with AnthropicProvider(base_url=url, api_key=KEY) as provider:
            ours = await provider.complete(REQUEST)
    assert sdk_answer.content[0].type == "text" and ours.message.content == "hello"
    assert hits == ["/v1/messages", "/v1/messages"]


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/"])
async def test_anthropic_base_url_with_or_without_v1(suffix: str) -> None:
    answer: JsonObject = {
        "type": "message",
        "model": "claude",
        "content": [{"type": "text", "text": "hello"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 3, "output_tokens": 1},
    }
    async with (
        _endpoint(200, answer) as (url, hits),
        AnthropicProvider(base_url=url + suffix, api_key=KEY) as provider,
    ):
        response = await provider.complete(REQUEST)
    assert response.message.content == "hello"
    assert hits == ["/v1/messages"]
    assert provider.endpoint == f"{url}/v1/messages"
