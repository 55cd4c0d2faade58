"""The policy router: which deployment serves a session's step, and why.

`Router.decide` applies hard constraints, CEL rules and a weighted score to the models
file's deployments and returns a `RoutingDecision` naming every candidate and why it lost.
`LiveMetrics` feeds it latency, errors and cooldowns from every model call. The workflow
asks only at safe boundaries, through an activity, and pins the answer for the step.
"""

from orchestrator.routing.metrics import DeploymentStats, LiveMetrics
from orchestrator.routing.policy import Budget, Difficulty, Policy, RoutingConfig, Rule, Weights
from orchestrator.routing.router import REQUEST_VARIABLES, Router
from orchestrator.routing.types import Candidate, RouteRequest, RoutingDecision

__all__ = [
    "REQUEST_VARIABLES",
    "Budget",
    "Candidate",
    "DeploymentStats",
    "Difficulty",
    "LiveMetrics",
    "Policy",
    "RouteRequest",
    "Router",
    "RoutingConfig",
    "RoutingDecision",
    "Rule",
    "Weights",
]
