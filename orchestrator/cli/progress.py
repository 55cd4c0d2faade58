"""Follow a running session from the CLI: steps, pinned model, approvals, cost.

The session's `state` query is read every half second while the run's result is
awaited. Each change is printed once as a line (so a log or a pipe gets the story), and on
a terminal a status line shows the current step, the pinned model and what it waits for.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from rich.console import Console
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError

from orchestrator.session import names
from orchestrator.session.types import SessionResult, SessionState

__all__ = ["follow", "progress_lines"]


def progress_lines(state: SessionState) -> list[str]:
    """What a person following the session should know, one fact per line.

    Lines are stable for an unchanged fact, so a follower prints each only once.
    """
    lines = []
    for step in state.steps:
        if step.status == "pending":
            continue
        line = f"step {step.id} ({step.type}): {step.status}"
        if step.model:
            line += f" on {step.model}"
        if step.status != "running" and step.rounds:
            line += f" after {step.rounds} model call(s)"
        if step.error:
            line += f": {step.error}"
        lines.append(line)
    for pin in state.model_timeline:
        lines.append(f"model {pin.model} pinned at {pin.boundary.value} for {pin.step_id}")
    for approval in state.pending_approvals:
        lines.append(
            f"waiting for approval {approval.approval_id}: {approval.summary}"
            f" (orchestrator approvals approve {approval.approval_id} --as NAME)"
        )
    return lines


def _status(state: SessionState) -> str:
    text = f"{state.plan_name} v{state.plan_version}: {state.status.value}"
    if state.current_step:
        text += f", step {state.current_step}"
    if state.pinned_model:
        text += f", model {state.pinned_model}"
    if state.pending_approvals:
        text += f", {len(state.pending_approvals)} approval(s) pending"
    return text + f", ${state.cost_usd:.4f}"


async def follow(
    handle: WorkflowHandle[object, SessionResult],
    console: Console,
    *,
    interval: float = 0.5,
    emit: Callable[[str], None] | None = None,
) -> SessionResult:
    """Await the session's result, printing its progress as it changes.

    `emit` prints each line instead of the console, and leaves out the status line (the
    model's streamed text shares the terminal with the lines then).
    """
    result = asyncio.ensure_future(handle.result())
    printed: set[str] = set()
    status_line = console.status("starting...") if emit is None else contextlib.nullcontext()
    with status_line as status:
        while True:
            done, _ = await asyncio.wait({result}, timeout=interval)
            try:
                state = await handle.query(names.STATE_QUERY, result_type=SessionState)
            except RPCError:
                state = None  # not started on a worker yet, or already closed
            if state is not None:
                for line in progress_lines(state):
                    if line not in printed:
                        printed.add(line)
                        if emit is not None:
                            emit(line)
                        else:
                            console.print(line, highlight=False, markup=False, soft_wrap=True)
                if status is not None:
                    status.update(_status(state))
            if done:
                return result.result()
