"""Cost and model-call limits: the check that stops a runaway session before its next call.

A tool loop that never ends is stopped by its step's `max_rounds`; a plan that is simply
too expensive, or a loop spread over many steps, by the plan's `limits` and an agent
step's `max_cost_usd`. The check reads only the session's own state (what its model calls
cost so far, how many it made), so it is pure and deterministic, and a plan without limits
takes exactly the path it took before they existed: no workflow patch is needed.
"""

from __future__ import annotations

from orchestrator.plans.models import AgentStep, Plan
from orchestrator.session.types import SessionState, StepState

__all__ = ["fanout_limit", "limit_reached", "usd"]


def usd(amount: float) -> str:
    """Dollars as people read them: `$0.25`, `$0.000123` (six decimals at most)."""
    text = f"{amount:.6f}".rstrip("0").rstrip(".")
    return f"${text or '0'}"


def limit_reached(
    plan: Plan, step: AgentStep, session: SessionState, state: StepState
) -> str | None:
    """Why the next model call of `step` may not be made, or None when it may."""
    limits = plan.limits
    max_cost = limits.max_cost_usd if limits is not None else None
    max_calls = limits.max_model_calls if limits is not None else None
    if max_cost is not None and session.cost_usd >= max_cost:
        return f"cost limit {usd(max_cost)} reached ({usd(session.cost_usd)} spent)"
    if max_calls is not None and session.model_calls >= max_calls:
        return f"model call limit {max_calls} reached ({session.model_calls} calls made)"
    if step.max_cost_usd is not None and state.cost_usd >= step.max_cost_usd:
        return (
            f"step cost limit {usd(step.max_cost_usd)} reached"
            f" ({usd(state.cost_usd)} spent in step {step.id!r})"
        )
    return None


def fanout_limit(plan: Plan, session: SessionState, calls: int) -> str | None:
    """Why a step that makes `calls` model calls at once (an ensemble) may not start.

    Its calls run in parallel, so the plan's limits are checked for all of them before
    any is made: the spend so far, and the call count the step would reach.
    """
    limits = plan.limits
    if limits is None:
        return None
    if limits.max_cost_usd is not None and session.cost_usd >= limits.max_cost_usd:
        return f"cost limit {usd(limits.max_cost_usd)} reached ({usd(session.cost_usd)} spent)"
    max_calls = limits.max_model_calls
    if max_calls is not None and session.model_calls + calls > max_calls:
        return (
            f"model call limit {max_calls} would be passed: {session.model_calls} calls made,"
            f" this step makes up to {calls}"
        )
    return None
