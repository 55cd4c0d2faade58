"""What a skill is, in the shapes that cross the workflow boundary.

`SkillSpec` is the serialisable face of a skill (name, version, risk, schemas): the
workflow resolves the specs at session start and keeps them in its history, so a session
sees the same tools on replay even if the project changed since.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel

from orchestrator.types import JsonObject

__all__ = ["RiskLevel", "SkillContext", "SkillSpec"]


class RiskLevel(StrEnum):
    """How much harm a call can do; the higher two need a person's approval by default."""

    READ_ONLY = "read_only"
    REVERSIBLE_WRITE = "reversible_write"
    IRREVERSIBLE_WRITE = "irreversible_write"
    EXTERNAL_SIDE_EFFECT = "external_side_effect"

    @property
    def needs_approval_by_default(self) -> bool:
        """Irreversible writes and external side effects are gated unless a skill says otherwise."""
        return self in (RiskLevel.IRREVERSIBLE_WRITE, RiskLevel.EXTERNAL_SIDE_EFFECT)


class SkillSpec(BaseModel):
    """The serialisable description of one skill version."""

    name: str
    version: str
    description: str
    risk: RiskLevel
    requires_approval: bool
    input_schema: JsonObject
    output_schema: JsonObject

    @property
    def tool_name(self) -> str:
        """The name the model sees: provider APIs allow only `[A-Za-z0-9_-]` in tool names."""
        return self.name.replace(".", "_")


@dataclass(frozen=True, slots=True)
class SkillContext:
    """What a running skill knows about the call, beside its arguments.

    Attributes:
        idempotency_key: Derived from the workflow and the exact point of the call, so it is
            the same on every retry; a skill with side effects must use it to apply its
            effect once.
        state_dir: A folder the skill may keep its own state in.
    """

    session_id: str
    workflow_id: str
    run_id: str
    step_id: str
    call_id: str
    idempotency_key: str
    attempt: int
    state_dir: Path
