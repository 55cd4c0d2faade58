"""An async client for OpenAI's Responses API (`POST /v1/responses`).

For models served only there (`kind: openai_responses`). The conversation goes as input
items: system messages become `instructions`, user and assistant text become messages, an
assistant's tool calls become `function_call` items and tool results
`function_call_output` items, matched by `call_id`. Nothing is stored on the provider's
side (`store: false`): the session holds the conversation, as for the other adapters. The
answer's `message` items give the text, its `function_call` items the tool calls
(reasoning items are skipped), and `status: incomplete` for `max_output_tokens` reads as
the `length` finish reason, so a cut answer is treated as one.
"""

from __future__ import annotations

from pydantic import JsonValue

from orchestrator.exceptions import ProviderResponseError
from orchestrator.providers._http import HTTPProvider, parse_arguments
from orchestrator.providers.messages import ChatMessage, ModelRequest, ModelResponse, ToolCall
from orchestrator.providers.openai import error_detail
from orchestrator.providers.params import effort_of
from orchestrator.providers.streaming import DeltaSink, answer_deltas
from orchestrator.providers.usage import responses_usage
from orchestrator.types import JsonObject

__all__ = ["OpenAIResponsesProvider"]

_INCOMPLETE = {"max_output_tokens": "length", "content_filter": "content_filter"}


def _input_items(message: ChatMessage) -> list[JsonValue]:
    if message.role == "tool":
        return [
            {
                "type": "function_call_output",
                "call_id": message.tool_call_id,
                "output": message.content or "",
            }
        ]
    items: list[JsonValue] = []
    if message.content or message.role != "assistant":
        items.append({"role": message.role, "content": message.content or ""})
    items.extend(
        {
            "type": "function_call",
            "call_id": call.id,
            "name": call.name,
            "arguments": call.arguments_json,
        }
        for call in message.tool_calls
    )
    return items


def _request_to_wire(request: ModelRequest) -> JsonObject:
    system = "\n\n".join(m.content or "" for m in request.messages if m.role == "system")
    body: JsonObject = {
        "model": request.model,
        "input": [item for m in request.messages if m.role != "system" for item in _input_items(m)],
        "store": False,
    }
    if system:
        body["instructions"] = system
    if request.tools:
        strict = request.strict_tools or []
        body["tools"] = [
            {
                "type": "function",
                "name": t.name,
                "description": t.description,
                "parameters": t.parameters,
                "strict": i < len(strict) and strict[i] is True,
            }
            for i, t in enumerate(request.tools)
        ]
    if request.max_tokens is not None:
        body["max_output_tokens"] = request.max_tokens
    if request.temperature is not None:
        body["temperature"] = request.temperature
    _sampling(request, body)
    return body


_AS_IS = (
    "parallel_tool_calls",
    "top_p",
    "user",
    "metadata",
    "store",
    "service_tier",
    "prompt_cache_key",
    "prompt_cache_retention",
    "prompt_cache_options",
    "safety_identifier",
)
"""The optional parameters the Responses API takes under chat completions' names."""


def _sampling(request: ModelRequest, body: JsonObject) -> None:
    """The client's optional parameters the Responses API takes, written into `body`.

    A named tool choice is `{"type": "function", "name"}` here, `response_format` is
    `text.format`, a `json_schema`'s name, schema and strictness beside its type, the
    verbosity `text.verbosity`, and the reasoning effort is `reasoning.effort`. A
    client's `store: true` replaces the adapter's own `false`.
    """
    choice = request.tool_choice
    if choice is not None:
        body["tool_choice"] = (
            {"type": "function", "name": choice.name} if choice.mode == "tool" else choice.mode
        )
    for name in _AS_IS:
        value = getattr(request, name)
        if value is not None:
            body[name] = value
    effort = effort_of(request)
    if effort is not None:
        body["reasoning"] = {"effort": effort}
    wanted = request.response_format
    if wanted is not None:
        schema = wanted.get("json_schema")
        extra = schema if wanted.get("type") == "json_schema" and isinstance(schema, dict) else {}
        body["text"] = {"format": {"type": wanted.get("type"), **extra}}
    if request.verbosity is not None:
        text = body.get("text")
        body["text"] = {**(text if isinstance(text, dict) else {}), "verbosity": request.verbosity}


def _text(endpoint: str, item: JsonObject, index: int) -> str:
    parts = item.get("content")
    if not isinstance(parts, list):
        raise ProviderResponseError(f"{endpoint}: response output[{index}].content is not a list")
    return "".join(
        str(part.get("text") or "")
        for part in parts
        if isinstance(part, dict) and part.get("type") == "output_text"
    )


def _function_call(endpoint: str, item: JsonObject, index: int) -> ToolCall:
    call_id, name, raw = item.get("call_id"), item.get("name"), item.get("arguments")
    if not isinstance(call_id, str) or not call_id or not isinstance(name, str) or not name:
        raise ProviderResponseError(
            f"{endpoint}: response output[{index}] function_call has no call_id or name"
        )
    if raw is not None and not isinstance(raw, str):
        raise ProviderResponseError(
            f"{endpoint}: response output[{index}].arguments is not a string"
        )
    arguments, parse_error = parse_arguments(raw or "")
    return ToolCall(
        id=call_id,
        name=name,
        arguments_json=raw or "",
        arguments=arguments,
        parse_error=parse_error,
    )


def _finish_reason(root: JsonObject, calls: list[ToolCall]) -> str:
    if root.get("status") == "incomplete":
        details = root.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        return _INCOMPLETE.get(str(reason), "incomplete")
    return "tool_calls" if calls else "stop"


def _response_from_wire(endpoint: str, body: JsonValue) -> ModelResponse:
    if not isinstance(body, dict):
        raise ProviderResponseError(f"{endpoint}: response is not a JSON object")
    output = body.get("output")
    if not isinstance(output, list):
        raise ProviderResponseError(f"{endpoint}: response has no output list")
    texts: list[str] = []
    calls: list[ToolCall] = []
    for index, item in enumerate(output):
        if not isinstance(item, dict):
            raise ProviderResponseError(f"{endpoint}: response output[{index}] is not an object")
        if item.get("type") == "message":
            texts.append(_text(endpoint, item, index))
        elif item.get("type") == "function_call":
            calls.append(_function_call(endpoint, item, index))
    model = body.get("model")
    return ModelResponse(
        message=ChatMessage(
            role="assistant", content="".join(texts) if texts else None, tool_calls=calls
        ),
        usage=responses_usage(endpoint, body.get("usage")),
        finish_reason=_finish_reason(body, calls),
        provider_model=model if isinstance(model, str) else None,
    )


class OpenAIResponsesProvider(HTTPProvider):
    """Calls one endpoint's `/responses` (OpenAI's Responses API).

    Args:
        base_url: The API root with its version, e.g. `https://api.openai.com/v1`;
            `/responses` is appended.
        api_key: Sent as a bearer token when set; never put into messages.
        timeout: Seconds allowed for connecting, and for each read and write.
        http_client: A client to share; it is left open.

    Raises:
        ConfigError: `base_url` is not an http(s) URL.
    """

    path = "/responses"
    answer_key = "output"

    async def complete(
        self, request: ModelRequest, on_delta: DeltaSink | None = None
    ) -> ModelResponse:
        """Send one Responses request and normalise the answer.

        Raises:
            ProviderHTTPError: 4xx/5xx; retryable for 429 and 5xx, with the retry hint.
            ProviderTimeoutError: no answer within the timeout.
            ProviderConnectionError: the endpoint could not be reached or dropped.
            ProviderReportedError: the response `failed`, with the endpoint's error.
            ProviderResponseError: the answer is not a Responses body.
        """
        headers = {"Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        body = await self._post(_request_to_wire(request), headers, error_detail)
        if isinstance(body, dict) and body.get("status") == "failed":
            reported = self._reported(body.get("error"), 200)
            if reported is not None:
                raise reported
        response = _response_from_wire(self._endpoint, body)
        if on_delta is not None:
            for delta in answer_deltas(response):
                await on_delta(delta)
        return response
