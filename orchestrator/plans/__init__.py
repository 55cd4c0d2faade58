"""Plans: the declarative agent workflows engineers write in `workflows/`."""

from orchestrator.plans.loader import load_plan, load_plans, parse_plan
from orchestrator.plans.models import (
    AgentStep,
    ApprovalStep,
    BranchStep,
    LoopStep,
    OnReject,
    ParallelStep,
    Plan,
    PlanStep,
    SkillStep,
)

__all__ = [
    "AgentStep",
    "ApprovalStep",
    "BranchStep",
    "LoopStep",
    "OnReject",
    "ParallelStep",
    "Plan",
    "PlanStep",
    "SkillStep",
    "load_plan",
    "load_plans",
    "parse_plan",
]
