"""A boundary decision priced over the session's steps, and latency differences within the
latency's spread scored as ties.

`session_cost` (pure): a pin chosen at a safe boundary is kept at the next ones, so the
choice binds the session's prompt cache for the steps it has left; each later step reads the
session's prefix from that deployment's cache. `optimistic_latencies` (pure): a latency is
known only to within how much it wanders, and a difference inside that decides nothing.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from orchestrator.providers.registry import ModelEntry, ModelRegistry
from orchestrator.routing import LiveMetrics, Router, RouteRequest
from orchestrator.routing.horizon import StepOdds
from orchestrator.routing.policy import Difficulty
from orchestrator.routing.scoring import expected_cost, optimistic_latencies, session_cost

TENTH = ModelEntry(
    provider="p",
    model="tenth",
    input_price_per_mtok=3.0,
    cached_input_price_per_mtok=0.3,
    output_price_per_mtok=15.0,
)
POLICY: dict[str, Any] = {"weights": {"quality": 1.0, "cost": 0.25, "latency": 0.15}}


def test_one_step_or_a_short_prefix_is_the_steps_own_cost() -> None:
    own = expected_cost(TENTH, 2000, 300, warm_tokens=1200, calls=1.9)
    assert session_cost(TENTH, 2000, 300, warm_tokens=1200, calls=1.9) == own
    assert session_cost(TENTH, 2000, 300, warm_tokens=1200, calls=1.9, steps=8.0) == own
    # A prefix shorter than a provider caches is read from no cache.
    short = session_cost(
        TENTH, 2000, 300, warm_tokens=1200, calls=1.9, steps=8.0, prefix_tokens=1000
    )
    assert short == own


def test_later_steps_read_the_prefix_from_the_deployments_own_cache() -> None:
    cold = expected_cost(TENTH, 2000, 300)
    later = (1200 * 0.3 + 800 * 3.0 + 300 * 15.0) / 1e6
    assert expected_cost(TENTH, 2000, 300, warm_tokens=1200) == pytest.approx(later)
    mean = session_cost(TENTH, 2000, 300, steps=4.0, prefix_tokens=1200)
    # The mean per step: this one cold, three reading the prefix at 0.1x.
    assert mean == pytest.approx((cold + 3 * later) / 4)
    assert later < mean < cold


def test_latencies_within_their_spread_of_the_fastest_tie_with_it() -> None:
    latencies = {"fast": 1000.0, "near": 1100.0, "far": 2000.0, "declared": 1200.0}
    # No spreads: every latency is its own.
    assert optimistic_latencies(latencies, {}) == latencies
    scored = optimistic_latencies(latencies, {"fast": 0.3, "near": 0.2, "far": 0.2})
    # The fastest keeps its latency; one within its spread of it ties with it.
    assert scored["fast"] == 1000.0
    assert scored["near"] == 1000.0
    # Beyond the spread, only the excess counts.
    assert scored["far"] == pytest.approx(2000.0 * math.exp(-0.2))
    # A latency without a spread (declared, never measured) is scored as it is.
    assert scored["declared"] == 1200.0
    # Optimism never goes below the fastest, and a negative spread is none.
    assert optimistic_latencies({"a": 1000.0, "b": 5000.0}, {"b": 9.0})["b"] == 1000.0
    assert optimistic_latencies({"a": 1000.0, "b": 1500.0}, {"b": -1.0})["b"] == 1500.0
    assert optimistic_latencies({}, {}) == {}


def test_the_spread_follows_the_samples_and_moves_only_with_the_scored_latency() -> None:
    metrics = LiveMetrics()
    for _ in range(30):
        metrics.record_success("steady", 1000.0)
    steady = metrics.stats("steady")
    assert steady.latency_spread == 0.0 and steady.scored_latency_spread == 0.0
    for i in range(60):
        metrics.record_success("noisy", 1300.0 if i % 2 else 770.0)
    noisy = metrics.stats("noisy")
    # Each sample departs from the EWMA before it by about a quarter to a half, in log units.
    assert 0.2 < noisy.latency_spread < 0.6
    # The scored spread was taken when the scored latency last moved, not since: a move of
    # its own would invalidate cached decisions (`version` did not move for it).
    version = metrics.version
    scored = noisy.scored_latency_spread
    metrics.record_success("noisy", 1300.0)
    assert metrics.version == version and noisy.scored_latency_spread == scored
    # A material move of the latency takes the spread with it.
    for _ in range(3):
        metrics.record_success("noisy", 3000.0)
    assert metrics.version > version
    assert noisy.scored_latency_ms is not None and noisy.scored_latency_ms > 1300.0
    assert noisy.scored_latency_spread == noisy.latency_spread > 0.2


def two_deployments() -> ModelRegistry:
    def entry(model: str, price: float, ms: float) -> dict[str, Any]:
        return {
            "provider": "p",
            "model": model,
            "input_price_per_mtok": price,
            "output_price_per_mtok": price * 5,
            "quality": {"default": 0.88},
            "latency_ms": ms,
        }

    return ModelRegistry.model_validate(
        {
            "providers": {"p": {"base_url": "http://127.0.0.1:9/v1"}},
            # "dear" is 4 % dearer and declared 15 % faster.
            "models": {"dear": entry("dear", 3.12, 1000), "cheaper": entry("cheaper", 3.0, 1150)},
            "default_model": "cheaper",
            "routing": {"default_policy": "p", "policies": {"p": POLICY}},
        }
    )


def test_a_latency_lead_within_the_spread_does_not_outweigh_the_cost() -> None:
    request = RouteRequest(expected_input_tokens=2000, expected_output_tokens=300)
    # Declared latencies (no spread): the faster one wins on latency.
    assert Router(two_deployments(), LiveMetrics()).decide(request).deployment == "dear"
    # Steady live latencies, the same as declared: the same.
    steady = LiveMetrics()
    for _ in range(20):
        steady.record_success("dear", 1000.0)
        steady.record_success("cheaper", 1150.0)
    assert Router(two_deployments(), steady).decide(request).deployment == "dear"
    # The cheaper one's latency wanders by about a third around 1130 ms (a geometric mean):
    # its lag behind the faster one is within that, a tie, and the cost decides.
    wandering = LiveMetrics()
    wandering.record_success("cheaper", 2400.0)
    for i in range(60):
        wandering.record_success("dear", 1000.0)
        wandering.record_success("cheaper", 1500.0 if i % 2 else 850.0)
    stats = wandering.stats("cheaper")
    assert stats.scored_latency_ms is not None and stats.scored_latency_ms > 1150.0
    assert stats.scored_latency_spread > 0.3
    decision = Router(two_deployments(), wandering).decide(request)
    assert decision.deployment == "cheaper"
    terms = {c.deployment: c.terms for c in decision.candidates}
    cheaper = terms["cheaper"]
    assert cheaper is not None and cheaper.latency_spread == stats.scored_latency_spread
    assert cheaper.scored_latency_ms == 1000.0 < cheaper.latency_ms
    # Without the spread, the same measured latencies would have given the faster one.
    lagging = LiveMetrics()
    for _ in range(5):
        lagging.record_success("dear", 1000.0)
        lagging.record_success("cheaper", stats.scored_latency_ms)
    assert Router(two_deployments(), lagging).decide(request).deployment == "dear"


def sessions_registry() -> ModelRegistry:
    def entry(model: str, cached: float, ms: float) -> dict[str, Any]:
        return {
            "provider": "p",
            "model": model,
            "input_price_per_mtok": 3.0,
            "cached_input_price_per_mtok": cached,
            "output_price_per_mtok": 15.0,
            "quality": {"default": 0.88, "hard": 0.85},
            "latency_ms": ms,
        }

    return ModelRegistry.model_validate(
        {
            "providers": {"p": {"base_url": "http://127.0.0.1:9/v1"}},
            "models": {"tenth": entry("tenth", 0.3, 1500), "half": entry("half", 1.5, 1400)},
            "default_model": "half",
            "routing": {
                "default_policy": "p",
                "policies": {"p": {**POLICY, "stickiness": 0.08}},
            },
        }
    )


def test_the_steps_left_price_the_cost_and_the_stickiness_rule_still_decides() -> None:
    router = Router(sessions_registry(), LiveMetrics())
    start = RouteRequest(expected_input_tokens=2000, expected_output_tokens=300)
    assert router.decide(start).deployment == "half"
    session = start.model_copy(update={"horizon_steps": 8.0, "session_prefix_tokens": 1200})
    chosen = router.decide(session)
    assert chosen.deployment == "tenth"
    # Scored per step, over the session: the cost is the mean of `session_cost`.
    terms = {c.deployment: c.terms for c in chosen.candidates}
    tenth = terms["tenth"]
    assert tenth is not None
    entry = router.registry.models["tenth"]
    assert tenth.cost_usd == pytest.approx(
        session_cost(entry, 2000, 300, steps=8.0, prefix_tokens=1200)
    )
    # The stickiness rule, not the horizon's weighing, keeps a pin the session has.
    kept = router.decide(session.model_copy(update={"current": "half"}))
    assert kept.deployment == "half" and "within 0.08 of the best" in kept.reason
    # With odds of the later steps, the horizon weighs the steps instead.
    odds = [StepOdds(task_type="default", difficulty=Difficulty.MEDIUM, share=1.0)]
    weighed = router.decide(session.model_copy(update={"later_steps": odds, "current": "half"}))
    assert weighed.deployment == "tenth"
