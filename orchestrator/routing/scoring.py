"""The router's score as data: each eligible candidate's terms, from one pure function.

The ranking and `orchestrator route explain` read the same `ScoreTerms`, so what a person
is shown is what the router summed, never a recomputation that could drift from it.

The cost term is `expected_cost`: what the calls until the next safe boundary are expected
to cost on a deployment, its prompt cache included. A provider bills prompt tokens it holds
in its cache at a fraction of the input price (Anthropic 0.1x, OpenAI 0.5x or less), and
a switch to another deployment starts that cache cold; list prices alone would misstate
both what staying costs and what a switch loses.

The latency term reads each candidate's latency at the low end of its spread
(`optimistic_latencies`): a live latency is known only to within how much the deployment's
calls wander, and a difference inside that is no evidence that one deployment will be the
faster for the calls a decision binds. Within it, candidates tie on latency and the cost and
quality terms decide.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

from orchestrator.routing.learning import Estimate
from orchestrator.routing.metrics import LiveMetrics
from orchestrator.routing.policy import Weights
from orchestrator.routing.types import ScoreTerms

if TYPE_CHECKING:
    from orchestrator.providers.registry import ModelEntry

__all__ = [
    "MIN_CACHED_TOKENS",
    "expected_cost",
    "optimistic_latencies",
    "score_eligible",
    "score_terms",
    "session_cost",
]

MIN_CACHED_TOKENS = 1024
"""Shortest shared prefix a provider serves from its prompt cache (OpenAI's minimum, and
Anthropic's for its larger models): a caller tells `warm_input_tokens` only from here."""


def expected_cost(
    entry: ModelEntry,
    input_tokens: int,
    output_tokens: int,
    *,
    warm_tokens: int = 0,
    calls: float = 1.0,
) -> float:
    """Expected cost in US dollars of the calls a decision binds, on one deployment.

    A decision at a safe boundary holds until the next one: the step's first call and the
    rest of its tool loop (`calls` in all, on average). The first call's prompt reads
    `warm_tokens` from the deployment's prompt cache (the session's prefix it still holds;
    0 for any deployment but the pinned one). Each later call re-sends the prompt before it,
    now warm on this deployment whichever it is, plus that call's answer and its tool
    results (taken as twice `output_tokens`).

    A cache write (Anthropic bills it at 1.25x the input price) is counted only where the
    reads it buys are: the first call's new tokens when later calls follow, and each later
    call's. A decision for one call prices its new tokens at the input price, so with the
    defaults (one call, nothing warm) this is the list price, as it was before caching was
    priced: a router asked per call would otherwise shun write-priced caches for a premium
    whose reads it never counts.

    Cache reads and writes are priced by `ModelEntry.cost` at the deployment's declared
    rates; a deployment that declares none, or says `prompt_cache: false`, pays its input
    price throughout.
    """
    cache = 0 if entry.prompt_cache is False else 1
    warm = min(max(warm_tokens, 0), input_tokens) * cache
    first = entry.cost(
        input_tokens,
        output_tokens,
        cached_input_tokens=warm,
        cache_write_tokens=(input_tokens - warm) * cache if calls > 1.0 else 0,
    )
    if calls <= 1.0:
        return first
    grown = 2 * output_tokens
    later = entry.cost(
        input_tokens + grown,
        output_tokens,
        cached_input_tokens=input_tokens * cache,
        cache_write_tokens=grown * cache,
    )
    return first + (calls - 1.0) * later


def session_cost(
    entry: ModelEntry,
    input_tokens: int,
    output_tokens: int,
    *,
    warm_tokens: int = 0,
    calls: float = 1.0,
    steps: float = 1.0,
    prefix_tokens: int = 0,
) -> float:
    """Expected cost per step, in US dollars, over the `steps` a pin is expected to serve.

    A deployment chosen at a safe boundary is kept at the next ones unless a step needs
    more than it has (the stickiness rule), so the choice binds the session's prompt cache
    for the steps it has left, not only for this one. This step costs `expected_cost`;
    each later step reads the session's prefix (`prefix_tokens`: system prompt and tool
    definitions) from this deployment's cache, at its cached-input price. The mean over the
    steps keeps the figure per step, on the scale the score compares one step's quality and
    latency against, while a cache that is cheaper to read counts on every step it serves.
    With one step, or a prefix shorter than a provider caches, it is `expected_cost`.
    """
    now = expected_cost(entry, input_tokens, output_tokens, warm_tokens=warm_tokens, calls=calls)
    if steps <= 1.0 or prefix_tokens < MIN_CACHED_TOKENS:
        return now
    later = expected_cost(
        entry, input_tokens, output_tokens, warm_tokens=prefix_tokens, calls=calls
    )
    return (now + (steps - 1.0) * later) / steps


def optimistic_latencies(
    latencies: Mapping[str, float], spreads: Mapping[str, float]
) -> dict[str, float]:
    """Each candidate's latency at the low end of its spread, but not below the fastest.

    `spreads` are in log units (`DeploymentStats.scored_latency_spread`; missing: 0, as for
    a deployment scored on its declared latency): a candidate is scored at its latency
    divided by e to its spread, the optimistic end of where its latency wanders. One within
    its spread of the fastest candidate's latency ties with it; beyond, only the excess
    counts. Optimism stops at the fastest measured latency, so a noisy deployment never
    outscores a faster one on its noise alone; with no spreads, each latency is its own.
    """
    if not latencies:
        return {}
    fastest = min(latencies.values())
    return {
        name: max(fastest, latency * math.exp(-max(spreads.get(name, 0.0), 0.0)))
        for name, latency in latencies.items()
    }


def score_terms(
    weights: Weights,
    *,
    cost_weight: float,
    quality: float,
    cost_usd: float,
    max_cost: float,
    latency_ms: float,
    max_latency: float,
    error_rate: float,
    bonus: float,
    learned: Estimate | None = None,
    warm_tokens: int = 0,
    scored_latency_ms: float | None = None,
    latency_spread: float = 0.0,
) -> ScoreTerms:
    """One candidate's terms; cost and latency are normalised by the eligible set's maxima.

    The latency term reads `scored_latency_ms` (`optimistic_latencies`; None: `latency_ms`)
    over the slowest measured latency. With `learned`, `quality` is the estimate's value and
    the estimate's parts are kept beside it, so the decision's record says which estimates
    it used.
    """
    if learned is not None:
        quality = learned.value
    q = weights.quality * quality
    c = -cost_weight * cost_usd / max_cost
    scored = latency_ms if scored_latency_ms is None else scored_latency_ms
    lat = -weights.latency * scored / max_latency
    e = -weights.errors * error_rate
    # `+ 0.0` turns a zero penalty's -0.0 into 0.0, which people read without a sign.
    return ScoreTerms.model_construct(
        quality=round(q, 6) + 0.0,
        cost=round(c, 6) + 0.0,
        latency=round(lat, 6) + 0.0,
        errors=round(e, 6) + 0.0,
        rules=round(bonus, 6) + 0.0,
        total=round(q + c + lat + e + bonus, 6),
        quality_value=quality,
        cost_usd=cost_usd,
        latency_ms=latency_ms,
        scored_latency_ms=scored,
        latency_spread=latency_spread,
        error_rate=error_rate,
        warm_tokens=warm_tokens,
        declared_quality=None if learned is None else learned.declared,
        observations=0.0 if learned is None else learned.observations,
        explore=0.0 if learned is None else learned.explore,
    )


def score_eligible(
    eligible: list[str],
    models: Mapping[str, ModelEntry],
    metrics: LiveMetrics,
    *,
    task_type: str,
    input_tokens: int,
    output_tokens: int,
    weights: Weights,
    cost_weight: float,
    bonus: Mapping[str, float],
    learned: Mapping[str, Estimate] | None = None,
    warm: Mapping[str, int] | None = None,
    calls: float = 1.0,
    steps: float = 1.0,
    prefix_tokens: int = 0,
) -> dict[str, ScoreTerms]:
    """The terms of every eligible candidate, by deployment name.

    `learned` gives the quality estimates to score on (by deployment); without it, the
    declared quality for the task type. `warm` gives the prompt tokens a deployment holds
    in its cache (the pinned one's), `calls` how many calls the decision binds, `steps`
    how many steps the session has left and `prefix_tokens` its prefix: the cost term is
    `session_cost` (with one step, `expected_cost`). Each latency is scored as
    `optimistic_latencies` gives it, from the live metrics' spreads.
    """
    costs: dict[str, float] = {}
    latencies: dict[str, float] = {}
    spreads: dict[str, float] = {}
    errors: dict[str, float] = {}
    held = warm or {}
    for name in eligible:
        d = models[name]
        costs[name] = session_cost(
            d,
            input_tokens,
            output_tokens,
            warm_tokens=held.get(name, 0),
            calls=calls,
            steps=steps,
            prefix_tokens=prefix_tokens,
        )
        stats = metrics.peek(name)
        measured = stats.scored_latency_ms if stats is not None else None
        latencies[name] = measured if measured is not None else d.latency_ms
        if measured is not None and stats is not None:
            spreads[name] = stats.scored_latency_spread
        errors[name] = stats.scored_error_rate if stats is not None else 0.0
    max_cost = max(costs.values()) or 1.0
    max_latency = max(latencies.values()) or 1.0
    scored = optimistic_latencies(latencies, spreads) if spreads else latencies
    return {
        name: score_terms(
            weights,
            cost_weight=cost_weight,
            quality=models[name].quality_for(task_type),
            cost_usd=costs[name],
            max_cost=max_cost,
            latency_ms=latencies[name],
            max_latency=max_latency,
            scored_latency_ms=scored[name],
            latency_spread=spreads.get(name, 0.0),
            error_rate=errors[name],
            bonus=bonus.get(name, 0.0),
            learned=None if learned is None else learned.get(name),
            warm_tokens=held.get(name, 0),
        )
        for name in eligible
    }
