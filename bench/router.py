"""Router benchmarks: (a) decision latency beside LiteLLM's Router, (b) a session-aware
policy matrix replay.

(a) A stream of requests from a few hundred sessions (each session's tokens grow, its pin
is passed back in) against 20 deployments and 10 CEL rules; each decision is timed with
`perf_counter_ns`. LiteLLM's `Router.async_get_available_deployment` chooses among the
same 20 deployments (one model group) with its simple-shuffle, latency-based and
cost-based strategies, on the same number of requests, in the same process.

(b) Synthetic sessions (40 sessions of 18 turns, several seeds) in six workload mixes, run
through three policies over the same router: ours (ask only at safe boundaries, keep the
pin otherwise), a per-turn router (ask on every call, same policy, no pin), and pin the
first model forever. Counted: switches, unsafe switches (inside a tool loop, or while the
session holds provider state that cannot move), cost as the provider bills it (each
deployment's prompt cache simulated: cached prompt tokens at the cached-input price, the rest
written), the share of calls served by the previous call's deployment, the share of prompt
tokens read from a cache, and a quality proxy. `--variants` also runs the matrix under each
cost model of `VARIANTS` (list prices only; caching billed but the router told nothing; ...).

(c) `--oracle`: the cheapest plan for the same sessions in hindsight under the matrix's
targets (0 unsafe switches, a tenth of per-turn's switches, per-turn's quality, floors):
whether the targets are reachable at all.

    .venv/bin/python bench/router.py            # or: make bench-router
    .venv/bin/python bench/router.py --skip-litellm --requests 20000
    .venv/bin/python bench/router.py --skip-litellm --variants
    .venv/bin/python bench/router.py --skip-litellm --variants --oracle   # + ~3 min
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from orchestrator.providers.registry import ModelRegistry
from orchestrator.routing import LiveMetrics, Router, RouteRequest
from orchestrator.routing.horizon import StepOdds
from orchestrator.routing.learning import Tally as LearnedTally
from orchestrator.routing.policy import Difficulty

RESULTS = Path(__file__).resolve().parent / "results"

# ---- (a) decision latency -------------------------------------------------------------

REGIONS = ["eu", "us", "ap"]
TASKS = ["default", "code", "drafting", "extraction", "analysis"]
TENANTS = [f"t{i}" for i in range(12)] + ["acme-eu", "globex-eu"]
TEAMS = ["ops", "support", "research", "free"]

RULES: list[dict[str, Any]] = [
    {"name": "eu-residency", "when": 'tenant.endsWith("-eu")', "require_region": "eu"},
    {"name": "free-no-frontier", "when": 'team == "free"', "exclude": ["frontier"]},
    {"name": "code-prefers-d03", "when": 'task_type == "code"', "prefer": {"d03": 0.2}},
    {"name": "beta-header", "when": 'headers["x-beta"] == "1"', "prefer": {"d07": 0.3}},
    {"name": "vip-tag", "when": '"vip" in tags', "prefer": {"frontier": 0.4}},
    {
        "name": "big-context",
        "when": "tokens_so_far > 60000",
        "exclude": ["d10", "d11", "d12"],
    },
    {"name": "confidential", "when": 'data_class == "confidential"', "only": ["frontier"]},
    {
        "name": "research-analysis",
        "when": 'team == "research" && task_type == "analysis"',
        "prefer": {"d05": 0.2},
    },
    {"name": "near-budget", "when": "budget_used > 0.9", "exclude": ["d00", "d01"]},
    {
        "name": "hard-steps",
        "when": 'difficulty == "high" && step != "reply"',
        "prefer": {"d02": 0.1},
    },
]


def latency_registry(seed: int = 7) -> ModelRegistry:
    rng = random.Random(seed)
    models: dict[str, Any] = {}
    for i in range(20):
        price_in = round(rng.uniform(0.1, 15.0), 2)
        models[f"d{i:02d}"] = {
            "provider": "p",
            "model": f"model-{i}",
            "input_price_per_mtok": price_in,
            "output_price_per_mtok": round(price_in * 4, 2),
            "context_window": rng.choice([32_000, 128_000, 200_000, 1_000_000]),
            "capabilities": ["tools", "json"] + (["vision"] if i % 3 == 0 else []),
            "region": REGIONS[i % 3],
            "data_classes": ["public", "internal"] + (["pii"] if i % 2 == 0 else []),
            "quality": {t: round(rng.uniform(0.4, 0.95), 2) for t in TASKS},
            "latency_ms": rng.uniform(200, 4000),
        }
    models["d19"]["data_classes"] = ["public", "internal", "pii", "confidential"]
    return ModelRegistry.model_validate(
        {
            "providers": {"p": {"base_url": "http://127.0.0.1:9/v1"}},
            "models": models,
            "aliases": {
                "frontier": {"deployments": ["d19", "d02", "d05"]},
                "general": {"deployments": [f"d{i:02d}" for i in range(20)]},
            },
            "default_model": "general",
            "routing": {"default_policy": "bench", "policies": {"bench": {"rules": RULES}}},
        }
    )


@dataclass
class Session:
    tenant: str
    team: str
    tags: list[str]
    headers: dict[str, str]
    tokens: int = 0
    pin: str | None = None
    step: int = 0


def request_stream(count: int, sessions: int, seed: int) -> list[tuple[int, RouteRequest]]:
    """(session index, request) pairs: sessions interleaved, each growing its tokens."""
    rng = random.Random(seed)
    people = [
        Session(
            tenant=rng.choice(TENANTS),
            team=rng.choice(TEAMS),
            tags=["vip"] if rng.random() < 0.1 else [],
            headers={"x-beta": "1" if rng.random() < 0.2 else "0"},
        )
        for _ in range(sessions)
    ]
    out: list[tuple[int, RouteRequest]] = []
    for _ in range(count):
        index = rng.randrange(sessions)
        s = people[index]
        s.step += 1
        s.tokens += rng.randint(500, 4000)
        out.append(
            (
                index,
                RouteRequest(
                    session_id=f"s{index}",
                    tenant=s.tenant,
                    team=s.team,
                    name="general",
                    step_id=f"step{s.step % 6}",
                    task_type=rng.choice(TASKS),
                    tags=s.tags,
                    data_class=rng.choice(["internal", "internal", "pii"]),
                    difficulty=rng.choice(list(Difficulty)),
                    needs=["tools"],
                    tokens_so_far=s.tokens,
                    headers=s.headers,
                    boundary="step_change",
                ),
            )
        )
    return out


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def time_ours(stream: list[tuple[int, RouteRequest]]) -> dict[str, float]:
    registry = latency_registry()
    metrics = LiveMetrics()
    router = Router(registry, metrics)
    rng = random.Random(1)
    pins: dict[int, str] = {}
    samples: list[float] = []
    hits: list[float] = []
    misses: list[float] = []
    for index, request in stream:
        request.current = pins.get(index)
        started = time.perf_counter_ns()
        decision = router.decide(request, budget_used=0.5)
        took = (time.perf_counter_ns() - started) / 1000
        samples.append(took)
        (hits if decision.cached else misses).append(took)
        pins[index] = decision.deployment
        # Live metrics move as calls complete: one latency per decision, around the
        # deployment's typical latency.
        typical = registry.models[decision.deployment].latency_ms
        metrics.record_success(decision.deployment, typical * rng.uniform(0.8, 1.2))
    return {
        "p50_us": percentile(samples, 0.5),
        "p99_us": percentile(samples, 0.99),
        "mean_us": statistics.fmean(samples),
        "cache_hit_share": len(hits) / len(samples),
        "hit_p50_us": percentile(hits, 0.5) if hits else 0.0,
        "miss_p50_us": percentile(misses, 0.5) if misses else 0.0,
        "miss_p99_us": percentile(misses, 0.99) if misses else 0.0,
        "requests": len(samples),
    }


async def time_litellm(count: int, strategy: str) -> dict[str, float]:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import logging
    import warnings

    from litellm import Router as LiteRouter  # type: ignore[import-not-found]

    logging.getLogger("LiteLLM").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=DeprecationWarning)

    registry = latency_registry()
    model_list = [
        {
            "model_name": "bench",
            "litellm_params": {
                "model": f"openai/{d.model}",
                "api_base": "http://127.0.0.1:9/v1",
                "api_key": "x",
                "input_cost_per_token": d.input_price_per_mtok / 1e6,
                "output_cost_per_token": d.output_price_per_mtok / 1e6,
            },
            "model_info": {"id": name},
        }
        for name, d in registry.models.items()
    ]
    router = LiteRouter(model_list=model_list, routing_strategy=strategy)
    messages = [{"role": "user", "content": "hello"}]
    for _ in range(200):
        await router.async_get_available_deployment(
            model="bench", request_kwargs={}, messages=messages
        )
    samples: list[float] = []
    for _ in range(count):
        started = time.perf_counter_ns()
        await router.async_get_available_deployment(
            model="bench", request_kwargs={}, messages=messages
        )
        samples.append((time.perf_counter_ns() - started) / 1000)
    return {
        "p50_us": percentile(samples, 0.5),
        "p99_us": percentile(samples, 0.99),
        "mean_us": statistics.fmean(samples),
        "requests": len(samples),
    }


# ---- (b) policy matrix ----------------------------------------------------------------

MATRIX_DEPLOYMENTS: dict[str, dict[str, Any]] = {
    # Prompt-cache prices as the provider families bill them: Anthropic-style deployments
    # read cached prompt tokens at 0.1x the input price and write them at 1.25x; the
    # OpenAI-style ones read them at 0.5x and charge nothing extra to write.
    "frontier": {
        "in": 15.0,
        "out": 75.0,
        "cached": 1.5,
        "write": 18.75,
        "ms": 2500,
        "q": {"hard": 0.95, "mid": 0.92, "easy": 0.9},
    },
    "strong": {
        "in": 3.0,
        "out": 15.0,
        "cached": 0.3,
        "write": 3.75,
        "ms": 1500,
        "q": {"hard": 0.85, "mid": 0.88, "easy": 0.88},
    },
    "strong-alt": {
        "in": 3.2,
        "out": 16.0,
        "cached": 1.6,
        "ms": 1400,
        "q": {"hard": 0.84, "mid": 0.88, "easy": 0.88},
    },
    "mid": {
        "in": 0.8,
        "out": 3.2,
        "cached": 0.08,
        "write": 1.0,
        "ms": 800,
        "q": {"hard": 0.6, "mid": 0.8, "easy": 0.85},
    },
    "cheap": {
        "in": 0.15,
        "out": 0.6,
        "cached": 0.075,
        "ms": 500,
        "q": {"hard": 0.4, "mid": 0.6, "easy": 0.8},
    },
}

SESSION_PREFIX = 1200
"""Tokens at the head of every prompt of a session (system prompt and tool definitions),
of a step's first prompt of 2000; the step's instructions and handover follow them."""

MIN_CACHED = 1024
"""Shortest prefix a provider caches (OpenAI's, and Anthropic's for its larger models)."""


@dataclass(frozen=True)
class CostModel:
    """How the matrix bills its calls, and what the session-aware router is told."""

    cache: bool = True
    """Bill prompt-cache reads and writes at the declared prices; False: every prompt token
    at the input price (no cache prices declared: the matrix before prompt caching)."""
    warm: bool = True
    """Tell the router how much of the step's first prompt its pin holds warm."""
    calls: bool = True
    """Tell the router how many calls a decision at a safe boundary binds (the mean number of
    calls per step seen so far in the run)."""
    prefix: int = SESSION_PREFIX
    session: bool = True
    """Tell the router the steps the session is expected to have left (the mean steps per
    session seen so far in the run, less the steps it has had) and its prefix, so the cost
    of a decision is priced per step over them (`orchestrator.routing.scoring.session_cost`)."""
    horizon: bool = False
    """Tell the router the session's horizon (`orchestrator.routing.horizon`): the steps it is
    expected to have left (the mean steps per session seen so far in the run, less the steps
    it has had) and the odds of its later steps (the shares of task type and difficulty among
    its steps so far, with the run's shares as a prior worth `PRIOR_STEPS` steps)."""
    horizon_cap: float | None = None
    """With `horizon`: weigh at most this many steps (2: this step and the next only)."""


PRIOR_STEPS = 1.0
"""Weight of the run's shares in a session's odds of its later steps, in steps: one step's
worth, so a session's own first step already counts as much as everything seen before."""


VARIANTS: dict[str, CostModel] = {
    "list prices (before)": CostModel(cache=False, warm=False, calls=False, session=False),
    "cache billed, router told nothing": CostModel(warm=False, calls=False, session=False),
    "cache billed, router told warm prefix": CostModel(calls=False, session=False),
    "cache billed, router told calls": CostModel(warm=False, session=False),
    "cache billed, router told both": CostModel(session=False),
    "both, and the session's steps left (default)": CostModel(),
    "same, session prefix 0": CostModel(prefix=0),
    "same, session prefix 1800": CostModel(prefix=1800),
    "told both, session prefix 1800": CostModel(session=False, prefix=1800),
    "both, and the session's horizon": CostModel(horizon=True),
    "both, and the horizon, next step only": CostModel(horizon=True, horizon_cap=2.0),
}
"""The cost models `--variants` compares on the same workloads."""

MIXES: dict[str, dict[str, float]] = {
    # loop: chance a turn continues the step's tool loop; hard/easy: difficulty shares;
    # state: chance a step leaves provider state the next step would need; idle: chance
    # of a long pause before a step; drift: how much live latency wanders per turn.
    "balanced": {"loop": 0.5, "hard": 0.25, "easy": 0.35, "state": 0.1, "idle": 0.1, "drift": 0.1},
    "tool-heavy": {
        "loop": 0.8,
        "hard": 0.25,
        "easy": 0.35,
        "state": 0.1,
        "idle": 0.05,
        "drift": 0.1,
    },
    "frontier-heavy": {
        "loop": 0.5,
        "hard": 0.6,
        "easy": 0.1,
        "state": 0.1,
        "idle": 0.1,
        "drift": 0.1,
    },
    "idle-heavy": {
        "loop": 0.4,
        "hard": 0.25,
        "easy": 0.35,
        "state": 0.1,
        "idle": 0.6,
        "drift": 0.1,
    },
    "provider-state-heavy": {
        "loop": 0.5,
        "hard": 0.25,
        "easy": 0.35,
        "state": 0.6,
        "idle": 0.1,
        "drift": 0.1,
    },
    "drift": {"loop": 0.5, "hard": 0.25, "easy": 0.35, "state": 0.1, "idle": 0.1, "drift": 0.6},
}


def matrix_registry(cache: bool = True) -> ModelRegistry:
    models = {
        name: {
            "provider": "p",
            "model": name,
            "input_price_per_mtok": d["in"],
            "output_price_per_mtok": d["out"],
            "cached_input_price_per_mtok": d["cached"] if cache else None,
            "cache_write_price_per_mtok": d.get("write") if cache else None,
            "quality": d["q"],
            "latency_ms": d["ms"],
        }
        for name, d in MATRIX_DEPLOYMENTS.items()
    }
    return ModelRegistry.model_validate(
        {
            "providers": {"p": {"base_url": "http://127.0.0.1:9/v1"}},
            "models": models,
            "default_model": "cheap",
            "routing": {
                "default_policy": "matrix",
                "policies": {
                    "matrix": {
                        "weights": {"quality": 1.0, "cost": 0.25, "latency": 0.15},
                        "stickiness": 0.08,
                    }
                },
            },
        }
    )


@dataclass
class Turn:
    step: int
    first_of_step: bool
    task: str
    difficulty: Difficulty
    state_held: bool
    """The session holds provider state from the previous step that cannot move."""
    idle_before: bool
    input_tokens: int
    output_tokens: int
    in_step: int = 0
    """Calls of the step's tool loop before this one."""


def prompt_tokens(in_step: int) -> int:
    """A step's prompt after `in_step` calls of its tool loop: each call's prompt is the one
    before it plus that call's answer and its tool results."""
    return 2000 + 800 * in_step


def warm_tokens(held: tuple[int, int] | None, turn: Turn, model: CostModel) -> int:
    """Tokens of `turn`'s prompt that a deployment's prompt cache holds, given the last prompt
    of this session it served ((step, call in step), None: none since the last idle pause).

    The same step's earlier prompt is a prefix of this one; another step's shares the session
    prefix. A provider caches nothing shorter than `MIN_CACHED`.
    """
    if held is None or not model.cache:
        return 0
    step, call = held
    shared = prompt_tokens(call) if step == turn.step and call < turn.in_step else model.prefix
    return min(shared, turn.input_tokens) if shared >= MIN_CACHED else 0


def make_sessions(mix: dict[str, float], seed: int, sessions: int, turns: int) -> list[list[Turn]]:
    rng = random.Random(seed)
    out: list[list[Turn]] = []

    def draw() -> Difficulty:
        roll = rng.random()
        if roll < mix["hard"]:
            return Difficulty.HIGH
        return Difficulty.LOW if roll < mix["hard"] + mix["easy"] else Difficulty.MEDIUM

    for _ in range(sessions):
        session: list[Turn] = []
        step = -1
        state = False
        # A session has a character (a coding session is mostly hard, a support session
        # mostly easy); each step keeps it unless it draws a new difficulty.
        base = draw()
        difficulty = base
        in_step = 0
        for t in range(turns):
            first = t == 0 or rng.random() >= mix["loop"]
            if first:
                step += 1
                in_step = 0
                difficulty = base if rng.random() < COHERENCE else draw()
                held = state
                state = rng.random() < mix["state"]
            else:
                held = False
                in_step += 1
            session.append(
                Turn(
                    step=step,
                    first_of_step=first,
                    task={"high": "hard", "medium": "mid", "low": "easy"}[difficulty.value],
                    difficulty=difficulty,
                    state_held=held if first else False,
                    idle_before=first and rng.random() < mix["idle"],
                    input_tokens=prompt_tokens(in_step),
                    output_tokens=300,
                    in_step=in_step,
                )
            )
        out.append(session)
    return out


@dataclass
class Tally:
    calls: int = 0
    switches: int = 0
    unsafe: int = 0
    cost: float = 0.0
    reuse: int = 0
    input_tokens: int = 0
    cached_tokens: int = 0
    quality: float = 0.0
    under_served: int = 0

    def summary(self) -> dict[str, float]:
        return {
            "calls": self.calls,
            "switches": self.switches,
            "unsafe_switches": self.unsafe,
            "cost_usd": round(self.cost, 4),
            "cache_reuse_share": round(self.reuse / self.calls, 4),
            "cached_input_share": round(self.cached_tokens / max(self.input_tokens, 1), 4),
            "quality": round(self.quality / self.calls, 4),
            "under_served_share": round(self.under_served / self.calls, 4),
        }


LEARN = os.environ.get("BENCH_ROUTER_LEARN", "0") == "1"
"""BENCH_ROUTER_LEARN=1: record each step's outcome and let the router learn from it."""

COHERENCE = 0.8
"""Chance that a step has its session's usual difficulty."""

FLOORS = {Difficulty.LOW: 0.0, Difficulty.MEDIUM: 0.5, Difficulty.HIGH: 0.8}


def run_policy(
    policy: str,
    sessions: list[list[Turn]],
    mix: dict[str, float],
    seed: int,
    model: CostModel = CostModel(),
) -> Tally:
    registry = matrix_registry(model.cache)
    metrics = LiveMetrics()
    router = Router(registry, metrics)
    rng = random.Random(seed * 31 + 7)
    drift = {name: 1.0 for name in registry.models}
    tally = Tally()
    outcomes: dict[str, dict[str, LearnedTally]] = {}
    # Calls per step seen so far (a runtime keeps this from its history): what a decision
    # at a safe boundary binds, on average. A per-turn decision binds one call.
    steps_seen, calls_seen = 0, 0
    # Steps per finished session, and the run's steps by (task type, difficulty): the
    # horizon a runtime can estimate from its history.
    steps_done = 0
    run_odds: dict[tuple[str, Difficulty], int] = {}
    for sessions_done, session in enumerate(sessions):
        own_odds: dict[tuple[str, Difficulty], int] = {}
        pin: str | None = None
        previous: str | None = None
        # Each deployment's provider prompt cache for this session: the last prompt it served.
        held: dict[str, tuple[int, int]] = {}
        for turn in session:
            if turn.idle_before:
                held.clear()
            for name in drift:
                drift[name] = max(0.3, drift[name] * (1 + rng.uniform(-mix["drift"], mix["drift"])))
            # A safe boundary: the first call of a step, and no provider state to carry.
            safe = turn.first_of_step and not turn.state_held
            ask = policy == "per-turn" or (policy == "ours" and safe) or pin is None
            if turn.first_of_step:
                steps_seen += 1
                kind = (turn.task, turn.difficulty)
                own_odds[kind] = own_odds.get(kind, 0) + 1
            calls_seen += 1
            if ask:
                # Per-turn is a stateless router: no pin, so nothing warm, and its decision
                # binds this one call.
                stateless = policy == "per-turn"
                horizon = model.horizon and policy == "ours" and sessions_done > 0
                steps_left = (
                    (model.horizon or model.session) and policy == "ours" and sessions_done > 0
                )
                request = RouteRequest(
                    task_type=turn.task,
                    difficulty=turn.difficulty,
                    current=None if stateless else pin,
                    boundary="step_change",
                    expected_input_tokens=turn.input_tokens,
                    expected_output_tokens=turn.output_tokens,
                    expected_calls=calls_seen / steps_seen
                    if model.calls and not stateless
                    else 1.0,
                    warm_input_tokens=warm_tokens(held.get(pin), turn, model)
                    if model.warm and pin is not None and not stateless
                    else 0,
                    horizon_steps=min(
                        max(1.0, steps_done / sessions_done - turn.step),
                        model.horizon_cap or float("inf"),
                    )
                    if steps_left
                    else 1.0,
                    later_steps=later_odds(own_odds, run_odds) if horizon else [],
                    session_prefix_tokens=model.prefix
                    if steps_left and (model.warm or not horizon)
                    else 0,
                )
                pin = router.decide(request).deployment
            assert pin is not None
            d = registry.models[pin]
            ms = MATRIX_DEPLOYMENTS[pin]["ms"] * drift[pin] * rng.uniform(0.8, 1.2)
            metrics.record_success(pin, ms)
            tally.calls += 1
            if previous is not None and pin != previous:
                tally.switches += 1
                if not turn.first_of_step or turn.state_held:
                    tally.unsafe += 1
            if pin == previous and not turn.idle_before:
                tally.reuse += 1
            # Billed as the provider reports it: the warm prefix read from the cache, the
            # rest written to it (at the input price where writing costs nothing extra).
            cached = warm_tokens(held.get(pin), turn, model)
            written = turn.input_tokens - cached if model.cache else 0
            tally.cost += d.cost(
                turn.input_tokens,
                turn.output_tokens,
                cached_input_tokens=cached,
                cache_write_tokens=written,
            )
            tally.input_tokens += turn.input_tokens
            tally.cached_tokens += cached
            held[pin] = (turn.step, turn.in_step)
            quality = d.quality_for(turn.task)
            if LEARN and turn.first_of_step:
                # The step's outcome (a seeded draw of the serving deployment's quality, as
                # the accept check records it), read by the next decision for this task.
                seen = outcomes.setdefault(turn.task, {})
                seen[pin] = seen.get(pin, LearnedTally()).add(float(rng.random() < quality))
                router.learned.put("default", turn.task, seen)
            tally.quality += quality
            tally.under_served += quality < FLOORS[turn.difficulty]
            previous = pin
        steps_done += session[-1].step + 1
        for kind, count in own_odds.items():
            run_odds[kind] = run_odds.get(kind, 0) + count
    return tally


def later_odds(
    own: dict[tuple[str, Difficulty], int], run: dict[tuple[str, Difficulty], int]
) -> list[StepOdds]:
    """Odds of a session's later steps: its own steps' shares, with the run's shares as a
    prior worth `PRIOR_STEPS` steps (a session keeps its character, so its own steps are
    the better evidence once it has had a few)."""
    total = sum(run.values())
    odds = {k: float(n) for k, n in own.items()}
    for k, n in run.items():
        odds[k] = odds.get(k, 0.0) + PRIOR_STEPS * n / total
    whole = sum(odds.values())
    return [
        StepOdds(task_type=task, difficulty=level, share=n / whole)
        for (task, level), n in sorted(odds.items())
    ]


def matrix(
    seeds: list[int], sessions: int, turns: int, model: CostModel = CostModel()
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for mix_name, mix in MIXES.items():
        per_policy: dict[str, Tally] = {p: Tally() for p in ("ours", "per-turn", "pin-first")}
        for seed in seeds:
            workload = make_sessions(mix, seed, sessions, turns)
            for policy, total in per_policy.items():
                t = run_policy(policy, workload, mix, seed, model)
                for key in asdict(t):
                    setattr(total, key, getattr(total, key) + getattr(t, key))
        results[mix_name] = {p: t.summary() for p, t in per_policy.items()}
    return results


# ---- (c) an oracle's bound ------------------------------------------------------------

ORACLE_MAX_SWITCHES = 4
"""Switches the oracle may make in one session. Its budget over the whole matrix is a tenth
of per-turn's switches (about one per twelve sessions), so a session's fifth switch would
never be worth its share; `oracle` reports how many sessions use the last one allowed."""


@dataclass
class OracleRow:
    """A session's best plan with exactly `switches` switches (or fewer)."""

    objective: float
    cost: float
    quality: float


def oracle_price(
    d: str,
    turn: Turn,
    warm: bool,
    registry: ModelRegistry,
    model: CostModel,
    price: dict[tuple[str, int, int], float],
) -> float:
    """What `turn` costs on `d` as the matrix bills it: a loop call reads the step's prompt
    before it (no switch happens inside a step); a step's first call reads the session's
    prefix if `d` has served the session since its last idle pause (`warm`)."""
    if not turn.first_of_step:
        held: tuple[int, int] | None = (turn.step, turn.in_step - 1)
    else:
        held = (turn.step - 1, 0) if warm else None
    cached = warm_tokens(held, turn, model)
    key = (d, turn.in_step, cached)
    found = price.get(key)
    if found is None:
        written = turn.input_tokens - cached if model.cache else 0
        found = price[key] = registry.models[d].cost(
            turn.input_tokens,
            turn.output_tokens,
            cached_input_tokens=cached,
            cache_write_tokens=written,
        )
    return found


def oracle_session(
    session: list[Turn],
    registry: ModelRegistry,
    model: CostModel,
    mu: float,
    floors: bool,
    price: dict[tuple[str, int, int], float],
    most: int = ORACLE_MAX_SWITCHES,
) -> list[OracleRow | None]:
    """The cheapest plan for one session in hindsight, for each number of switches.

    A plan serves each turn on one deployment and switches only at safe boundaries (so 0
    unsafe), with `floors` never below a step's quality floor. The objective is cost minus
    `mu` times quality (summed over calls): a Lagrangian price on quality, which the caller
    raises until the plans' quality reaches per-turn's. Exact by dynamic programming over
    (serving deployment, deployments whose cache holds the session's prefix, switches).
    """
    names = list(registry.models)
    bit = {n: 1 << i for i, n in enumerate(names)}
    # (serving deployment, warm set, switches) -> (objective, cost, quality); "" before
    # the first call, which may go anywhere without a switch.
    states: dict[tuple[str, int, int], tuple[float, float, float]] = {("", 0, 0): (0, 0, 0)}
    for turn in session:
        quality = {d: registry.models[d].quality_for(turn.task) for d in names}
        allowed = [d for d in names if not floors or quality[d] >= FLOORS[turn.difficulty]]
        safe = turn.first_of_step and not turn.state_held
        fresh: dict[tuple[str, int, int], tuple[float, float, float]] = {}
        for (d, warm, k), (obj, cost, qual) in states.items():
            warm = 0 if turn.idle_before else warm
            for e in allowed if safe or not d else [d] if d in allowed else []:
                k2 = k + (bool(d) and e != d)
                if k2 > most:
                    continue
                c = oracle_price(e, turn, bool(warm & bit[e]), registry, model, price)
                key = (e, warm | bit[e], k2)
                value = (obj + c - mu * quality[e], cost + c, qual + quality[e])
                if key not in fresh or value[0] < fresh[key][0]:
                    fresh[key] = value
        states = fresh
    best: list[OracleRow | None] = [None] * (most + 1)
    for (_, _, k), (obj, cost, qual) in states.items():
        row = best[k]
        if row is None or obj < row.objective:
            best[k] = OracleRow(obj, cost, qual)
    # At most k switches: the best of 0..k.
    for k in range(1, len(best)):
        prev, row = best[k - 1], best[k]
        if prev is not None and (row is None or prev.objective <= row.objective):
            best[k] = prev
    return best


def allocate(rows: list[list[OracleRow | None]], budget: int) -> tuple[float, float, float, int]:
    """Spread `budget` switches over the sessions to minimise the summed objective (exact
    knapsack by dynamic programming); returns objective, cost, quality and switches used."""
    inf = (float("inf"), 0.0, 0.0, 0)
    table: list[tuple[float, float, float, int]] = [(0.0, 0.0, 0.0, 0)] + [inf] * budget
    for session in rows:
        nxt = [inf] * (budget + 1)
        for used, (obj, cost, qual, sw) in enumerate(table):
            if obj == float("inf"):
                continue
            for k, row in enumerate(session):
                if row is None or used + k > budget:
                    continue
                value = (obj + row.objective, cost + row.cost, qual + row.quality, sw + k)
                if value[0] < nxt[used + k][0]:
                    nxt[used + k] = value
        table = nxt
    return min(table)


def oracle(
    seeds: list[int],
    sessions: int,
    turns: int,
    floors: bool = True,
    most: int = ORACLE_MAX_SWITCHES,
) -> dict[str, Any]:
    """The cheapest an oracle that knows every session in advance can serve the matrix under
    the targets' constraints: 0 unsafe switches, at most a tenth of per-turn's switches,
    quality at least per-turn's (and, with `floors`, no call below its step's floor).

    Per-session plans are exact (`oracle_session`); the switch budget is spread exactly
    (`allocate`); the quality constraint is priced by a Lagrange multiplier `mu`, bisected
    to the least price whose plans reach per-turn's quality. The dual value at that price
    is a lower bound on any plan's cost, so the true optimum lies between the two figures.
    """
    model = CostModel()
    registry = matrix_registry(model.cache)
    workloads: list[list[Turn]] = []
    turn_cost = turn_quality = 0.0
    turn_switches = calls = 0
    for mix in MIXES.values():
        for seed in seeds:
            workload = make_sessions(mix, seed, sessions, turns)
            workloads.extend(workload)
            t = run_policy("per-turn", workload, mix, seed, model)
            turn_cost += t.cost
            turn_quality += t.quality
            turn_switches += t.switches
            calls += t.calls
    budget = turn_switches // 10
    price: dict[tuple[str, int, int], float] = {}

    def solve(mu: float) -> tuple[float, float, float, int, int]:
        rows = [oracle_session(s, registry, model, mu, floors, price, most) for s in workloads]
        obj, cost, qual, used = allocate(rows, budget)
        at_limit = sum(
            1
            for r in rows
            if len(r) > 1
            and r[-1] is not None
            and r[-2] is not None
            and r[-1].objective < r[-2].objective
        )
        return obj, cost, qual, used, at_limit

    lo, hi = 0.0, 0.0
    result = solve(0.0)
    if result[2] < turn_quality:
        hi = 0.001
        while (result := solve(hi))[2] < turn_quality:
            lo, hi = hi, hi * 2
        for _ in range(12):
            mid = (lo + hi) / 2
            trial = solve(mid)
            if trial[2] >= turn_quality:
                hi, result = mid, trial
            else:
                lo = mid
    obj, cost, qual, used, at_limit = result
    return {
        "per_turn": {
            "cost_usd": turn_cost,
            "switches": turn_switches,
            "quality": turn_quality / calls,
        },
        "switch_budget": budget,
        "most_per_session": most,
        "floors": floors,
        "mu": hi,
        "cost_usd": cost,
        "lower_bound_usd": obj + hi * turn_quality,
        "switches": used,
        "quality": qual / calls,
        "cost_change": cost / turn_cost - 1,
        "bound_change": (obj + hi * turn_quality) / turn_cost - 1,
        "sessions_gaining_from_last_switch": at_limit,
    }


# ---- report ---------------------------------------------------------------------------


def print_latency(ours: dict[str, float], lite: dict[str, dict[str, float]]) -> None:
    print(f"\n(a) decision latency, {int(ours['requests'])} requests")
    print(f"{'router':<34}{'p50 µs':>10}{'p99 µs':>10}{'p50 ratio':>12}")
    print(f"{'ours (20 deployments, 10 rules)':<34}{ours['p50_us']:>10.1f}{ours['p99_us']:>10.1f}")
    for name, r in lite.items():
        ratio = r["p50_us"] / ours["p50_us"]
        print(f"{'litellm ' + name:<34}{r['p50_us']:>10.1f}{r['p99_us']:>10.1f}{ratio:>11.1f}x")
    print(
        f"ours: cache hit share {ours['cache_hit_share']:.2f}; hit p50 {ours['hit_p50_us']:.1f} µs,"
        f" miss p50 {ours['miss_p50_us']:.1f} µs, miss p99 {ours['miss_p99_us']:.1f} µs"
    )


def versus(results: dict[str, Any]) -> dict[str, float]:
    """Ours against per-turn over all mixes: the matrix's targets."""
    ours = sum(r["ours"]["switches"] for r in results.values())
    per_turn = sum(r["per-turn"]["switches"] for r in results.values())
    cost_ours = sum(r["ours"]["cost_usd"] for r in results.values())
    cost_turn = sum(r["per-turn"]["cost_usd"] for r in results.values())
    return {
        "fewer_switches": 1 - ours / max(per_turn, 1),
        "unsafe": sum(r["ours"]["unsafe_switches"] for r in results.values()),
        "cost_change": cost_ours / cost_turn - 1,
        "quality_ours": statistics.fmean(r["ours"]["quality"] for r in results.values()),
        "quality_per_turn": statistics.fmean(r["per-turn"]["quality"] for r in results.values()),
    }


def versus_line(v: dict[str, float]) -> str:
    return (
        f"{v['fewer_switches']:.2%} fewer switches, {v['unsafe']:.0f} unsafe,"
        f" cost {v['cost_change']:+.1%}, quality {v['quality_ours']:.4f}"
        f" vs {v['quality_per_turn']:.4f}"
    )


def print_matrix(results: dict[str, Any]) -> None:
    print("\n(b) policy matrix (sums over seeds)")
    print(
        f"{'mix':<22}{'policy':<11}{'switch':>7}{'unsafe':>7}{'cost $':>9}"
        f"{'reuse':>7}{'cached':>7}{'qual':>7}{'under':>7}"
    )
    for mix, by_policy in results.items():
        for policy, r in by_policy.items():
            print(
                f"{mix:<22}{policy:<11}{r['switches']:>7}{r['unsafe_switches']:>7}"
                f"{r['cost_usd']:>9.3f}{r['cache_reuse_share']:>7.2f}"
                f"{r['cached_input_share']:>7.2f}{r['quality']:>7.3f}"
                f"{r['under_served_share']:>7.3f}"
            )
    print(f"\nours vs per-turn: {versus_line(versus(results))}")


def print_oracle(bound: dict[str, Any]) -> None:
    turn = bound["per_turn"]
    print(
        f"\noracle (hindsight; 0 unsafe, <= {bound['switch_budget']} switches,"
        f" quality >= per-turn's {turn['quality']:.4f}, floors {bound['floors']}):"
    )
    print(
        f"cost ${bound['cost_usd']:.2f} against per-turn's ${turn['cost_usd']:.2f}"
        f" ({bound['cost_change']:+.1%}; no plan under the constraints below"
        f" ${bound['lower_bound_usd']:.2f}, {bound['bound_change']:+.1%}),"
        f" {bound['switches']} switches (at most {bound['most_per_session']} a session),"
        f" quality {bound['quality']:.4f}; sessions whose last switch allowed would"
        f" still pay: {bound['sessions_gaining_from_last_switch']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--sessions", type=int, default=300)
    parser.add_argument("--skip-litellm", action="store_true")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument(
        "--variants",
        action="store_true",
        help="also run the matrix under each cost model of VARIANTS and compare",
    )
    parser.add_argument(
        "--oracle",
        action="store_true",
        help="also compute an oracle's cheapest plan under the targets' constraints (~2 min)",
    )
    args = parser.parse_args()

    stream = request_stream(args.requests, args.sessions, seed=3)
    ours = time_ours(stream)
    lite: dict[str, dict[str, float]] = {}
    if not args.skip_litellm:
        for strategy in ("simple-shuffle", "latency-based-routing", "cost-based-routing"):
            lite[strategy] = asyncio.run(time_litellm(args.requests, strategy))
    print_latency(ours, lite)

    seeds = list(range(args.seeds))
    results = matrix(seeds, sessions=40, turns=18)
    print_matrix(results)
    variants: dict[str, dict[str, float]] = {}
    if args.variants:
        print("\ncost models, ours vs per-turn on the same workloads")
        for name, model in VARIANTS.items():
            variants[name] = versus(matrix(seeds, sessions=40, turns=18, model=model))
            print(f"{name:<46}{versus_line(variants[name])}")

    bound: dict[str, Any] = {}
    if args.oracle:
        # Up to ORACLE_MAX_SWITCHES per session; and none at all: one deployment per
        # session, chosen knowing the whole session.
        for most in (ORACLE_MAX_SWITCHES, 0):
            bound[f"at most {most} switches a session"] = found = oracle(
                seeds, sessions=40, turns=18, most=most
            )
            print_oracle(found)

    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "router.json"
    out.write_text(
        json.dumps(
            {
                "latency": {"ours": ours, "litellm": lite},
                "matrix": results,
                "variants": variants,
                "oracle": bound,
            },
            indent=1,
        )
    )
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
