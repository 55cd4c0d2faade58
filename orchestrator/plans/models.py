"""The plan schema: what an engineer writes in `workflows/*.yaml`.

A plan is a list of steps; each is an agent step (a goal worked by a model in a tool
loop), a skill step (one skill call with templated arguments) or an approval step (a
person must approve before the plan goes on). The whole plan is passed into the workflow
at start, so a running session keeps the plan it began with even if the file changes.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from orchestrator.skills.semver import parse_ref
from orchestrator.types import JsonObject

__all__ = [
    "AgentStep",
    "ApprovalStep",
    "OnReject",
    "Plan",
    "PlanStep",
    "SkillStep",
]

_STEP_ID = r"^[a-z][a-z0-9_-]{0,62}$"
_TEMPLATE = re.compile(r"\{\{\s*([^}]*?)\s*\}\}")


class OnReject(StrEnum):
    """What a rejected approval does to the step that asked for it."""

    TELL_MODEL = "tell_model"
    """The model gets the rejection and its reason as the tool result, and goes on."""
    FAIL_STEP = "fail_step"
    """The step, and so the session, fails."""


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=_STEP_ID)
    description: str | None = None


class AgentStep(_Step):
    """A goal worked by one model in a tool loop until it gives a final answer."""

    type: Literal["agent"] = "agent"
    goal: str = Field(min_length=1)
    instructions: str | None = None
    skills: list[str] = Field(default_factory=list)
    """Skills the model may call in this step: `name` (latest non-deprecated version) or
    `name@range` (`payments.refund@^1.0`); the model sees tool names from the name only."""
    model: str | None = None
    """A model name from the registry; empty means the plan's, then the registry's default."""
    max_rounds: int = Field(default=10, ge=1, le=200)
    """Model calls allowed in this step before it fails as a runaway loop."""
    on_reject: OnReject = OnReject.TELL_MODEL
    task_type: str = "default"
    """What kind of work this is (`code`, `drafting`, ...): the router scores quality for it."""
    difficulty: Literal["low", "medium", "high"] = "medium"
    """A hard step gets a stronger model before it runs; an easy one may come back down."""
    data_class: Literal["public", "internal", "pii", "confidential"] = "internal"
    """Only deployments allowed this class of data may serve the step."""
    region: str | None = None
    """Only deployments in this region may serve the step."""
    needs: list[Literal["tools", "json", "vision"]] = Field(default_factory=list)
    """Capabilities beyond `tools` (implied by skills) that the model must have."""
    tags: list[str] = Field(default_factory=list)
    """Free labels that routing rules can read."""
    accept: str | None = None
    """Cascade: a CEL condition over the final `answer` (a string) that must hold; when it
    does not, the step is re-run once on `escalate_to`, from its start (a safe boundary)."""
    escalate_to: str | None = None
    """Cascade: the alias or deployment a step whose answer fails `accept` is re-run on."""

    @model_validator(mode="after")
    def _cascade_pair(self) -> AgentStep:
        if (self.accept is None) != (self.escalate_to is None):
            raise ValueError("accept and escalate_to go together (a cascade needs both)")
        return self

    @field_validator("skills")
    @classmethod
    def _skill_refs(cls, refs: list[str]) -> list[str]:
        for ref in refs:
            parse_ref(ref)
        return refs


class SkillStep(_Step):
    """One skill call, with arguments templated from the input and earlier steps."""

    type: Literal["skill"]
    skill: str
    """`name` or `name@range`, as in an agent step's `skills`."""
    arguments: JsonObject = Field(default_factory=dict)

    @field_validator("skill")
    @classmethod
    def _skill_ref(cls, ref: str) -> str:
        parse_ref(ref)
        return ref


class ApprovalStep(_Step):
    """A gate: the plan waits until a person approves what `summary` describes."""

    type: Literal["approval"]
    summary: str = Field(min_length=1)
    on_reject: OnReject = OnReject.FAIL_STEP


PlanStep = Annotated[AgentStep | SkillStep | ApprovalStep, Field(discriminator="type")]


class Plan(BaseModel):
    """A whole plan file."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_.-]{0,62}$")
    version: str = "1"
    description: str | None = None
    model: str | None = None
    """Default model for agent steps that name none."""
    policy: str | None = None
    """Routing policy from the models file; empty means its default policy."""
    input_required: list[str] = Field(default_factory=list)
    """Keys the run input must hold."""
    steps: list[PlanStep] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_steps(self) -> Plan:
        seen: set[str] = set()
        for index, step in enumerate(self.steps):
            if step.id in seen:
                raise ValueError(f"steps.{index}.id: duplicate step id {step.id!r}")
            for ref in _template_refs(step):
                _check_ref(ref, index, step.id, seen, self.input_required)
            seen.add(step.id)
        return self

    def step_ids(self) -> list[str]:
        """Step ids in order."""
        return [step.id for step in self.steps]

    def skill_refs(self) -> list[str]:
        """Every skill reference of the plan (`name` or `name@range`), once, in step order."""
        refs: list[str] = []
        for step in self.steps:
            if isinstance(step, AgentStep):
                refs.extend(step.skills)
            elif isinstance(step, SkillStep):
                refs.append(step.skill)
        return list(dict.fromkeys(refs))


def _template_refs(step: AgentStep | SkillStep | ApprovalStep) -> list[str]:
    texts: list[str] = []
    if isinstance(step, AgentStep):
        texts = [step.goal, step.instructions or ""]
    elif isinstance(step, ApprovalStep):
        texts = [step.summary]
    else:
        texts = [str(step.arguments)]
    return [m.group(1) for text in texts for m in _TEMPLATE.finditer(text)]


def _check_ref(ref: str, index: int, step_id: str, seen: set[str], inputs: list[str]) -> None:
    parts = ref.split(".")
    where = f"steps.{index} ({step_id})"
    if parts[0] == "input" and len(parts) >= 2:
        if inputs and parts[1] not in inputs:
            raise ValueError(
                f"{where}: template {{{{ {ref} }}}} names input {parts[1]!r},"
                f" which input_required does not declare"
            )
        return
    if parts[0] == "steps" and len(parts) >= 3 and parts[2] == "output":
        if parts[1] not in seen:
            raise ValueError(
                f"{where}: template {{{{ {ref} }}}} names step {parts[1]!r},"
                " which does not run before this one"
            )
        return
    raise ValueError(
        f"{where}: template {{{{ {ref} }}}} must be input.<key> or steps.<id>.output[.<field>]"
    )
