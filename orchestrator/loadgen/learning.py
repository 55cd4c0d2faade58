"""A synthetic workload where one declared quality is wrong, for the learning router.

Shared by `bench/learning.py` (the figures) and `tests/routing/test_learning_workload.py`
(a small run). Sessions of three task types arrive in turn; each is routed once, at its
start, by the real `Router`. The chosen deployment answers well with its *true* quality for
the task type (a seeded Bernoulli draw); a bad answer fails the step's `accept` check and
the cascade re-runs it on `large`, so a model that looks good on paper but is not costs an
escalation. The outcome (accepted or escalated) is added to the tallies, exactly as the
`check_answer` activity records it, and the next decision reads them.

Compared, on the same sessions:
- `static`: the declared qualities, learning off (what the router did before);
- `learning`: the declared qualities as priors, learning on, exploration off (the default);
- `oracle`: the same router and policy given the true qualities, learning off.

Quality per dollar is the expected final quality of a session (after any escalation)
over its expected cost, summed over sessions; the figure of merit is the share of the
oracle's. Every decision is also checked against the workload's hard constraint (the
`extract` task carries PII, which `small-us` may not receive).

Test and benchmark machinery (see `orchestrator.loadgen`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from orchestrator.providers.registry import ModelRegistry
from orchestrator.routing import Router, RouteRequest
from orchestrator.routing.learning import Tally

__all__ = [
    "TASKS",
    "TRUE_QUALITY",
    "LearningRun",
    "registry",
    "run_learning",
    "sessions_to_reach",
    "settled_at",
    "summary",
]

TASKS = ("chat", "code", "extract")
DECLARED: dict[str, dict[str, float]] = {
    "small": {"chat": 0.8, "code": 0.85, "extract": 0.75},
    "small-us": {"chat": 0.78, "code": 0.6, "extract": 0.8},
    "mid": {"chat": 0.85, "code": 0.8, "extract": 0.85},
    "large": {"chat": 0.95, "code": 0.95, "extract": 0.95},
}
"""What the models file says. `small` claims 0.85 on code; it is really 0.45."""
TRUE_QUALITY: dict[str, dict[str, float]] = {
    **DECLARED,
    "small": {"chat": 0.8, "code": 0.45, "extract": 0.75},
}
PRICES = {"small": (0.15, 0.6), "small-us": (0.1, 0.4), "mid": (1.0, 4.0), "large": (3.0, 15.0)}
"""Input and output price per million tokens."""
ESCALATE_TO = "large"
INPUT_TOKENS, OUTPUT_TOKENS = 4_000, 800


def registry(qualities: dict[str, dict[str, float]], learning: dict[str, Any]) -> ModelRegistry:
    """The workload's models file with the given quality table and learning settings."""
    models = {
        name: {
            "provider": "p",
            "model": f"m-{name}",
            "input_price_per_mtok": PRICES[name][0],
            "output_price_per_mtok": PRICES[name][1],
            "quality": qualities[name],
            "data_classes": ["public", "internal"]
            if name == "small-us"
            else ["public", "internal", "pii"],
        }
        for name in DECLARED
    }
    return ModelRegistry.model_validate(
        {
            "providers": {"p": {"base_url": "http://127.0.0.1:9/v1"}},
            "models": models,
            "default_model": "mid",
            "routing": {
                "default_policy": "p",
                "policies": {"p": {"learning": learning}},
            },
        }
    )


@dataclass
class LearningRun:
    """One router's sessions: per session, its task, deployment, quality and cost."""

    tasks: list[str] = field(default_factory=list)
    chosen: list[str] = field(default_factory=list)
    quality: list[float] = field(default_factory=list)
    cost: list[float] = field(default_factory=list)
    violations: int = 0
    """Decisions that broke the hard constraint (PII to `small-us`)."""

    def per_dollar(self, start: int = 0, stop: int | None = None) -> float:
        """Quality per dollar over sessions [start, stop)."""
        q, c = self.quality[start:stop], self.cost[start:stop]
        return sum(q) / sum(c)


def _expected(name: str, task: str, cost: dict[str, float]) -> tuple[float, float]:
    """Expected final quality and cost of a session served by `name` with the cascade."""
    q = TRUE_QUALITY[name][task]
    if name == ESCALATE_TO:
        return q, cost[name]
    big = TRUE_QUALITY[ESCALATE_TO][task]
    return q + (1 - q) * big, cost[name] + (1 - q) * cost[ESCALATE_TO]


def run_learning(
    kind: str, sessions: int, seed: int, learning: dict[str, Any] | None = None
) -> LearningRun:
    """Route `sessions` sessions with `kind` in (`static`, `learning`, `oracle`)."""
    if kind == "oracle":
        reg = registry(TRUE_QUALITY, {"enabled": False})
    elif kind == "static":
        reg = registry(DECLARED, {"enabled": False})
    else:
        reg = registry(DECLARED, {"enabled": True, **(learning or {})})
    router = Router(reg)
    cost = {name: d.cost(INPUT_TOKENS, OUTPUT_TOKENS) for name, d in reg.models.items()}
    rng = random.Random(seed)
    tallies: dict[str, dict[str, Tally]] = {task: {} for task in TASKS}
    run = LearningRun()
    for i in range(sessions):
        task = TASKS[i % len(TASKS)]
        pii = task == "extract"
        router.learned.put("t", task, tallies[task])
        decision = router.decide(
            RouteRequest(
                tenant="t",
                task_type=task,
                data_class="pii" if pii else "internal",
                expected_input_tokens=INPUT_TOKENS,
                expected_output_tokens=OUTPUT_TOKENS,
            )
        )
        name = decision.deployment
        if pii and name == "small-us":
            run.violations += 1
        quality, spent = _expected(name, task, cost)
        run.tasks.append(task)
        run.chosen.append(name)
        run.quality.append(quality)
        run.cost.append(spent)
        # The `accept` check's outcome, as the activity records it.
        ok = rng.random() < TRUE_QUALITY[name][task]
        before = tallies[task].get(name, Tally())
        tallies[task] = {**tallies[task], name: before.add(1.0 if ok else 0.0)}
    return run


def sessions_to_reach(
    runs: list[LearningRun], oracle: list[LearningRun], share: float = 0.95, window: int = 30
) -> int | None:
    """The first session from which every later window reaches `share` of the oracle.

    Each window of `window` sessions is pooled over the seeds and compared with the
    oracle's quality per dollar on the same sessions; None: never.
    """
    total = len(runs[0].quality)
    reached: int | None = None
    for start in range(0, total - window + 1):
        stop = start + window
        ours = sum(sum(r.quality[start:stop]) for r in runs) / sum(
            sum(r.cost[start:stop]) for r in runs
        )
        best = sum(sum(r.quality[start:stop]) for r in oracle) / sum(
            sum(r.cost[start:stop]) for r in oracle
        )
        if ours >= share * best:
            if reached is None:
                reached = start
        else:
            reached = None
    return reached


def _pooled(runs: list[LearningRun], start: int = 0, stop: int | None = None) -> float:
    return sum(sum(r.quality[start:stop]) for r in runs) / sum(
        sum(r.cost[start:stop]) for r in runs
    )


def settled_at(run: LearningRun, oracle: LearningRun) -> int:
    """The session from which `run` always chooses what the oracle chooses (len: never)."""
    last = max(
        (i for i, (a, b) in enumerate(zip(run.chosen, oracle.chosen, strict=True)) if a != b),
        default=-1,
    )
    return last + 1


def summary(seeds: list[int], sessions: int, window: int = 30) -> dict[str, Any]:
    """The workload's figures over `seeds`.

    Quality per dollar of each router (and as a share of the oracle's), the session from
    which the learning router reaches 95% of the oracle, and hard constraint violations.
    """
    runs = {kind: [run_learning(kind, sessions, s) for s in seeds] for kind in _KINDS}
    oracle = _pooled(runs["oracle"])
    tail = sessions // 2
    settled = sorted(
        settled_at(r, o) for r, o in zip(runs["learning"], runs["oracle"], strict=True)
    )
    return {
        "seeds": len(seeds),
        "sessions": sessions,
        "window": window,
        "per_dollar": {kind: round(_pooled(r), 3) for kind, r in runs.items()},
        "share_of_oracle": {kind: round(_pooled(r) / oracle, 4) for kind, r in runs.items()},
        "share_of_oracle_second_half": {
            kind: round(_pooled(r, tail) / _pooled(runs["oracle"], tail), 4)
            for kind, r in runs.items()
        },
        "reaches_95_from_session": {
            kind: sessions_to_reach(r, runs["oracle"], window=window)
            for kind, r in runs.items()
            if kind != "oracle"
        },
        "same_choice_as_oracle_from_session": {
            "median": settled[len(settled) // 2],
            "never_in_seeds": sum(1 for n in settled if n >= sessions),
        },
        "violations": {kind: sum(r.violations for r in rs) for kind, rs in runs.items()},
    }


_KINDS = ("static", "learning", "oracle")
