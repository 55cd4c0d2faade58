"""An async client for Anthropic's Messages API.

It maps the provider-neutral shapes of `messages.py` to `/v1/messages` and back: system
messages become the top-level `system` text, assistant tool calls become `tool_use`
blocks, tool results become `tool_result` blocks in a user turn (consecutive results are
merged into one turn, as the API requires), and every failure becomes one of the
`ProviderError` classes, exactly as `OpenAIProvider` does, so callers treat both alike.
"""

from __future__ import annotations

import json

import httpx
from pydantic import JsonValue

from orchestrator.exceptions import ProviderResponseError
from orchestrator.providers._anthropic_stream import MessageAssembler
from orchestrator.providers._http import HTTPProvider, parse_arguments
from orchestrator.providers.messages import (
    ChatMessage,
    ModelRequest,
    ModelResponse,
    ToolCall,
)
from orchestrator.providers.streaming import DeltaSink
from orchestrator.providers.usage import anthropic_usage
from orchestrator.types import JsonObject

__all__ = ["ANTHROPIC_VERSION", "AnthropicProvider"]

ANTHROPIC_VERSION = "2023-06-01"
_DEFAULT_MAX_TOKENS = 4096


def _assistant_blocks(message: ChatMessage) -> list[JsonValue]:
    blocks: list[JsonValue] = []
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    for call in message.tool_calls:
        arguments = call.arguments if call.arguments is not None else {}
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": arguments})
    return blocks


def _request_to_wire(request: ModelRequest) -> JsonObject:
    system = "\n\n".join(m.content or "" for m in request.messages if m.role == "system")
    turns: list[JsonObject] = []
    for message in request.messages:
        if message.role == "system":
            continue
        if message.role == "assistant":
            turns.append({"role": "assistant", "content": _assistant_blocks(message)})
            continue
        if message.role == "tool":
            block: JsonValue = {
                "type": "tool_result",
                "tool_use_id": message.tool_call_id,
                "content": message.content or "",
            }
        else:
            block = {"type": "text", "text": message.content or ""}
        last = turns[-1] if turns else None
        if last is not None and last["role"] == "user" and isinstance(last["content"], list):
            last["content"].append(block)
        else:
            turns.append({"role": "user", "content": [block]})
    body: JsonObject = {
        "model": request.model,
        "max_tokens": request.max_tokens or _DEFAULT_MAX_TOKENS,
        "messages": list[JsonValue](turns),
    }
    if system:
        body["system"] = system
    if request.tools:
        body["tools"] = [
            {"name": t.name, "description": t.description, "input_schema": t.parameters}
            for t in request.tools
        ]
    if request.temperature is not None:
        body["temperature"] = request.temperature
    return body


def _error_detail(response: httpx.Response) -> str:
    """Anthropic's `error.message`, or the start of the body."""
    try:
        body: JsonValue = response.json()
    except ValueError:
        return response.text.strip()
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            kind = error.get("type")
            return f"{kind}: {error['message']}" if isinstance(kind, str) else str(error["message"])
    return response.text.strip()


def _tool_use(endpoint: str, block: JsonObject, index: int) -> ToolCall:
    call_id, name, raw = block.get("id"), block.get("name"), block.get("input", {})
    if not isinstance(call_id, str) or not call_id or not isinstance(name, str) or not name:
        raise ProviderResponseError(f"{endpoint}: content[{index}] tool_use has no id or name")
    if isinstance(raw, dict):
        arguments_json = json.dumps(raw, sort_keys=True)
    elif isinstance(raw, str):
        arguments_json = raw
    else:
        raise ProviderResponseError(f"{endpoint}: content[{index}].input is not an object")
    arguments, parse_error = parse_arguments(arguments_json)
    return ToolCall(
        id=call_id,
        name=name,
        arguments_json=arguments_json,
        arguments=arguments,
        parse_error=parse_error,
    )


def _response_from_wire(endpoint: str, body: JsonValue) -> ModelResponse:
    if not isinstance(body, dict):
        raise ProviderResponseError(f"{endpoint}: response is not a JSON object")
    content = body.get("content")
    if not isinstance(content, list):
        raise ProviderResponseError(f"{endpoint}: response has no content list")
    texts: list[str] = []
    calls: list[ToolCall] = []
    for index, block in enumerate(content):
        if not isinstance(block, dict):
            raise ProviderResponseError(f"{endpoint}: content[{index}] is not an object")
        if block.get("type") == "text":
            texts.append(str(block.get("text") or ""))
        elif block.get("type") == "tool_use":
            calls.append(_tool_use(endpoint, block, index))
    stop, model = body.get("stop_reason"), body.get("model")
    return ModelResponse(
        message=ChatMessage(
            role="assistant", content="".join(texts) if texts else None, tool_calls=calls
        ),
        usage=anthropic_usage(endpoint, body.get("usage")),
        finish_reason=stop if isinstance(stop, str) else None,
        provider_model=model if isinstance(model, str) else None,
    )


class AnthropicProvider(HTTPProvider):
    """Calls one Anthropic Messages API endpoint's `/messages`.

    Args:
        base_url: The API root, `https://api.anthropic.com` as in Anthropic's SDK, or the
            same with `/v1`; either way requests go to `/v1/messages` below the host.
        api_key: Sent as `x-api-key`; never put into messages.
        timeout: Seconds allowed for connecting, and for each read and write.
        http_client: A client to share; it is left open.

    Raises:
        ConfigError: `base_url` is not an http(s) URL.
    """

    path = "/messages"
    answer_key = "content"

    @classmethod
    def endpoint_path(cls, base_path: str) -> str:
        """`/v1/messages` below the host, whether `base_url` ends in `/v1` or not.

        Anthropic's SDK takes the bare host (`https://api.anthropic.com`); earlier versions
        of this file asked for `/v1`. Both work, so a URL copied from either place does.
        """
        base = base_path.rstrip("/")
        return base + (cls.path if base.endswith("/v1") else "/v1" + cls.path)

    async def complete(
        self, request: ModelRequest, on_delta: DeltaSink | None = None
    ) -> ModelResponse:
        """Send one Messages request and normalise the answer.

        Args:
            request: The conversation; `request.stream` asks the endpoint to stream.
            on_delta: Awaited with each piece of text and tool-call arguments as it
                arrives; with a non-streamed answer, once per piece after it is complete.

        Raises:
            ProviderHTTPError: 4xx/5xx (529 overloaded included); retryable for 429 and
                5xx, with `retry_after` from `Retry-After`.
            ProviderStreamError: a streamed answer was cut short or carried an error
                event; retryable, and nothing of it is returned.
            ProviderTimeoutError: no answer within the timeout.
            ProviderConnectionError: the endpoint could not be reached or dropped.
            ProviderResponseError: the answer is not a Messages body.
        """
        headers = {"Accept": "application/json", "anthropic-version": ANTHROPIC_VERSION}
        if self._api_key:
            headers["x-api-key"] = self._api_key
        wire = _request_to_wire(request)
        assembler = None
        if request.stream:
            wire["stream"] = True
            headers["Accept"] = "text/event-stream"
            assembler = MessageAssembler(self._endpoint, on_delta)
        return await self._exchange(
            wire,
            headers,
            _error_detail,
            lambda body: _response_from_wire(self._endpoint, body),
            assembler,
            on_delta,
        )
