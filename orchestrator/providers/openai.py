"""An async client for OpenAI-compatible chat-completions endpoints.

One adapter covers OpenAI, vLLM, Ollama, OpenRouter, LiteLLM proxies and the local replay
server. It translates the provider-neutral shapes of `messages.py` to the wire and back,
and turns every way a call can fail into one of the `ProviderError` classes, so the caller
decides on retries from `retryable` alone.

The API key never appears in an error message: it is sent only as a header, and anything an
endpoint echoes back is scrubbed before it is put into a message.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Self

import httpx
from pydantic import JsonValue

from orchestrator.exceptions import (
    ConfigError,
    ProviderConnectionError,
    ProviderHTTPError,
    ProviderResponseError,
    ProviderTimeoutError,
)
from orchestrator.providers.messages import (
    ChatMessage,
    ModelRequest,
    ModelResponse,
    ToolCall,
    ToolDefinition,
    Usage,
)
from orchestrator.types import JsonObject

__all__ = ["OpenAIProvider"]

_MAX_DETAIL = 300
_REDACTED = "[redacted]"


def _message_to_wire(message: ChatMessage) -> JsonObject:
    if message.role == "tool":
        return {
            "role": "tool",
            "tool_call_id": message.tool_call_id,
            "content": message.content or "",
        }
    wire: JsonObject = {"role": message.role, "content": message.content}
    if message.role != "assistant":
        wire["content"] = message.content or ""
    if message.name is not None:
        wire["name"] = message.name
    if message.tool_calls:
        wire["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments_json},
            }
            for call in message.tool_calls
        ]
    return wire


def _tool_to_wire(tool: ToolDefinition) -> JsonObject:
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters,
        },
    }


def _request_to_wire(request: ModelRequest) -> JsonObject:
    body: JsonObject = {
        "model": request.model,
        "messages": [_message_to_wire(m) for m in request.messages],
    }
    if request.tools:
        body["tools"] = [_tool_to_wire(t) for t in request.tools]
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    return body


def _parse_arguments(raw: str) -> tuple[JsonObject | None, str | None]:
    """The parsed arguments object, or None and why not.

    An empty string counts as `{}`: some OpenAI-compatible servers send it for tools that
    take no arguments, and the skill's own validation still catches missing fields.
    """
    if not raw.strip():
        return {}, None
    try:
        value: JsonValue = json.loads(raw)
    except json.JSONDecodeError as exc:
        return None, f"arguments are not valid JSON: {exc.msg} at char {exc.pos}"
    if not isinstance(value, dict):
        return None, f"arguments are not a JSON object but {type(value).__name__}"
    return value, None


def _parse_retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait before retrying, from `retry-after-ms` or `Retry-After`."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms is not None:
        try:
            seconds = float(raw_ms) / 1000
        except ValueError:
            seconds = math.nan
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - datetime.now(UTC)).total_seconds())
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _error_detail(response: httpx.Response) -> str:
    """The endpoint's own error message: OpenAI's `error.message`, or the start of the body."""
    try:
        body: JsonValue = response.json()
    except ValueError:
        return response.text.strip()
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(error, str):
            return error
        if isinstance(body.get("message"), str):
            return str(body["message"])
    return response.text.strip()


def _truncate(text: str, limit: int = _MAX_DETAIL) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Shape:
    """Reads a chat-completions body, naming the first thing that is missing or wrong."""

    def __init__(self, endpoint: str) -> None:
        self._endpoint = endpoint

    def error(self, problem: str) -> ProviderResponseError:
        return ProviderResponseError(f"{self._endpoint}: {problem}")

    def obj(self, value: JsonValue, path: str) -> JsonObject:
        if not isinstance(value, dict):
            raise self.error(f"response has no {path}")
        return value

    def optional_str(self, value: JsonValue, path: str) -> str | None:
        if value is not None and not isinstance(value, str):
            raise self.error(f"response {path} is not a string")
        return value

    def count(self, usage: JsonObject, key: str) -> int:
        value = usage.get(key, 0)
        if value is None:
            return 0
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.error(f"response usage.{key} is not an integer")
        return value


def _content(shape: _Shape, value: JsonValue) -> str | None:
    """Message content; a list of text parts (as some servers send) is joined."""
    if isinstance(value, list):
        parts = [shape.obj(part, "choices[0].message.content part") for part in value]
        return "".join(str(part.get("text") or "") for part in parts)
    return shape.optional_str(value, "choices[0].message.content")


def _tool_call(shape: _Shape, value: JsonValue, index: int) -> ToolCall:
    path = f"choices[0].message.tool_calls[{index}]"
    call = shape.obj(value, path)
    call_id = call.get("id")
    if not isinstance(call_id, str) or not call_id:
        raise shape.error(f"response has no {path}.id")
    function = shape.obj(call.get("function"), f"{path}.function")
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise shape.error(f"response has no {path}.function.name")
    raw = function.get("arguments")
    if isinstance(raw, dict):
        arguments_json = json.dumps(raw)
    elif raw is None or isinstance(raw, str):
        arguments_json = raw or ""
    else:
        raise shape.error(f"response {path}.function.arguments is not a string")
    arguments, parse_error = _parse_arguments(arguments_json)
    return ToolCall(
        id=call_id,
        name=name,
        arguments_json=arguments_json,
        arguments=arguments,
        parse_error=parse_error,
    )


def _response_from_wire(shape: _Shape, body: JsonValue) -> ModelResponse:
    root = shape.obj(body, "JSON object body")
    choices = root.get("choices")
    if not isinstance(choices, list) or not choices:
        raise shape.error("response has no choices")
    choice = shape.obj(choices[0], "choices[0]")
    message = shape.obj(choice.get("message"), "choices[0].message")
    raw_calls = message.get("tool_calls") or []
    if not isinstance(raw_calls, list):
        raise shape.error("response choices[0].message.tool_calls is not a list")
    usage = root.get("usage") or {}
    usage_obj = shape.obj(usage, "usage object")
    return ModelResponse(
        message=ChatMessage(
            role="assistant",
            content=_content(shape, message.get("content")),
            tool_calls=[_tool_call(shape, call, i) for i, call in enumerate(raw_calls)],
        ),
        usage=Usage(
            input_tokens=shape.count(usage_obj, "prompt_tokens"),
            output_tokens=shape.count(usage_obj, "completion_tokens"),
        ),
        finish_reason=shape.optional_str(choice.get("finish_reason"), "choices[0].finish_reason"),
        provider_model=shape.optional_str(root.get("model"), "model"),
    )


class OpenAIProvider:
    """Calls one OpenAI-compatible endpoint's `/chat/completions`.

    Use it as an async context manager, or call `aclose()`, so the connection pool is
    released. A client passed in is used as is and left open: its owner closes it.

    Args:
        base_url: The API root, e.g. `https://api.openai.com/v1` or
            `http://127.0.0.1:8765/v1`; `/chat/completions` is appended.
        api_key: Sent as a bearer token when set; never put into messages.
        timeout: Seconds allowed for connecting, and for each read and write.
        http_client: A client to share (connection pooling, proxies, test transports).

    Raises:
        ConfigError: `base_url` is not an http(s) URL.
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        try:
            root = httpx.URL(base_url)
        except httpx.InvalidURL as exc:
            raise ConfigError(f"provider base_url {base_url!r} is not a valid URL") from exc
        if root.scheme not in ("http", "https") or not root.host:
            raise ConfigError(f"provider base_url {base_url!r} is not an http(s) URL")
        url = root.copy_with(path=root.path.rstrip("/") + "/chat/completions")
        self._url = url
        self._endpoint = str(url.copy_with(username=None, password=None, query=None))
        self._api_key = api_key or None
        self._timeout = httpx.Timeout(timeout)
        self._owns_client = http_client is None
        self._client = http_client if http_client is not None else httpx.AsyncClient()

    @property
    def endpoint(self) -> str:
        """The chat-completions URL, without credentials; safe to log."""
        return self._endpoint

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client, unless it was passed in."""
        if self._owns_client:
            await self._client.aclose()

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, _REDACTED) if self._api_key else text

    async def complete(self, request: ModelRequest) -> ModelResponse:
        """Send one chat-completions request and normalise the answer.

        Raises:
            ProviderHTTPError: the endpoint answered 4xx/5xx; retryable for 429 and 5xx,
                with `retry_after` when the endpoint said how long to wait.
            ProviderTimeoutError: no answer within the timeout.
            ProviderConnectionError: the endpoint could not be reached or dropped the
                connection.
            ProviderResponseError: the answer is not a chat-completions body.
        """
        headers = {"Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        try:
            response = await self._client.post(
                self._url, json=_request_to_wire(request), headers=headers, timeout=self._timeout
            )
        except httpx.TimeoutException as exc:
            raise ProviderTimeoutError(
                f"{self._endpoint}: no answer within {self._timeout.read}s ({type(exc).__name__})"
            ) from exc
        except httpx.TransportError as exc:
            detail = self._redact(str(exc)) or type(exc).__name__
            raise ProviderConnectionError(
                f"{self._endpoint}: connection failed: {_truncate(detail)}"
            ) from exc
        if response.is_error:
            detail = _truncate(self._redact(_error_detail(response))) or response.reason_phrase
            raise ProviderHTTPError(
                f"{self._endpoint}: HTTP {response.status_code}: {detail}",
                status_code=response.status_code,
                retry_after=_parse_retry_after(response.headers),
            )
        try:
            body: JsonValue = response.json()
        except ValueError:
            start = _truncate(self._redact(response.text.strip()), 100)
            raise ProviderResponseError(
                f"{self._endpoint}: response is not JSON (HTTP {response.status_code},"
                f" body starts {start!r})"
            ) from None
        return _response_from_wire(_Shape(self._endpoint), body)
