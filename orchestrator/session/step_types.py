"""Which code runs a step: a registry from step type tag to its runner.

Each built-in step type registers its runner in the module of the part that runs it
(`agent` in `agent_loop`, `skill` in `skill_calls`, `approval` in `approval_gate`,
`ensemble` and `subplan` in `fanout`, the constructs in `constructs`); the workflow asks
`kind_of(step)` and calls it, with no `isinstance` chain. A step type registered later
(`orchestrator.plans.registry.register_step`) runs through its plan model's own `run`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.plans.registry import RegisteredStep, StepHost
from orchestrator.session.types import StepState
from orchestrator.types import JsonObject, JsonValue

__all__ = ["StepKind", "StepRunner", "Steps", "kind_of", "step_kind"]

StepRunner = Callable[[Any, Any, StepState], Awaitable[JsonValue]]
"""Run one step: `(session parts, step, its state in the query) -> output`."""

RunStep = Callable[[Any], Awaitable[JsonValue]]


@dataclass(frozen=True)
class Steps:
    """The narrow view a registered step gets of its session (a `StepHost`)."""

    inputs: JsonObject
    outputs: Mapping[str, JsonValue]
    run_inner: RunStep

    async def run_step(self, step: Any) -> JsonValue:
        """Run a step this one holds, recorded like any step."""
        return await self.run_inner(step)


def _no_task_type(_step: Any) -> str | None:
    return None


@dataclass(frozen=True)
class StepKind:
    """How one step type runs, and what its outcomes are credited to."""

    run: StepRunner
    task_type: Callable[[Any], str | None] = _no_task_type
    """The task type outcomes are credited under while it runs (agent steps only)."""


_KINDS: dict[str, StepKind] = {}


def step_kind(
    tag: str, *, task_type: Callable[[Any], str | None] = _no_task_type
) -> Callable[[StepRunner], StepRunner]:
    """Register the decorated function as the runner of built-in step type `tag`."""

    def register(run: StepRunner) -> StepRunner:
        _KINDS[tag] = StepKind(run=run, task_type=task_type)
        return run

    return register


async def _run_registered(parts: Any, step: RegisteredStep, state: StepState) -> JsonValue:
    host: StepHost = parts.step_host()
    return await step.run(host)


_REGISTERED = StepKind(run=_run_registered)


def kind_of(step: Any) -> StepKind:
    """The runner of `step`: its type's registered one, or a registered model's own `run`."""
    kind = _KINDS.get(step.type)
    if kind is not None:
        return kind
    if isinstance(step, RegisteredStep):
        return _REGISTERED
    raise LookupError(f"no runner for step type {step.type!r}")
