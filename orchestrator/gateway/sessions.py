"""Which session a request belongs to, whether it is inside a tool loop, and its boundary.

Pure functions over the request, so they are tested without a server.

Identity comes from the first session header present (the order is the precedence):
`x-session-id`, then the headers agent clients already send: Claude Code's
`x-claude-code-session-id` (v2.1.86 and later), Codex CLI's `session-id` (and the older
`session_id`), OpenCode's `x-session-affinity` and `x-opencode-session`, and LiteLLM's
`x-litellm-session-id`. Then the session inside an Anthropic body's `metadata.user_id`
(the Messages API's opaque end-user id, which Claude Code fills with its session: before
v2.1.78 as `user_<hash>_account_<uuid>_session_<uuid>`, since then as a JSON object text with
a `session_id` member); a `user_id` without a session in it names a person, not a
conversation, and is not used. Without any, the session is a fingerprint of the conversation's
opening messages (system text and first user message), which every call of one
conversation repeats verbatim. Ids are namespaced by tenant, so two tenants that pick the
same session id never share a pin.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from orchestrator.providers.messages import ChatMessage
from orchestrator.store.pins import Pin

__all__ = [
    "SESSION_HEADERS",
    "Boundary",
    "SessionIdentity",
    "classify",
    "identify",
    "identify_by",
    "in_tool_loop",
    "opening",
    "session_in_user_id",
]

SESSION_HEADERS = (
    "x-session-id",
    "x-claude-code-session-id",
    "session-id",
    "session_id",
    "x-session-affinity",
    "x-opencode-session",
    "x-litellm-session-id",
)
"""Request headers that name a session, in order of precedence (lower case)."""

_MAX_ID = 255

_LEGACY_MARK = "_session_"
"""What precedes the session id in Claude Code's older `metadata.user_id` form."""


class SessionIdentity(BaseModel):
    """A request's session and where its id came from (`header:<name>` or `fingerprint`)."""

    model_config = ConfigDict(frozen=True)

    session_id: str
    source: str


class Boundary(StrEnum):
    """Where in its session a request falls; only some of them allow a switch."""

    SESSION_START = "session_start"
    """No pin yet: the router chooses freely."""
    TOOL_LOOP = "tool_loop"
    """Inside an open tool loop: the pinned deployment answers."""
    USER_TURN = "user_turn"
    """A new user turn after a final answer: a safe boundary, the pin is kept when close."""
    IDLE = "idle"
    """Idle longer than a prompt cache lives: a safe boundary with nothing left to keep."""
    FAILOVER = "failover"
    """The deployment failed; another one answers, recorded as forced."""


def _usable(value: str) -> bool:
    return bool(value) and len(value) <= _MAX_ID and value.isprintable()


def session_in_user_id(user_id: str | None) -> str | None:
    """The session id inside a Messages request's `metadata.user_id`, if it holds one.

    Claude Code's two forms: a JSON object text whose `session_id` is a string (v2.1.78
    on), or `..._session_<id>` (before). Anything else is an end-user id: None.
    """
    if not user_id:
        return None
    text = user_id.strip()
    if text.startswith("{"):
        try:
            decoded = json.loads(text)
        except ValueError:
            return None
        found = decoded.get("session_id") if isinstance(decoded, dict) else None
        return found.strip() if isinstance(found, str) and _usable(found.strip()) else None
    _, mark, rest = text.rpartition(_LEGACY_MARK)
    return rest if mark and _usable(rest) else None


def opening(messages: list[ChatMessage]) -> tuple[tuple[str, str], ...]:
    """What the session's fingerprint is made of: the conversation's opening messages.

    Each system message's text (`s`) up to the first other message, and that message's
    text (`u`) when it is the user's: what every call of one conversation repeats.
    """
    out: list[tuple[str, str]] = []
    for message in messages:
        if message.role == "system":
            out.append(("s", message.content or ""))
            continue
        if message.role == "user":
            out.append(("u", message.content or ""))
        break
    return tuple(out)


def identify(
    headers: Mapping[str, str],
    messages: list[ChatMessage],
    tenant: str,
    user_id: str | None = None,
) -> SessionIdentity:
    """The request's session: a session header, `metadata.user_id`, or the opening messages.

    `user_id` is the Anthropic body's `metadata.user_id`, when the client sent one.
    """
    return identify_by(headers, lambda: opening(messages), tenant, user_id)


def identify_by(
    headers: Mapping[str, str],
    opened: Callable[[], tuple[tuple[str, str], ...]],
    tenant: str,
    user_id: str | None = None,
) -> SessionIdentity:
    """`identify`, given the conversation's `opening`, asked for only without a session id."""
    for name in SESSION_HEADERS:
        value = headers.get(name, "").strip()
        if _usable(value):
            return SessionIdentity(session_id=f"gw:{tenant}:{value}", source=f"header:{name}")
    in_body = session_in_user_id(user_id)
    if in_body is not None:
        return SessionIdentity(session_id=f"gw:{tenant}:{in_body}", source="metadata.user_id")
    digest = hashlib.sha256(tenant.encode())
    for kind, text in opened():
        digest.update(b"\x00" + kind.encode() + text.encode())
    return SessionIdentity(
        session_id=f"gw:{tenant}:fp-{digest.hexdigest()[:24]}", source="fingerprint"
    )


def in_tool_loop(messages: list[ChatMessage], previous_response_id: str | None = None) -> bool:
    """Whether the request continues an open tool loop.

    True when it carries provider state (`previous_response_id`), or when the last
    assistant message asked for tools and results for them follow it in this request.
    """
    if previous_response_id:
        return True
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if message.role != "assistant":
            continue
        asked = {call.id for call in message.tool_calls}
        return bool(asked) and any(
            later.role == "tool" and later.tool_call_id in asked for later in messages[index + 1 :]
        )
    return False


def classify(pin: Pin | None, looping: bool, now: datetime, idle: timedelta) -> Boundary:
    """The boundary a request is at, given its session's pin.

    Args:
        pin: The session's pin, if any.
        looping: `in_tool_loop` of the request.
        now: The request's arrival.
        idle: How long a provider's prompt cache lives; between turns, a longer pause
            leaves nothing warm to keep. An open tool loop stays pinned however long it
            paused: a switch there would change the model under its own tool calls.
    """
    if pin is None:
        return Boundary.SESSION_START
    if looping:
        return Boundary.TOOL_LOOP
    if now - pin.updated_at > idle:
        return Boundary.IDLE
    return Boundary.USER_TURN
