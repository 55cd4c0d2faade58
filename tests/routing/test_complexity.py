"""The local difficulty estimate: labelled examples, monotonicity, and how the router uses it."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.plans.models import AgentStep, Plan
from orchestrator.providers.registry import ModelRegistry
from orchestrator.routing import Router, RouteRequest
from orchestrator.routing.complexity import estimate_difficulty
from orchestrator.routing.policy import Difficulty
from orchestrator.session.pinning import route_request
from orchestrator.session.types import Boundary, SessionStartInput

EASY = [
    "Say hello to the customer.",
    "Translate 'good morning' into French.",
    "Classify this ticket as billing or shipping.",
    "Summarise the order status in one sentence.",
]

HARD = [
    (
        "Implement a function `def merge_intervals(xs)` in Python that merges overlapping "
        "intervals, then analyze its complexity and compare it with a heap-based design. "
        "1. Write the code. 2. Prove it is correct. 3. Give the worst case."
    ),
    (
        "Derive the probability that a random 3x3 matrix over GF(2) is invertible, prove the "
        "formula by induction, and evaluate it for n = 4. What is the limit? Why?"
    ),
    (
        "Diagnose the root cause of this traceback and refactor the retry loop:\n"
        "```\nTraceback (most recent call last):\n  File 'app.py', line 3\n```\n"
        "- explain the failure\n- propose a fix\n- add a test"
    ),
]


@pytest.mark.parametrize("text", EASY)
def test_short_plain_requests_are_easy(text: str) -> None:
    guess = estimate_difficulty(text)
    assert guess.difficulty is Difficulty.LOW, guess


@pytest.mark.parametrize("text", HARD)
def test_code_maths_and_several_questions_are_hard(text: str) -> None:
    guess = estimate_difficulty(text, tools=2)
    assert guess.difficulty is Difficulty.HIGH, guess
    assert guess.score == round(sum(guess.features.values()), 3)


def test_tools_and_an_output_schema_raise_a_plain_request_to_medium() -> None:
    plain = estimate_difficulty("Look up the order and report its status.")
    assert plain.difficulty is Difficulty.LOW
    busy = estimate_difficulty(
        "Look up the order and report its status.", tools=4, output_schema=True
    )
    assert busy.difficulty is Difficulty.MEDIUM
    assert busy.features["tools"] == 1.0 and busy.features["output_schema"] == 0.5


_LEVEL = {Difficulty.LOW: 0, Difficulty.MEDIUM: 1, Difficulty.HIGH: 2}


@given(
    base=st.text(max_size=400),
    extra=st.sampled_from(
        ["\n```\nx = 1\n```", " Prove the theorem.", " Why? How?", " Compare the designs."]
    ),
    tools=st.integers(0, 6),
    more_tools=st.integers(0, 3),
    schema=st.booleans(),
)
def test_adding_a_feature_never_makes_a_step_look_easier(
    base: str, extra: str, tools: int, more_tools: int, schema: bool
) -> None:
    before = estimate_difficulty(base, tools=tools, output_schema=schema)
    after = estimate_difficulty(
        base + extra + " more words" * 50, tools=tools + more_tools, output_schema=True
    )
    assert after.score >= before.score
    assert _LEVEL[after.difficulty] >= _LEVEL[before.difficulty]


def _registry() -> ModelRegistry:
    def deployment(model: str, price: float, quality: float) -> dict[str, Any]:
        return {
            "provider": "p",
            "model": model,
            "input_price_per_mtok": price,
            "output_price_per_mtok": price * 4,
            "quality": {"default": quality},
        }

    return ModelRegistry.model_validate(
        {
            "providers": {"p": {"base_url": "http://127.0.0.1:9/v1"}},
            "models": {
                "strong": deployment("m-strong", 3.0, 0.9),
                "middle": deployment("m-middle", 1.0, 0.7),
                "cheap": deployment("m-cheap", 0.1, 0.4),
            },
            "default_model": "cheap",
        }
    )


def _request(step: AgentStep) -> RouteRequest:
    plan = Plan.model_validate({"name": "p", "steps": [step.model_dump(exclude_none=True)]})
    start = SessionStartInput(session_id="s", plan=plan)
    return route_request(
        start,
        step,
        name=None,
        boundary=Boundary.SESSION_START,
        current=None,
        tokens_so_far=0,
        prompt_chars=len(step.goal),
        exclude={},
    )


def test_an_undeclared_hard_step_routes_like_a_declared_hard_one_and_says_why() -> None:
    router = Router(_registry())
    undeclared = _request(AgentStep(id="solve", goal=HARD[0]))
    assert undeclared.difficulty is None and undeclared.prompt == HARD[0]
    declared = _request(AgentStep(id="solve", goal=HARD[0], difficulty="high"))
    assert declared.prompt == ""  # a declared step does not send its text

    guessed = router.decide(undeclared)
    hard = router.decide(declared)
    assert guessed.deployment == hard.deployment == "strong"
    assert [(c.deployment, c.reason) for c in guessed.candidates] == [
        (c.deployment, c.reason) for c in hard.candidates
    ]
    assert hard.difficulty_estimate is None
    estimate = guessed.difficulty_estimate
    assert estimate is not None and estimate.difficulty is Difficulty.HIGH
    assert {"code", "math", "reasoning"} <= set(estimate.features)

    # An undeclared easy step comes down as a declared low one does: below the high floor.
    easy = router.decide(_request(AgentStep(id="greet", goal=EASY[0])))
    low = router.decide(_request(AgentStep(id="greet", goal=EASY[0], difficulty="low")))
    assert easy.deployment == low.deployment != "strong"
    assert easy.difficulty_estimate is not None
    assert easy.difficulty_estimate.difficulty is Difficulty.LOW


def test_a_cached_decision_still_carries_its_own_requests_estimate() -> None:
    router = Router(_registry())
    first = router.decide(RouteRequest(difficulty=None, prompt="Say hi."))
    second = router.decide(RouteRequest(difficulty=None, prompt="Say hello to them."))
    assert first.difficulty_estimate is not None and second.difficulty_estimate is not None
    assert first.difficulty_estimate.features != second.difficulty_estimate.features
