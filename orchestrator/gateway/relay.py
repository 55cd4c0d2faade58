"""Chat completions to chat completions: the client's body forwarded, the answer relayed.

When the client speaks OpenAI chat completions and so does the deployment, the full path
reads the body into the provider-neutral conversation (pydantic models), writes that back
as JSON, reads the answer into `ModelResponse` and writes that back as JSON (bench/README.md,
"where a sequential request's 1.3 ms goes"). Here a body is checked in one pass
(`forwardable`) that also writes the upstream call's body as the full path would write it,
and reads what the gateway needs of it (the session's opening, the tool loop, the turn's
text); an answer of the plain shape (`read_answer`) is read only for its usage, its tool
calls and its finish reason, and rendered as `render_chat` renders it.

Agent frameworks do not send the exact shape the full path writes (tests/gateway/
sdk_bodies.json holds bodies captured from the `openai` SDK, the Agents SDK and pydantic-ai):
an assistant message without `content`, a `stop` string. The full
path rewrites these in fixed ways, so the pass does the same to a copy of just the parts that
differ; the upstream body is the full path's either way. The parameters the full path carries
(`tool_choice`, `response_format`, `stop`, `seed`, `top_p`, a tool's `strict`, ...) go on
as they came, once of a shape it accepts. Anything it does not know (a field the full path reads
otherwise, a content part that is not text, a malformed body) takes the full path, which
refuses or translates it as before: `forwardable` admits only bodies `parse_chat` accepts,
so a refusal reads the same either way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pydantic import JsonValue

from orchestrator.providers.messages import ModelResponse, Usage
from orchestrator.providers.params import CHAT_AS_IS, OPENAI_EFFORTS
from orchestrator.providers.usage import chat_usage
from orchestrator.types import JsonObject

__all__ = ["Forward", "Relayed", "asks_tools", "forwardable", "normalised", "read_answer"]

_KEPT = frozenset({"model", "messages", "tools", "temperature", "max_tokens"})
"""The body's fields the full path sends on (`temperature` as a float)."""
_PARAMS = frozenset({*CHAT_AS_IS, "tool_choice", "reasoning_effort"})
"""Optional parameters the full path sends on (`ModelRequest`'s, chat completions' names)."""
_OWN = frozenset({"stream", "stream_options"})
"""The fields the full path writes itself, as the deployment streams or not."""
_HEAD = _KEPT | _PARAMS | _OWN | {"max_completion_tokens"}
_MODES = frozenset({"auto", "none", "required"})
_FORMATS = frozenset({"text", "json_object", "json_schema"})
_SPEAKERS = {"system": "system", "developer": "system", "user": "user"}
"""The roles of spoken messages, as the full path writes them."""
_SPOKEN = frozenset({"role", "content", "name"})
_ASSISTANT = frozenset({"role", "content", "name", "tool_calls"})
_UNSET = frozenset({"refusal", "annotations", "audio", "function_call"})
"""An SDK answer message's fields, all None in what `model_dump()` gives back; the full
path drops them."""
_TOOL_RESULT = frozenset({"role", "tool_call_id", "content"})
_NAMED_RESULT = _TOOL_RESULT | {"name"}
_CALL = frozenset({"id", "type", "function"})
_CALLED = frozenset({"name", "arguments"})
_TOOL = frozenset({"type", "function"})
_FUNCTION = frozenset({"name", "description", "parameters"})
_STRICT = _FUNCTION | {"strict"}


@dataclass(frozen=True, slots=True)
class Forward:
    """A chat-completions body that may go to a chat-completions deployment without parsing.

    What the gateway reads of the conversation, read in the pass that checked it: the
    same values `identify`, `in_tool_loop` and `task_of` give for the parsed request.
    """

    body: JsonObject
    """The upstream call's body as the full path writes it, `model` the client's: the
    client's own objects where the full path writes them as they are, a copy of the rest."""
    opening: tuple[tuple[str, str], ...]
    """The session fingerprint's input (`sessions.opening`)."""
    looping: bool
    """The last assistant message asked for tools and a result for one follows it."""
    prompt: str
    """The last user message's text (`routed.task_of`)."""


def _text(content: JsonValue) -> str | None:
    """Content as the full path reads it (`calls.text_of`): a string, or text parts joined.

    None for anything else (no content, a part that is not text), which the full path
    reads otherwise or refuses.
    """
    if type(content) is str:
        return content
    if type(content) is not list:
        return None
    texts: list[str] = []
    for part in content:
        if type(part) is not dict or part.get("type") != "text":
            return None
        text = part.get("text")
        if type(text) is not str:
            return None
        texts.append(text)
    return "".join(texts)


def _tool(tool: JsonValue) -> JsonObject | None:
    """A tool as the full path writes it: `tool` itself when it is so already.

    `strict` stays as it is, a missing description is empty and missing (or empty)
    parameters are an object's without properties, as `openai_wire._tool` reads them.
    """
    if type(tool) is not dict or tool.keys() != _TOOL or tool["type"] != "function":
        return None
    function = tool["function"]
    if type(function) is not dict or not function.keys() <= _STRICT:
        return None
    name, description = function.get("name"), function.get("description")
    parameters = function.get("parameters")
    if type(name) is not str or type(function.get("strict", False)) is not bool:
        return None
    if description is not None and type(description) is not str:
        return None
    if parameters and type(parameters) is not dict:
        return None
    if type(description) is str and parameters:
        return tool
    written: JsonObject = {
        "name": name,
        "description": description or "",
        "parameters": parameters or {"type": "object", "properties": {}},
    }
    if "strict" in function:
        written["strict"] = function["strict"]
    return {"type": "function", "function": written}


def _tools(tools: JsonValue) -> JsonValue | None:
    """The tools as the full path writes them: `tools` itself, or a copy where one differs."""
    if type(tools) is not list:
        return None
    out: list[JsonValue] | None = None
    for index, tool in enumerate(tools):
        written = _tool(tool)
        if written is None:
            return None
        if written is not tool and out is None:
            out = tools[:index]
        if out is not None:
            out.append(written)
    return tools if out is None else out


def _limit(value: JsonValue) -> bool:
    """Whether a token limit is absent or a positive integer, as `calls.opt_int` keeps it."""
    return value is None or (type(value) is int and value >= 1)


def _head(root: JsonObject) -> JsonObject | None:
    """The upstream body's own fields, in the order and types the full path writes them.

    Its `messages` are the client's (`forwardable` replaces them if one differs); None
    for a field the full path reads otherwise, or one of a type it does not keep.
    """
    if not root.keys() <= _HEAD or type(root.get("stream", False)) is not bool:
        return None
    model = root.get("model")
    if type(model) is not str or not model:
        return None
    body: JsonObject = {"model": model, "messages": root.get("messages")}
    tools = root.get("tools")
    if tools:
        written = _tools(tools)
        if written is None:
            return None
        body["tools"] = written
    temperature = root.get("temperature")
    if type(temperature) is float or type(temperature) is int:
        body["temperature"] = float(temperature)
    elif temperature is not None:
        return None
    most, limit = root.get("max_completion_tokens"), root.get("max_tokens")
    if not _limit(most) or not _limit(limit):
        return None
    if most is not None:
        body["max_completion_tokens"] = most
    elif limit is not None:
        body["max_tokens"] = limit
    return _params(root, body)


class _Refused:
    """A parameter's value the full path reads otherwise, or refuses."""


_REFUSED = _Refused()


def _number(value: JsonValue) -> JsonValue | _Refused:
    """A number as `calls.opt_number` keeps it: a float."""
    if type(value) is float or type(value) is int:
        return float(value)
    return _REFUSED


def _choice(value: JsonValue) -> JsonValue | _Refused:
    """A `tool_choice` the full path reads and writes back as it is."""
    if type(value) is str:
        return value if value in _MODES else _REFUSED
    if type(value) is not dict or value.keys() != {"type", "function"}:
        return _REFUSED
    function = value["function"]
    if value["type"] != "function" or type(function) is not dict:
        return _REFUSED
    return value if function.keys() == {"name"} and type(function["name"]) is str else _REFUSED


def _format(value: JsonValue) -> JsonValue | _Refused:
    """A `response_format` the full path accepts (and sends as it is)."""
    if type(value) is not dict or value.get("type") not in _FORMATS:
        return _REFUSED
    if value["type"] != "json_schema":
        return value
    schema = value.get("json_schema")
    return value if type(schema) is dict and type(schema.get("name")) is str else _REFUSED


def _stop(value: JsonValue) -> JsonValue | _Refused:
    """Stop sequences as the full path writes them: a list, a single one too."""
    if type(value) is str:
        return [value]
    if type(value) is not list or any(type(s) is not str for s in value):
        return _REFUSED
    return value


def _typed(kind: type) -> Callable[[JsonValue], JsonValue | _Refused]:
    return lambda value: value if type(value) is kind else _REFUSED


def _effort(value: JsonValue) -> JsonValue | _Refused:
    return value if type(value) is str and value in OPENAI_EFFORTS else _REFUSED


def _tags(value: JsonValue) -> JsonValue | _Refused:
    """`metadata`: an object of strings."""
    if type(value) is not dict or any(type(tag) is not str for tag in value.values()):
        return _REFUSED
    return value


def _bias(value: JsonValue) -> JsonValue | _Refused:
    """`logit_bias`: an object of numbers, which the full path keeps as they are."""
    if type(value) is not dict or any(type(b) not in (int, float) for b in value.values()):
        return _REFUSED
    return value


_WRITTEN: dict[str, Callable[[JsonValue], JsonValue | _Refused]] = {
    "top_p": _number,
    "frequency_penalty": _number,
    "presence_penalty": _number,
    "tool_choice": _choice,
    "parallel_tool_calls": _typed(bool),
    "response_format": _format,
    "stop": _stop,
    "seed": _typed(int),
    "user": _typed(str),
    "reasoning_effort": _effort,
    "metadata": _tags,
    "store": _typed(bool),
    "service_tier": _typed(str),
    "logit_bias": _bias,
    "prompt_cache_key": _typed(str),
    "prompt_cache_retention": _typed(str),
    "prompt_cache_options": _tags,
    "safety_identifier": _typed(str),
    "verbosity": _typed(str),
}
"""Each optional parameter the full path carries: its value as the full path writes it."""


def _params(root: JsonObject, body: JsonObject) -> JsonObject | None:
    """`body` with the optional parameters the full path carries, as it writes them."""
    for name, written in _WRITTEN.items():
        value = root.get(name)
        if value is None:
            continue
        out = written(value)
        if isinstance(out, _Refused):
            return None
        body[name] = out
    return body


def _asked(calls: JsonValue) -> set[str] | None:
    """The ids of tool calls written as the full path writes them; None for anything else."""
    if type(calls) is not list or not calls:
        return None
    ids: set[str] = set()
    for call in calls:
        if type(call) is not dict or call.keys() != _CALL or call["type"] != "function":
            return None
        function, call_id = call["function"], call["id"]
        if type(function) is not dict or function.keys() != _CALLED or type(call_id) is not str:
            return None
        if type(function["name"]) is not str or type(function["arguments"]) is not str:
            return None
        ids.add(call_id)
    return ids


_Plain = tuple[str, str | None, str | set[str] | None, JsonObject]


def _assistant(message: JsonObject) -> _Plain | None:
    """An assistant message: its text, its tool calls' ids, and as the full path writes it.

    Without `content` it is null; text parts are joined; no tool calls (null, an empty
    list) and the fields an SDK's own answer message leaves null are dropped.
    """
    keys = message.keys()
    known = keys <= _ASSISTANT
    if not known and not all(
        key in _ASSISTANT or (key in _UNSET and message[key] is None) for key in keys
    ):
        return None
    content, calls = message.get("content"), message.get("tool_calls")
    text = content if content is None or type(content) is str else _text(content)
    if content is not None and text is None:
        return None
    if "name" in keys and type(message["name"]) is not str:
        return None
    ids: set[str] | None = set()
    if calls:
        ids = _asked(calls)
    elif calls is not None and calls != []:
        return None
    if ids is None:
        return None
    same = known and "content" in keys and type(content) is not list
    if same and (ids or "tool_calls" not in keys):
        return "assistant", text, ids, message
    written: JsonObject = {"role": "assistant", "content": text}
    if "name" in keys:
        written["name"] = message["name"]
    if ids:
        written["tool_calls"] = calls
    return "assistant", text, ids, written


def _plain(message: JsonValue) -> _Plain | None:
    """A message as the full path writes it: its role, its text, its link, and it written.

    The link is a tool result's call id, or the ids of an assistant message's tool calls
    (empty without any); None for system and user messages. The message written is
    `message` itself when the full path writes it so. None for any other message.
    """
    if type(message) is not dict:
        return None
    role = message.get("role")
    if role == "assistant":
        return _assistant(message)
    keys = message.keys()
    content = message.get("content")
    text = content if type(content) is str else _text(content)
    if text is None or type(role) is not str:
        return None
    if role == "tool":
        call_id = message.get("tool_call_id")
        if type(call_id) is not str:
            return None
        if keys == _TOOL_RESULT and type(content) is str:
            return role, text, call_id, message
        if not keys <= _NAMED_RESULT:
            return None
        return role, text, call_id, {"role": "tool", "tool_call_id": call_id, "content": text}
    spoken = _SPEAKERS.get(role)
    if spoken is None or not keys <= _SPOKEN:
        return None
    if "name" in keys and type(message["name"]) is not str:
        return None
    if spoken == role and type(content) is str:
        return role, text, None, message
    return spoken, text, None, {**message, "role": spoken, "content": text}


_Read = tuple[tuple[tuple[str, str], ...], bool, str, list[JsonValue] | None]


def _read(messages: list[JsonValue]) -> _Read | None:
    """The conversation's opening, tool loop and last user text, and its messages.

    The messages as the full path writes them, when they differ from the client's (else
    None). None for a message the full path reads otherwise.
    """
    written: list[JsonValue] | None = None
    opening: list[tuple[str, str]] = []
    opened = False
    asked: set[str] = set()
    answered: list[str] = []
    prompt = ""
    for index, message in enumerate(messages):
        plain = _plain(message)
        if plain is None:
            return None
        role, text, link, wire = plain
        if written is not None:
            written.append(wire)
        elif wire is not message:
            written = [*messages[:index], wire]
        if isinstance(link, str):
            answered.append(link)
        elif link is not None:
            asked, answered = link, []
        elif role == "user":
            prompt = text or ""
        if not opened:
            opened = role != "system"
            if role in ("system", "user"):
                opening.append((role[0], text or ""))
    looping = bool(asked) and any(call_id in asked for call_id in answered)
    return tuple(opening), looping, prompt, written


def forwardable(root: JsonValue) -> Forward | None:
    """`root` as a `Forward` when the full path would send the body `Forward.body` holds.

    That is: only the fields the full path keeps (`_KEPT`, `_PARAMS`,
    `max_completion_tokens`), each message of a role it knows with text content
    (a string or text parts) and tool calls with their type and string arguments, tools with a name.
    None for anything else, which `parse_chat` then reads (or refuses) as always.
    """
    if type(root) is not dict:
        return None
    body = _head(root)
    messages = None if body is None else body["messages"]
    if body is None or type(messages) is not list or not messages:
        return None
    read = _read(messages)
    if read is None:
        return None
    opening, looping, prompt, written = read
    if written is not None:
        body["messages"] = written
    return Forward(body=body, opening=opening, looping=looping, prompt=prompt)


@dataclass(frozen=True, slots=True)
class Relayed:
    """A deployment's chat-completions answer of the plain shape, read for what is needed."""

    message: JsonObject
    """The answer's message as `render_chat` writes it (role, content, tool calls)."""
    finish: str
    """The OpenAI finish reason as `openai_wire.finish_reason` gives it."""
    usage: Usage
    tool_calls: int
    """How many tool calls the answer asks for."""


def asks_tools(response: ModelResponse | Relayed) -> bool:
    """Whether the answer asks for tools (the tool loop stays open)."""
    if isinstance(response, Relayed):
        return response.tool_calls > 0
    return bool(response.message.tool_calls)


def normalised(response: ModelResponse | Relayed) -> ModelResponse:
    """The answer as the adapters normalise it: on every path that did not forward.

    Raises:
        TypeError: a relayed answer, which only a chat-completions client is sent.
    """
    if isinstance(response, Relayed):
        raise TypeError("a relayed chat-completions answer reached another API's renderer")
    return response


def _calls(raw: JsonValue) -> list[JsonValue] | None:
    """Tool calls as `render_chat` writes them, when each has its id, name and text."""
    if raw is None:
        return []
    if type(raw) is not list:
        return None
    out: list[JsonValue] = []
    for call in raw:
        if type(call) is not dict:
            return None
        call_id, function = call.get("id"), call.get("function")
        if type(call_id) is not str or not call_id or type(function) is not dict:
            return None
        name, arguments = function.get("name"), function.get("arguments")
        if type(name) is not str or not name:
            return None
        if arguments is None:
            arguments = ""
        elif type(arguments) is not str:
            return None
        out.append(
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
        )
    return out


def read_answer(endpoint: str, raw: JsonValue) -> Relayed | None:
    """What the gateway needs of a chat-completions answer of the plain shape.

    None for anything else (content parts, arguments as an object, a malformed field):
    the adapter's full reader takes those, and raises as it always did.

    Raises:
        ProviderResponseError: the usage is malformed (as the full reader would say).
    """
    if type(raw) is not dict:
        return None
    choices = raw.get("choices")
    if type(choices) is not list or not choices:
        return None
    choice = choices[0]
    if type(choice) is not dict:
        return None
    message, reason = choice.get("message"), choice.get("finish_reason")
    if type(message) is not dict or (reason is not None and type(reason) is not str):
        return None
    content = message.get("content")
    if content is not None and type(content) is not str:
        return None
    model = raw.get("model")
    if model is not None and type(model) is not str:
        return None
    calls = _calls(message.get("tool_calls") or None)
    if calls is None:
        return None
    usage = chat_usage(endpoint, raw.get("usage"))
    out: JsonObject = {"role": "assistant", "content": content}
    if calls:
        out["tool_calls"] = calls
        finish = "tool_calls"
    else:
        finish = "length" if reason in ("max_tokens", "length") else "stop"
    return Relayed(message=out, finish=finish, usage=usage, tool_calls=len(calls))
