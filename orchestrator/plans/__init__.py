"""Plans: the declarative agent workflows engineers write in `workflows/`."""

from orchestrator.plans.loader import load_plan, load_plans, parse_plan
from orchestrator.plans.models import (
    AgentStep,
    ApprovalStep,
    BranchStep,
    EnsembleStep,
    LoopStep,
    OnReject,
    ParallelStep,
    Plan,
    PlanStep,
    SkillStep,
    SubPlanStep,
)

__all__ = [
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
]
