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

import httpx
from pydantic import JsonValue

from orchestrator.exceptions import ProviderResponseError
from orchestrator.providers._http import HTTPProvider, parse_arguments
from orchestrator.providers._openai_stream import ChatCompletionAssembler
from orchestrator.providers.messages import (
    ChatMessage,
    ModelRequest,
    ModelResponse,
    ToolCall,
    ToolChoice,
    ToolDefinition,
)
from orchestrator.providers.params import CHAT_AS_IS, effort_of
from orchestrator.providers.streaming import DeltaSink
from orchestrator.providers.usage import chat_usage
from orchestrator.types import JsonObject

__all__ = ["OpenAIProvider", "error_detail", "limit_name", "tool_choice_wire"]


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


def _tool_to_wire(tool: ToolDefinition, strict: bool | None) -> JsonObject:
    function: JsonObject = {
        "name": tool.name,
        "description": tool.description,
        "parameters": tool.parameters,
    }
    if strict is not None:
        function["strict"] = strict
    return {"type": "function", "function": function}


def tool_choice_wire(choice: ToolChoice) -> JsonValue:
    """OpenAI's `tool_choice`: `auto`, `none`, `required`, or the named function."""
    if choice.mode == "tool":
        return {"type": "function", "function": {"name": choice.name}}
    return choice.mode


def limit_name(request: ModelRequest, effort: str | None) -> str:
    """The output limit's name, as the client named it.

    `max_completion_tokens` when the client used it, or when a reasoning effort goes
    (OpenAI's reasoning models refuse `max_tokens`) and the client named neither;
    `max_tokens` otherwise, as it always was.
    """
    named = request.max_completion_tokens
    return "max_completion_tokens" if named or (named is None and effort) else "max_tokens"


def _request_to_wire(request: ModelRequest) -> JsonObject:
    body: JsonObject = {
        "model": request.model,
        "messages": [_message_to_wire(m) for m in request.messages],
    }
    if request.tools:
        strict = request.strict_tools or []
        body["tools"] = [
            _tool_to_wire(t, strict[i] if i < len(strict) else None)
            for i, t in enumerate(request.tools)
        ]
    if request.temperature is not None:
        body["temperature"] = request.temperature
    effort = effort_of(request)
    if request.max_tokens is not None:
        body[limit_name(request, effort)] = request.max_tokens
    if request.tool_choice is not None:
        body["tool_choice"] = tool_choice_wire(request.tool_choice)
    for name in CHAT_AS_IS:
        value = getattr(request, name)
        if value is not None:
            body[name] = value
    if effort is not None:
        body["reasoning_effort"] = effort
    return body


def error_detail(response: httpx.Response) -> str:
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


class _Shape:
    """Reads a chat-completions body, naming the first thing that is missing or wrong."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    def error(self, problem: str) -> ProviderResponseError:
        return ProviderResponseError(f"{self.endpoint}: {problem}")

    def obj(self, value: JsonValue, path: str) -> JsonObject:
        if not isinstance(value, dict):
            raise self.error(f"response has no {path}")
        return value

    def optional_str(self, value: JsonValue, path: str) -> str | None:
        if value is not None and not isinstance(value, str):
            raise self.error(f"response {path} is not a string")
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
    arguments, parse_error = parse_arguments(arguments_json)
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
    return ModelResponse(
        message=ChatMessage(
            role="assistant",
            content=_content(shape, message.get("content")),
            tool_calls=[_tool_call(shape, call, i) for i, call in enumerate(raw_calls)],
        ),
        usage=chat_usage(shape.endpoint, root.get("usage")),
        finish_reason=shape.optional_str(choice.get("finish_reason"), "choices[0].finish_reason"),
        provider_model=shape.optional_str(root.get("model"), "model"),
    )


class OpenAIProvider(HTTPProvider):
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

    path = "/chat/completions"
    answer_key = "choices"

    async def complete(
        self, request: ModelRequest, on_delta: DeltaSink | None = None
    ) -> ModelResponse:
        """Send one chat-completions request and normalise the answer.

        Args:
            request: The conversation; `request.stream` asks the endpoint to stream.
            on_delta: Awaited with each piece of text and tool-call arguments as it
                arrives; with a non-streamed answer, once per piece after it is complete.

        Raises:
            ProviderHTTPError: the endpoint answered 4xx/5xx; retryable for 429 and 5xx,
                with `retry_after` when the endpoint said how long to wait.
            ProviderStreamError: a streamed answer was cut short or carried an error
                event; retryable, and nothing of it is returned.
            ProviderTimeoutError: no answer within the timeout.
            ProviderConnectionError: the endpoint could not be reached or dropped the
                connection.
            ProviderResponseError: the answer is not a chat-completions body.
        """
        return await self.complete_wire(_request_to_wire(request), request.stream, on_delta)

    async def complete_wire(
        self, wire: JsonObject, stream: bool, on_delta: DeltaSink | None = None
    ) -> ModelResponse:
        """`complete` of a chat-completions body already written.

        The gateway forwards a client's own body so; `stream` asks the endpoint to stream.

        Raises:
            ProviderError: as `complete`.
        """
        headers = self._headers()
        assembler = None
        if stream:
            wire = {**wire, "stream": True}
            wire["stream_options"] = {"include_usage": True}
            headers["Accept"] = "text/event-stream"
            assembler = ChatCompletionAssembler(self._endpoint, on_delta)
        shape = _Shape(self._endpoint)
        return await self._exchange(
            wire,
            headers,
            error_detail,
            lambda body: _response_from_wire(shape, body),
            assembler,
            on_delta,
        )

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    async def send(self, wire: JsonObject) -> JsonValue:
        """Post a chat-completions body as it is (not streamed); the answer's parsed JSON.

        For a caller that already holds the wire body (the gateway forwarding a client's
        own): the same errors as `complete`, but the answer is not read; `read` reads it.

        Raises:
            ProviderHTTPError, ProviderTimeoutError, ProviderConnectionError,
            ProviderResponseError, ProviderReportedError: as `complete`.
        """
        return await self._post(wire, self._headers(), error_detail)

    def read(self, body: JsonValue) -> ModelResponse:
        """A chat-completions answer `send` returned, normalised as `complete` returns it.

        Raises:
            ProviderResponseError: the answer is not a chat-completions body.
        """
        return _response_from_wire(_Shape(self._endpoint), body)
