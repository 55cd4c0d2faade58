"""Skills: typed Python functions that agents call as tools, with a risk level each."""

from orchestrator.skills.models import RiskLevel, SkillContext, SkillSpec
from orchestrator.skills.registry import SkillRegistry
from orchestrator.skills.skill import Skill, skill

__all__ = ["RiskLevel", "Skill", "SkillContext", "SkillRegistry", "SkillSpec", "skill"]
