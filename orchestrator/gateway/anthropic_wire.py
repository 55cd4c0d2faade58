"""Anthropic Messages on the client side: request bodies in, response bodies out.

Pure functions, no I/O. `parse_messages` reads a `/v1/messages` body into a `ChatCall`:
the top-level `system` becomes a system message, `tool_use` blocks become tool calls, and
a user turn's `tool_result` blocks become tool messages ahead of its text, the order the
OpenAI shape needs. A client's `cache_control` breakpoints are kept as the request's
`cache_marks` (where they stood), for an Anthropic deployment. `render_messages` writes
the answer as a Messages body, `model` naming the deployment that answered.
"""

from __future__ import annotations

import json

from pydantic import JsonValue

from orchestrator.gateway.calls import (
    ChatCall,
    field,
    obj,
    opt_bool,
    opt_int,
    opt_number,
    opt_str,
    opt_strings,
    read_head,
    text_of,
)
from orchestrator.gateway.errors import BadRequest
from orchestrator.providers.anthropic import THINKING_BLOCKS
from orchestrator.providers.messages import (
    CacheMark,
    ChatMessage,
    ModelRequest,
    ModelResponse,
    ToolCall,
    ToolChoice,
    ToolDefinition,
)
from orchestrator.providers.params import (
    ANTHROPIC_EFFORTS,
    ANTHROPIC_ONLY,
    ANTHROPIC_TIERS,
    CHAT_FIELDS,
    MESSAGES_FIELDS,
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


Marked = tuple[ChatMessage, JsonObject | None]
"""A message and the client's `cache_control` on its last block, if any."""


def _control(block: JsonObject, where: str) -> JsonObject | None:
    control = block.get("cache_control")
    return None if control is None else obj(control, f"{where}.cache_control")


def _segments(parts: list[tuple[str, JsonObject | None]]) -> list[tuple[str, JsonObject | None]]:
    """Text blocks joined, cut after each one that carries a breakpoint.

    Unmarked, this is the one joined text it always was; a client's breakpoint inside a
    system prompt or a user turn stays after the same text, as its own block's end.
    """
    out: list[tuple[str, JsonObject | None]] = []
    texts: list[str] = []
    for text, control in parts:
        texts.append(text)
        if control is not None:
            out.append(("".join(texts), control))
            texts = []
    if texts or not out:
        out.append(("".join(texts), None))
    return out


def _turn(raw: JsonValue, where: str) -> list[Marked]:
    turn = obj(raw, where)
    role = field(turn, "role", where)
    if role not in ("user", "assistant"):
        raise BadRequest(f"{where}.role: expected user or assistant, got {role!r}")
    texts: list[tuple[str, JsonObject | None]] = []
    calls: list[ToolCall] = []
    results: list[Marked] = []
    thinking: list[JsonObject] = []
    last_control: JsonObject | None = None
    for i, block in enumerate(_blocks(field(turn, "content", where), f"{where}.content")):
        at = f"{where}.content[{i}]"
        kind = block.get("type")
        control = _control(block, at)
        if kind == "text":
            texts.append((str(block.get("text") or ""), control))
        elif kind == "tool_use" and role == "assistant":
            calls.append(_tool_use(block, at))
        elif kind == "tool_result" and role == "user":
            tool = ChatMessage(
                role="tool",
                tool_call_id=str(field(block, "tool_use_id", at)),
                content=text_of(block.get("content"), f"{at}.content"),
            )
            results.append((tool, control))
        elif kind in THINKING_BLOCKS and role == "assistant":
            thinking.append(_thinking(block, at))
        else:
            raise BadRequest(f"{at}: block type {kind!r} is not supported in a {role} turn")
        last_control = control or last_control
    if role == "assistant":
        # One message: a breakpoint on any of its blocks goes on its last block.
        content = "".join(text for text, _ in texts) or None
        message = ChatMessage(
            role="assistant", content=content, tool_calls=calls, thinking_blocks=thinking
        )
        return [(message, last_control)]
    if texts or not results:
        results += [
            (ChatMessage(role="user", content=text), control) for text, control in _segments(texts)
        ]
    return results


_SIGNED = {"thinking": ("thinking", "signature"), "redacted_thinking": ("data",)}
"""Each thinking block's fields that Anthropic needs back, as it sent them."""


def _thinking(block: JsonObject, where: str) -> JsonObject:
    """A thinking block of an earlier answer, kept verbatim for an Anthropic deployment.

    Anthropic checks its signature (or its encrypted `data`), and requires the blocks
    beside the tool calls of a tool loop when thinking is on; an OpenAI deployment is not
    sent them (its adapters write no such blocks).
    """
    for name in _SIGNED[str(block.get("type"))]:
        if not isinstance(field(block, name, where), str):
            raise BadRequest(f"{where}.{name}: expected a string")
    return block


def _output_config(root: JsonObject) -> tuple[JsonObject | None, str | None]:
    """`output_config` as the neutral `response_format` and reasoning effort.

    Its `format` (a JSON schema the answer follows, strictly) is OpenAI's `json_schema`
    response format; the name OpenAI asks for is `output`, as Anthropic gives none.
    """
    value = root.get("output_config")
    if value is None:
        return None, None
    config = obj(value, "body.output_config")
    effort = opt_str(config, "effort", "body.output_config")
    if effort is not None and effort not in ANTHROPIC_EFFORTS:
        raise BadRequest(
            f"body.output_config.effort: expected one of {', '.join(sorted(ANTHROPIC_EFFORTS))}"
        )
    wanted = config.get("format")
    if wanted is None:
        return None, effort
    spec = obj(wanted, "body.output_config.format")
    if spec.get("type") != "json_schema":
        raise BadRequest("body.output_config.format.type: expected json_schema")
    schema = obj(
        field(spec, "schema", "body.output_config.format"), "body.output_config.format.schema"
    )
    return {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema, "strict": True},
    }, effort


_TIERS = {wire: tier for tier, wire in ANTHROPIC_TIERS.items()}
"""Anthropic's service tiers as OpenAI names them (`standard_only` is `default`)."""


def _service_tier(root: JsonObject) -> str | None:
    tier = opt_str(root, "service_tier", "body")
    if tier is not None and tier not in _TIERS:
        raise BadRequest(f"body.service_tier: expected one of {', '.join(sorted(_TIERS))}")
    return None if tier is None else _TIERS[tier]


def _user(root: JsonObject) -> str | None:
    """`metadata.user_id`, all that Anthropic's `metadata` holds.

    Another key is refused, as Anthropic would refuse it, rather than dropped on the way
    to an OpenAI deployment.
    """
    value = root.get("metadata")
    if value is None:
        return None
    metadata = obj(value, "body.metadata")
    for key in metadata:
        if key != "user_id":
            raise BadRequest(f"body.metadata.{key}: Anthropic's metadata takes user_id only")
    return opt_str(metadata, "user_id", "body.metadata")


def _thinking_config(root: JsonObject) -> JsonObject | None:
    value = root.get("thinking")
    if value is None:
        return None
    thinking = obj(value, "body.thinking")
    if not isinstance(thinking.get("type"), str):
        raise BadRequest("body.thinking.type: expected a string")
    if thinking["type"] == "enabled":
        opt_int(thinking, "budget_tokens", "body.thinking")
        field(thinking, "budget_tokens", "body.thinking")
    return thinking


def _system(value: JsonValue) -> list[Marked]:
    if value is None:
        return []
    if isinstance(value, list) and any(
        isinstance(b, dict) and b.get("cache_control") is not None for b in value
    ):
        text_of(value, "body.system")  # text blocks only, as unmarked
        parts = [
            (str(b["text"]), _control(b, f"body.system[{i}]"))
            for i, b in enumerate(value)
            if isinstance(b, dict)
        ]
        return [(ChatMessage(role="system", content=t), c) for t, c in _segments(parts) if t]
    text = text_of(value, "body.system")
    return [(ChatMessage(role="system", content=text), None)] if text else []


def _tool(raw: JsonValue, where: str) -> ToolDefinition:
    tool = obj(raw, where)
    description = tool.get("description")
    return ToolDefinition(
        name=str(field(tool, "name", where)),
        description=description if isinstance(description, str) else "",
        parameters=obj(tool.get("input_schema") or {"type": "object"}, f"{where}.input_schema"),
    )


_CHOICES = {"auto": "auto", "any": "required", "tool": "tool", "none": "none"}
"""Anthropic's tool choices as the neutral (OpenAI's) words name them."""


def _tool_choice(root: JsonObject) -> tuple[ToolChoice | None, bool | None]:
    """`tool_choice`, and `parallel_tool_calls` False where it disables parallel use."""
    value = root.get("tool_choice")
    if value is None:
        return None, None
    where = "body.tool_choice"
    choice = obj(value, where)
    mode = _CHOICES.get(str(choice.get("type")))
    if mode is None:
        raise BadRequest(f"{where}.type: expected auto, any, tool or none")
    name = field(choice, "name", where) if mode == "tool" else None
    if name is not None and not isinstance(name, str):
        raise BadRequest(f"{where}.name: expected a string")
    disable = opt_bool(choice, "disable_parallel_tool_use", where)
    return ToolChoice.model_validate({"mode": mode, "name": name}), (False if disable else None)


def _strict(tools: list[JsonValue]) -> list[bool | None] | None:
    """Each tool's `strict` (None if not given), when any tool gives it."""
    strict = [
        opt_bool(obj(t, f"body.tools[{i}]"), "strict", f"body.tools[{i}]")
        for i, t in enumerate(tools)
    ]
    return strict if any(s is not None for s in strict) else None


def _anthropic_fields(root: JsonObject) -> JsonObject | None:
    """The body's `ANTHROPIC_ONLY` fields, as they came (None: it sends none).

    Raises:
        BadRequest: a field of OpenAI's chat completions that Messages does not define
            (Anthropic refuses it too); one neither API defines, a vendor's extra, is
            ignored.
    """
    for name in root:
        if name in CHAT_FIELDS and name not in MESSAGES_FIELDS:
            raise BadRequest(
                f"body.{name}: a field of OpenAI's chat completions, not of the Messages API;"
                " send the request to /v1/chat/completions or leave it out"
            )
    carried = {name: root[name] for name in ANTHROPIC_ONLY if root.get(name) is not None}
    return carried or None


def _betas(header: str | None) -> list[str] | None:
    """The beta names of an `anthropic-beta` header (comma-separated), or None."""
    names = [name.strip() for name in (header or "").split(",")]
    return [name for name in names if name] or None


def parse_messages(body: JsonValue, *, beta: str | None = None) -> ChatCall:
    """Read a Messages request body, and the client's `anthropic-beta` header (`beta`).

    Raises:
        BadRequest: naming the first field that is missing or malformed, or one of chat
            completions' that Messages does not define.
    """
    root, model, turns, tools = read_head(body)
    carried = _anthropic_fields(root)
    max_tokens = opt_int(root, "max_tokens", "body")
    if max_tokens is None:
        raise BadRequest("body.max_tokens: required")
    marked = _system(root.get("system"))
    for i, turn in enumerate(turns):
        marked.extend(_turn(turn, f"body.messages[{i}]"))
    marks = [
        CacheMark(where="message", at=i, control=control)
        for i, (_, control) in enumerate(marked)
        if control is not None
    ]
    for i, raw in enumerate(tools):
        control = _control(obj(raw, f"body.tools[{i}]"), f"body.tools[{i}]")
        if control is not None:
            marks.append(CacheMark(where="tool", at=i, control=control))
    user = _user(root)
    choice, parallel = _tool_choice(root)
    response_format, effort = _output_config(root)
    return ChatCall(
        requested=model,
        request=ModelRequest(
            model=model,
            messages=[message for message, _ in marked],
            tools=[_tool(t, f"body.tools[{i}]") for i, t in enumerate(tools)],
            temperature=opt_number(root, "temperature", "body"),
            max_tokens=max_tokens,
            # A client's cache_control: sent on unchanged to an Anthropic deployment, and
            # dropped on a route translated to an OpenAI one (whose APIs cache by themselves
            # and take no breakpoints), as its adapters ignore `cache_marks`.
            cache_marks=marks,
            tool_choice=choice,
            parallel_tool_calls=parallel,
            strict_tools=_strict(tools),
            stop=opt_strings(root, "stop_sequences", "body"),
            top_p=opt_number(root, "top_p", "body"),
            top_k=opt_int(root, "top_k", "body"),
            user=user,
            response_format=response_format,
            reasoning_effort=effort,
            thinking=_thinking_config(root),
            service_tier=_service_tier(root),
            inference_geo=opt_str(root, "inference_geo", "body"),
            speed=opt_str(root, "speed", "body"),
            cache_control=_control(root, "body"),
            anthropic_fields=carried,
            anthropic_beta=_betas(beta),
        ),
        stream=root.get("stream") is True,
        user_id=user,
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
    content: list[JsonValue] = list[JsonValue](response.message.thinking_blocks)
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
