"""Continue-as-new at safe points: what a session hands to its next run.

The session's state is one model (`SessionCarry`, held by the runtime as `memory`); at a
safe point it is handed, as it stands, to the next run.
"""

from __future__ import annotations

from temporalio import workflow

from orchestrator.session import patches
from orchestrator.session.core import SessionRuntime
from orchestrator.session.payloads import MAX_CARRY_BYTES, model_size, too_large
from orchestrator.session.types import LoopCarry
from orchestrator.store.records import EventKind
from orchestrator.types import JsonObject

__all__ = ["HISTORY_EVENTS_CEILING", "Continuation"]

HISTORY_EVENTS_CEILING = 8_192
"""Continue at the next safe point once the history holds this many events, even if
Temporal has not suggested it yet: below its warning at 10,240 events."""


class Continuation:
    """Carries a long session over into a fresh run at a safe point or between two rounds."""

    def __init__(self, rt: SessionRuntime) -> None:
        self._rt = rt

    def resumed_loop(self, index: int | None) -> LoopCarry | None:
        """The open tool loop of top-level step `index` that this run was handed, if any."""
        carry = self._rt.start.carry
        if index is None or carry is None or carry.loop is None:
            return None
        return carry.loop if carry.loop.step == index == carry.next_step else None

    def _history_long(self) -> bool:
        info = workflow.info()
        limit = self._rt.start.options.continue_as_new_after
        if limit is not None:
            return info.get_current_history_length() >= limit
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= HISTORY_EVENTS_CEILING
        )

    async def continue_if_long(self, next_step: int, point: str) -> None:
        """Continue as new at this safe point if the history has grown past its limit.

        Safe points are between plan steps and an approval step's wait: no tool loop is
        open, so the pinned model, pending approvals, outputs and cost are all the state
        there is, and they travel in `SessionCarry`. Raises `ContinueAsNewError` (through
        `workflow.continue_as_new`) when it continues.
        """
        if point == self._rt.memory.resumed_at or self._rt.setup is None:
            return
        if not self._history_long():
            return
        await self._carry_over(next_step, point, None)

    def loop_due(self, point: str) -> bool:
        """Whether an open tool loop should continue as new now, between two rounds.

        Only once the history is long, no approval is pending, and the run was not itself
        started at this point. The patch marker is written only when it continues, so a
        history recorded before this feature replays unchanged.
        """
        memory = self._rt.memory
        if point == memory.resumed_at or memory.setup is None or memory.state.pending_approvals:
            return False
        if not self._history_long():
            return False
        if not self._rt.batched:
            workflow.deprecate_patch(patches.LOOP_CONTINUE)
        return True

    async def continue_loop(self, loop: LoopCarry) -> None:
        """Continue as new inside a tool loop, carrying it (see `LoopCarry`).

        Not a model-switch boundary: the next run goes on with `loop.model`, without
        routing. Returns (the loop goes on in this run) when the carry is too large.
        """
        await self._carry_over(loop.step, f"loop:{loop.step}:{loop.attempt}:{loop.round}", loop)

    async def _carry_over(self, next_step: int, point: str, loop: LoopCarry | None) -> None:
        await workflow.wait_condition(workflow.all_handlers_finished)
        rt, memory = self._rt, self._rt.memory
        pending = [p.approval_id for p in memory.state.pending_approvals]
        decided = {d.approval_id for d in memory.decisions}
        if any(approval_id in decided for approval_id in pending):
            return  # a person decided meanwhile: go on in this run
        if memory.setup is None or rt.opening is not None:
            return  # (the row still unwritten: the next run would not write it)
        carry = memory.model_copy(
            update={"next_step": next_step, "resumed_at": point, "loop": loop}, deep=True
        )
        # The carry holds the setup; one the starter resolved is not handed on twice.
        start = rt.start.model_copy(update={"carry": carry, "setup": None})
        step_id = rt.start.plan.steps[next_step].id
        size = model_size(start)
        if size > MAX_CARRY_BYTES:
            # Continuing would hand Temporal a payload it refuses (a stuck session); a long
            # history is only a warning, so go on in this run.
            workflow.logger.warning(
                "not continuing as new: %s", too_large("the carry", size, MAX_CARRY_BYTES)
            )
            return
        payload: JsonObject = {
            "run": memory.runs,
            "point": point,
            "history_length": workflow.info().get_current_history_length(),
            "pending_approvals": list(pending),
            "cost_usd": memory.state.cost_usd,
        }
        if loop is not None:
            payload |= {"round": loop.round, "attempt": loop.attempt, "carry_bytes": size}
        rt.event(
            EventKind.CONTINUED_AS_NEW,
            step_id,
            key=f"continued_as_new:{memory.runs}",
            model=memory.state.pinned_model,
            payload=payload,
        )
        await rt.flush()
        workflow.continue_as_new(start)
