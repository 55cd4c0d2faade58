"""Chat completions to chat completions: the client's body forwarded, the answer relayed.

When the client speaks OpenAI chat completions and so does the deployment, the full path
reads the body into the provider-neutral conversation (pydantic models), writes that back
as the same JSON, reads the answer into `ModelResponse` and writes that back as the same
JSON (bench/README.md, "where a sequential request's 1.3 ms goes"). Here a body that the
full path would send on unchanged but for its `model` (`forwardable`) is forwarded as it
came, and what the gateway needs of it (the session's opening, the tool loop, the turn's
text) is read in the same pass; an answer of the plain shape (`read_answer`) is read only
for its usage, its tool calls and its finish reason, and rendered as `render_chat` renders
it. Anything else (a field the full path rewrites or drops, a content part, a malformed
body) takes the full path, which refuses or translates it as before: `forwardable` admits
only bodies `parse_chat` accepts, so a refusal reads the same either way.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import JsonValue

from orchestrator.providers.messages import ModelResponse, Usage
from orchestrator.providers.usage import chat_usage
from orchestrator.types import JsonObject

__all__ = ["Forward", "Relayed", "asks_tools", "forwardable", "normalised", "read_answer"]

_TOP = frozenset(
    {"model", "messages", "tools", "temperature", "max_tokens", "stream", "stream_options"}
)
"""The body's fields the full path sends on as they are, and the two it writes itself
(`stream` and `stream_options`, as the deployment streams or not)."""
_OWN = ("stream", "stream_options")
_SPOKEN = frozenset({"role", "content", "name"})
_ASSISTANT = frozenset({"role", "content", "name", "tool_calls"})
_TOOL_RESULT = frozenset({"role", "tool_call_id", "content"})
_CALL = frozenset({"id", "type", "function"})
_CALLED = frozenset({"name", "arguments"})
_TOOL = frozenset({"type", "function"})
_FUNCTION = frozenset({"name", "description", "parameters"})


@dataclass(frozen=True, slots=True)
class Forward:
    """A chat-completions body that may go to a chat-completions deployment as it came.

    What the gateway reads of the conversation, read in the pass that checked it: the
    same values `identify`, `in_tool_loop` and `task_of` give for the parsed request.
    """

    body: JsonObject
    """The client's body, without `stream` and `stream_options`: the upstream call's own."""
    opening: tuple[tuple[str, str], ...]
    """The session fingerprint's input (`sessions.opening`)."""
    looping: bool
    """The last assistant message asked for tools and a result for one follows it."""
    prompt: str
    """The last user message's text (`routed.task_of`)."""


def _plain_tools(tools: JsonValue) -> bool:
    """Tools exactly as the full path writes them: a non-empty list, every field there."""
    if type(tools) is not list or not tools:
        return False
    for tool in tools:
        if type(tool) is not dict or tool.keys() != _TOOL or tool["type"] != "function":
            return False
        function = tool["function"]
        if type(function) is not dict or function.keys() != _FUNCTION:
            return False
        if type(function["name"]) is not str or type(function["description"]) is not str:
            return False
        if type(function["parameters"]) is not dict:
            return False
    return True


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


def _head_ok(root: JsonObject) -> bool:
    """The body's own fields: those the full path keeps, each of the type it keeps."""
    if not root.keys() <= _TOP or type(root.get("stream", False)) is not bool:
        return False
    model = root.get("model")
    if type(model) is not str or not model:
        return False
    if "temperature" in root and type(root["temperature"]) not in (int, float):
        return False
    if "max_tokens" in root:
        limit = root["max_tokens"]
        if type(limit) is not int or limit < 1:
            return False
    return "tools" not in root or _plain_tools(root["tools"])


def _plain(message: JsonValue) -> tuple[str, str | None, str | set[str] | None] | None:
    """A message written as the full path writes it: its role, its text, and its link.

    The link is a tool result's call id, or the ids of an assistant message's tool calls
    (empty without any); None for system and user messages. None for any other message.
    """
    if type(message) is not dict:
        return None
    role, content = message.get("role"), message.get("content")
    if "name" in message and type(message["name"]) is not str:
        return None
    if role == "tool":
        call_id = message.get("tool_call_id")
        if message.keys() != _TOOL_RESULT or type(call_id) is not str or type(content) is not str:
            return None
        return role, content, call_id
    if "content" not in message:
        return None
    if role == "assistant":
        if not message.keys() <= _ASSISTANT or (content is not None and type(content) is not str):
            return None
        ids = _asked(message["tool_calls"]) if "tool_calls" in message else set()
        return None if ids is None else (role, content, ids)
    if (role == "system" or role == "user") and message.keys() <= _SPOKEN:
        return (role, content, None) if type(content) is str else None
    return None


def forwardable(root: JsonValue) -> Forward | None:
    """`root` as a `Forward` when the full path would send it on unchanged but for `model`.

    That is: only the fields the full path keeps, each message in the shape it writes
    (roles `system`, `user`, `assistant`, `tool`; text content; tool calls with their
    type and string arguments; no field it drops), tools with all three fields. None for
    anything else, which `parse_chat` then reads (or refuses) as always.
    """
    if type(root) is not dict or not _head_ok(root):
        return None
    messages = root.get("messages")
    if type(messages) is not list or not messages:
        return None
    opening: list[tuple[str, str]] = []
    opened = False
    asked: set[str] = set()
    answered: list[str] = []
    prompt = ""
    for message in messages:
        plain = _plain(message)
        if plain is None:
            return None
        role, text, link = plain
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
    own = "stream" in root or "stream_options" in root
    body = {k: v for k, v in root.items() if k not in _OWN} if own else root
    looping = bool(asked) and any(call_id in asked for call_id in answered)
    return Forward(body=body, opening=tuple(opening), looping=looping, prompt=prompt)


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
