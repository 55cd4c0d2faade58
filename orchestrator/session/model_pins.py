"""Routing and pinning: the model of an agent step is chosen at a boundary, then pinned.

The choices themselves are pure functions in `pinning` (which boundary, what to ask the
router for); this part asks the router (an activity: it reads live metrics), pins its
answer in the state and records why.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from orchestrator.plans.models import AgentStep
from orchestrator.routing.types import RoutingDecision
from orchestrator.session import names
from orchestrator.session.core import SessionRuntime, StepFailed
from orchestrator.session.pinning import (
    answers,
    boundary_for,
    failure_message,
    named_pin,
    route_request,
    route_target,
)
from orchestrator.session.prompt_cache import (
    PromptHead,
    expected_calls,
    measured,
    session_prefix_tokens,
    steps_left,
    warm_input_tokens,
)
from orchestrator.session.types import Boundary, ModelPin, RouteInput
from orchestrator.store.records import EventKind

__all__ = ["ModelPins"]


class ModelPins:
    """Chooses and pins an agent step's model at its boundaries."""

    def __init__(self, rt: SessionRuntime) -> None:
        self._rt = rt
        self.routed = False
        """Whether this run has asked the router yet (its first ask after a continue-as-new
        is that boundary)."""
        self.failover = "restart_step"
        """What the router's policy says a forced failover does (`carry_over` or not)."""

    def pin(self, step: AgentStep) -> str:
        """Choose the step's model without the router (sessions from before routing-v1)."""
        state, memory = self._rt.state, self._rt.memory
        boundary = Boundary.SESSION_START if not state.model_timeline else Boundary.STEP_CHANGE
        model, reason = named_pin(
            step, self._rt.start.plan.model, self._rt.default_model, memory.switch
        )
        memory.switch = None
        previous = state.pinned_model
        state.pinned_model = model
        state.model_timeline.append(
            ModelPin(step_id=step.id, model=model, boundary=boundary, reason=reason)
        )
        self._rt.event(
            EventKind.MODEL_PINNED,
            step.id,
            model=model,
            payload={
                "boundary": boundary.value,
                "reason": reason,
                "previous": previous,
                "task_type": step.task_type,
            },
        )
        return model

    async def _ask(self, call: RouteInput) -> RoutingDecision:
        """The `orchestrator.route` activity's decision; its failure fails the step."""
        try:
            return await self._rt.activity(
                names.ROUTE, call, RoutingDecision, self._rt.start.options.bookkeeping
            )
        except (ActivityError, ApplicationError) as exc:
            raise StepFailed(failure_message(exc)) from None

    async def route(
        self,
        step: AgentStep,
        prompt_chars: int,
        *,
        attempt: int = 0,
        failed: dict[str, str] | None = None,
        escalate: str | None = None,
        head: PromptHead | None = None,
    ) -> str:
        """Ask the router and pin its answer; the decision and its reasons are recorded.

        Called at a safe boundary; with `failed` for a forced failover after the pinned
        deployment died inside the tool loop; with `escalate` (why) when a cascade step's
        answer failed its check. `attempt` counts the step's re-runs so far. `head` is the
        head of the step's first prompt: the part of it the pinned deployment served last
        (and still holds in its prompt cache) is told to the router as warm.

        A forced failover is no boundary to estimate the step's difficulty at again: it
        reuses the estimate of the step's routing at its boundary (no classifier call).
        """
        rt, memory, state = self._rt, self._rt.memory, self._rt.state
        boundary = boundary_for(
            failover=bool(failed),
            escalation=bool(escalate),
            first_pin=not state.model_timeline,
            after_approval=memory.after_approval,
            continued_unrouted=rt.start.carry is not None and not self.routed,
        )
        memory.after_approval = False
        self.routed = True
        target = route_target(
            step,
            rt.start.plan.model,
            failover_name=memory.route_name,
            failed=bool(failed),
            escalate=escalate,
            switch=memory.switch,
        )
        if target.takes_switch:
            memory.switch = None
        name, why = target.name, target.why
        memory.route_name = name
        previous = state.pinned_model
        calls = expected_calls(rt.start.plan, state.steps, step)
        # The failed pin is excluded, so nothing is warm on a deployment that may answer.
        held = memory.prompt_heads.get(previous or "") if not failed else None
        warm = warm_input_tokens(held, head, workflow.now()) if head is not None else 0
        request = route_request(
            rt.start,
            step,
            name=name,
            boundary=boundary,
            current=previous,
            tokens_so_far=state.input_tokens + state.output_tokens,
            prompt_chars=prompt_chars,
            exclude=failed or {},
            expected_calls=calls,
            warm_input_tokens=warm,
            horizon_steps=steps_left(rt.start.plan, step),
            # A failover passes no head: its prefix is not told (priced as this step's).
            session_prefix_tokens=(
                session_prefix_tokens(rt.start.plan, step, measured(head, held))
                if head is not None
                else 0
            ),
        )
        earlier = memory.estimates.get(step.id) if failed else None
        ahead, rt.first_route = rt.first_route, None
        if (
            ahead is not None
            and boundary is Boundary.SESSION_START
            and answers(ahead.request, request)
        ):
            # `start_session` asked this very question (budget reserved with it).
            decision, request = ahead.decision, ahead.request
        else:
            decision = await self._ask(
                RouteInput(
                    ctx=rt.ctx(step.id),
                    request=request,
                    reserve_budget=boundary is Boundary.SESSION_START,
                    difficulty_estimate=earlier,
                )
            )
        cause = failed.get(previous or "") if failed else None
        if failed:
            why += f" ({decision.failover})"
        self.failover = decision.failover
        if decision.difficulty_estimate is not None and earlier is None:
            memory.estimates[step.id] = decision.difficulty_estimate
        reason = f"{why}; {decision.reason}"
        state.pinned_model = decision.deployment
        state.model_timeline.append(
            ModelPin(
                step_id=step.id,
                model=decision.deployment,
                boundary=boundary,
                reason=reason,
                cause=cause,
            )
        )
        rt.event(
            EventKind.MODEL_PINNED,
            step.id,
            key=f"model_pinned:{attempt}" if attempt else None,
            model=decision.deployment,
            payload={
                "boundary": boundary.value,
                "reason": reason,
                "previous": previous,
                "cause": cause,
                "policy": decision.policy,
                "name": name,
                "task_type": step.task_type,
                "rules_fired": list(decision.rules_fired),
                "budget_used": decision.budget_used,
                "difficulty_estimate": (
                    decision.difficulty_estimate.model_dump(mode="json")
                    if decision.difficulty_estimate is not None
                    else None
                ),
                "difficulty_reused": earlier is not None,
                "expected_calls": calls,
                "warm_input_tokens": warm,
                "horizon_steps": request.horizon_steps,
                "session_prefix_tokens": request.session_prefix_tokens,
                "candidates": [c.model_dump(mode="json") for c in decision.candidates],
            },
        )
        return decision.deployment
