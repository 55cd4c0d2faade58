"""OpenAI chat completions on the client side: request bodies in, response bodies out.

Pure functions, no I/O: `parse_chat` reads a `/v1/chat/completions` body into a
`ChatCall`, `render_chat` writes a provider-neutral answer as the body the `openai` SDK
expects, with `model` naming the deployment that answered.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Literal

from pydantic import JsonValue

from orchestrator.gateway import jsonio
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
from orchestrator.gateway.relay import Relayed, forwardable
from orchestrator.providers._http import parse_arguments
from orchestrator.providers.messages import ModelRequest, ModelResponse
from orchestrator.providers.params import CHAT_FIELDS, MESSAGES_FIELDS, OPENAI_EFFORTS
from orchestrator.providers.usage import chat_usage_wire
from orchestrator.types import JsonObject

__all__ = ["finish_reason", "parse_chat", "render_chat"]

_ROLES: dict[str, Literal["system", "user", "assistant"]] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
}


def _arguments(raw: str) -> tuple[JsonObject | None, str | None]:
    """`parse_arguments`, with the gateway's JSON reader for the common case (an object)."""
    if raw:
        try:
            value = jsonio.loads(raw)
        except jsonio.JSONDecodeError:
            value = None
        if isinstance(value, dict):
            return value, None
    return parse_arguments(raw)


def _tool_calls(value: JsonValue, where: str) -> list[JsonValue]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest(f"{where}: expected a list")
    calls: list[JsonValue] = []
    for i, raw in enumerate(value):
        call = obj(raw, f"{where}[{i}]")
        function = obj(field(call, "function", f"{where}[{i}]"), f"{where}[{i}].function")
        name = field(function, "name", f"{where}[{i}].function")
        call_id = field(call, "id", f"{where}[{i}]")
        raw_args = function.get("arguments") or ""
        arguments_json = raw_args if isinstance(raw_args, str) else json.dumps(raw_args)
        calls.append(_tool_call(call_id, name, arguments_json))
    return calls


def _tool_call(call_id: JsonValue, name: JsonValue, arguments_json: str) -> JsonObject:
    arguments, error = _arguments(arguments_json)
    return {
        "id": str(call_id),
        "name": str(name),
        "arguments_json": arguments_json,
        "arguments": arguments,
        "parse_error": error,
    }


def _message(raw: JsonValue, where: str) -> JsonObject:
    """A message as `ChatMessage`'s fields, each checked; refusals name their place."""
    message = obj(raw, where)
    role = field(message, "role", where)
    if role == "tool":
        return {
            "role": "tool",
            "content": text_of(message.get("content"), f"{where}.content"),
            "tool_call_id": str(field(message, "tool_call_id", where)),
        }
    if not isinstance(role, str) or role not in _ROLES:
        raise BadRequest(f"{where}.role: unknown role {role!r} (system, user, assistant, tool)")
    content = message.get("content")
    name = message.get("name")
    return {
        "role": _ROLES[role],
        "content": None
        if content is None and role == "assistant"
        else text_of(content, f"{where}.content"),
        "tool_calls": _tool_calls(message.get("tool_calls"), f"{where}.tool_calls"),
        "name": name if isinstance(name, str) else None,
    }


def _plain_tool_calls(value: JsonValue) -> list[JsonValue] | None:
    """`_tool_calls` of well-formed calls with string arguments; None for anything else."""
    if type(value) is not list:
        return None
    calls: list[JsonValue] = []
    for call in value:
        if type(call) is not dict:
            return None
        function = call.get("function")
        if type(function) is not dict:
            return None
        name, call_id = function.get("name"), call.get("id")
        arguments = function.get("arguments") or ""
        if name is None or call_id is None or type(arguments) is not str:
            return None
        calls.append(_tool_call(call_id, name, arguments))
    return calls


def _plain_message(raw: JsonValue) -> JsonObject | None:
    """`_message` of a well-formed message with text content; None for anything else.

    Most messages of a request are such: this reads them without building the place of
    each field for refusals that do not come (`_message` reads the rest, and refuses).
    """
    if type(raw) is not dict:
        return None
    role, content = raw.get("role"), raw.get("content")
    if content is not None and type(content) is not str:
        return None
    if role == "tool":
        call_id = raw.get("tool_call_id")
        if call_id is None:
            return None
        return {"role": "tool", "content": content or "", "tool_call_id": str(call_id)}
    mapped = _ROLES.get(role) if type(role) is str else None
    if mapped is None:
        return None
    calls = raw.get("tool_calls")
    tool_calls = [] if calls is None else _plain_tool_calls(calls)
    if tool_calls is None:
        return None
    name = raw.get("name")
    return {
        "role": mapped,
        "content": content if content is not None or role == "assistant" else "",
        "tool_calls": tool_calls,
        "name": name if type(name) is str else None,
    }


def _tool(raw: JsonValue, where: str, strict: list[JsonValue]) -> JsonObject:
    """A tool as `ToolDefinition`'s fields; appends its `strict` (None: not given)."""
    tool = obj(raw, where)
    if tool.get("type", "function") != "function":
        raise BadRequest(f"{where}.type: only function tools are supported")
    function = obj(field(tool, "function", where), f"{where}.function")
    parameters = function.get("parameters") or {"type": "object", "properties": {}}
    description = function.get("description")
    name = str(field(function, "name", f"{where}.function"))
    strict.append(opt_bool(function, "strict", f"{where}.function"))
    return {
        "name": name,
        "description": description if isinstance(description, str) else "",
        "parameters": obj(parameters, f"{where}.function.parameters"),
    }


_MODES = frozenset({"auto", "none", "required"})
_FORMATS = frozenset({"text", "json_object", "json_schema"})


def _tool_choice(value: JsonValue) -> JsonObject | None:
    """`tool_choice` as `ToolChoice`'s fields: a mode, or the named function."""
    if value is None:
        return None
    if isinstance(value, str) and value in _MODES:
        return {"mode": value}
    where = "body.tool_choice"
    choice = obj(value, where) if isinstance(value, dict) else None
    if choice is None or choice.get("type") != "function":
        raise BadRequest(f"{where}: expected auto, none, required or a named function")
    function = obj(field(choice, "function", where), f"{where}.function")
    name = field(function, "name", f"{where}.function")
    if not isinstance(name, str):
        raise BadRequest(f"{where}.function.name: expected a string")
    return {"mode": "tool", "name": name}


def _response_format(root: JsonObject) -> JsonObject | None:
    """`response_format` as the client sent it, once its type is known to be one of three."""
    value = root.get("response_format")
    if value is None:
        return None
    wanted = obj(value, "body.response_format")
    kind = wanted.get("type")
    if kind not in _FORMATS:
        raise BadRequest(
            f"body.response_format.type: expected one of {', '.join(sorted(_FORMATS))}"
        )
    if kind == "json_schema":
        schema = obj(
            field(wanted, "json_schema", "body.response_format"), "body.response_format.json_schema"
        )
        if not isinstance(schema.get("name"), str):
            raise BadRequest("body.response_format.json_schema.name: expected a string")
    return wanted


def _stop(root: JsonObject) -> list[JsonValue] | None:
    stop = opt_strings(root, "stop", "body")
    return None if stop is None else list[JsonValue](stop)


def _answerable(root: JsonObject) -> None:
    """Refuse what asks for more of the answer than the gateway returns.

    It returns one choice, without log probabilities: a request for more would get less
    than it asked for without a word.

    Raises:
        BadRequest: `n` above 1, `logprobs` true or `top_logprobs` given, an answer
            other than text, a field the gateway does not read (`_NOT_READ`), or one of
            Anthropic's Messages API that chat completions does not define (a field
            neither API defines, a vendor's extra, is ignored).
    """
    n = root.get("n")
    if n is not None and n != 1:
        raise BadRequest("body.n: the gateway answers with one choice; send n: 1 or leave it out")
    if root.get("logprobs") not in (None, False):
        raise BadRequest(
            "body.logprobs: the gateway does not return log probabilities; leave it out"
        )
    if root.get("top_logprobs") is not None:
        raise BadRequest(
            "body.top_logprobs: the gateway does not return log probabilities; leave it out"
        )
    modalities = root.get("modalities")
    if modalities is not None and modalities != ["text"]:
        raise BadRequest('body.modalities: the gateway answers with text only; send ["text"]')
    for name, instead in _NOT_READ.items():
        if root.get(name) is not None:
            raise BadRequest(f"body.{name}: the gateway does not carry it; {instead}")
    for name in root:
        if name in MESSAGES_FIELDS and name not in CHAT_FIELDS:
            raise BadRequest(
                f"body.{name}: a field of Anthropic's Messages API, not of chat completions;"
                " send the request to /v1/messages or leave it out"
            )


_NOT_READ = {
    "functions": "send the functions as tools",
    "function_call": "send tool_choice",
    "audio": "leave it out (the gateway answers with text)",
    "prediction": "leave it out",
    "web_search_options": "leave it out",
    "moderation": "leave it out (the gateway returns no moderation results)",
}
"""Chat completions fields that would change the answer and that the gateway does not
read: sent, they would be dropped without a word, so they are refused."""


def _seed(root: JsonObject) -> int | None:
    seed = root.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise BadRequest("body.seed: expected an integer")
    return seed


def _effort(root: JsonObject) -> str | None:
    effort = opt_str(root, "reasoning_effort", "body")
    if effort is not None and effort not in OPENAI_EFFORTS:
        raise BadRequest(
            f"body.reasoning_effort: expected one of {', '.join(sorted(OPENAI_EFFORTS))}"
        )
    return effort


def _mapping(
    root: JsonObject, name: str, read: Callable[[JsonObject, str, str], object]
) -> JsonObject | None:
    """An optional object field, as it came, once `read` accepts each of its values."""
    value = root.get(name)
    if value is None:
        return None
    mapping = obj(value, f"body.{name}")
    for key in mapping:
        read(mapping, key, f"body.{name}")
    return mapping


def _limit(root: JsonObject) -> tuple[int | None, bool | None]:
    """The output limit, and whether the client named it `max_completion_tokens`."""
    most = opt_int(root, "max_completion_tokens", "body")
    if most is not None:
        return most, True
    limit = opt_int(root, "max_tokens", "body")
    return limit, None if limit is None else False


def parse_chat(body: JsonValue) -> ChatCall:
    """Read a chat-completions request body.

    A body that a chat-completions deployment may be sent as it came (`relay.forwardable`)
    is checked in one pass over its JSON, and its conversation is built only if something
    asks for it (a routing decision, a budget, a deployment of the other API). Any other
    body is read here: the fields are checked in order, each refusal naming its place;
    the checked values are then validated into the conversation in one pass (one
    `model_validate` costs half as much as a constructor per message and tool call).

    Raises:
        BadRequest: naming the first field that is missing or malformed.
    """
    forward = forwardable(body)
    if forward is not None:
        model = forward.body["model"]
        assert isinstance(model, str)
        stream = body.get("stream") is True if isinstance(body, dict) else False
        return ChatCall(model, lambda: _request(body)[1], stream=stream, forward=forward)
    root, request = _request(body)
    previous = root.get("previous_response_id")
    return ChatCall(
        request.model,
        request,
        stream=root.get("stream") is True,
        previous_response_id=previous if isinstance(previous, str) else None,
    )


def _request(body: JsonValue) -> tuple[JsonObject, ModelRequest]:
    """The body and its conversation, as `parse_chat` reads it; refusals name the field."""
    root, model, messages, tools = read_head(body)
    _answerable(root)
    limit, named = _limit(root)
    strict: list[JsonValue] = []
    request: JsonObject = {
        "model": model,
        "messages": [
            _plain_message(m) or _message(m, f"body.messages[{i}]") for i, m in enumerate(messages)
        ],
        "tools": [_tool(t, f"body.tools[{i}]", strict) for i, t in enumerate(tools)],
        "temperature": opt_number(root, "temperature", "body"),
        "max_tokens": limit,
        "max_completion_tokens": named,
        "tool_choice": _tool_choice(root.get("tool_choice")),
        "parallel_tool_calls": opt_bool(root, "parallel_tool_calls", "body"),
        "strict_tools": strict if any(s is not None for s in strict) else None,
        "response_format": _response_format(root),
        "stop": _stop(root),
        "seed": _seed(root),
        "top_p": opt_number(root, "top_p", "body"),
        "frequency_penalty": opt_number(root, "frequency_penalty", "body"),
        "presence_penalty": opt_number(root, "presence_penalty", "body"),
        "user": opt_str(root, "user", "body"),
        "reasoning_effort": _effort(root),
        "metadata": _mapping(root, "metadata", opt_str),
        "store": opt_bool(root, "store", "body"),
        "service_tier": opt_str(root, "service_tier", "body"),
        "logit_bias": _mapping(root, "logit_bias", opt_number),
        "prompt_cache_key": opt_str(root, "prompt_cache_key", "body"),
        "prompt_cache_retention": opt_str(root, "prompt_cache_retention", "body"),
        "prompt_cache_options": _mapping(root, "prompt_cache_options", opt_str),
        "safety_identifier": opt_str(root, "safety_identifier", "body"),
        "verbosity": opt_str(root, "verbosity", "body"),
    }
    return root, ModelRequest.model_validate(request)


def finish_reason(response: ModelResponse | Relayed) -> str:
    """The OpenAI finish reason, whatever API the deployment speaks."""
    if isinstance(response, Relayed):
        return response.finish
    if response.message.tool_calls:
        return "tool_calls"
    reason = response.finish_reason
    if reason in ("max_tokens", "length"):
        return "length"
    return "stop"


def render_chat(
    response: ModelResponse | Relayed, *, deployment: str, call_id: str, created: int
) -> JsonObject:
    """A chat-completions response body; `model` names the deployment that answered."""
    if isinstance(response, Relayed):
        message = response.message
    else:
        message = {"role": "assistant", "content": response.message.content}
        if response.message.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments_json},
                }
                for call in response.message.tool_calls
            ]
    return {
        "id": call_id,
        "object": "chat.completion",
        "created": created,
        "model": deployment,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish_reason(response),
                "logprobs": None,
            }
        ],
        "usage": chat_usage_wire(response.usage),
    }
