"""Learned quality: the pure posterior and bonus, and how the router scores on them."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.providers.registry import ModelRegistry
from orchestrator.routing import Router, RouteRequest
from orchestrator.routing.learning import (
    LearnedQuality,
    Learning,
    Signal,
    Tally,
    estimate,
    signal_score,
)
from orchestrator.routing.policy import Difficulty


def test_with_no_outcomes_the_learned_quality_is_the_declared_one() -> None:
    est = estimate(0.73, Tally(), Learning())
    assert (est.learned, est.value, est.observations, est.explore) == (0.73, 0.73, 0.0, 0.0)


def test_failures_pull_the_estimate_down_and_successes_up_weighted_by_the_prior() -> None:
    weak_prior, strong_prior = Learning(prior_strength=2), Learning(prior_strength=50)
    bad = Tally(successes=1, failures=9)
    assert estimate(0.9, bad, weak_prior).learned == pytest.approx((1.8 + 1) / 12, abs=1e-6)
    assert estimate(0.9, bad, strong_prior).learned == pytest.approx((45 + 1) / 60, abs=1e-6)
    good = Tally(successes=10, failures=0)
    assert estimate(0.5, good, Learning()).learned == pytest.approx(15 / 20, abs=1e-6)
    # Learning off: the tallies are ignored.
    assert estimate(0.9, bad, Learning(enabled=False)).learned == 0.9


def test_the_declaration_stands_while_outcomes_agree_with_it_within_noise() -> None:
    # 7 of 10 against a declared 0.8: within 3 standard errors (0.126 each), kept.
    held = estimate(0.8, Tally(7, 3), Learning())
    assert (held.learned, held.observations) == (0.8, 10.0)
    # 2 of 10: 4.7 standard errors off, the posterior takes over.
    assert estimate(0.8, Tally(2, 8), Learning()).learned == pytest.approx(10 / 20, abs=1e-6)
    # With the gate off, any evidence moves it.
    moved = estimate(0.8, Tally(7, 3), Learning(evidence=0)).learned
    assert moved == pytest.approx(15 / 20, abs=1e-6)
    # A declared 1.0 is contradicted by a single failure.
    assert estimate(1.0, Tally(9, 1), Learning()).learned == pytest.approx(19 / 20, abs=1e-6)


def test_exploration_is_off_by_default_bounded_and_shrinks_with_evidence() -> None:
    assert estimate(0.4, Tally(1, 1), Learning()).explore == 0.0
    explore = Learning(explore=2.0, explore_cap=0.05)
    few = estimate(0.4, Tally(1, 1), explore)
    assert few.explore == 0.05  # capped
    many = estimate(0.4, Tally(400, 600), Learning(explore=2.0, explore_cap=1.0))
    fewer = estimate(0.4, Tally(4, 6), Learning(explore=2.0, explore_cap=1.0))
    assert 0 < many.explore < fewer.explore
    assert estimate(0.99, Tally(1000, 0), Learning(explore=5, explore_cap=1)).value <= 1.0


def test_signal_scores() -> None:
    assert signal_score(Signal.ESCALATED) == 0.0
    assert signal_score(Signal.ACCEPTED) == 1.0
    assert signal_score(Signal.FEEDBACK, 0.25) == 0.25
    with pytest.raises(ValueError, match="between 0 and 1"):
        signal_score(Signal.FEEDBACK, 1.5)
    with pytest.raises(ValueError, match="takes no score"):
        signal_score(Signal.SCHEMA_FAILURE, 0.5)


def registry(
    learning: dict[str, Any] | None = None, big: float = 0.85, **policy: Any
) -> ModelRegistry:
    def d(model: str, price: float, quality: dict[str, float]) -> dict[str, Any]:
        return {
            "provider": "p",
            "model": model,
            "input_price_per_mtok": price,
            "output_price_per_mtok": 4 * price,
            "quality": quality,
        }

    return ModelRegistry.model_validate(
        {
            "providers": {"p": {"base_url": "http://127.0.0.1:9/v1"}},
            "models": {
                "mid": d("m-mid", 1.0, {"default": 0.8, "code": 0.9}),
                "big": d("m-big", 3.0, {"default": big}),
            },
            "default_model": "mid",
            "routing": {
                "default_policy": "p",
                "policies": {"p": {"learning": learning or {}, **policy}},
            },
        }
    )


def test_the_router_leaves_an_overrated_deployment_and_records_the_estimates_it_used() -> None:
    router = Router(registry())
    req = RouteRequest(tenant="acme", task_type="code", difficulty=Difficulty.LOW)
    assert router.decide(req).deployment == "mid"
    # `mid` says 0.9 for code but fails most of it, for this tenant only.
    router.learned.put("acme", "code", {"mid": Tally(successes=2, failures=18)})
    decision = router.decide(req)
    assert decision.deployment == "big"
    mid = next(c for c in decision.candidates if c.deployment == "mid")
    assert mid.terms is not None
    assert mid.terms.declared_quality == 0.9
    assert mid.terms.observations == 20
    assert mid.terms.quality_value == pytest.approx((9 + 2) / 30, abs=1e-6)
    # Another tenant's sessions still go by the declaration.
    assert router.decide(req.model_copy(update={"tenant": "other"})).deployment == "mid"


def test_a_learned_quality_below_the_floor_is_a_soft_loss() -> None:
    router = Router(registry())
    router.learned.put("t", "code", {"mid": Tally(successes=0, failures=30)})
    hard = router.decide(RouteRequest(tenant="t", task_type="code", difficulty=Difficulty.HIGH))
    assert hard.deployment == "big"
    mid = next(c for c in hard.candidates if c.deployment == "mid")
    assert "below high floor" in mid.reason


def test_learning_switched_off_ignores_outcomes() -> None:
    router = Router(registry({"enabled": False}))
    router.learned.put("acme", "code", {"mid": Tally(successes=0, failures=100)})
    req = RouteRequest(tenant="acme", task_type="code", difficulty=Difficulty.LOW)
    assert router.decide(req).deployment == "mid"


def test_exploration_tries_an_underrated_deployment_within_its_cap() -> None:
    # `big` scores a little below `mid` on what is declared; a bonus of at most 0.1 is
    # enough to try it while it has no observations, and not once it has many bad ones.
    weights = {"quality": 1.0, "cost": 0.05, "latency": 0.0}
    known = {"mid": Tally(2000, 500)}
    req = RouteRequest(tenant="t", difficulty=Difficulty.LOW)
    plain = Router(registry(big=0.78, weights=weights))
    plain.learned.put("t", "default", known)
    assert plain.decide(req).deployment == "mid"
    explore = {"explore": 3.0, "explore_cap": 0.1, "prior_strength": 4}
    router = Router(registry(explore, big=0.78, weights=weights))
    router.learned.put("t", "default", known)
    decision = router.decide(req)
    assert decision.deployment == "big"
    assert decision.candidates[0].terms is not None
    assert decision.candidates[0].terms.explore == 0.1
    router.learned.put("t", "default", {**known, "big": Tally(20, 80)})
    assert router.decide(req).deployment == "mid"


def test_learned_key_changes_only_when_tallies_do() -> None:
    learned = LearnedQuality()
    assert learned.key("t", "code") is None
    learned.put("t", "code", {"a": Tally(1, 0)})
    first = learned.key("t", "code")
    learned.put("t", "code", {"a": Tally(1, 0)})
    assert learned.key("t", "code") == first
    learned.put("t", "code", {"a": Tally(1, 1)})
    assert learned.key("t", "code") != first


@settings(max_examples=300, deadline=None)
@given(
    declared=st.floats(0, 1),
    successes=st.integers(0, 200),
    failures=st.integers(0, 200),
    strength=st.floats(0.5, 100),
    evidence=st.sampled_from([0.0, 2.0, 3.0]),
)
def test_a_success_never_lowers_and_a_failure_never_raises_the_estimate(
    declared: float, successes: int, failures: int, strength: float, evidence: float
) -> None:
    learning = Learning(prior_strength=strength, evidence=evidence)
    now = estimate(declared, Tally(successes, failures), learning)
    better = estimate(declared, Tally(successes + 1, failures), learning)
    worse = estimate(declared, Tally(successes, failures + 1), learning)
    assert 0.0 <= worse.learned <= now.learned + 1e-6
    assert now.learned <= better.learned + 1e-6 <= 1.0 + 1e-6
