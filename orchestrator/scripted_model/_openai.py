"""The scripted model server's OpenAI chat-completions wire: requests in, bodies and chunks out.

A streamed answer is sent as real endpoints send it: a role chunk, content pieces, each
tool call's header (index, id, name) then its argument fragments, a finish chunk, with
`stream_options.include_usage` a usage chunk whose `choices` is empty, and `data: [DONE]`.
Errors use OpenAI's envelope, `{"error": {"message", "type", "param", "code"}}`, with a
string `code`, as the official SDK expects.
"""

from __future__ import annotations

import json

from pydantic import BaseModel, Field, JsonValue, ValidationError
from starlette.responses import JSONResponse

from orchestrator.scripted_model._answer import Answer, Asked, pieces
from orchestrator.types import JsonObject

__all__ = ["chunk_frames", "completion", "openai_error", "read_request", "text_of"]

_TOOL_RESULT_CHARS = 2_000

_ERROR_TYPES = {
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", "permission_denied"),
    404: ("invalid_request_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}


class _WireFunction(BaseModel):
    name: str
    arguments: JsonValue = ""


class _WireToolCall(BaseModel):
    function: _WireFunction


class _WireMessage(BaseModel):
    role: str
    content: JsonValue = None
    tool_calls: list[_WireToolCall] | None = None


class _WireToolFunction(BaseModel):
    name: str


class _WireTool(BaseModel):
    function: _WireToolFunction


class _StreamOptions(BaseModel):
    include_usage: bool = False


class _WireRequest(BaseModel):
    """The part of a chat-completions request the scripted server reads; the rest is ignored."""

    model: str
    messages: list[_WireMessage] = Field(min_length=1)
    tools: list[_WireTool] | None = None
    stream: bool = False
    stream_options: _StreamOptions | None = None


def text_of(content: JsonValue) -> str:
    """The text of a message's content, whether a string or a list of content parts."""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    if isinstance(content, list):
        for part in content:
            text = part.get("text") if isinstance(part, dict) else None
            if isinstance(text, str):
                parts.append(text)
    return "".join(parts)


def _arguments_text(arguments: JsonValue) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments, sort_keys=True)


def _input_chars(request: _WireRequest) -> int:
    total = 0
    for message in request.messages:
        total += len(text_of(message.content))
        for call in message.tool_calls or []:
            total += len(_arguments_text(call.function.arguments))
    return total


def _latest_tool_results(request: _WireRequest) -> list[str]:
    results: list[str] = []
    for message in reversed(request.messages):
        if message.role != "tool":
            break
        results.append(text_of(message.content)[:_TOOL_RESULT_CHARS])
    return results[::-1]


def read_request(raw: bytes) -> Asked | str:
    """The request, or a message saying why the body is not a chat-completions request."""
    try:
        request = _WireRequest.model_validate_json(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<body>'}: {err['msg']}"
            for err in exc.errors()
        )
        return f"scripted model: malformed chat-completions request: {problems}"
    system = [text_of(m.content) for m in request.messages if m.role == "system"]
    first_user = next((text_of(m.content) for m in request.messages if m.role == "user"), "")
    return Asked(
        api="openai",
        model=request.model,
        context="\n".join([*system, first_user]),
        first_user=first_user,
        turn=sum(1 for m in request.messages if m.role == "assistant"),
        message_count=len(request.messages),
        input_chars=_input_chars(request),
        tools=[tool.function.name for tool in request.tools or []],
        tool_results=_latest_tool_results(request),
        stream=request.stream,
        include_usage=request.stream_options is not None and request.stream_options.include_usage,
    )


def _usage(answer: Answer) -> JsonObject:
    return {
        "prompt_tokens": answer.input_tokens,
        "completion_tokens": answer.output_tokens,
        "total_tokens": answer.input_tokens + answer.output_tokens,
    }


def _finish_reason(answer: Answer) -> str:
    return "tool_calls" if answer.tool_calls else "stop"


def completion(answer: Answer) -> JsonObject:
    """The `chat.completion` body of a non-streamed answer."""
    message: JsonObject = {"role": "assistant", "content": answer.content}
    if answer.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.call_id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments_json},
            }
            for call in answer.tool_calls
        ]
    return {
        "id": answer.id,
        "object": "chat.completion",
        "created": answer.created,
        "model": answer.model,
        "choices": [{"index": 0, "message": message, "finish_reason": _finish_reason(answer)}],
        "usage": _usage(answer),
    }


def _frame(data: JsonValue) -> bytes:
    return f"data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def chunk_frames(answer: Answer, *, include_usage: bool) -> list[bytes]:
    """The SSE frames of a streamed answer, `data: [DONE]` last."""
    head: JsonObject = {
        "id": answer.id,
        "object": "chat.completion.chunk",
        "created": answer.created,
        "model": answer.model,
    }

    def chunk(delta: JsonObject, finish_reason: str | None = None) -> bytes:
        choice: JsonObject = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        body: JsonObject = {**head, "choices": [choice]}
        if include_usage:
            body["usage"] = None
        return _frame(body)

    text = answer.content
    frames = [chunk({"role": "assistant", "content": "" if text is not None else None})]
    frames += [chunk({"content": piece}) for piece in pieces(text or "", words=True)]
    for index, call in enumerate(answer.tool_calls):
        header: JsonObject = {
            "index": index,
            "id": call.call_id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        frames.append(chunk({"tool_calls": [header]}))
        frames += [
            chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
            for piece in pieces(call.arguments_json, words=False)
        ]
    frames.append(chunk({}, _finish_reason(answer)))
    if include_usage:
        frames.append(_frame({**head, "choices": [], "usage": _usage(answer)}))
    frames.append(b"data: [DONE]\n\n")
    return frames


def openai_error(
    status: int, message: str, *, code: str | None = None, param: str | None = None
) -> JSONResponse:
    """An error in OpenAI's envelope; `type` and `code` follow the status when not given."""
    kind, default_code = _ERROR_TYPES.get(
        status,
        ("server_error", "server_error") if status >= 500 else ("invalid_request_error", ""),
    )
    body: JsonObject = {
        "message": message,
        "type": kind,
        "param": param,
        "code": code or default_code or "invalid_request",
    }
    return JSONResponse({"error": body}, status_code=status)
