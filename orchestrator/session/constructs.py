"""Plan constructs that hold other steps: branches, parallel groups with a join, loops.

Runs inside workflow code, so everything here is deterministic: conditions are pure CEL
over the run's input and the outputs recorded so far (`cel` is passed through the
sandbox; evaluating an expression does no I/O and reads no clock), and concurrency is
the workflow's own event loop. Each inner step is run by the workflow through `RunStep`,
so it is recorded, flushed and failed exactly like a top-level step.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

import cel

from orchestrator.plans.models import AnyStep, BranchStep, LoopStep, ParallelStep, children
from orchestrator.session.step_types import step_kind
from orchestrator.session.types import StepState
from orchestrator.types import JsonObject, JsonValue

if TYPE_CHECKING:
    from orchestrator.session.parts import SessionParts

__all__ = ["ConstructError", "RunStep", "base_id", "iteration_copy"]

RunStep = Callable[[AnyStep], Awaitable[JsonValue]]
"""Run one inner step and record its output under its id (and its `base_id`)."""

_ITERATION = "#"


class ConstructError(Exception):
    """A condition could not be evaluated, or a loop reached its bound."""


def base_id(step_id: str) -> str:
    """The id an engineer wrote: `check#2` (a loop's second iteration) is `check`."""
    return step_id.partition(_ITERATION)[0]


def iteration_copy(step: AnyStep, iteration: int) -> AnyStep:
    """A step (and the steps it holds) under the ids of a loop's `iteration` (from 1).

    The first iteration keeps the written ids, so a loop that runs once looks like the
    steps written out; later ones get `#n`, which no written id can contain.
    """
    if iteration == 1:
        return step
    suffix = f"{_ITERATION}{iteration}"
    update: dict[str, object] = {"id": base_id(step.id) + suffix}
    for name, block in children(step):
        field = "else_" if name == "else" else name
        update[field] = [iteration_copy(inner, iteration) for inner in block]
    return step.model_copy(update=update)


def condition(
    expression: str,
    inputs: JsonObject,
    outputs: Mapping[str, JsonValue],
    **extra: int,
) -> bool:
    """Evaluate a CEL condition over `input`, `steps.<id>.output` and `extra` names.

    Raises:
        ConstructError: the expression fails to evaluate or does not give a boolean.
    """
    variables: dict[str, object] = {
        "input": inputs,
        "steps": {step_id: {"output": value} for step_id, value in outputs.items()},
        **extra,
    }
    try:
        result = cel.evaluate(expression, variables)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise ConstructError(f"condition {expression!r} failed to evaluate: {exc}") from None
    if not isinstance(result, bool):
        raise ConstructError(f"condition {expression!r} gave {result!r}, not true or false")
    return result


async def _sequence(steps: list[AnyStep], run: RunStep) -> JsonValue:
    output: JsonValue = None
    for inner in steps:
        output = await run(inner)
    return output


@step_kind("branch")
async def _branch(parts: SessionParts, step: BranchStep, _state: StepState) -> JsonValue:
    """A branch gives the last output of the arm that ran."""
    host = parts.step_host()
    arm = step.then if condition(step.when, host.inputs, host.outputs) else step.else_
    return await _sequence(arm, host.run_step)


@step_kind("parallel")
async def _parallel(parts: SessionParts, step: ParallelStep, _state: StepState) -> JsonValue:
    """A parallel group maps each step id to its output once all have finished.

    The first failure, in written order, fails the group.
    """
    run = parts.step_host().run_step
    results = await asyncio.gather(*(run(inner) for inner in step.steps), return_exceptions=True)
    joined: JsonObject = {}
    for inner, result in zip(step.steps, results, strict=True):
        if isinstance(result, BaseException):
            raise result
        joined[inner.id] = result
    return joined


@step_kind("loop")
async def _loop(parts: SessionParts, step: LoopStep, _state: StepState) -> JsonValue:
    """A loop gives its last iteration's last output."""
    host = parts.step_host()
    output: JsonValue = None
    for iteration in range(1, step.max_iterations + 1):
        output = await _sequence([iteration_copy(s, iteration) for s in step.steps], host.run_step)
        if condition(step.until, host.inputs, host.outputs, iteration=iteration):
            return output
    if step.on_exhausted == "continue":
        return output
    raise ConstructError(
        f"loop reached max_iterations={step.max_iterations} before {step.until!r} held"
    )
