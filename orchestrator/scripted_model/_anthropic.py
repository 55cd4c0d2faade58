"""The scripted model server's Anthropic Messages wire: requests in, bodies and events out.

A request's `cache_control` breakpoints are answered as Anthropic's prompt cache would
(`cache_usage`): a prefix is written on first sight and read afterwards.

A streamed answer is the event sequence Anthropic sends: `message_start` (input tokens,
cache reads and writes),
per content block `content_block_start`, `content_block_delta`s (`text_delta` or
`input_json_delta`) and `content_block_stop`, a `ping`, then `message_delta` (stop reason
and output tokens) and `message_stop`. Errors use Anthropic's envelope,
`{"type": "error", "error": {"type", "message"}}`.
"""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel, Field, JsonValue, ValidationError
from starlette.responses import JSONResponse

from orchestrator.scripted_model._answer import Answer, Asked, pieces
from orchestrator.scripted_model._openai import text_of
from orchestrator.types import JsonObject

__all__ = ["anthropic_error", "cache_usage", "event_frames", "message", "read_request"]

_TOOL_RESULT_CHARS = 2_000

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


class _WireMessage(BaseModel):
    role: str
    content: JsonValue = None


class _WireTool(BaseModel):
    name: str


class _WireRequest(BaseModel):
    """The part of a Messages request the scripted model server reads; the rest is ignored."""

    model: str
    max_tokens: int = Field(ge=1)
    messages: list[_WireMessage] = Field(min_length=1)
    system: JsonValue = None
    tools: list[_WireTool] | None = None
    stream: bool = False


def _blocks(content: JsonValue) -> list[JsonObject]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [block for block in content if isinstance(block, dict)]
    return []


def _block_chars(block: JsonObject) -> int:
    if block.get("type") == "tool_use":
        return len(json.dumps(block.get("input"), sort_keys=True))
    if block.get("type") == "tool_result":
        return len(text_of(block.get("content")))
    return len(text_of([block]))


def _user_text(message: _WireMessage) -> str:
    return "".join(str(b.get("text")) for b in _blocks(message.content) if b.get("type") == "text")


def _latest_tool_results(request: _WireRequest) -> list[str]:
    last = request.messages[-1]
    if last.role != "user":
        return []
    return [
        text_of(block.get("content"))[:_TOOL_RESULT_CHARS]
        for block in _blocks(last.content)
        if block.get("type") == "tool_result"
    ]


_LOOKBACK = 20
"""Block boundaries before a breakpoint where Anthropic also looks for a cached prefix."""


def _prefixes(request: _WireRequest, raw: bytes) -> list[tuple[str, int, bool]]:
    """Each block's prefix digest and length, up to the last breakpoint; else empty.

    Blocks go tools, system blocks, then messages, as Anthropic's cache orders them.

    Lengths are counted as `input_chars` counts them (tools count nothing there), so a
    prefix's tokens never exceed the prompt's.
    """
    if b"cache_control" not in raw:
        return []
    body = json.loads(raw)
    digest = hashlib.sha256(request.model.encode())
    chars = 0
    prefixes: list[tuple[str, int, bool]] = []
    system = body.get("system")
    sequence: list[tuple[str, JsonObject, int]] = [
        ("tool", tool, 0) for tool in body.get("tools") or [] if isinstance(tool, dict)
    ]
    sequence += [("system", b, len(text_of([b]))) for b in _blocks(system)] if system else []
    for m in request.messages:
        sequence += [(m.role, b, _block_chars(b)) for b in _blocks(m.content)]
    for role, block, size in sequence:
        chars += size
        plain = {k: v for k, v in block.items() if k != "cache_control"}
        digest.update(json.dumps([role, plain], sort_keys=True).encode())
        marked = block.get("cache_control") is not None
        prefixes.append((digest.copy().hexdigest(), chars, marked))
    while prefixes and not prefixes[-1][2]:
        prefixes.pop()
    return prefixes


def cache_usage(
    asked: Asked, prompt_tokens: int, seen: set[str], *, write: bool
) -> tuple[int, int]:
    """(read, written) prompt tokens, as Anthropic's cache would count them.

    The longest cached prefix ending at a breakpoint or up to 20 blocks before one is
    read; the rest up to the last breakpoint is written, and each breakpoint's prefix
    remembered (when `write`). Deterministic and in memory: a prefix is written on first
    sight and read on every later request, with no minimum length and no expiry.
    """
    prefixes = asked.prefixes
    marked = [i for i, (_, _, mark) in enumerate(prefixes) if mark]
    if not marked:
        return 0, 0
    near = {j for i in marked for j in range(max(0, i - _LOOKBACK), i + 1)}
    read = max((prefixes[j][1] for j in near if prefixes[j][0] in seen), default=0) // 4
    read = min(read, prompt_tokens)
    written = min(max(0, prefixes[-1][1] // 4 - read), prompt_tokens - read)
    if write:
        seen.update(prefixes[i][0] for i in marked)
    return read, written


def read_request(raw: bytes) -> Asked | str:
    """The request, or a message saying why the body is not a Messages request."""
    try:
        request = _WireRequest.model_validate_json(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<body>'}: {err['msg']}"
            for err in exc.errors()
        )
        return f"scripted model: malformed Messages request: {problems}"
    system = text_of(request.system)
    first_user = next((_user_text(m) for m in request.messages if m.role == "user"), "")
    chars = len(system) + sum(
        _block_chars(block) for m in request.messages for block in _blocks(m.content)
    )
    return Asked(
        api="anthropic",
        model=request.model,
        context="\n".join([system, first_user] if system else [first_user]),
        first_user=first_user,
        turn=sum(1 for m in request.messages if m.role == "assistant"),
        message_count=len(request.messages),
        input_chars=chars,
        tools=[tool.name for tool in request.tools or []],
        tool_results=_latest_tool_results(request),
        stream=request.stream,
        prefixes=_prefixes(request, raw),
    )


def _input(arguments_json: str) -> JsonValue:
    """A tool call's `input`: the parsed object, or the raw text of malformed arguments.

    The raw text is a replay liberty, so a script can still send malformed arguments.
    """
    try:
        value: JsonValue = json.loads(arguments_json)
    except json.JSONDecodeError:
        return arguments_json
    return value if isinstance(value, dict) else arguments_json


def _stop_reason(answer: Answer) -> str:
    return "tool_use" if answer.tool_calls else "end_turn"


def message(answer: Answer) -> JsonObject:
    """The `message` body of a non-streamed answer."""
    content: list[JsonValue] = []
    if answer.content is not None:
        content.append({"type": "text", "text": answer.content})
    content += [
        {
            "type": "tool_use",
            "id": call.call_id,
            "name": call.name,
            "input": _input(call.arguments_json),
        }
        for call in answer.tool_calls
    ]
    return {
        "id": answer.id,
        "type": "message",
        "role": "assistant",
        "model": answer.model,
        "content": content,
        "stop_reason": _stop_reason(answer),
        "stop_sequence": None,
        "usage": _usage(answer, answer.output_tokens),
    }


def _usage(answer: Answer, output_tokens: int) -> JsonObject:
    """Anthropic's usage: `input_tokens` leaves the cache reads and writes out."""
    read, written = answer.cache_read_tokens, answer.cache_write_tokens
    return {
        "input_tokens": answer.input_tokens - read - written,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": read,
        "cache_creation": {"ephemeral_5m_input_tokens": written, "ephemeral_1h_input_tokens": 0},
        "output_tokens": output_tokens,
    }


def _frame(data: JsonObject) -> bytes:
    return f"event: {data['type']}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def event_frames(answer: Answer) -> list[bytes]:
    """The SSE frames of a streamed answer, `message_stop` last."""
    start: JsonObject = {
        **message(answer),
        "content": [],
        "stop_reason": None,
        "usage": _usage(answer, 1),
    }
    frames = [_frame({"type": "message_start", "message": start})]
    blocks: list[tuple[JsonObject, str, str, list[str]]] = []
    if answer.content is not None:
        text_pieces = pieces(answer.content, words=True)
        blocks.append(({"type": "text", "text": ""}, "text_delta", "text", text_pieces))
    for call in answer.tool_calls:
        head: JsonObject = {"type": "tool_use", "id": call.call_id, "name": call.name, "input": {}}
        arg_pieces = pieces(call.arguments_json, words=False)
        blocks.append((head, "input_json_delta", "partial_json", arg_pieces))
    for index, (head, delta_type, field, parts) in enumerate(blocks):
        frames.append(
            _frame({"type": "content_block_start", "index": index, "content_block": head})
        )
        if index == 0:
            frames.append(_frame({"type": "ping"}))
        frames += [
            _frame(
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": delta_type, field: part},
                }
            )
            for part in parts
        ]
        frames.append(_frame({"type": "content_block_stop", "index": index}))
    frames.append(
        _frame(
            {
                "type": "message_delta",
                "delta": {"stop_reason": _stop_reason(answer), "stop_sequence": None},
                "usage": {"output_tokens": answer.output_tokens},
            }
        )
    )
    frames.append(_frame({"type": "message_stop"}))
    return frames


def anthropic_error(status: int, text: str) -> JSONResponse:
    """An error in Anthropic's envelope, its `type` following the status."""
    kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return JSONResponse(
        {"type": "error", "error": {"type": kind, "message": text}}, status_code=status
    )
