"""The plan schema: what an engineer writes in `workflows/*.yaml`.

A plan is a list of steps; each is an agent step (a goal worked by a model in a tool
loop), a skill step (one skill call with templated arguments) or an approval step (a
person must approve before the plan goes on). The whole plan is passed into the workflow
at start, so a running session keeps the plan it began with even if the file changes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias

import cel
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    PlainValidator,
    Tag,
    field_validator,
    model_validator,
)

from orchestrator.plans.registry import (
    REGISTERED_TAG,
    RegisteredSchema,
    RegisteredStep,
    StepShape,
    declare_built_in,
    parse_registered,
    serialize_registered,
)
from orchestrator.plans.schemas import check_schema, schema_faults
from orchestrator.skills.semver import parse_ref
from orchestrator.types import JsonObject

__all__ = [
    "AgentStep",
    "ApprovalStep",
    "BranchStep",
    "EnsembleStep",
    "LoopStep",
    "OnReject",
    "ParallelStep",
    "Plan",
    "PlanLimits",
    "PlanStep",
    "SkillStep",
    "SubPlanStep",
]

_STEP_ID = r"^[a-z][a-z0-9_-]{0,62}$"
_TEMPLATE = re.compile(r"\{\{\s*([^}]*?)\s*\}\}")

JsonSchema = Annotated[JsonObject, AfterValidator(check_schema)]
"""A JSON Schema (2020-12), refused at load time when it is not one."""


class OnReject(StrEnum):
    """What a rejected approval does to the step that asked for it."""

    TELL_MODEL = "tell_model"
    """The model gets the rejection and its reason as the tool result, and goes on."""
    FAIL_STEP = "fail_step"
    """The step, and so the session, fails."""


class _Step(StepShape, BaseModel):
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
    max_cost_usd: float | None = Field(default=None, gt=0)
    """Dollars this step may spend on model calls (re-runs after a failover or cascade
    count); once reached, the step fails at its next model call instead of making it."""
    on_reject: OnReject = OnReject.TELL_MODEL
    task_type: str = "default"
    """What kind of work this is (`code`, `drafting`, ...): the router scores quality for it."""
    difficulty: Literal["low", "medium", "high"] | None = None
    """A hard step gets a stronger model before it runs; an easy one may come back down.
    Empty: the router estimates it from the goal, instructions, skills and output schema
    (`orchestrator.routing.complexity`) and records the estimate in its decision."""
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
    output_schema: JsonSchema | None = None
    """JSON Schema the final answer must fit: the answer must be JSON, and the step's
    output is the parsed value, whose fields later steps and conditions can read."""
    max_tokens: int | None = Field(default=None, ge=1)
    """Longest answer the model may give per call; empty: the deployment's `max_tokens`,
    then the endpoint's own limit (4096 for Anthropic, which requires one)."""
    temperature: float | None = Field(default=None, ge=0, le=2)
    """Sampling temperature sent with each call; empty: the endpoint's default."""
    cache: bool = True
    """`false`: the step's model calls never use the response cache (`orchestrator.cache`),
    even for a model name the models file opts in."""
    on_truncation: Literal["fail", "continue"] = "fail"
    """What an answer cut off at the output limit does: `fail` the step, naming the
    deployment and the limit; or `continue`: the cut text is kept and the model asked to
    go on, up to `max_rounds` calls. A cut tool call always fails: its arguments are lost."""

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

    def templates(self) -> list[str]:
        """The goal and instructions."""
        return [self.goal, self.instructions or ""]

    def skill_refs(self) -> list[str]:
        """The skills its model may call."""
        return list(self.skills)


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

    def templates(self) -> list[str]:
        """The arguments, as written."""
        return [str(self.arguments)]

    def skill_refs(self) -> list[str]:
        """The one skill it calls."""
        return [self.skill]


class ApprovalStep(_Step):
    """A gate: the plan waits until a person approves what `summary` describes."""

    type: Literal["approval"]
    summary: str = Field(min_length=1)
    on_reject: OnReject = OnReject.FAIL_STEP

    def templates(self) -> list[str]:
        """The summary the approver reads."""
        return [self.summary]


class EnsembleStep(_Step):
    """One question to several models at once, merged by a vote or a verifier model.

    For high-stakes answers: each model answers the same goal in a single call (no tools,
    so no tool loop is open and no pin is at stake); `vote` keeps the answer most models
    gave (compared after trimming, or as parsed JSON when `output_schema` is set) and fails
    the step when fewer than `min_votes` agree; `verifier` shows every answer to the
    `verifier` model, whose reply is the step's answer. The step's output is that answer;
    every model's answer and the tally are recorded as an audit event.
    """

    type: Literal["ensemble"]
    goal: str = Field(min_length=1)
    instructions: str | None = None
    models: list[str] = Field(min_length=2, max_length=9)
    """Models or aliases from the registry, each asked once, in parallel."""
    merge: Literal["vote", "verifier"] = "vote"
    verifier: str | None = None
    """The model that reads every answer and gives the final one (`merge: verifier`)."""
    min_votes: int | None = Field(default=None, ge=1)
    """Answers that must agree for a vote to stand; empty means a strict majority."""
    output_schema: JsonSchema | None = None
    """JSON Schema every answer must fit; the output is the parsed value."""

    @model_validator(mode="after")
    def _merge(self) -> EnsembleStep:
        if (self.merge == "verifier") != (self.verifier is not None):
            raise ValueError("merge: verifier and a verifier model go together")
        if self.min_votes is not None and self.min_votes > len(self.models):
            raise ValueError(
                f"min_votes={self.min_votes} is more than the {len(self.models)} models asked"
            )
        return self

    def templates(self) -> list[str]:
        """The goal and instructions."""
        return [self.goal, self.instructions or ""]


class SubPlanStep(_Step):
    """Run another plan of the project as a child session, and wait for its result.

    The child is a session of its own (its own workflow, history, pinned model, approvals
    and audit trail) started as a Temporal child workflow, so a long or shared procedure
    is written once and reused. The plan is resolved when the parent session starts and
    travels with it, so a running session keeps the versions it began with. The step's
    output is the child's final output.
    """

    type: Literal["subplan"]
    plan: str = Field(pattern=r"^[a-z][a-z0-9_.-]{0,62}$")
    """Name of a plan in the project's `workflows/`."""
    input: JsonObject = Field(default_factory=dict)
    """The child's run input, templated from this session's input and earlier outputs."""

    def templates(self) -> list[str]:
        """The child's input, as written."""
        return [str(self.input)]

    def plan_refs(self) -> list[str]:
        """The plan it runs."""
        return [self.plan]


def _check_cel(expression: str) -> str:
    """Refuse a condition that does not compile, at load time rather than mid-run."""
    try:
        cel.compile(expression)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise ValueError(f"not a valid CEL expression: {exc}") from None
    return expression


class BranchStep(_Step):
    """Run `then` when a CEL condition over the input and earlier outputs holds, else `else`.

    The condition sees `input` and `steps` (`steps.<id>.output`); its output is the last
    output of the arm that ran (null when that arm is empty).
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    type: Literal["branch"]
    when: str = Field(min_length=1)
    then: list[PlanStep] = Field(min_length=1)
    else_: list[PlanStep] = Field(default_factory=list, alias="else")

    @field_validator("when")
    @classmethod
    def _when(cls, expression: str) -> str:
        return _check_cel(expression)

    def blocks(self) -> list[tuple[str, list[Any]]]:
        """Both arms."""
        return [("then", list(self.then)), ("else", list(self.else_))]

    def conditions(self) -> list[tuple[str, str]]:
        """The branch condition."""
        return [("when", self.when)]


class ParallelStep(_Step):
    """Run `steps` at once and join: the output maps each step id to its output.

    Agent steps are refused here for now: each would need its own pinned model, and the
    session pins one model at a time. Skill and approval steps (and constructs of them) run
    concurrently; the group fails when any of its steps fails.
    """

    type: Literal["parallel"]
    steps: list[PlanStep] = Field(min_length=1)

    def blocks(self) -> list[tuple[str, list[Any]]]:
        """The steps run at once."""
        return [("steps", list(self.steps))]


class LoopStep(_Step):
    """Run `steps` again until a CEL condition holds, at most `max_iterations` times.

    `until` is evaluated after each iteration and sees `iteration` (1, 2, ...) besides
    `input` and `steps`. Every iteration runs its steps under ids of their own
    (`check`, then `check#2`, ...), so idempotency keys and approvals never repeat; the
    plain id always names the latest iteration's output. Reaching the bound fails the step
    unless `on_exhausted: continue`.
    """

    type: Literal["loop"]
    steps: list[PlanStep] = Field(min_length=1)
    until: str = Field(min_length=1)
    max_iterations: int = Field(ge=1, le=100)
    on_exhausted: Literal["fail", "continue"] = "fail"

    @field_validator("until")
    @classmethod
    def _until(cls, expression: str) -> str:
        return _check_cel(expression)

    def blocks(self) -> list[tuple[str, list[Any]]]:
        """The steps of one iteration."""
        return [("steps", list(self.steps))]

    def conditions(self) -> list[tuple[str, str]]:
        """The condition that ends the loop."""
        return [("until", self.until)]


STEP_TYPES = ("agent", "skill", "approval", "ensemble", "subplan", "branch", "parallel", "loop")
"""Every built-in step type tag, as written in a plan file (registered ones come on top)."""
declare_built_in(STEP_TYPES)


def _step_tag(value: Any) -> str:
    """The union member a step validates as: its own tag if built in, else `registered`."""
    tag = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return tag if tag in STEP_TYPES else REGISTERED_TAG


_Registered = Annotated[
    RegisteredStep,
    PlainValidator(parse_registered),
    PlainSerializer(serialize_registered),
    RegisteredSchema(),
]

if TYPE_CHECKING:
    # Code that walks a plan handles the built-in types and passes others by; a registered
    # step reaches only the workflow's dispatcher (`orchestrator.session.step_types`).
    PlanStep: TypeAlias = "AnyStep"
else:
    PlanStep = Annotated[
        Annotated[AgentStep, Tag("agent")]
        | Annotated[SkillStep, Tag("skill")]
        | Annotated[ApprovalStep, Tag("approval")]
        | Annotated[EnsembleStep, Tag("ensemble")]
        | Annotated[SubPlanStep, Tag("subplan")]
        | Annotated[BranchStep, Tag("branch")]
        | Annotated[ParallelStep, Tag("parallel")]
        | Annotated[LoopStep, Tag("loop")]
        | Annotated[_Registered, Tag(REGISTERED_TAG)],
        Discriminator(_step_tag),
    ]
CONSTRUCT_TYPES = ("branch", "parallel", "loop")
"""Step types that hold other steps."""
BranchStep.model_rebuild()
ParallelStep.model_rebuild()
LoopStep.model_rebuild()


class PlanLimits(BaseModel):
    """Bounds on a whole session, so a runaway plan stops with a clear error.

    Checked before each model call, against what the session has spent and made so far:
    the call that would pass a limit is not made, and the step fails naming the limit.
    """

    model_config = ConfigDict(extra="forbid")

    max_cost_usd: float | None = Field(default=None, gt=0)
    """Dollars the session may spend on model calls."""
    max_model_calls: int | None = Field(default=None, ge=1)
    """Model calls the session may make, over all its steps."""


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
    limits: PlanLimits | None = None
    """Spending and model-call bounds for each session of this plan."""
    input_required: list[str] = Field(default_factory=list)
    """Keys the run input must hold."""
    input_schema: JsonSchema | None = None
    """JSON Schema the run input must fit; checked before a session starts."""

    output_schema: JsonSchema | None = None
    """JSON Schema the session's final output (its last step's output) must fit; a
    session whose output breaks it fails, naming every fault, instead of completing."""

    def input_faults(self, value: JsonObject) -> list[str]:
        """Why `value` cannot be this plan's run input (empty when it can)."""
        faults = [
            f"{key}: required by input_required" for key in self.input_required if key not in value
        ]
        if self.input_schema is not None:
            faults.extend(schema_faults(self.input_schema, value))
        return faults

    steps: list[PlanStep] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_steps(self) -> Plan:
        _check_block(self.steps, "steps", (set(), {}), self.input_required, in_parallel=False)
        return self

    def step_ids(self) -> list[str]:
        """Top-level step ids in order."""
        return [step.id for step in self.steps]

    def all_steps(self) -> Iterator[AnyStep]:
        """Every step, nested ones included, in the order they are written."""
        return _walk(self.steps)

    def skill_refs(self) -> list[str]:
        """Every skill reference of the plan (`name` or `name@range`), once, in step order."""
        refs = [ref for step in self.all_steps() for ref in step.skill_refs()]
        return list(dict.fromkeys(refs))

    def subplan_names(self) -> list[str]:
        """Names of the plans this plan runs as sub-plans, once, in step order."""
        names = [name for step in self.all_steps() for name in step.plan_refs()]
        return list(dict.fromkeys(names))


AnyStep = (
    AgentStep
    | SkillStep
    | ApprovalStep
    | EnsembleStep
    | SubPlanStep
    | BranchStep
    | ParallelStep
    | LoopStep
)


def children(step: AnyStep) -> list[tuple[str, list[AnyStep]]]:
    """The step lists a construct holds, by field name (`then`, `else`, `steps`)."""
    return step.blocks()


def _walk(steps: list[AnyStep]) -> Iterator[AnyStep]:
    for step in steps:
        yield step
        for _, block in children(step):
            yield from _walk(block)


def _check_block(
    steps: list[AnyStep],
    path: str,
    scope: tuple[set[str], dict[str, JsonObject | None]],
    inputs: list[str],
    *,
    in_parallel: bool,
) -> None:
    """Check ids and template references of a list of steps, in run order.

    A step may refer to any step written before it, at any depth: steps inside a branch
    arm that did not run have no output, and a reference to them fails at run time.
    `scope` is (ids declared anywhere so far, ids whose output exists by now).
    """
    declared, seen = scope
    for index, step in enumerate(steps):
        where = f"{path}.{index}"
        if step.id in declared:
            raise ValueError(f"{where}.id: duplicate step id {step.id!r}")
        declared.add(step.id)
        if in_parallel and isinstance(step, AgentStep):
            raise ValueError(
                f"{where} ({step.id}): agent steps cannot run in a parallel group yet"
                " (the session pins one model at a time); run them one after another"
            )
        for ref in _template_refs(step):
            _check_ref(ref, where, step.id, seen, inputs)
        for name, expression in step.conditions():
            for ref in _cel_step_refs(expression):
                if ref not in seen and not (isinstance(step, LoopStep) and ref in _ids(step)):
                    raise ValueError(
                        f"{where}.{name} ({step.id}): condition names step {ref!r},"
                        " which does not run before it"
                    )
        parallel = in_parallel or isinstance(step, ParallelStep)
        for name, block in children(step):
            _check_block(block, f"{where}.{name}", scope, inputs, in_parallel=parallel)
        schema = step.output_schema if isinstance(step, AgentStep | EnsembleStep) else None
        seen[step.id] = schema


def _ids(step: AnyStep) -> set[str]:
    return {inner.id for _, block in children(step) for inner in _walk(block)}


_CEL_STEP = re.compile(r"\bsteps\.([a-z][a-z0-9_]*)")


def _cel_step_refs(expression: str) -> list[str]:
    return [m.group(1) for m in _CEL_STEP.finditer(expression)]


def _template_refs(step: AnyStep) -> list[str]:
    return [m.group(1) for text in step.templates() for m in _TEMPLATE.finditer(text)]


def _check_ref(
    ref: str, path: str, step_id: str, seen: dict[str, JsonObject | None], inputs: list[str]
) -> None:
    parts = ref.split(".")
    where = f"{path} ({step_id})"
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
        schema = seen[parts[1]]
        props = schema.get("properties") if schema else None
        if len(parts) >= 4 and isinstance(props, dict) and parts[3] not in props:
            raise ValueError(
                f"{where}: template {{{{ {ref} }}}} names field {parts[3]!r}, which the"
                f" output_schema of step {parts[1]!r} does not declare"
                f" (it has: {', '.join(sorted(props))})"
            )
        return
    raise ValueError(
        f"{where}: template {{{{ {ref} }}}} must be input.<key> or steps.<id>.output[.<field>]"
    )
