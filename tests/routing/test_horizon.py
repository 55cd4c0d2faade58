"""The boundary decision over the session's horizon (`orchestrator.routing.horizon`).

With one step left it must be the stickiness rule exactly; with more, a session whose steps
have been easy comes down from a strong pin after a hard step, and a session whose steps
have been hard keeps it through an easy one.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.providers.registry import ModelRegistry
from orchestrator.routing import LiveMetrics, Router, RouteRequest
from orchestrator.routing.horizon import (
    StepOdds,
    forced_odds,
    horizon_values,
    later_steps_served,
)
from orchestrator.routing.policy import Difficulty

FLOORS = {Difficulty.LOW: 0.0, Difficulty.MEDIUM: 0.5, Difficulty.HIGH: 0.8}
EASY = StepOdds(task_type="easy", difficulty=Difficulty.LOW, share=1.0)
HARD = StepOdds(task_type="hard", difficulty=Difficulty.HIGH, share=1.0)
MATRIX_POLICY: dict[str, Any] = {
    "weights": {"quality": 1.0, "cost": 0.25, "latency": 0.15},
    "stickiness": 0.08,
}
"""The policy matrix's policy (bench/router.py)."""


def winner(values: dict[str, float], current: str | None, order: list[str]) -> str:
    """The router's choice from `horizon_values`: the pin wins ties, then rank order."""
    return max(order, key=lambda n: (values[n], n == current, -order.index(n)))


@given(
    scores=st.lists(st.floats(min_value=0, max_value=1), min_size=2, max_size=5),
    pin=st.integers(min_value=0, max_value=4),
    stickiness=st.floats(min_value=0, max_value=0.3),
    risks=st.lists(st.floats(min_value=0, max_value=1), min_size=5, max_size=5),
)
def test_one_step_left_is_the_stickiness_rule(
    scores: list[float], pin: int, stickiness: float, risks: list[float]
) -> None:
    names = [f"d{i}" for i in range(len(scores))]
    by_name = dict(zip(names, scores, strict=True))
    current = names[pin % len(names)]
    values = horizon_values(
        by_name,
        {n: 0.0 for n in names},
        dict(zip(names, risks, strict=False)),
        current=current,
        stickiness=stickiness,
        steps=1.0,
    )
    top = max(names, key=lambda n: (by_name[n], -names.index(n)))
    kept = by_name[current] + stickiness >= by_name[top]
    assert winner(values, current, names) == (current if kept else top)


def test_later_steps_served_counts_the_run_until_a_step_forces_it_off() -> None:
    assert later_steps_served(0.0, 6.0) == 5.0
    assert later_steps_served(1.0, 6.0) == 0.0
    assert later_steps_served(0.3, 1.0) == 0.0
    # 0.5 + 0.25: the next step with 1/2, the one after with 1/4.
    assert later_steps_served(0.5, 3.0) == pytest.approx(0.75)


def test_forced_odds_are_the_share_of_later_steps_whose_floor_it_misses() -> None:
    mid = {"easy": 0.85, "hard": 0.6}
    assert forced_odds(mid, [], FLOORS) == 0.0
    odds = [EASY.model_copy(update={"share": 3.0}), HARD]
    assert forced_odds(mid, odds, FLOORS) == pytest.approx(0.25)
    assert forced_odds({"easy": 0.9, "hard": 0.85}, odds, FLOORS) == 0.0


def test_a_gap_on_the_sessions_usual_steps_counts_once_per_step_it_lasts() -> None:
    scores = {"strong": 0.74, "mid": 0.79}
    # One step: the gap (0.05) is within the stickiness (0.08); the pin stays.
    one = horizon_values(scores, {}, {}, current="strong", stickiness=0.08, steps=1.0)
    assert winner(one, "strong", ["strong", "mid"]) == "strong"
    # Four steps of the same kind, none forcing mid off: 4 x 0.05 outweighs one switch.
    four = horizon_values(scores, {}, {}, current="strong", stickiness=0.08, steps=4.0)
    assert four["mid"] - four["strong"] == pytest.approx(4 * 0.05 - 0.08)
    assert winner(four, "strong", ["strong", "mid"]) == "mid"
    # The same steps but each later one forces mid off with 0.9: its run is short and the
    # switch back is likely; strong stays.
    risky = horizon_values(scores, {}, {"mid": 0.9}, current="strong", stickiness=0.08, steps=4.0)
    assert winner(risky, "strong", ["strong", "mid"]) == "strong"


def matrix_registry() -> ModelRegistry:
    """Three deployments priced and rated like the policy matrix's (bench/router.py)."""

    def entry(price: float, quality: dict[str, float], ms: float) -> dict[str, Any]:
        return {
            "provider": "p",
            "model": f"m{price}",
            "input_price_per_mtok": price,
            "output_price_per_mtok": price * 5,
            "quality": quality,
            "latency_ms": ms,
        }

    models = {
        "frontier": entry(15.0, {"hard": 0.95, "easy": 0.9}, 2500),
        "strong": entry(3.0, {"hard": 0.85, "easy": 0.88}, 1500),
        "mid": entry(0.8, {"hard": 0.6, "easy": 0.85}, 800),
    }
    routing = {"default_policy": "matrix", "policies": {"matrix": MATRIX_POLICY}}
    provider = {"p": {"base_url": "http://127.0.0.1:9/v1"}}
    return ModelRegistry.model_validate(
        {"providers": provider, "models": models, "default_model": "mid", "routing": routing}
    )


def easy_step(**extra: Any) -> RouteRequest:
    """An easy step in a session pinned on strong (it just served a hard one)."""
    fields: dict[str, Any] = {
        "task_type": "easy",
        "difficulty": Difficulty.LOW,
        "current": "strong",
        "boundary": "step_change",
        "expected_input_tokens": 2000,
        "expected_output_tokens": 300,
    }
    return RouteRequest(**{**fields, **extra})


def test_the_router_weighs_the_pin_over_the_sessions_later_steps() -> None:
    router = Router(matrix_registry(), LiveMetrics())
    # This step only: mid is better, but within the stickiness; the pin stays.
    alone = router.decide(easy_step())
    assert alone.deployment == "strong"
    assert "within 0.08" in alone.reason
    # A session whose steps have been easy (one hard step in six) comes down.
    mostly_easy = [
        EASY.model_copy(update={"share": 5 / 6}),
        HARD.model_copy(update={"share": 1 / 6}),
    ]
    down = router.decide(easy_step(horizon_steps=6.0, later_steps=mostly_easy))
    assert down.deployment == "mid"
    assert down.reason.startswith("best score")
    # A session whose steps have been hard keeps strong through the easy one.
    mostly_hard = [
        EASY.model_copy(update={"share": 1 / 6}),
        HARD.model_copy(update={"share": 5 / 6}),
    ]
    kept = router.decide(easy_step(horizon_steps=6.0, later_steps=mostly_hard))
    assert kept.deployment == "strong"
    assert "kept over the steps the session has left" in kept.reason
    # One step left: the stickiness rule, whatever the odds.
    last = router.decide(easy_step(horizon_steps=1.0, later_steps=mostly_easy))
    assert last.deployment == "strong"


def test_the_horizon_never_lets_a_deployment_below_the_floor_serve() -> None:
    router = Router(matrix_registry(), LiveMetrics())
    mostly_easy = [EASY.model_copy(update={"share": 0.95}), HARD.model_copy(update={"share": 0.05})]
    hard = easy_step(
        task_type="hard",
        difficulty=Difficulty.HIGH,
        current="mid",
        horizon_steps=8.0,
        later_steps=mostly_easy,
    )
    decision = router.decide(hard)
    assert decision.deployment in {"strong", "frontier"}
    assert any(c.deployment == "mid" and not c.eligible for c in decision.candidates)


def test_later_steps_read_the_session_prefix_from_the_cache_of_whoever_serves_them() -> None:
    # Same list prices and quality; one caches at 0.1x the input price, the other at 0.5x,
    # and the other is a little faster. For one step, the faster one wins.
    def entry(cached: float, ms: float) -> dict[str, Any]:
        return {
            "provider": "p",
            "model": f"m{cached}",
            "input_price_per_mtok": 3.0,
            "cached_input_price_per_mtok": cached,
            "output_price_per_mtok": 15.0,
            "quality": {"default": 0.88},
            "latency_ms": ms,
        }

    registry = ModelRegistry.model_validate(
        {
            "providers": {"p": {"base_url": "http://127.0.0.1:9/v1"}},
            "models": {"tenth": entry(0.3, 1500), "half": entry(1.5, 1400)},
            "default_model": "half",
            "routing": {"default_policy": "matrix", "policies": {"matrix": MATRIX_POLICY}},
        }
    )
    router = Router(registry, LiveMetrics())
    start = RouteRequest(expected_input_tokens=2000, expected_output_tokens=300)
    assert router.decide(start).deployment == "half"
    # Eight steps left, but nothing said about the session's prefix: the same.
    eight = start.model_copy(update={"horizon_steps": 8.0})
    assert router.decide(eight).deployment == "half"
    # Each of the seven later steps reads a 1200-token prefix from the pin's cache: the
    # cheaper cache wins the session.
    prefixed = eight.model_copy(update={"session_prefix_tokens": 1200})
    assert router.decide(prefixed).deployment == "tenth"
    # A prefix shorter than any provider caches counts for nothing.
    short = eight.model_copy(update={"session_prefix_tokens": 1000})
    assert router.decide(short).deployment == "half"
