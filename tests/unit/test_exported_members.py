"""The public surface is exactly what `__all__` says, so nothing leaks or vanishes silently."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = {
    "orchestrator": {
        "AgentStep",
        "ApprovalStep",
        "AuditEvent",
        "BudgetExceededError",
        "OrchestratorError",
        "OrchestratorPlugin",
        "Plan",
        "RiskLevel",
        "Runtime",
        "SessionFailed",
        "SessionHandle",
        "Settings",
        "Skill",
        "SkillContext",
        "SkillStep",
        "StartOptions",
        "Store",
        "StreamDelta",
        "__version__",
        "connect",
        "load_plan",
        "skill",
        "start",
    },
    "orchestrator.skills": {
        "Contract",
        "RiskLevel",
        "Skill",
        "SkillContext",
        "SkillRegistry",
        "SkillSpec",
        "bind",
        "skill",
    },
    "orchestrator.plans": {
        "AgentStep",
        "ApprovalStep",
        "BranchStep",
        "EnsembleStep",
        "LoopStep",
        "OnReject",
        "ParallelStep",
        "Plan",
        "PlanStep",
        "SkillStep",
        "SubPlanStep",
        "load_plan",
        "load_plans",
        "parse_plan",
    },
    "orchestrator.approvals": {"approval_id_for", "binding_hash"},
    "orchestrator.routing": {
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
    },
}


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_exported_members(name: str) -> None:
    module = importlib.import_module(name)
    assert set(module.__all__) == PACKAGES[name]
    for member in module.__all__:
        assert hasattr(module, member), member
