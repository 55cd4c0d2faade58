"""Session identity, tool-loop detection and boundaries: pure functions, no server."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.gateway.service import _worth_writing
from orchestrator.gateway.sessions import (
    Boundary,
    classify,
    identify,
    in_tool_loop,
    session_in_user_id,
)
from orchestrator.providers.messages import ChatMessage, ToolCall
from orchestrator.store.pins import Pin

SYSTEM = ChatMessage(role="system", content="You refund orders.")
USER = ChatMessage(role="user", content="Refund order 7")
ASKS = ChatMessage(
    role="assistant",
    tool_calls=[ToolCall(id="c1", name="get_order", arguments_json="{}", arguments={})],
)
RESULT = ChatMessage(role="tool", tool_call_id="c1", content="paid")
FINAL = ChatMessage(role="assistant", content="Refunded.")
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "source"),
    [
        ("x-session-id", "header:x-session-id"),
        ("x-claude-code-session-id", "header:x-claude-code-session-id"),
        ("session-id", "header:session-id"),
        ("session_id", "header:session_id"),
        ("x-session-affinity", "header:x-session-affinity"),
        ("x-opencode-session", "header:x-opencode-session"),
        ("x-litellm-session-id", "header:x-litellm-session-id"),
    ],
)
def test_agent_clients_session_headers_name_the_session(header: str, source: str) -> None:
    found = identify({header: "abc"}, [USER], "acme")
    assert (found.session_id, found.source) == ("gw:acme:abc", source)


def test_x_session_id_wins_and_tenants_never_share_an_id() -> None:
    both = {"x-claude-code-session-id": "cc", "x-session-id": "mine"}
    assert identify(both, [USER], "acme").session_id == "gw:acme:mine"
    assert identify({"x-session-id": "s"}, [USER], "beta").session_id == "gw:beta:s"


SESSION_UUID = "3f0c9a57-1b2e-4c8d-9e6f-0a1b2c3d4e5f"


@pytest.mark.parametrize(
    "user_id",
    [
        # Claude Code before v2.1.78: user_<device hash>_account_<uuid or empty>_session_<uuid>
        f"user_{'a' * 64}_account_7d1e2f30-0000-4000-8000-000000000001_session_{SESSION_UUID}",
        f"user_{'a' * 64}_account__session_{SESSION_UUID}",
        # v2.1.78 on: a JSON object's text
        json.dumps({"device_id": "a" * 64, "account_uuid": "", "session_id": SESSION_UUID}),
    ],
)
def test_claude_codes_metadata_user_id_names_the_session(user_id: str) -> None:
    assert session_in_user_id(user_id) == SESSION_UUID
    found = identify({}, [USER], "acme", user_id)
    assert (found.session_id, found.source) == (f"gw:acme:{SESSION_UUID}", "metadata.user_id")


@pytest.mark.parametrize(
    "user_id", [None, "", "user-1234", '{"device_id": "d"}', "{not json", '["session_id"]']
)
def test_a_user_id_without_a_session_is_a_person_not_a_conversation(user_id: str | None) -> None:
    assert session_in_user_id(user_id) is None
    assert identify({}, [USER], "acme", user_id).source == "fingerprint"


def test_a_session_header_wins_over_metadata_user_id() -> None:
    user_id = f"user_x_account__session_{SESSION_UUID}"
    found = identify({"x-claude-code-session-id": "cc"}, [USER], "acme", user_id)
    assert found.session_id == "gw:acme:cc"


def test_fingerprint_is_stable_across_a_conversation_and_differs_between_them() -> None:
    opening = identify({}, [SYSTEM, USER], "acme")
    later = identify({}, [SYSTEM, USER, ASKS, RESULT, FINAL], "acme")
    other = identify({}, [SYSTEM, ChatMessage(role="user", content="Refund order 8")], "acme")
    assert opening == later
    assert opening.source == "fingerprint"
    assert other.session_id != opening.session_id
    assert identify({}, [SYSTEM, USER], "beta").session_id != opening.session_id


def test_tool_loop_is_open_only_when_the_last_assistant_asked_and_results_follow() -> None:
    assert in_tool_loop([USER, ASKS, RESULT])
    assert not in_tool_loop([USER])
    assert not in_tool_loop([USER, ASKS])  # asked, but nothing answered yet
    assert not in_tool_loop([USER, ASKS, RESULT, FINAL, USER])
    stray = ChatMessage(role="tool", tool_call_id="other", content="x")
    assert not in_tool_loop([USER, ASKS, stray])
    assert in_tool_loop([USER], previous_response_id="resp_1")


def _pin(age: timedelta, phase: str = "loop") -> Pin:
    return Pin(
        session_id="s",
        deployment="strong",
        key_id="k",
        tenant="t",
        team="t",
        phase=phase,  # type: ignore[arg-type]
        version=1,
        updated_at=NOW - age,
    )


def test_boundaries() -> None:
    idle = timedelta(minutes=5)
    assert classify(None, True, NOW, idle) is Boundary.SESSION_START
    assert classify(_pin(timedelta(seconds=10)), True, NOW, idle) is Boundary.TOOL_LOOP
    # An open loop stays pinned however long it paused.
    assert classify(_pin(timedelta(hours=1)), True, NOW, idle) is Boundary.TOOL_LOOP
    assert classify(_pin(timedelta(seconds=10)), False, NOW, idle) is Boundary.USER_TURN
    assert classify(_pin(timedelta(minutes=6)), False, NOW, idle) is Boundary.IDLE


def test_a_pin_that_only_ages_is_not_rewritten_every_call() -> None:
    old = _pin(timedelta(seconds=5))
    assert not _worth_writing(old, "strong", "loop", NOW, 300)
    assert _worth_writing(old, "strong", "final", NOW, 300)
    assert _worth_writing(old, "fast", "loop", NOW, 300)
    assert _worth_writing(_pin(timedelta(seconds=31)), "strong", "loop", NOW, 300)
    assert _worth_writing(None, "strong", "loop", NOW, 300)
