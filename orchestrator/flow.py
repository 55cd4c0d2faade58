"""Build plans in Python: typed helpers that compile to the same `Plan` a YAML file loads.

For engineers who prefer code to YAML. The result is validated exactly like a file (ids,
template references, CEL conditions, schemas), and runs on the same durable
`AgentSessionWorkflow`:

```python
plan = flow.plan(
    "refund-check",
    flow.call_skill("ticket", "tickets.get", ticket_id="{{ input.ticket_id }}"),
    flow.approve("gate", "Refund {{ steps.ticket.output.customer }}?"),
    flow.agent_step("reply", "Draft the reply.", model="fast-cheap"),
)
```
"""

from __future__ import annotations

from orchestrator.plans.models import (
    AgentStep,
    AnyStep,
    ApprovalStep,
    BranchStep,
    EnsembleStep,
    LoopStep,
    ParallelStep,
    Plan,
    SkillStep,
    SubPlanStep,
)
from orchestrator.types import JsonObject, JsonValue

__all__ = [
    "agent_step",
    "approve",
    "branch",
    "call_skill",
    "ensemble",
    "loop",
    "parallel",
    "plan",
    "subplan",
]


def plan(name: str, *steps: AnyStep, version: str = "1", **fields: JsonValue) -> Plan:
    """A whole plan; `fields` are the plan file's other keys (`model`, `input_schema`, ...).

    Raises:
        pydantic.ValidationError: the plan breaks the schema or its references.
    """
    return Plan.model_validate(
        {"name": name, "version": version, "steps": [s.model_dump() for s in steps], **fields}
    )


def agent_step(
    step_id: str,
    goal: str,
    *,
    skills: list[str] | None = None,
    model: str | None = None,
    output_schema: JsonObject | None = None,
    **fields: JsonValue,
) -> AgentStep:
    """A goal worked by one pinned model in a tool loop.

    `fields` are the rest of `AgentStep`: max_rounds, on_reject, max_tokens, temperature,
    on_truncation, ...
    """
    return AgentStep.model_validate(
        {
            "id": step_id,
            "goal": goal,
            "skills": skills or [],
            "model": model,
            "output_schema": output_schema,
            **fields,
        }
    )


def call_skill(step_id: str, skill: str, **arguments: JsonValue) -> SkillStep:
    """One skill call (`name` or `name@range`) with templated arguments."""
    return SkillStep(id=step_id, type="skill", skill=skill, arguments=arguments)


def approve(step_id: str, summary: str, *, fail_on_reject: bool = True) -> ApprovalStep:
    """A gate a person must pass; a rejection fails the session unless told otherwise."""
    return ApprovalStep.model_validate(
        {
            "id": step_id,
            "type": "approval",
            "summary": summary,
            "on_reject": "fail_step" if fail_on_reject else "tell_model",
        }
    )


def branch(
    step_id: str, when: str, then: list[AnyStep], otherwise: list[AnyStep] | None = None
) -> BranchStep:
    """Run `then` when the CEL condition holds, else `otherwise`."""
    return BranchStep.model_validate(
        {
            "id": step_id,
            "type": "branch",
            "when": when,
            "then": [s.model_dump() for s in then],
            "else": [s.model_dump() for s in otherwise or []],
        }
    )


def parallel(step_id: str, *steps: AnyStep) -> ParallelStep:
    """Run `steps` at once and join their outputs by step id."""
    return ParallelStep.model_validate(
        {"id": step_id, "type": "parallel", "steps": [s.model_dump() for s in steps]}
    )


def loop(step_id: str, until: str, max_iterations: int, *steps: AnyStep) -> LoopStep:
    """Run `steps` until the CEL condition holds, at most `max_iterations` times."""
    return LoopStep.model_validate(
        {
            "id": step_id,
            "type": "loop",
            "until": until,
            "max_iterations": max_iterations,
            "steps": [s.model_dump() for s in steps],
        }
    )


def ensemble(
    step_id: str,
    goal: str,
    models: list[str],
    *,
    verifier: str | None = None,
    output_schema: JsonObject | None = None,
    **fields: JsonValue,
) -> EnsembleStep:
    """Ask several models the same goal at once; merge by vote, or by `verifier` if given."""
    return EnsembleStep.model_validate(
        {
            "id": step_id,
            "type": "ensemble",
            "goal": goal,
            "models": models,
            "merge": "verifier" if verifier else "vote",
            "verifier": verifier,
            "output_schema": output_schema,
            **fields,
        }
    )


def subplan(step_id: str, plan_name: str, **inputs: JsonValue) -> SubPlanStep:
    """Run the project's plan `plan_name` as a child session with templated `inputs`."""
    return SubPlanStep(id=step_id, type="subplan", plan=plan_name, input=inputs)
