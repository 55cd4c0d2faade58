"""Skills: versioned contracts bound to typed Python functions that agents call as tools."""

from orchestrator.skills.contract import Contract
from orchestrator.skills.models import RiskLevel, SkillContext, SkillSpec
from orchestrator.skills.registry import SkillRegistry
from orchestrator.skills.skill import Skill, bind, skill

__all__ = [
    "Contract",
    "RiskLevel",
    "Skill",
    "SkillContext",
    "SkillRegistry",
    "SkillSpec",
    "bind",
    "skill",
]
