"""Property: whatever the registry, request, live state and learned quality (any outcomes,
any prior strength, exploration on or off), no decision breaks a hard constraint
(failed-in-step, capabilities, context window, region, data class, rules)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.exceptions import RoutingError
from orchestrator.providers.registry import ModelRegistry
from orchestrator.routing import LiveMetrics, Router, RouteRequest
from orchestrator.routing.learning import Tally
from orchestrator.routing.policy import Difficulty

CAPS = ["tools", "json", "vision"]
CLASSES = ["public", "internal", "pii", "confidential"]
REGIONS = ["eu", "us", "any"]
NAMES = [f"d{i}" for i in range(6)]

deployments = st.fixed_dictionaries(
    {
        "provider": st.just("p"),
        "model": st.text("abc", min_size=1, max_size=4),
        "input_price_per_mtok": st.floats(0, 20),
        "output_price_per_mtok": st.floats(0, 60),
        "context_window": st.integers(1_000, 300_000),
        "capabilities": st.lists(st.sampled_from(CAPS), unique=True),
        "region": st.sampled_from(REGIONS),
        "data_classes": st.lists(st.sampled_from(CLASSES), unique=True),
        "quality": st.fixed_dictionaries({"default": st.floats(0, 1)}),
        "latency_ms": st.floats(1, 10_000),
    }
)


@st.composite
def registries(draw: st.DrawFn) -> ModelRegistry:
    count = draw(st.integers(1, len(NAMES)))
    models = {NAMES[i]: draw(deployments) for i in range(count)}
    rules: list[dict[str, Any]] = []
    if draw(st.booleans()):
        rules.append(
            {"name": "gdpr", "when": 'tenant == "t-eu"', "require_region": "eu"},
        )
    if draw(st.booleans()):
        rules.append({"name": "no-d0", "when": '"x" in tags', "exclude": ["d0"]})
    learning = draw(
        st.fixed_dictionaries(
            {
                "enabled": st.booleans(),
                "prior_strength": st.floats(0.1, 100),
                "explore": st.floats(0, 5),
                "explore_cap": st.floats(0, 1),
            }
        )
    )
    return ModelRegistry.model_validate(
        {
            "providers": {"p": {"base_url": "http://127.0.0.1:9/v1"}},
            "models": models,
            "default_model": "d0",
            "routing": {
                "default_policy": "p",
                "policies": {"p": {"rules": rules, "learning": learning}},
            },
        }
    )


requests = st.builds(
    RouteRequest,
    tenant=st.sampled_from(["t-eu", "t-us"]),
    tags=st.lists(st.sampled_from(["x", "y"]), unique=True),
    data_class=st.sampled_from(CLASSES),
    difficulty=st.sampled_from(list(Difficulty)),
    needs=st.lists(st.sampled_from(CAPS), unique=True),
    region=st.one_of(st.none(), st.sampled_from(REGIONS)),
    tokens_so_far=st.integers(0, 3_000_000),
    expected_input_tokens=st.integers(100, 250_000),
    exclude=st.dictionaries(st.sampled_from(NAMES), st.just("HTTP 503"), max_size=3),
    current=st.one_of(st.none(), st.sampled_from(NAMES)),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    registry=registries(),
    request=requests,
    cooling=st.dictionaries(st.sampled_from(NAMES), st.floats(1, 100), max_size=6),
    budget_used=st.floats(0, 1),
    outcomes=st.dictionaries(
        st.sampled_from(NAMES),
        st.tuples(st.floats(0, 1_000), st.floats(0, 1_000)),
        max_size=6,
    ),
)
def test_no_decision_violates_a_hard_constraint(
    registry: ModelRegistry,
    request: RouteRequest,
    cooling: dict[str, float],
    budget_used: float,
    outcomes: dict[str, tuple[float, float]],
) -> None:
    metrics = LiveMetrics(clock=lambda: 0.0)
    for name, seconds in cooling.items():
        metrics.record_failure(name, "HTTP 503", retry_after=seconds)
    router = Router(registry, metrics)
    tallies = {name: Tally(ok, bad) for name, (ok, bad) in outcomes.items()}
    router.learned.put(request.tenant, request.task_type, tallies)
    try:
        decision = router.decide(request, budget_used=budget_used)
    except RoutingError:
        return
    d = registry.models[decision.deployment]
    assert decision.deployment not in request.exclude
    assert set(request.needs) <= d.capabilities
    need = request.expected_input_tokens + request.expected_output_tokens
    assert need <= d.context_window
    assert request.data_class in d.data_classes
    rules = {r.name for r in registry.routing.policies["p"].rules}
    if request.region:
        assert d.region == request.region
    if request.tenant == "t-eu" and "gdpr" in rules:
        assert d.region == "eu"
    if "x" in request.tags and "no-d0" in rules:
        assert decision.deployment != "d0"
    # Every candidate that lost on a hard constraint says so, and never wins.
    assert all(c.reason for c in decision.candidates)
    # Learning moves only the score: the learned quality stays a probability, and every
    # eligible candidate's record names the estimate it was scored on.
    for c in decision.candidates:
        if c.terms is not None:
            assert 0.0 <= c.terms.quality_value <= 1.0
            assert c.terms.explore <= registry.routing.policies["p"].learning.explore_cap
