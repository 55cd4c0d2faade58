"""Routing policies and budgets as written in the models file.

A policy is data: weights of the score, how sticky a pin is, when to downgrade near a
budget, and rules. A rule is a CEL expression over the request (`tenant`, `team`,
`task_type`, `tokens_so_far`, `headers`, `tags`, `data_class`, `difficulty`, `step`,
`budget_used`) plus what it does when it holds: exclude deployments, allow only some,
require a region, or add a bonus to some. Expressions are compiled by `Router`, once.

```yaml
routing:
  default_policy: balanced
  policies:
    balanced:
      weights: {quality: 0.6, cost: 0.3, latency: 0.1}
      keep_for_session: false
      downgrade_at: 0.8
      rules:
        - name: eu-data-stays-in-eu
          when: 'tenant.endsWith("-eu")'
          require_region: eu
budgets:
  - {tenant: acme, team: "*", period: month, limit_usd: 50, session_reserve_usd: 0.5}
```
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from orchestrator.routing.learning import Learning

__all__ = [
    "Budget",
    "Complexity",
    "Difficulty",
    "Policy",
    "RoutingConfig",
    "Rule",
    "Weights",
]


class Difficulty(StrEnum):
    """How hard a plan step says it is; a hard step raises the quality floor before it runs."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Weights(BaseModel):
    """Relative weight of each term of a candidate's score; they need not sum to 1."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    quality: float = Field(default=0.6, ge=0)
    cost: float = Field(default=0.3, ge=0)
    latency: float = Field(default=0.1, ge=0)
    errors: float = Field(default=0.5, ge=0)
    """Penalty per unit of recent error rate."""


class Rule(BaseModel):
    """A CEL condition over the request and what it does to the candidates when it holds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    when: str = Field(min_length=1)
    """A CEL expression that must evaluate to a bool."""
    exclude: list[str] = Field(default_factory=list)
    """Deployments or aliases that may not serve the request."""
    only: list[str] = Field(default_factory=list)
    """When not empty, only these deployments or aliases may serve it."""
    require_region: str | None = None
    prefer: dict[str, float] = Field(default_factory=dict)
    """Score bonus per deployment or alias."""

    @model_validator(mode="after")
    def _does_something(self) -> Rule:
        if not (self.exclude or self.only or self.require_region or self.prefer):
            raise ValueError(
                f"rule {self.name!r} does nothing: give exclude, only, require_region or prefer"
            )
        return self


class Policy(BaseModel):
    """How one class of sessions is routed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weights: Weights = Field(default_factory=Weights)
    keep_for_session: bool = False
    """Keep the session's model across steps unless a step needs more quality than it has."""
    stickiness: float = Field(default=0.05, ge=0)
    """How far below the best score the pinned deployment may be and still be kept at a
    boundary, so near-ties do not flap and provider prompt caches stay warm."""
    max_sticky_cost_ratio: float | None = Field(default=None, gt=0)
    """When set, the pin is kept only while it costs at most this many times the best
    deployment: after a hard step on an expensive model, the session comes back down."""
    downgrade_at: float = Field(default=0.8, gt=0, le=1)
    """Budget share used past which the cost weight is tripled, steering to cheaper models."""
    quality_floor: dict[Difficulty, float] = Field(
        default_factory=lambda: {Difficulty.LOW: 0.0, Difficulty.MEDIUM: 0.5, Difficulty.HIGH: 0.8}
    )
    """Least quality (0..1) a deployment needs for a step of each difficulty."""
    rules: list[Rule] = Field(default_factory=list)
    learning: Learning = Field(default_factory=Learning)
    """Quality learned from outcomes (see `orchestrator.routing.learning`): on by default,
    exploration off; with no outcomes recorded the learned quality equals the declared."""
    failover: Literal["restart_step", "carry_over"] = "restart_step"
    """When the pinned deployment dies inside a tool loop: `restart_step` rolls the step
    back to its start and re-runs it on the next deployment (tool results reused);
    `carry_over` hands the conversation so far to the next deployment mid-loop."""


class Complexity(BaseModel):
    """How a step that declares no difficulty is estimated (`routing.complexity`).

    Without a classifier, the local heuristic (`orchestrator.routing.complexity`) decides.
    With one, the route activity asks that deployment (a small model, through the registry
    like any call, its cost added to the session's budgets) and falls back to the heuristic
    when it is slow, fails or answers something that is not a level: a second opinion must
    never stop a step from being routed.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    classifier: str | None = None
    """A deployment or alias that answers `low`, `medium` or `high`; none: heuristic only."""
    timeout_seconds: float = Field(default=2.0, gt=0, le=20)
    """How long the route activity waits for the classifier before using the heuristic
    (well inside the routing activity's own 30 s)."""
    max_tokens: int = Field(default=8, ge=1, le=256)
    """Most tokens the classifier may answer with: one word is enough."""


class RoutingConfig(BaseModel):
    """The `routing:` section of the models file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_policy: str = "default"
    policies: dict[str, Policy] = Field(default_factory=lambda: {"default": Policy()})
    complexity: Complexity = Field(default_factory=Complexity)
    """How steps without a declared difficulty are estimated (heuristic, or a classifier)."""

    @model_validator(mode="after")
    def _default_exists(self) -> RoutingConfig:
        if self.default_policy not in self.policies:
            raise ValueError(
                f"default_policy: unknown policy {self.default_policy!r}"
                f" (known: {', '.join(sorted(self.policies))})"
            )
        return self


class Budget(BaseModel):
    """A spending limit for a tenant (and optionally one team) per period."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant: str
    team: str = "*"
    """A team name, or `*` for the whole tenant."""
    period: Literal["day", "month", "total"] = "month"
    limit_usd: float | None = Field(default=None, ge=0)
    limit_tokens: int | None = Field(default=None, ge=0)
    session_reserve_usd: float = Field(default=0.0, ge=0)
    """Held for each new session when it starts, so concurrent sessions cannot overspend."""
    session_reserve_tokens: int = Field(default=0, ge=0)

    @property
    def scope(self) -> str:
        """`tenant/team`, the budget's name in messages and the store."""
        return f"{self.tenant}/{self.team}"
