"""Continue-as-new at safe points: what a session hands to its next run, and taking it over."""

from __future__ import annotations

from temporalio import workflow

from orchestrator.session.core import SessionCore
from orchestrator.session.types import (
    SessionCarry,
)
from orchestrator.store.records import EventKind

__all__ = ["CONTINUE_AS_NEW_PATCH", "Continuation"]

CONTINUE_AS_NEW_PATCH = "continue-as-new-v1"


class Continuation(SessionCore):
    """Carries a long session over into a fresh run between steps."""

    def _resume(self, carry: SessionCarry) -> None:
        """Take over what the previous run handed on (before `run` starts)."""
        self._state = carry.state.model_copy(deep=True)
        self._pending = {p.approval_id: p for p in carry.state.pending_approvals}
        self._state.pending_approvals = []
        self._decisions = {d.approval_id: d for d in carry.decisions}
        self._outputs = dict(carry.outputs)
        self._switch = carry.switch
        self._route_name = carry.route_name
        self._after_approval = carry.after_approval
        self._resumed_at = carry.resumed_at
        self._runs = carry.runs + 1

    async def _continue_if_long(self, next_step: int, point: str) -> None:
        """Continue as new at this safe point if the history has grown past its limit.

        Safe points are between plan steps and an approval step's wait: no tool loop is
        open, so the pinned model, pending approvals, outputs and cost are all the state
        there is, and they travel in `SessionCarry`. Raises `ContinueAsNewError` (through
        `workflow.continue_as_new`) when it continues.
        """
        if not self._can or point == self._resumed_at or self._setup is None:
            return
        info = workflow.info()
        limit = self._start.options.continue_as_new_after
        if limit is None:
            if not info.is_continue_as_new_suggested():
                return
        elif info.get_current_history_length() < limit:
            return
        await workflow.wait_condition(workflow.all_handlers_finished)
        if any(approval_id in self._decisions for approval_id in self._pending):
            return  # a person decided meanwhile: go on in this run
        carry = SessionCarry(
            next_step=next_step,
            resumed_at=point,
            setup=self._setup,
            state=self._snapshot(),
            outputs=dict(self._outputs),
            decisions=list(self._decisions.values()),
            switch=self._switch,
            route_name=self._route_name,
            after_approval=self._after_approval,
            runs=self._runs,
        )
        self._event(
            EventKind.CONTINUED_AS_NEW,
            self._start.plan.steps[next_step].id,
            key=f"continued_as_new:{self._runs}",
            model=self._state.pinned_model,
            payload={
                "run": self._runs,
                "point": point,
                "history_length": info.get_current_history_length(),
                "pending_approvals": list(self._pending),
                "cost_usd": self._state.cost_usd,
            },
        )
        await self._flush()
        workflow.continue_as_new(self._start.model_copy(update={"carry": carry}))
