"""What the router is asked and what it answers; both cross the workflow boundary.

Pure pydantic shapes with no I/O, so the workflow can build a `RouteRequest` and record a
`RoutingDecision` (the decision itself is made in an activity: it reads live metrics).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from orchestrator.routing.complexity import DifficultyEstimate
from orchestrator.routing.horizon import StepOdds
from orchestrator.routing.policy import Difficulty

__all__ = ["Candidate", "RouteRequest", "RoutingDecision", "ScoreTerms"]


class RouteRequest(BaseModel):
    """One question to the router, asked at a safe boundary (or a forced failover)."""

    session_id: str = "-"
    tenant: str = "default"
    team: str = "default"
    policy: str | None = None
    """Policy name; empty means the models file's default policy."""
    name: str | None = None
    """A deployment or alias the step (or a switch request) names; empty: every deployment."""
    step_id: str = "-"
    task_type: str = "default"
    tags: list[str] = Field(default_factory=list)
    data_class: str = "internal"
    difficulty: Difficulty | None = Difficulty.MEDIUM
    """None: the step declares none, and the router estimates it from `prompt`, `tools`
    and `output_schema` (`orchestrator.routing.complexity`)."""
    prompt: str = ""
    """The step's goal and instructions; sent only when its difficulty is to be estimated."""
    tools: int = 0
    """How many skills the step offers the model."""
    output_schema: bool = False
    """Whether the step's answer must fit a JSON Schema."""
    needs: list[str] = Field(default_factory=list)
    """Capabilities the step needs (`tools` when it offers skills, `json`, `vision`)."""
    region: str | None = None
    tokens_so_far: int = 0
    expected_input_tokens: int = 2_000
    expected_output_tokens: int = 500
    expected_calls: float = Field(default=1.0, ge=1.0)
    """Calls the decision binds until the next safe boundary (the step's first call and its
    tool loop, on average); the cost term prices them all."""
    headers: dict[str, str] = Field(default_factory=dict)
    current: str | None = None
    """The deployment pinned so far in this session, if any."""
    warm_input_tokens: int = Field(default=0, ge=0)
    """Tokens of the expected input that `current` holds in its provider prompt cache (the
    session's prefix, when its last call was recent): billed at its cached-input price on
    `current`, at full price on any other deployment. 0: none, or not known."""
    horizon_steps: float = Field(default=1.0, ge=1.0)
    """Steps the session is expected to have left, this one included (a plan's remaining
    steps, or the mean of past sessions'). Above 1 with `session_prefix_tokens`, the cost
    term is priced per step over them (`orchestrator.routing.scoring.session_cost`: the
    pin binds the session's prompt cache) and the stickiness rule decides; with
    `later_steps` too, the pin is weighed over them instead (`orchestrator.routing.horizon`).
    1: this step only."""
    later_steps: list[StepOdds] = Field(default_factory=list)
    """Odds of the session's later steps by task type and difficulty (the shares among its
    past steps, as the caller estimates them): how likely each candidate is to be forced
    off by a later step's quality floor. Empty: no later step is expected to force one."""
    session_prefix_tokens: int = Field(default=0, ge=0)
    """Tokens at the head of every prompt of the session (system prompt, tool definitions):
    with `horizon_steps` above 1, each candidate's later steps are priced with them read
    from its prompt cache, as they would be if it served them. 0: not known (the cost is
    this step's alone)."""
    boundary: str = "session_start"
    exclude: dict[str, str] = Field(default_factory=dict)
    """Deployments that failed in this step, with the cause; a failover must avoid them."""


class ScoreTerms(BaseModel):
    """The terms of an eligible candidate's score, each as added to it (costs negative).

    `total` is the score the router ranked by: the sum of the terms, rounded to 6 places.
    The inputs the terms came from are beside them, so a person can check the arithmetic
    against the policy's weights.
    """

    quality: float
    """+ weight x quality for the task type."""
    cost: float
    """- cost weight x expected cost / the dearest eligible candidate's (the weight is
    tripled once the tightest budget passes the policy's `downgrade_at`)."""
    latency: float
    """- weight x `scored_latency_ms` / the slowest eligible candidate's `latency_ms`."""
    errors: float
    """- weight x recent error rate."""
    rules: float
    """+ the `prefer` bonuses of the policy's rules that fired."""
    total: float
    quality_value: float
    cost_usd: float
    """Expected cost on this deployment of the calls the decision binds
    (`orchestrator.routing.scoring.expected_cost`), prompt-cache reads and writes included;
    per step over the session's steps left when the request gives them
    (`orchestrator.routing.scoring.session_cost`)."""
    latency_ms: float
    """Measured (live metrics) or declared latency."""
    scored_latency_ms: float | None = None
    """The latency the term read: `latency_ms` at the low end of its spread, never below the
    fastest eligible candidate's (`orchestrator.routing.scoring.optimistic_latencies`), so
    differences within how much latencies wander tie. None in records from before it."""
    latency_spread: float = 0.0
    """How much this deployment's latency wanders, in log units (0.1: about 10 %), as the
    live metrics scored it; 0 for a declared latency."""
    error_rate: float
    warm_tokens: int = 0
    """Prompt tokens this deployment holds in its cache for the session (the pinned one's)."""
    declared_quality: float | None = None
    """The models file's quality for the task type; `quality_value` is what was scored
    (the learned posterior mean plus any exploration bonus)."""
    observations: float = 0.0
    """Outcomes the learned quality rests on (for this deployment, task type and tenant)."""
    explore: float = 0.0
    """Exploration bonus included in `quality_value`."""


class Candidate(BaseModel):
    """One deployment the router considered, and why it won or lost."""

    deployment: str
    eligible: bool
    score: float | None = None
    terms: ScoreTerms | None = None
    """How `score` was made up; None for a candidate that was not eligible."""
    reason: str
    """For the winner, why it won; for the others, why each lost."""


class RoutingDecision(BaseModel):
    """The router's answer: the deployment, the policy, and every candidate with reasons."""

    deployment: str
    name: str | None = None
    policy: str
    reason: str
    candidates: list[Candidate] = Field(default_factory=list)
    rules_fired: list[str] = Field(default_factory=list)
    budget_used: float | None = None
    """Share of the tightest budget in use when the decision was made (0..1)."""
    failover: str = "restart_step"
    """The policy's recovery when this deployment dies inside a tool loop."""
    cached: bool = False
    difficulty_estimate: DifficultyEstimate | None = None
    """When the step declared no difficulty: the level the router estimated and the
    features that drove it (replays read this record, never estimate again)."""
