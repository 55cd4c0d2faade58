"""What a session tells the router at a boundary, as pure functions: the calls a decision
binds (`expected_calls`) and the prompt its pin holds warm (`warm_input_tokens`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orchestrator.plans import parse_plan
from orchestrator.plans.models import AgentStep
from orchestrator.providers.messages import ChatMessage, ToolDefinition
from orchestrator.routing.scoring import MIN_CACHED_TOKENS
from orchestrator.session.pinning import route_request
from orchestrator.session.prompt_cache import (
    FIRST_LOOP_CALLS,
    PROMPT_CACHE_LIFE,
    expected_calls,
    prompt_head,
    served,
    warm_input_tokens,
)
from orchestrator.session.types import Boundary, SessionStartInput, StepState

PLAN = parse_plan(
    """
name: p
steps:
  - {id: look, type: agent, goal: Look., skills: [orders.get], max_rounds: 3}
  - {id: say, type: agent, goal: Say.}
  - {id: act, type: agent, goal: Act., skills: [orders.get]}
""",
    "p.yaml",
)
LOOK, SAY, ACT = (s for s in PLAN.steps if isinstance(s, AgentStep))
T0 = datetime(2026, 1, 1, tzinfo=UTC)
TOOLS = [ToolDefinition(name="orders_get", description="x" * 4000, parameters={"type": "object"})]


def start(system: str, user: str) -> list[ChatMessage]:
    return [ChatMessage(role="system", content=system), ChatMessage(role="user", content=user)]


def test_a_step_without_tools_makes_one_call_and_one_with_tools_the_sessions_mean() -> None:
    fresh = [StepState(id=s.id, type="agent") for s in PLAN.steps]
    assert expected_calls(PLAN, fresh, SAY) == 1.0
    # No tool-offering step has finished yet: the fewest calls of a loop that uses a tool.
    assert expected_calls(PLAN, fresh, ACT) == FIRST_LOOP_CALLS
    done = [
        StepState(id="look", type="agent", status="completed", rounds=5),
        # A step without tools does not count toward a loop's length.
        StepState(id="say", type="agent", status="completed", rounds=1),
        StepState(id="act", type="agent", status="running", rounds=2),
    ]
    assert expected_calls(PLAN, done, ACT) == 5.0
    # Never past the step's own bound.
    assert expected_calls(PLAN, done, LOOK) == 3.0
    # A loop's later iteration (`id#n`) counts as its step.
    again = [*done, StepState(id="look#2", type="agent", status="completed", rounds=2)]
    assert expected_calls(PLAN, again, ACT) == 3.5


def test_the_warm_part_is_the_leading_blocks_both_prompts_share() -> None:
    one = prompt_head(TOOLS, start("Plan: p\nStep: look", "Look."))
    conversation = [
        *start("Plan: p\nStep: look", "Look."),
        ChatMessage(role="assistant", content="ok"),
    ]
    chars = one.sizes[0] + sum(len(m.content or "") for m in conversation)
    held = served(one, "a", conversation, chars // 2, T0)
    assert (held.deployment, held.tokens_per_char, held.at) == ("a", chars // 2 / chars, T0)
    # The same step again (an escalation's re-run): the whole head is warm.
    assert warm_input_tokens(held, one, T0) == int(one.chars * held.tokens_per_char)
    # Another step with the same tools: its system text differs, only the tools are warm.
    other = prompt_head(TOOLS, start("Plan: p\nStep: act", "Act."))
    warm = warm_input_tokens(held, other, T0 + timedelta(seconds=30))
    assert warm == int(one.sizes[0] * held.tokens_per_char) >= MIN_CACHED_TOKENS
    # A provider caches no prefix shorter than MIN_CACHED_TOKENS.
    few = prompt_head(TOOLS[:0], start("Plan: p\nStep: look", "Look."))
    assert warm_input_tokens(served(few, "a", conversation, 10, T0), few, T0) == 0
    # Other tools first: nothing matches.
    assert warm_input_tokens(held, prompt_head([], start("Plan: p\nStep: look", "Look.")), T0) == 0
    # Past the cache's life, or never served: nothing is warm.
    assert warm_input_tokens(held, one, T0 + PROMPT_CACHE_LIFE + timedelta(seconds=1)) == 0
    assert warm_input_tokens(None, one, T0) == 0
    # Deterministic: the same head from the same text (a replay computes the same).
    assert prompt_head(TOOLS, conversation) == one


def test_the_router_is_asked_with_both_and_the_first_calls_prompt() -> None:
    session = SessionStartInput(session_id="s", plan=PLAN)
    request = route_request(
        session,
        ACT,
        name=None,
        boundary=Boundary.STEP_CHANGE,
        current="a",
        tokens_so_far=0,
        prompt_chars=40_000,
        exclude={},
        expected_calls=3.5,
        warm_input_tokens=700,
    )
    assert (request.expected_calls, request.warm_input_tokens) == (3.5, 700)
    # The loop after the first call is priced by expected_calls, not by a larger prompt.
    assert request.expected_input_tokens == 10_000
