"""The metric families, in one registry per process.

Label values come from a small, closed set (model and skill names from the project,
boundary kinds, outcomes, tenants), never from free text: a routing reason is reduced to
its leading phrase (`switch requested: ticket is urgent` counts as `switch requested`,
`demo-strong named by the step; score 0.91` as `demo-strong named by the step`).
"""

from __future__ import annotations

import re
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.process_collector import ProcessCollector

__all__ = ["LATENCY_BUCKETS", "METRICS", "Metrics", "reason_label"]

LATENCY_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
"""Seconds; model calls range from a loopback replay (ms) to long generations (minutes)."""

_APPROVAL_BUCKETS: Final = (1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 7 * 24 * 3600)
"""Seconds from request to decision: people answer in seconds to days."""

_SCORE_BUCKETS: Final = (0.0, 0.25, 0.5, 0.75, 1.0)
"""Feedback scores lie in 0..1."""

_REASON_MAX: Final = 48


def reason_label(reason: str) -> str:
    """A bounded label for a routing reason: its first clause (before `:` or `;`), shortened.

    Routing reasons go on with scores and figures after the first clause; those belong in
    the audit trail, not in a label.
    """
    head = re.split(r"[:;]", reason, maxsplit=1)[0].strip() or "unspecified"
    return head[:_REASON_MAX]


class Metrics:
    """Every family this runtime exports, registered on its own registry.

    One instance per process (`METRICS`); tests read values through `registry`.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        """Create the families on `registry` (a fresh one with process metrics if None)."""
        if registry is None:
            registry = CollectorRegistry()
            ProcessCollector(registry=registry)
        self.registry = registry
        self.routing_decisions = Counter(
            "orchestrator_routing_decisions",
            "Models chosen for a step, by model and reason.",
            ["model", "reason"],
            registry=registry,
        )
        self.model_switches = Counter(
            "orchestrator_model_switches",
            "Changes of the pinned model, by the boundary they happened at (forced included).",
            ["boundary"],
            registry=registry,
        )
        self.tool_calls = Counter(
            "orchestrator_tool_calls",
            "Skill calls by skill and outcome (ok, invalid_arguments, invalid_call, "
            "rejected, failed).",
            ["skill", "outcome"],
            registry=registry,
        )
        self.approvals_requested = Counter(
            "orchestrator_approval_requests",
            "Approval requests recorded, by kind (tool_call or step).",
            ["kind"],
            registry=registry,
        )
        self.approvals_decided = Counter(
            "orchestrator_approval_decisions",
            "Approval decisions recorded, by decision.",
            ["decision"],
            registry=registry,
        )
        self.approval_latency = Histogram(
            "orchestrator_approval_decision_seconds",
            "Time from an approval request to its decision.",
            buckets=_APPROVAL_BUCKETS,
            registry=registry,
        )
        self.approvals_pending = Gauge(
            "orchestrator_approvals_pending",
            "Approval requests waiting for a person, read from the store at scrape time.",
            registry=registry,
        )
        self.sessions = Gauge(
            "orchestrator_sessions",
            "Sessions in the store by status, read at scrape time.",
            ["status"],
            registry=registry,
        )
        self.tokens = Counter(
            "orchestrator_model_tokens",
            "Model tokens by tenant, model and direction (input or output).",
            ["tenant", "model", "direction"],
            registry=registry,
        )
        self.cost = Counter(
            "orchestrator_model_cost_usd",
            "Model spend in US dollars by tenant and model.",
            ["tenant", "model"],
            registry=registry,
        )
        self.provider_latency = Histogram(
            "orchestrator_provider_request_seconds",
            "Duration of one model provider request, by model, deployment and outcome.",
            ["model", "deployment", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.routing_outcomes = Counter(
            "orchestrator_routing_outcomes",
            "Outcome signals the router learns from, written once each, by tenant, deployment,"
            " task type and signal (accepted, escalated, schema_failure, tool_argument_error,"
            " approval_approved, approval_rejected, feedback).",
            ["tenant", "deployment", "task_type", "signal"],
            registry=registry,
        )
        self.routing_outcome_score = Counter(
            "orchestrator_routing_outcome_score",
            "Sum of the outcome scores (1 a success, 0 a failure, feedback between): divided by"
            " orchestrator_routing_outcomes_total, the observed success rate.",
            ["tenant", "deployment", "task_type", "signal"],
            registry=registry,
        )
        self.feedback_score = Histogram(
            "orchestrator_feedback_score",
            "Scores of explicit feedback (0 bad .. 1 good), one per credited step, by deployment.",
            ["deployment"],
            buckets=_SCORE_BUCKETS,
            registry=registry,
        )
        self.difficulty_estimates = Counter(
            "orchestrator_difficulty_estimates",
            "Difficulty estimates of steps that declared none, by source (heuristic,"
            " classifier) and result (ok, or why the classifier was not used: timeout, error,"
            " unparseable).",
            ["source", "result"],
            registry=registry,
        )
        self.classifier_cost = Counter(
            "orchestrator_difficulty_classifier_cost_usd",
            "What asking the classifier deployment cost, by tenant and classifier.",
            ["tenant", "classifier"],
            registry=registry,
        )

    def outcome(
        self, tenant: str, deployment: str, task_type: str, signal: str, score: float
    ) -> None:
        """Count one newly written outcome signal (a repeat that wrote nothing is not one)."""
        labels = (tenant, deployment, task_type, signal)
        self.routing_outcomes.labels(*labels).inc()
        self.routing_outcome_score.labels(*labels).inc(score)
        if signal == "feedback":
            self.feedback_score.labels(deployment).observe(score)


METRICS: Final = Metrics()
"""This process's metrics."""
