"""What the router learns from outcomes: a Beta posterior of quality per deployment.

The models file declares each deployment's quality per task type; nothing checks it. Every
outcome signal the runtime records (a cascade `accept` that passed or failed, an output that
broke its schema, a tool call with bad arguments, a rejected approval, a person's feedback)
is a Bernoulli trial of "the deployment did this task well", kept per (deployment, task type,
tenant) in the audit store. The learned quality is the mean of a Beta posterior whose prior
is the declared quality, worth `prior_strength` observations:

    alpha = declared * strength + successes,  beta = (1 - declared) * strength + failures

With no outcomes the learned value *is* the declared one, so turning learning on changes no
decision until evidence arrives; and while the observed success rate stays within
`evidence` standard errors of the declaration, the declaration stands (so noise never moves
the router off a correctly declared model, which would then get no outcomes to return on).
Exploration is off by default: a deployment whose declared
quality is too high is corrected by exploitation alone (the router keeps choosing it, it
keeps failing, its estimate falls); one whose declared quality is too low is only tried when
the policy sets `explore > 0`, which adds an optimistic bonus of `explore` posterior standard
deviations, never more than `explore_cap` (UCB, deterministic, so a decision can be cached
and explained). Learning only moves the score and the quality floor: hard constraints
(failover exclusions, capabilities, context, region, data class, rules) are applied first
and never read it.

Everything here is pure; the store keeps the tallies and the route activity reads them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Estimate",
    "LearnedQuality",
    "Learning",
    "Signal",
    "Tally",
    "estimate",
    "signal_score",
]


class Signal(StrEnum):
    """Kinds of outcome the runtime records against the deployment that produced them."""

    ACCEPTED = "accepted"
    """A cascade step's answer passed its `accept` check."""
    ESCALATED = "escalated"
    """A cascade step's answer failed its `accept` check: the step escalated."""
    SCHEMA_FAILURE = "schema_failure"
    """The model's answer broke the step's output schema."""
    TOOL_ARGUMENT_ERROR = "tool_argument_error"
    """The model called a tool with arguments its contract refuses, or an unknown tool."""
    APPROVAL_REJECTED = "approval_rejected"
    """A person rejected a tool call the model proposed."""
    APPROVAL_APPROVED = "approval_approved"
    """A person approved a tool call the model proposed."""
    FEEDBACK = "feedback"
    """Explicit feedback on a session (`POST /api/sessions/{id}/feedback`), a score 0..1."""


_FIXED = {
    Signal.ACCEPTED: 1.0,
    Signal.ESCALATED: 0.0,
    Signal.SCHEMA_FAILURE: 0.0,
    Signal.TOOL_ARGUMENT_ERROR: 0.0,
    Signal.APPROVAL_REJECTED: 0.0,
    Signal.APPROVAL_APPROVED: 1.0,
}


def signal_score(signal: Signal, score: float | None = None) -> float:
    """How much of a success (0..1) one signal is; feedback carries its own score.

    Raises:
        ValueError: feedback without a score in 0..1, or a score given to another signal.
    """
    if signal is Signal.FEEDBACK:
        if score is None or not 0.0 <= score <= 1.0:
            raise ValueError(f"feedback needs a score between 0 and 1, got {score!r}")
        return score
    if score is not None:
        raise ValueError(f"signal {signal.value} takes no score (it is {_FIXED[signal]})")
    return _FIXED[signal]


class Learning(BaseModel):
    """How a policy learns quality from outcomes (`learning:` in a policy)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    """Score on learned quality; off, the router reads only the declared values."""
    prior_strength: float = Field(default=10.0, gt=0)
    """How many observations the declared quality is worth."""
    explore: float = Field(default=0.0, ge=0)
    """Optimism in posterior standard deviations (UCB); 0 switches exploration off."""
    explore_cap: float = Field(default=0.1, ge=0, le=1)
    """The most exploration may add to a deployment's quality."""
    evidence: float = Field(default=3.0, ge=0)
    """How many standard errors the observed success rate must stand from the declared
    quality before the declaration is set aside (a z test); 0 always uses the posterior.
    Below it the data agree with the declaration within noise, and the router keeps
    scoring on it: an unlucky run of a correctly declared model does not move the router
    away from it (it would then see no more outcomes of it to come back)."""


@dataclass(frozen=True)
class Tally:
    """Outcomes of one deployment on one task type for one tenant: successes and failures."""

    successes: float = 0.0
    failures: float = 0.0

    @property
    def n(self) -> float:
        """Observations so far."""
        return self.successes + self.failures

    def add(self, score: float) -> Tally:
        """This tally after one outcome of `score` (1 a success, 0 a failure)."""
        return Tally(self.successes + score, self.failures + 1.0 - score)


@dataclass(frozen=True)
class Estimate:
    """The quality a decision used for one candidate, beside what it was made from.

    A dataclass, not a model: one is built per candidate per ranking. The decision's record
    keeps its parts in `ScoreTerms` (`declared_quality`, `observations`, `explore`).
    """

    declared: float
    learned: float
    """The posterior mean."""
    observations: float
    explore: float = 0.0
    """Exploration bonus added to `learned` (0 when exploration is off)."""

    @property
    def value(self) -> float:
        """What the score uses: the learned mean plus exploration, at most 1."""
        return min(1.0, self.learned + self.explore)


def estimate(declared: float, tally: Tally, learning: Learning) -> Estimate:
    """The posterior quality of a deployment whose declared quality is `declared`."""
    declared = min(1.0, max(0.0, declared))
    if not learning.enabled:
        return Estimate(declared=declared, learned=declared, observations=0.0)
    k = learning.prior_strength
    if tally.n == 0 and learning.explore == 0:
        return Estimate(declared=declared, learned=declared, observations=0.0)
    a = declared * k + tally.successes
    b = (1.0 - declared) * k + tally.failures
    if learning.evidence > 0 and tally.n > 0 and _agrees(declared, tally, learning.evidence):
        # The outcomes agree with the declaration within noise: it stands.
        return Estimate(
            declared=declared,
            learned=declared,
            observations=round(tally.n, 6),
            explore=_bonus(a, b, learning),
        )
    total = a + b
    mean = a / total
    bonus = _bonus(a, b, learning)
    return Estimate(
        declared=declared,
        learned=round(mean, 6),
        observations=round(tally.n, 6),
        explore=bonus,
    )


def _agrees(declared: float, tally: Tally, z: float) -> bool:
    """Whether the observed success rate is within `z` standard errors of `declared`."""
    rate = tally.successes / tally.n
    spread = math.sqrt(declared * (1.0 - declared) / tally.n)
    if spread == 0.0:
        return rate == declared
    return abs(rate - declared) < z * spread


def _bonus(a: float, b: float, learning: Learning) -> float:
    """The exploration bonus of a Beta(a, b) posterior: `explore` deviations, capped."""
    if learning.explore <= 0:
        return 0.0
    total = a + b
    std = math.sqrt(a * b / (total * total * (total + 1.0)))
    # Rounded down to the 6 places a record keeps, so rounding never lifts it past the cap.
    return math.floor(min(learning.explore_cap, learning.explore * std) * 1e6) / 1e6


class LearnedQuality:
    """The tallies the router scores on, per (tenant, task type, deployment), in memory.

    The route activity loads a tenant's tallies for the task type from the store just before
    a decision; `key` changes whenever they change, so a cached ranking is never reused
    with stale estimates.
    """

    def __init__(self) -> None:
        self._tallies: dict[tuple[str, str], dict[str, Tally]] = {}
        self._versions: dict[tuple[str, str], int] = {}

    def put(self, tenant: str, task_type: str, tallies: dict[str, Tally]) -> None:
        """Replace the tallies of a tenant and task type (what the store holds now)."""
        where = (tenant, task_type)
        if self._tallies.get(where, {}) == tallies:
            return
        self._tallies[where] = dict(tallies)
        self._versions[where] = self._versions.get(where, 0) + 1

    def tally(self, tenant: str, task_type: str, deployment: str) -> Tally:
        """The outcomes known for one deployment (none: an empty tally)."""
        return self._tallies.get((tenant, task_type), {}).get(deployment, _EMPTY)

    def key(self, tenant: str, task_type: str) -> tuple[str, int] | None:
        """What a cached ranking must match; None while nothing is learned for them."""
        version = self._versions.get((tenant, task_type))
        if version is None or not self._tallies[(tenant, task_type)]:
            return None
        return tenant, version


_EMPTY = Tally()
