"""Session-aware agent orchestration on Temporal.

Durable workflows run multi-step agent plans; each step's model is chosen at a safe
boundary and pinned for its whole tool loop; skills are typed functions with a risk level;
risky calls wait for a person's approval, bound to the exact call.

This module exports only light, import-safe names (it is loaded inside the workflow
sandbox); the worker side lives in `orchestrator.plugin`, `orchestrator.runtime` and
`orchestrator.worker`.
"""

from orchestrator.plans import AgentStep, ApprovalStep, Plan, SkillStep, load_plan
from orchestrator.skills import RiskLevel, Skill, SkillContext, skill

__all__ = [
    "AgentStep",
    "ApprovalStep",
    "Plan",
    "RiskLevel",
    "Skill",
    "SkillContext",
    "SkillStep",
    "__version__",
    "load_plan",
    "skill",
]

__version__ = "0.1.0"
