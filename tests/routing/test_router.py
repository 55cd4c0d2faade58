"""Router unit tests: hard constraints, scoring, CEL rules, cooldown, reasons."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.exceptions import ConfigError, RoutingError
from orchestrator.providers.registry import ModelRegistry
from orchestrator.routing import LiveMetrics, Router, RouteRequest
from orchestrator.routing.policy import Difficulty


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def deployment(model: str, **extra: Any) -> dict[str, Any]:
    return {"provider": "p", "model": model, **extra}


def registry(**overrides: Any) -> ModelRegistry:
    data: dict[str, Any] = {
        "providers": {"p": {"base_url": "http://127.0.0.1:9/v1"}},
        "models": {
            "strong": deployment(
                "m-strong",
                input_price_per_mtok=3.0,
                output_price_per_mtok=15.0,
                quality={"default": 0.9},
                data_classes=["public", "internal", "pii", "confidential"],
                region="eu",
                context_window=200_000,
            ),
            "cheap": deployment(
                "m-cheap",
                input_price_per_mtok=0.1,
                output_price_per_mtok=0.4,
                quality={"default": 0.6, "drafting": 0.8},
                region="us",
                context_window=16_000,
            ),
            "vision": deployment(
                "m-vision",
                input_price_per_mtok=1.0,
                output_price_per_mtok=4.0,
                capabilities=["tools", "json", "vision"],
                quality={"default": 0.7},
                region="eu",
            ),
        },
        "aliases": {"any-eu": {"deployments": ["strong", "vision"]}},
        "default_model": "cheap",
    }
    data.update(overrides)
    return ModelRegistry.model_validate(data)


def test_cost_weight_picks_the_cheap_model_and_every_loser_has_a_reason() -> None:
    router = Router(registry())
    decision = router.decide(RouteRequest(difficulty=Difficulty.LOW))
    assert decision.deployment == "cheap"
    assert {c.deployment for c in decision.candidates} == {"strong", "cheap", "vision"}
    losers = [c for c in decision.candidates if c.deployment != "cheap"]
    assert all(c.reason.startswith("score ") for c in losers)


def test_a_hard_step_escalates_before_it_runs_and_comes_back_down() -> None:
    router = Router(registry())
    hard = router.decide(RouteRequest(difficulty=Difficulty.HIGH, current="cheap"))
    assert hard.deployment == "strong"
    cheap = next(c for c in hard.candidates if c.deployment == "cheap")
    assert "below high floor" in cheap.reason
    easy = router.decide(RouteRequest(difficulty=Difficulty.LOW, current="strong"))
    assert easy.deployment == "cheap"


def test_hard_constraints_capabilities_context_region_data_class() -> None:
    router = Router(registry())
    assert router.decide(RouteRequest(needs=["vision"])).deployment == "vision"
    big = router.decide(RouteRequest(expected_input_tokens=20_000, difficulty=Difficulty.LOW))
    assert "context 16000 <" in next(c.reason for c in big.candidates if c.deployment == "cheap")
    eu = router.decide(RouteRequest(region="eu", difficulty=Difficulty.LOW))
    assert eu.deployment in {"strong", "vision"}
    pii = router.decide(RouteRequest(data_class="confidential", difficulty=Difficulty.LOW))
    assert pii.deployment == "strong"
    lost = {c.deployment: c.reason for c in pii.candidates if not c.eligible}
    assert lost == {
        "cheap": "may not receive confidential data",
        "vision": "may not receive confidential data",
    }


def test_a_long_session_still_routes_its_next_step() -> None:
    """Tokens spent in earlier steps take no room in the next step's fresh conversation."""
    router = Router(registry())
    later = router.decide(RouteRequest(tokens_so_far=2_000_000, difficulty=Difficulty.LOW))
    assert later.deployment == "cheap"
    assert all("context" not in (c.reason or "") for c in later.candidates)


def test_nothing_fits_is_a_clear_error() -> None:
    router = Router(registry())
    with pytest.raises(RoutingError, match=r"no deployment can serve step 's1'.*cheap: lacks"):
        router.decide(RouteRequest(step_id="s1", name="cheap", needs=["vision"]))


def test_an_alias_limits_the_pool_and_a_failover_excludes_the_failed_deployment() -> None:
    router = Router(registry())
    first = router.decide(RouteRequest(name="any-eu", difficulty=Difficulty.LOW))
    assert {c.deployment for c in first.candidates} == {"strong", "vision"}
    again = router.decide(
        RouteRequest(
            name="any-eu",
            difficulty=Difficulty.LOW,
            exclude={first.deployment: "HTTP 503"},
            boundary="forced_failover",
        )
    )
    assert again.deployment != first.deployment
    failed = next(c for c in again.candidates if c.deployment == first.deployment)
    assert failed.reason == "failed in this step: HTTP 503"


def test_cel_rules_exclude_only_region_and_prefer() -> None:
    reg = registry(
        routing={
            "default_policy": "p",
            "policies": {
                "p": {
                    "rules": [
                        {"name": "eu", "when": 'tenant.endsWith("-eu")', "require_region": "eu"},
                        {
                            "name": "vip",
                            "when": '"vip" in tags && tokens_so_far < 50000',
                            "prefer": {"strong": 1.0},
                        },
                        {
                            "name": "beta",
                            "when": 'headers["x-beta"] == "1"',
                            "only": ["vision"],
                        },
                        {
                            "name": "no-cheap-code",
                            "when": 'task_type == "code"',
                            "exclude": ["cheap"],
                        },
                    ]
                }
            },
        }
    )
    router = Router(reg)
    base = {"difficulty": Difficulty.LOW, "headers": {"x-beta": "0"}}
    eu = router.decide(RouteRequest(tenant="acme-eu", **base))
    assert eu.rules_fired == ["eu"] and eu.deployment != "cheap"
    vip = router.decide(RouteRequest(tags=["vip"], **base))
    assert vip.deployment == "strong" and vip.rules_fired == ["vip"]
    beta = router.decide(RouteRequest(difficulty=Difficulty.LOW, headers={"x-beta": "1"}))
    assert beta.deployment == "vision"
    assert "not allowed by rule 'beta'" in {c.reason for c in beta.candidates}
    code = router.decide(RouteRequest(task_type="code", **base))
    assert "excluded by rule 'no-cheap-code'" in {c.reason for c in code.candidates}


def test_bad_rules_are_config_errors() -> None:
    def with_rule(when: str) -> ModelRegistry:
        rule = {"name": "r", "when": when, "exclude": ["cheap"]}
        return registry(routing={"default_policy": "p", "policies": {"p": {"rules": [rule]}}})

    with pytest.raises(ConfigError, match="does not compile"):
        Router(with_rule("tenant =="))
    with pytest.raises(ConfigError, match="unknown variable"):
        Router(with_rule('tenantt == "x"'))
    with pytest.raises(RoutingError, match="must give a bool"):
        Router(with_rule("tenant")).decide(RouteRequest())


def test_cooldown_is_avoided_until_it_ends() -> None:
    clock = Clock()
    metrics = LiveMetrics(clock=clock)
    router = Router(registry(), metrics)
    request = RouteRequest(difficulty=Difficulty.LOW)
    assert router.decide(request).deployment == "cheap"
    metrics.record_failure("cheap", "HTTP 429", rate_limited=True, retry_after=30)
    avoided = router.decide(request)
    assert avoided.deployment != "cheap"
    reason = next(c.reason for c in avoided.candidates if c.deployment == "cheap")
    assert reason == "cooling down for 30s after HTTP 429"
    clock.now += 29
    assert router.decide(request).deployment != "cheap"
    clock.now += 2
    assert router.decide(request).deployment == "cheap"


def test_failures_back_off_and_success_resets() -> None:
    clock = Clock()
    metrics = LiveMetrics(clock=clock, base_cooldown=5)
    assert metrics.record_failure("a", "HTTP 503", retry_after=None) == 5
    assert metrics.record_failure("a", "HTTP 503", retry_after=None) == 10
    metrics.record_success("a", 100.0)
    assert metrics.record_failure("a", "HTTP 503", retry_after=None) == 5
    for ms in range(1, 101):
        metrics.record_success("b", float(ms))
    stats = metrics.stats("b")
    assert stats.p95_ms == 95.0 and stats.latency_ewma_ms is not None
    assert stats.error_rate == 0.0


def test_when_everything_cools_down_the_soonest_back_serves() -> None:
    metrics = LiveMetrics(clock=Clock())
    router = Router(registry(), metrics)
    metrics.record_failure("strong", "HTTP 503", retry_after=60)
    metrics.record_failure("vision", "HTTP 503", retry_after=10)
    decision = router.decide(RouteRequest(name="any-eu"))
    assert decision.deployment == "vision"
    assert "every deployment is cooling down" in decision.reason


def test_keep_for_session_keeps_the_pin_unless_quality_requires_a_change() -> None:
    reg = registry(routing={"default_policy": "s", "policies": {"s": {"keep_for_session": True}}})
    router = Router(reg)
    kept = router.decide(RouteRequest(current="vision", difficulty=Difficulty.LOW))
    assert kept.deployment == "vision" and "kept for the session" in kept.reason
    raised = router.decide(RouteRequest(current="vision", difficulty=Difficulty.HIGH))
    assert raised.deployment == "strong"


def test_near_the_budget_the_policy_downgrades() -> None:
    weights = {"quality": 1.0, "cost": 0.2, "latency": 0.0}
    policy = {"weights": weights, "downgrade_at": 0.8}
    router = Router(registry(routing={"default_policy": "q", "policies": {"q": policy}}))
    request = RouteRequest(difficulty=Difficulty.MEDIUM, region="eu")
    assert router.decide(request, budget_used=0.1).deployment == "strong"
    assert router.decide(request, budget_used=0.9).deployment == "vision"


def test_decisions_are_cached_until_metrics_change() -> None:
    metrics = LiveMetrics(clock=Clock())
    router = Router(registry(), metrics)
    request = RouteRequest(difficulty=Difficulty.LOW)
    assert not router.decide(request).cached
    assert router.decide(request).cached
    metrics.record_failure("cheap", "HTTP 500", retry_after=None)
    fresh = router.decide(request)
    assert not fresh.cached and fresh.deployment != "cheap"


def test_stickiness_keeps_a_near_tie_and_the_cost_ratio_brings_the_session_down() -> None:
    weights = {"quality": 1.0, "cost": 0.0, "latency": 0.0}
    sticky = {"weights": weights, "stickiness": 0.25}
    router = Router(registry(routing={"default_policy": "s", "policies": {"s": sticky}}))
    request = RouteRequest(region="eu", difficulty=Difficulty.LOW)
    assert router.decide(request).deployment == "strong"
    kept = router.decide(request.model_copy(update={"current": "vision"}))
    assert kept.deployment == "vision" and "already pinned" in kept.reason
    strong = next(c for c in kept.candidates if c.deployment == "strong")
    assert "vision is pinned and close enough" in strong.reason

    # Pinned on the pricier model: kept by a large stickiness, until a cost ratio caps it.
    cost_only = {"quality": 0.0, "cost": 1.0, "latency": 0.0}
    pinned = request.model_copy(update={"current": "strong"})
    loose = {"weights": cost_only, "stickiness": 1.0}
    router = Router(registry(routing={"default_policy": "l", "policies": {"l": loose}}))
    assert router.decide(pinned).deployment == "strong"
    capped = {**loose, "max_sticky_cost_ratio": 1.5}
    router = Router(registry(routing={"default_policy": "c", "policies": {"c": capped}}))
    assert router.decide(pinned).deployment == "vision"


def test_cached_decisions_never_leak_across_tenants_or_pins() -> None:
    rule = {"name": "acme-strong", "when": 'tenant == "acme"', "only": ["strong"]}
    router = Router(registry(routing={"default_policy": "p", "policies": {"p": {"rules": [rule]}}}))
    base = RouteRequest(difficulty=Difficulty.LOW)
    for _ in range(3):
        acme = router.decide(base.model_copy(update={"tenant": "acme", "session_id": "a"}))
        other = router.decide(base.model_copy(update={"tenant": "globex", "session_id": "b"}))
        assert (acme.deployment, acme.rules_fired) == ("strong", ["acme-strong"])
        assert (other.deployment, other.rules_fired) == ("cheap", [])
    # One session's pin does not become another's: the pin is applied per request.
    pinned = router.decide(base.model_copy(update={"current": "vision"}))
    fresh = router.decide(base)
    assert fresh.deployment == "cheap" and "already pinned" not in fresh.reason
    assert pinned.deployment in {"vision", "cheap"}


def test_every_eligible_candidate_carries_its_score_terms() -> None:
    """The terms the router ranked by, as data: weights x inputs, summing to the score."""
    weights = {"quality": 1.0, "cost": 0.2, "latency": 0.1, "errors": 0.5}
    policy = {
        "weights": weights,
        "downgrade_at": 0.8,
        "rules": [{"name": "vip", "when": '"vip" in tags', "prefer": {"vision": 0.25}}],
    }
    metrics = LiveMetrics(clock=Clock())
    router = Router(registry(routing={"default_policy": "q", "policies": {"q": policy}}), metrics)
    metrics.record_failure("vision", "HTTP 503", retry_after=0)
    request = RouteRequest(tags=["vip"], region="eu", difficulty=Difficulty.LOW)
    for used, cost_weight in ((0.1, 0.2), (0.9, 0.6)):
        decision = router.decide(request, budget_used=used)
        eligible = [c for c in decision.candidates if c.eligible]
        assert {c.deployment for c in eligible} == {"strong", "vision"}
        dearest = max(c.terms.cost_usd for c in eligible if c.terms)
        for c in eligible:
            t = c.terms
            assert t is not None and c.score == t.total
            assert t.total == pytest.approx(
                t.quality + t.cost + t.latency + t.errors + t.rules, abs=1e-5
            )
            assert t.quality == pytest.approx(1.0 * t.quality_value, abs=1e-6)
            assert t.cost == pytest.approx(-cost_weight * t.cost_usd / dearest, abs=1e-6)
            assert t.errors == pytest.approx(-0.5 * t.error_rate, abs=1e-6)
        by_name = {c.deployment: c.terms for c in eligible}
        assert by_name["vision"] is not None and by_name["strong"] is not None
        assert (by_name["vision"].rules, by_name["strong"].rules) == (0.25, 0.0)
        assert by_name["vision"].error_rate > 0 and by_name["vision"].errors < 0
        assert by_name["strong"].quality_value == 0.9
        assert by_name["strong"].cost == pytest.approx(-cost_weight)
    ineligible = router.decide(RouteRequest(region="eu")).candidates
    assert all(c.terms is None for c in ineligible if not c.eligible)
