"""A chat request as the gateway handles it, whichever API the client spoke.

Both wire parsers (`openai_wire`, `anthropic_wire`) produce a `ChatCall`: the
provider-neutral conversation of `orchestrator.providers.messages` plus what only the
gateway needs (the model name as the client wrote it, streaming, provider state). The
provider adapters then speak whichever API the chosen deployment speaks, so translation
between the two formats is parse on one side and the adapter on the other.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import JsonValue

from orchestrator.gateway.errors import BadRequest
from orchestrator.gateway.relay import Forward
from orchestrator.providers.messages import ModelRequest
from orchestrator.types import JsonObject

__all__ = [
    "ChatCall",
    "field",
    "obj",
    "opt_bool",
    "opt_int",
    "opt_number",
    "opt_str",
    "opt_strings",
    "read_head",
    "text_of",
]


class ChatCall:
    """One chat request: the conversation, and how the client asked for it.

    `request` is built on first use when the call was read for forwarding (`forward`):
    a request that goes to a deployment of its own API as it came never needs it.
    """

    __slots__ = (
        "_build",
        "_request",
        "forward",
        "previous_response_id",
        "requested",
        "stream",
        "user_id",
    )

    def __init__(
        self,
        requested: str,
        request: ModelRequest | Callable[[], ModelRequest],
        stream: bool = False,
        previous_response_id: str | None = None,
        user_id: str | None = None,
        forward: Forward | None = None,
    ) -> None:
        self.requested = requested
        """The `model` the client named: an alias, a deployment, or `auto`."""
        self._request = request if isinstance(request, ModelRequest) else None
        self._build = None if isinstance(request, ModelRequest) else request
        self.stream = stream
        self.previous_response_id = previous_response_id
        """Provider-side conversation state the client refers to (OpenAI Responses style)."""
        self.user_id = user_id
        """The Anthropic body's `metadata.user_id`; Claude Code puts its session id in it."""
        self.forward = forward
        """The client's chat-completions body, when a chat-completions deployment may be
        sent it as it came (`relay.forwardable`)."""

    @property
    def request(self) -> ModelRequest:
        """The conversation; its `model` is filled in with the deployment's id before sending."""
        request = self._request
        if request is None:
            assert self._build is not None
            request = self._request = self._build()
            self._build = None
        return request


def obj(value: JsonValue, where: str) -> JsonObject:
    """`value` as an object, or a 400 naming where it should have been one."""
    if not isinstance(value, dict):
        raise BadRequest(f"{where}: expected an object, got {_kind(value)}")
    return value


def field(body: JsonObject, name: str, where: str) -> JsonValue:
    """A required field, or a 400 naming it."""
    if name not in body or body[name] is None:
        raise BadRequest(f"{where}.{name}: required")
    return body[name]


def text_of(value: JsonValue, where: str) -> str:
    """Message content as text: a string, or a list of text parts joined.

    Raises:
        BadRequest: a part that is not text (images, audio): the gateway carries text and
            tool calls only, and says so rather than dropping the part.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise BadRequest(f"{where}: expected a string or a list of parts, got {_kind(value)}")
    texts: list[str] = []
    for i, part in enumerate(value):
        part_obj = obj(part, f"{where}[{i}]")
        if part_obj.get("type") != "text" or not isinstance(part_obj.get("text"), str):
            raise BadRequest(
                f"{where}[{i}]: only text parts are supported, got type {part_obj.get('type')!r}"
            )
        texts.append(str(part_obj["text"]))
    return "".join(texts)


def opt_number(body: JsonObject, name: str, where: str) -> float | None:
    """An optional number field, or a 400 naming it."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"{where}.{name}: expected a number, got {_kind(value)}")
    return float(value)


def opt_int(body: JsonObject, name: str, where: str) -> int | None:
    """An optional positive integer field, or a 400 naming it."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequest(f"{where}.{name}: expected a positive integer, got {value!r}")
    return value


def opt_bool(body: JsonObject, name: str, where: str) -> bool | None:
    """An optional boolean field, or a 400 naming it."""
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise BadRequest(f"{where}.{name}: expected a boolean, got {_kind(value)}")
    return value


def opt_str(body: JsonObject, name: str, where: str) -> str | None:
    """An optional string field, or a 400 naming it."""
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"{where}.{name}: expected a string, got {_kind(value)}")
    return value


def opt_strings(body: JsonObject, name: str, where: str) -> list[str] | None:
    """An optional list of strings (a single string is a list of one), or a 400 naming it."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequest(f"{where}.{name}: expected a string or a list of strings")
    return [str(v) for v in value]


def _kind(value: JsonValue) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "a number"
    )


def read_head(body: JsonValue) -> tuple[JsonObject, str, list[JsonValue], list[JsonValue]]:
    """What both chat APIs share: the body, its `model`, `messages` and `tools`.

    Raises:
        BadRequest: naming the first of them that is missing or malformed.
    """
    root = obj(body, "body")
    model = field(root, "model", "body")
    if not isinstance(model, str) or not model:
        raise BadRequest("body.model: expected a non-empty string")
    messages = field(root, "messages", "body")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("body.messages: expected a non-empty list")
    tools = root.get("tools") or []
    if not isinstance(tools, list):
        raise BadRequest("body.tools: expected a list")
    return root, model, messages, tools
