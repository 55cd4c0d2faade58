"""Anthropic Messages on the client side: request bodies in, response bodies out.

Pure functions, no I/O. `parse_messages` reads a `/v1/messages` body into a `ChatCall`:
the top-level `system` becomes a system message, `tool_use` blocks become tool calls, and
a user turn's `tool_result` blocks become tool messages ahead of its text, the order the
OpenAI shape needs. `render_messages` writes the answer as a Messages body, `model`
naming the deployment that answered.
"""

from __future__ import annotations

import json

from pydantic import JsonValue

from orchestrator.gateway.calls import (
    ChatCall,
    field,
    obj,
    opt_int,
    opt_number,
    read_head,
    text_of,
)
from orchestrator.gateway.errors import BadRequest
from orchestrator.providers.messages import (
    ChatMessage,
    ModelRequest,
    ModelResponse,
    ToolCall,
    ToolDefinition,
)
from orchestrator.providers.usage import anthropic_usage_wire
from orchestrator.types import JsonObject

__all__ = ["parse_messages", "render_messages", "stop_reason"]


def _blocks(content: JsonValue, where: str) -> list[JsonObject]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise BadRequest(f"{where}: expected a string or a list of content blocks")
    return [obj(block, f"{where}[{i}]") for i, block in enumerate(content)]


def _tool_use(block: JsonObject, where: str) -> ToolCall:
    arguments = obj(block.get("input") or {}, f"{where}.input")
    return ToolCall(
        id=str(field(block, "id", where)),
        name=str(field(block, "name", where)),
        arguments_json=json.dumps(arguments, sort_keys=True),
        arguments=arguments,
    )


def _turn(raw: JsonValue, where: str) -> list[ChatMessage]:
    turn = obj(raw, where)
    role = field(turn, "role", where)
    if role not in ("user", "assistant"):
        raise BadRequest(f"{where}.role: expected user or assistant, got {role!r}")
    texts: list[str] = []
    calls: list[ToolCall] = []
    results: list[ChatMessage] = []
    for i, block in enumerate(_blocks(field(turn, "content", where), f"{where}.content")):
        at = f"{where}.content[{i}]"
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block.get("text") or ""))
        elif kind == "tool_use" and role == "assistant":
            calls.append(_tool_use(block, at))
        elif kind == "tool_result" and role == "user":
            results.append(
                ChatMessage(
                    role="tool",
                    tool_call_id=str(field(block, "tool_use_id", at)),
                    content=text_of(block.get("content"), f"{at}.content"),
                )
            )
        elif kind in ("thinking", "redacted_thinking"):
            continue
        else:
            raise BadRequest(f"{at}: block type {kind!r} is not supported in a {role} turn")
    if role == "assistant":
        return [ChatMessage(role="assistant", content="".join(texts) or None, tool_calls=calls)]
    if texts or not results:
        results.append(ChatMessage(role="user", content="".join(texts)))
    return results


def _system(value: JsonValue) -> list[ChatMessage]:
    if value is None:
        return []
    text = text_of(value, "body.system")
    return [ChatMessage(role="system", content=text)] if text else []


def _tool(raw: JsonValue, where: str) -> ToolDefinition:
    tool = obj(raw, where)
    description = tool.get("description")
    return ToolDefinition(
        name=str(field(tool, "name", where)),
        description=description if isinstance(description, str) else "",
        parameters=obj(tool.get("input_schema") or {"type": "object"}, f"{where}.input_schema"),
    )


def parse_messages(body: JsonValue) -> ChatCall:
    """Read a Messages request body.

    Raises:
        BadRequest: naming the first field that is missing or malformed.
    """
    root, model, turns, tools = read_head(body)
    max_tokens = opt_int(root, "max_tokens", "body")
    if max_tokens is None:
        raise BadRequest("body.max_tokens: required")
    messages = _system(root.get("system"))
    for i, turn in enumerate(turns):
        messages.extend(_turn(turn, f"body.messages[{i}]"))
    metadata = root.get("metadata")
    user_id = metadata.get("user_id") if isinstance(metadata, dict) else None
    return ChatCall(
        requested=model,
        request=ModelRequest(
            model=model,
            messages=messages,
            tools=[_tool(t, f"body.tools[{i}]") for i, t in enumerate(tools)],
            temperature=opt_number(root, "temperature", "body"),
            max_tokens=max_tokens,
        ),
        stream=root.get("stream") is True,
        user_id=user_id if isinstance(user_id, str) else None,
    )


def stop_reason(response: ModelResponse) -> str:
    """The Anthropic stop reason, whatever API the deployment speaks."""
    if response.message.tool_calls:
        return "tool_use"
    if response.finish_reason in ("length", "max_tokens"):
        return "max_tokens"
    return "end_turn"


def render_messages(response: ModelResponse, *, deployment: str, call_id: str) -> JsonObject:
    """A Messages response body; `model` names the deployment that answered."""
    content: list[JsonValue] = []
    if response.message.content:
        content.append({"type": "text", "text": response.message.content})
    for call in response.message.tool_calls:
        arguments = call.arguments if call.arguments is not None else {}
        content.append({"type": "tool_use", "id": call.id, "name": call.name, "input": arguments})
    return {
        "id": call_id,
        "type": "message",
        "role": "assistant",
        "model": deployment,
        "content": content,
        "stop_reason": stop_reason(response),
        "stop_sequence": None,
        "usage": anthropic_usage_wire(response.usage),
    }
