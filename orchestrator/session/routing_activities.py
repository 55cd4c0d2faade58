"""The routing activities: ask the router at a boundary, and settle budgets at the end.

The decision reads live metrics and budget figures, so it cannot be made in workflow
code; it runs as a (local) activity whose answer is recorded in the history, and replays
read the recorded answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import cel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from orchestrator.exceptions import (
    BudgetExceededError,
    DeploymentUnavailable,
    PermanentError,
    ProviderConnectionError,
    ProviderError,
    ProviderHTTPError,
    RoutingError,
    to_failure,
)
from orchestrator.logs import get_logger
from orchestrator.observability.metrics import METRICS
from orchestrator.routing.budgets import applicable, refusal, reservation, share_used
from orchestrator.routing.classifier import classify_difficulty
from orchestrator.routing.complexity import DifficultyEstimate
from orchestrator.routing.learning import Signal
from orchestrator.routing.metrics import LiveMetrics
from orchestrator.routing.types import RoutingDecision
from orchestrator.runtime import Runtime
from orchestrator.session import names
from orchestrator.session.outcomes import record_outcome
from orchestrator.session.types import (
    Ack,
    CheckAnswerInput,
    CheckAnswerResult,
    RouteInput,
    SettleBudgetInput,
)
from orchestrator.store.budgets import Spend
from orchestrator.store.records import AuditEvent
from orchestrator.store.store import Store

__all__ = ["LONG_RETRY_AFTER", "RoutingActivities", "failure_error", "record_spend"]

log = get_logger(__name__)


class RoutingActivities:
    """Routing activities bound to one `Runtime`."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def all(self) -> list[Callable[..., Any]]:
        """Every routing activity, for a worker's `activities=`."""
        return [self.route, self.settle_budget, self.check_answer]

    async def _budget_used(self, call: RouteInput) -> float:
        """Reserve (at session start) and return the share of the tightest budget in use.

        Raises:
            ApplicationError: a `BudgetExceededError` when a reservation is refused.
        """
        req = call.request
        budgets = applicable(self.runtime.models.budgets, req.tenant, req.team)
        if not budgets:
            return 0.0
        now = datetime.now(UTC)
        ledger = self.runtime.store.budgets
        wanted = [reservation(b, now) for b in budgets]
        if call.reserve_budget:
            refused = await ledger.reserve(call.ctx.session_id, wanted)
            if refused is not None:
                budget = budgets[wanted.index(refused)]
                usage = await ledger.usage(refused.scope, refused.period)
                raise to_failure(BudgetExceededError(refusal(budget, usage)))
        shares = [
            share_used(b, await ledger.usage(w.scope, w.period))
            for b, w in zip(budgets, wanted, strict=True)
        ]
        return max(shares)

    @activity.defn(name=names.ROUTE)
    async def route(self, call: RouteInput) -> RoutingDecision:
        """Choose the deployment for a step at a boundary, with every candidate's reason."""
        return await self.decide(call)

    async def decide(self, call: RouteInput) -> RoutingDecision:
        """The routing decision, inside any activity (`route`, or `start_session` ahead).

        Raises:
            ApplicationError: a `RoutingError` (no deployment fits) or a
                `BudgetExceededError` (the session's reservation was refused).
        """
        used = await self._budget_used(call)
        req, router = call.request, self.runtime.router
        try:
            if router.policy(req.policy)[1].learning.enabled:
                # The outcomes recorded so far; the decision's candidates carry the estimates
                # it used, and a replay reads this activity's recorded result, not the store.
                tallies = await self.runtime.store.outcomes.tallies(req.tenant, req.task_type)
                router.learned.put(req.tenant, req.task_type, tallies)
            guess = None
            if req.difficulty is None:
                # A failover reuses the step's estimate: a classifier is asked at a safe
                # boundary only (its cost was spent then).
                reused = call.difficulty_estimate
                guess = (
                    reused.model_copy(update={"cost_usd": 0.0, "tokens": 0})
                    if reused is not None
                    else await self._classify(call)
                )
            decision = router.decide(req, budget_used=used, difficulty_estimate=guess)
        except RoutingError as exc:
            raise to_failure(exc) from None
        if decision.budget_used != used:
            decision = decision.model_copy(update={"budget_used": used})
        log.info(
            "routed",
            session_id=call.ctx.session_id,
            step_id=call.request.step_id,
            boundary=call.request.boundary,
            deployment=decision.deployment,
            reason=decision.reason,
            budget_used=round(used, 3),
        )
        return decision

    async def _classify(self, call: RouteInput) -> DifficultyEstimate | None:
        """The classifier deployment's estimate of an undeclared difficulty, if one is named.

        None without a classifier (the router then uses its heuristic). The call goes
        through the registry's provider like any model call: it feeds the live metrics, and
        its cost goes to the session's budgets (once per activity, however often retried)
        and the cost metrics. The estimate lands in the recorded decision, so a replay
        never asks again.
        """
        config = self.runtime.models.routing.complexity
        if config.classifier is None:
            METRICS.difficulty_estimates.labels("heuristic", "ok").inc()
            return None
        req = call.request
        deployment, entry, _provider = self.runtime.models.resolve(config.classifier)
        _entry, provider = self.runtime.model(deployment)
        asked = await classify_difficulty(
            deployment,
            entry,
            provider,
            req.prompt,
            tools=req.tools,
            output_schema=req.output_schema,
            config=config,
        )
        guess = asked.estimate
        METRICS.difficulty_estimates.labels(guess.source, asked.result).inc()
        if asked.failure is not None and asked.failure.retryable:
            self.runtime.metrics.record_failure(
                deployment, type(asked.failure).__name__, retry_after=None
            )
        elif asked.result in ("ok", "unparseable"):
            self.runtime.metrics.record_success(deployment, asked.duration_ms)
        if guess.cost_usd or guess.tokens:
            info = activity.info()
            await record_spend(
                self.runtime.store,
                call.ctx.session_id,
                guess.cost_usd,
                guess.tokens,
                key=f"{info.workflow_run_id}:{info.activity_id}:classifier",
            )
            METRICS.classifier_cost.labels(req.tenant, deployment).inc(guess.cost_usd)
            METRICS.cost.labels(req.tenant, deployment).inc(guess.cost_usd)
        log.info(
            "difficulty classified",
            session_id=call.ctx.session_id,
            step_id=req.step_id,
            classifier=deployment,
            difficulty=guess.difficulty.value,
            source=guess.source,
            fallback=guess.fallback,
            ms=round(asked.duration_ms, 1),
        )
        return guess

    @activity.defn(name=names.CHECK_ANSWER)
    async def check_answer(self, call: CheckAnswerInput) -> CheckAnswerResult:
        """Evaluate a cascade step's `accept` CEL condition over its final answer.

        With a credit, the result is an outcome of the deployment that answered: accepted,
        or escalated (the router learns from both).
        """
        try:
            result = cel.evaluate(call.expression, {"answer": call.answer})
        except (RuntimeError, ValueError, TypeError) as exc:
            checked = CheckAnswerResult(ok=False, detail=f"accept failed to evaluate: {exc}")
        else:
            checked = (
                CheckAnswerResult(ok=True)
                if result is True
                else CheckAnswerResult(
                    ok=False, detail=f"accept {call.expression!r} gave {result!r}"
                )
            )
        if call.credit is not None:
            info = activity.info()
            await record_outcome(
                self.runtime.store,
                call.credit,
                Signal.ACCEPTED if checked.ok else Signal.ESCALATED,
                key=f"{info.workflow_run_id}:{info.activity_id}:accept",
                session_id=call.ctx.session_id,
                step_id=call.ctx.step_id,
                detail=checked.detail or None,
            )
        return checked

    @activity.defn(name=names.SETTLE_BUDGET)
    async def settle_budget(self, call: SettleBudgetInput) -> Ack:
        """Give back the unspent part of the session's reservations."""
        await self.runtime.store.budgets.settle(call.ctx.session_id)
        return Ack()


LONG_RETRY_AFTER = 30.0
"""A `Retry-After` longer than this is not waited out inside the step: the call fails as
`DeploymentUnavailable` and the workflow fails over to another deployment."""


def failure_error(
    metrics: LiveMetrics, deployment: str, exc: ProviderError, *, endpoint_retries: bool = False
) -> ApplicationError:
    """Feed a failed call to the live metrics and build the activity's error for it.

    Retryable failures (429, 5xx, timeouts, resets) are retried by Temporal, after the
    endpoint's retry hint when it gave one; client errors are not retried. The call fails
    over at once instead (`DeploymentUnavailable`) when waiting would be long, when the
    endpoint answered `x-should-retry: false` to a 429 or 5xx, or when the deployment
    declares `endpoint_retries` (its gateway has already retried what it answered).
    """
    http = exc if isinstance(exc, ProviderHTTPError) else None
    status = http.status_code if http is not None else None
    delay = http.retry_after if http is not None else None
    refused = http is not None and http.should_retry is False and http.deployment_side
    cause = f"HTTP {status}" if status is not None else type(exc).__name__
    if exc.retryable or refused:
        metrics.record_failure(deployment, cause, rate_limited=status == 429, retry_after=delay)
    if delay is not None and delay > LONG_RETRY_AFTER:
        return _unavailable(deployment, exc, f"retry after {delay:.0f}s")
    if refused:
        return _unavailable(deployment, exc, "the endpoint says not to retry")
    if exc.retryable and endpoint_retries and not isinstance(exc, ProviderConnectionError):
        return _unavailable(deployment, exc, "the endpoint retries itself")
    message = f"model {deployment!r}: {exc}"
    # A provider error that retrying cannot fix crosses as `PermanentError`: the step
    # fails; only the retryable kinds (after their retries) make the workflow fail over.
    return to_failure(
        exc if exc.retryable else PermanentError(message),
        message=message,
        next_retry_delay=None if delay is None else timedelta(seconds=delay),
    )


def _unavailable(deployment: str, exc: ProviderError, why: str) -> ApplicationError:
    return to_failure(DeploymentUnavailable(f"model {deployment!r}: {exc} ({why})"))


async def record_spend(
    store: Store,
    session_id: str,
    cost_usd: float,
    tokens: int,
    *,
    key: str,
    events: Sequence[AuditEvent] = (),
) -> None:
    """Add a call's cost to every budget the session holds a reservation in, once per `key`.

    `events` (the call's audit event) are written in the same transaction: one commit per
    model call, with a budget or without.
    """
    scopes = await store.budgets.session_scopes(session_id)
    spend = Spend(session_id, scopes, cost_usd, tokens, key) if scopes else None
    if spend is not None or events:
        await store.append_events(events, spend=spend)
