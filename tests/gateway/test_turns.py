"""What the gateway tells the router at a user turn, as pure functions over the request."""

from __future__ import annotations

from orchestrator.gateway.budgets import estimate_input_tokens
from orchestrator.gateway.turns import calls_per_turn, warm_prefix_tokens
from orchestrator.providers.messages import ChatMessage, ModelRequest, ToolCall, ToolDefinition
from orchestrator.routing.scoring import MIN_CACHED_TOKENS

TOOLS = [ToolDefinition(name="grep", description="search", parameters={"type": "object"})]


def request(*messages: ChatMessage) -> ModelRequest:
    return ModelRequest(model="m", messages=list(messages), tools=TOOLS)


SYSTEM = ChatMessage(role="system", content="You are helpful. " * 300)
ASK = ChatMessage(role="user", content="Find the bug.")
CALL = ChatMessage(
    role="assistant", tool_calls=[ToolCall(id="c1", name="grep", arguments_json='{"q": "bug"}')]
)
RESULT = ChatMessage(role="tool", tool_call_id="c1", name="grep", content="line 3")
ANSWER = ChatMessage(role="assistant", content="It is on line 3.")
NEXT = ChatMessage(role="user", content="Fix it.")


def test_the_warm_prefix_is_what_the_last_answering_call_was_sent() -> None:
    assert warm_prefix_tokens(request(SYSTEM, ASK)) == 0
    turn = request(SYSTEM, ASK, CALL, RESULT, ANSWER, NEXT)
    # The loop's last call was sent everything before its answer, tools included.
    assert warm_prefix_tokens(turn) == estimate_input_tokens(request(SYSTEM, ASK, CALL, RESULT))
    assert MIN_CACHED_TOKENS <= warm_prefix_tokens(turn) < estimate_input_tokens(turn)
    # A provider caches no prefix shorter than MIN_CACHED_TOKENS.
    short = ChatMessage(role="system", content="You are helpful.")
    assert warm_prefix_tokens(request(short, ASK, CALL, RESULT, ANSWER, NEXT)) == 0


def test_calls_per_turn_is_the_conversations_own_mean() -> None:
    assert calls_per_turn(request(SYSTEM, ASK)) == 1.0
    # One turn answered in two calls (a tool call, then the answer).
    assert calls_per_turn(request(SYSTEM, ASK, CALL, RESULT, ANSWER, NEXT)) == 2.0
    three = request(SYSTEM, ASK, CALL, RESULT, ANSWER, NEXT, ANSWER, NEXT)
    assert calls_per_turn(three) == 1.5
