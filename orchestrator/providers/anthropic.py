"""An async client for Anthropic's Messages API.

It maps the provider-neutral shapes of `messages.py` to `/v1/messages` and back: system
messages become the top-level `system` text, assistant tool calls become `tool_use`
blocks, tool results become `tool_result` blocks in a user turn (consecutive results are
merged into one turn, as the API requires), and every failure becomes one of the
`ProviderError` classes, exactly as `OpenAIProvider` does, so callers treat both alike.

Anthropic caches a prompt only up to blocks marked `cache_control`: with
`ModelRequest.prompt_cache` (a deployment that caches prompts) the adapter marks the last
tool, the system text and the last message; a client's own marks (`cache_marks`, from the
gateway) are sent instead, unchanged. Usage's cache reads and writes are read back by
`usage.anthropic_usage`, streamed (`message_start`) or not.
"""

from __future__ import annotations

import json

import httpx
from pydantic import JsonValue

from orchestrator.exceptions import ProviderResponseError
from orchestrator.providers._anthropic_stream import MessageAssembler
from orchestrator.providers._http import HTTPProvider, parse_arguments
from orchestrator.providers.messages import (
    CacheMark,
    ChatMessage,
    ModelRequest,
    ModelResponse,
    ToolCall,
)
from orchestrator.providers.params import ANTHROPIC_TIERS
from orchestrator.providers.streaming import DeltaSink
from orchestrator.providers.usage import anthropic_usage
from orchestrator.types import JsonObject

__all__ = ["ANTHROPIC_VERSION", "THINKING_BLOCKS", "AnthropicProvider"]

ANTHROPIC_VERSION = "2023-06-01"
THINKING_BLOCKS = frozenset({"thinking", "redacted_thinking"})
"""The content blocks of an answer's reasoning, kept verbatim (`thinking_blocks`)."""
_DEFAULT_MAX_TOKENS = 4096


def _assistant_blocks(message: ChatMessage) -> list[JsonValue]:
    """An assistant turn's blocks: its thinking (first, as Anthropic wrote it), text, calls."""
    blocks: list[JsonValue] = list[JsonValue](message.thinking_blocks)
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    for call in message.tool_calls:
        arguments = call.arguments if call.arguments is not None else {}
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": arguments})
    return blocks


_EPHEMERAL: JsonObject = {"type": "ephemeral"}
"""Anthropic's 5-minute prompt cache, which `cache_write_price_per_mtok` prices (1.25x)."""


def _own_marks(request: ModelRequest) -> list[CacheMark]:
    """The stable prefix's breakpoints: the last tool, the system text, the last message.

    Three of Anthropic's four: the tools and system text are a step's (or a conversation's)
    fixed prefix, and the last message makes each round of a tool loop read the previous
    round's prompt and write only what it adds.
    """
    marks: list[CacheMark] = []
    if request.tools:
        marks.append(CacheMark(where="tool", at=len(request.tools) - 1, control=_EPHEMERAL))
    systems = [i for i, m in enumerate(request.messages) if m.role == "system"]
    if systems:
        marks.append(CacheMark(where="message", at=systems[-1], control=_EPHEMERAL))
    rest = [i for i, m in enumerate(request.messages) if m.role != "system"]
    if rest:
        marks.append(CacheMark(where="message", at=rest[-1], control=_EPHEMERAL))
    return marks


def _marks(request: ModelRequest) -> list[CacheMark]:
    """The client's own breakpoints unchanged when it gave any, else ours when asked."""
    if request.cache_marks:
        return request.cache_marks
    return _own_marks(request) if request.prompt_cache else []


def _system(request: ModelRequest, marked: dict[int, JsonObject]) -> JsonValue:
    """The top-level `system`: the joined text, or text blocks when a breakpoint is in it.

    Unmarked, the system messages are one string, as ever. With our own breakpoint it is
    that string as one block; with a client's, one block per system message (the gateway
    keeps a client's blocks apart at its breakpoints), each with its own `cache_control`.
    """
    systems = [(i, m.content or "") for i, m in enumerate(request.messages) if m.role == "system"]
    if not any(i in marked for i, _ in systems):
        return "\n\n".join(text for _, text in systems)
    if len(systems) > 1 and not request.cache_marks:
        systems = [(systems[-1][0], "\n\n".join(text for _, text in systems))]
    blocks: list[JsonValue] = []
    for i, text in systems:
        if text:
            block: JsonObject = {"type": "text", "text": text}
            if i in marked:
                block["cache_control"] = marked[i]
            blocks.append(block)
    return blocks


def _tools(request: ModelRequest, marked: dict[int, JsonObject]) -> list[JsonValue]:
    tools: list[JsonValue] = []
    for i, t in enumerate(request.tools):
        tool: JsonObject = {
            "name": t.name,
            "description": t.description,
            "input_schema": t.parameters,
        }
        if request.strict_tools and i < len(request.strict_tools) and request.strict_tools[i]:
            tool["strict"] = True
        if i in marked:
            tool["cache_control"] = marked[i]
        tools.append(tool)
    return tools


_CHOICES = {"auto": "auto", "none": "none", "required": "any", "tool": "tool"}
"""The neutral (OpenAI's) tool choices as Anthropic names them."""


def _tool_choice(request: ModelRequest) -> JsonObject | None:
    """Anthropic's `tool_choice`; parallel tool calls turned off ride on it.

    `parallel_tool_calls: false` alone is `auto` with `disable_parallel_tool_use`, which
    `none` does not take (no tool is called at all).
    """
    choice, parallel = request.tool_choice, request.parallel_tool_calls
    if choice is None and parallel is not False:
        return None
    mode = "auto" if choice is None else choice.mode
    wire: JsonObject = {"type": _CHOICES[mode]}
    if choice is not None and choice.mode == "tool":
        wire["name"] = choice.name
    if parallel is False and mode != "none":
        wire["disable_parallel_tool_use"] = True
    return wire


def _sampling(request: ModelRequest, body: JsonObject) -> None:
    """The client's optional parameters Anthropic takes, written into `body`."""
    choice = _tool_choice(request)
    if choice is not None:
        body["tool_choice"] = choice
    if request.stop is not None:
        body["stop_sequences"] = list[JsonValue](request.stop)
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.top_k is not None:
        body["top_k"] = request.top_k
    user = request.safety_identifier or request.user
    if user is not None:
        body["metadata"] = {"user_id": user}
    _reasoning(request, body)


def _reasoning(request: ModelRequest, body: JsonObject) -> None:
    """`thinking`, `output_config` (answer schema, effort) and `service_tier`.

    A `json_schema` answer format is `output_config.format` (its schema; the name is a
    label OpenAI asks for, which Anthropic has no place for); OpenAI's effort `none` is
    thinking `disabled`, its other levels `output_config.effort`. `params.unsupported`
    has refused the values with no equivalent. A Messages client's `ANTHROPIC_ONLY`
    fields (`container`, `context_management`, `mcp_servers`, ...) go on as they came.
    """
    thinking, effort = request.thinking, request.reasoning_effort
    if thinking is None and effort == "none":
        thinking = {"type": "disabled"}
    if thinking is not None:
        body["thinking"] = thinking
    config: JsonObject = {}
    wanted = request.response_format
    spec = wanted.get("json_schema") if wanted is not None else None
    if wanted is not None and wanted.get("type") == "json_schema" and isinstance(spec, dict):
        config["format"] = {"type": "json_schema", "schema": spec.get("schema") or {}}
    if effort is not None and effort != "none":
        config["effort"] = effort
    if config:
        body["output_config"] = config
    if request.service_tier is not None:
        body["service_tier"] = ANTHROPIC_TIERS.get(request.service_tier, request.service_tier)
    for name in ("inference_geo", "speed", "cache_control"):
        value = getattr(request, name)
        if value is not None:
            body[name] = value
    if request.anthropic_fields:
        body.update(request.anthropic_fields)


def _request_to_wire(request: ModelRequest) -> JsonObject:
    marks = _marks(request)
    marked = {m.at: m.control for m in marks if m.where == "message"}
    tool_marks = {m.at: m.control for m in marks if m.where == "tool"}
    system = _system(request, marked)
    turns: list[JsonObject] = []
    for index, message in enumerate(request.messages):
        if message.role == "system":
            continue
        if message.role == "assistant":
            blocks = _assistant_blocks(message)
            if index in marked and blocks and isinstance(blocks[-1], dict):
                blocks[-1]["cache_control"] = marked[index]
            turns.append({"role": "assistant", "content": blocks})
            continue
        block: JsonObject
        if message.role == "tool":
            block = {
                "type": "tool_result",
                "tool_use_id": message.tool_call_id,
                "content": message.content or "",
            }
        else:
            block = {"type": "text", "text": message.content or ""}
        if index in marked:
            block["cache_control"] = marked[index]
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
        body["tools"] = _tools(request, tool_marks)
    if request.temperature is not None:
        body["temperature"] = request.temperature
    _sampling(request, body)
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
    thinking: list[JsonObject] = []
    for index, block in enumerate(content):
        if not isinstance(block, dict):
            raise ProviderResponseError(f"{endpoint}: content[{index}] is not an object")
        if block.get("type") == "text":
            texts.append(str(block.get("text") or ""))
        elif block.get("type") == "tool_use":
            calls.append(_tool_use(endpoint, block, index))
        elif block.get("type") in THINKING_BLOCKS:
            thinking.append(block)
    stop, model = body.get("stop_reason"), body.get("model")
    return ModelResponse(
        message=ChatMessage(
            role="assistant",
            content="".join(texts) if texts else None,
            tool_calls=calls,
            thinking_blocks=thinking,
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
        if request.anthropic_beta:
            headers["anthropic-beta"] = ",".join(request.anthropic_beta)
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
