"""What a session tells the router at a boundary, as pure functions: the calls a decision
binds (`expected_calls`), the prompt its pin holds warm (`warm_input_tokens`), and the
session's steps left and prefix (`steps_left`, `session_prefix_tokens`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orchestrator.plans import parse_plan
from orchestrator.plans.models import AgentStep, Plan
from orchestrator.providers.messages import ChatMessage, ToolDefinition
from orchestrator.routing.scoring import MIN_CACHED_TOKENS
from orchestrator.routing.types import RouteRequest
from orchestrator.session.pinning import answers, first_route_request, route_request
from orchestrator.session.prompt_cache import (
    FIRST_LOOP_CALLS,
    PROMPT_CACHE_LIFE,
    expected_calls,
    prompt_head,
    served,
    session_prefix_tokens,
    steps_left,
    warm_input_tokens,
)
from orchestrator.session.types import Boundary, SessionStartInput, StepState
from orchestrator.skills.models import SkillSpec

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


SHAPES = parse_plan(
    """
name: shapes
steps:
  - {id: a, type: agent, goal: A., skills: [orders.get]}
  - id: pick
    type: branch
    when: "input.x == 1"
    then:
      - {id: b1, type: agent, goal: B1., skills: [orders.get]}
      - {id: b2, type: agent, goal: B2., skills: [orders.get]}
    else:
      - {id: b3, type: agent, goal: B3., skills: [orders.get]}
  - id: again
    type: loop
    until: "iteration >= 2"
    max_iterations: 5
    steps:
      - {id: l1, type: agent, goal: L1., skills: [orders.get]}
      - {id: l2, type: agent, goal: L2., skills: [orders.get]}
  - {id: vote, type: ensemble, goal: V., models: [m1, m2]}
  - {id: z, type: agent, goal: Z., skills: [orders.get]}
""",
    "shapes.yaml",
)


def agent(plan: Plan, step_id: str) -> AgentStep:
    found = next(s for s in plan.all_steps() if s.id == step_id)
    assert isinstance(found, AgentStep)
    return found


def test_the_steps_left_count_what_the_plan_is_sure_to_run() -> None:
    def left(step_id: str) -> float:
        step = agent(SHAPES, step_id.partition("#")[0])
        return steps_left(SHAPES, step.model_copy(update={"id": step_id}))

    # a, the branch's shorter arm (1), one loop iteration (2), z; the ensemble pins nothing.
    assert left("a") == 5.0
    # Inside an arm: the rest of that arm, then what follows the branch.
    assert (left("b1"), left("b2"), left("b3")) == (5.0, 4.0, 4.0)
    # Inside a loop: the rest of this iteration; another is decided at run time.
    assert (left("l1"), left("l2"), left("l1#3"), left("l2#3")) == (3.0, 2.0, 3.0, 2.0)
    assert left("z") == 1.0
    # A step the plan does not hold: this one only.
    assert steps_left(SHAPES, ACT) == 1.0
    # Deterministic: the plan alone decides (a replay computes the same).
    assert steps_left(PLAN, LOOK) == 3.0 and steps_left(PLAN, SAY) == 2.0


def test_the_session_prefix_is_the_tools_block_every_later_step_shares() -> None:
    big = [TOOLS[0].model_copy(update={"description": "x" * 8000})]
    head = prompt_head(big, start("Plan: shapes\nStep: a", "A."))
    tools = int(head.sizes[0] * head.tokens_per_char)
    assert tools >= MIN_CACHED_TOKENS
    # Every agent step after it offers the same tools: the tools block, not the system
    # message (it names the step, so no later step shares it).
    assert session_prefix_tokens(SHAPES, agent(SHAPES, "a"), head) == tools
    assert session_prefix_tokens(SHAPES, agent(SHAPES, "l2"), head) == tools
    # A later step with other tools (PLAN's `say` offers none) reads none of it.
    assert session_prefix_tokens(PLAN, LOOK, head) == 0
    # After the last step with other tools, the rest share it again.
    assert session_prefix_tokens(PLAN, ACT, head) == tools
    # A step without tools, or a tools block shorter than a provider caches: none.
    assert session_prefix_tokens(PLAN, SAY, head) == 0
    short = prompt_head(TOOLS[:0], start("Plan: shapes\nStep: a", "A."))
    assert session_prefix_tokens(SHAPES, agent(SHAPES, "a"), short) == 0
    # Inside a loop, the body's earlier steps run again: other tools there count.
    looped = parse_plan(
        """
name: looped
steps:
  - id: again
    type: loop
    until: "iteration >= 2"
    max_iterations: 3
    steps:
      - {id: l1, type: agent, goal: L1.}
      - {id: l2, type: agent, goal: L2., skills: [orders.get]}
""",
        "looped.yaml",
    )
    assert session_prefix_tokens(looped, agent(looped, "l2"), head) == 0


def test_the_first_route_asks_the_workflows_question_with_the_steps_left() -> None:
    spec = SkillSpec.model_validate(
        {
            "name": "orders.get",
            "version": "1.0.0",
            "description": "x" * 8000,
            "risk": "read_only",
            "requires_approval": False,
            "input_schema": {"type": "object"},
            "output_schema": {"type": "object"},
        }
    )
    session = SessionStartInput(session_id="s", plan=SHAPES, input={"x": 1})
    ahead = first_route_request(session, {"orders.get": spec})
    assert ahead is not None
    assert ahead.horizon_steps == 5.0
    assert ahead.session_prefix_tokens >= MIN_CACHED_TOKENS
    # The same question answers; one without the steps left, recorded before they were
    # told, still answers (a replay takes its decision); any other difference does not.
    assert answers(ahead, ahead.model_copy())
    untold = ahead.model_copy(update={"horizon_steps": 1.0, "session_prefix_tokens": 0})
    assert answers(untold, ahead)
    assert not answers(untold.model_copy(update={"tokens_so_far": 1}), ahead)
    assert not answers(ahead.model_copy(update={"horizon_steps": 4.0}), ahead)
    assert not answers(RouteRequest(task_type=ahead.task_type), ahead)
