"""Record metrics around the session activities, on the worker that runs them.

An interceptor rather than calls sprinkled through the activities: it reads each
activity's typed input and result, so the activities stay about their work, and workflow
code never touches a metric (a replay must not count anything again). A bookkeeping
activity whose completion is lost (its worker dies right after the write) runs again and
may count its events twice; metrics are for operations, the audit store is the record.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from temporalio import activity
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from orchestrator.observability.metrics import METRICS, Metrics, reason_label
from orchestrator.session import names
from orchestrator.session.types import (
    ApprovalDecisionInput,
    ApprovalRequestInput,
    CallCheck,
    CallCheckInput,
    FinishSessionInput,
    ModelCallInput,
    ModelCallResult,
    RecordEventsInput,
    SkillCallInput,
    SkillCallResult,
    WorkflowEvent,
)
from orchestrator.store.records import ApprovalStatus, EventKind
from orchestrator.store.store import Store

__all__ = ["DEFAULT_TENANT", "MetricsInterceptor"]

DEFAULT_TENANT = "default"
"""The tenant label of sessions started without one."""


class MetricsInterceptor(Interceptor):
    """Worker interceptor that feeds `Metrics` from the session activities.

    Args:
        store: Read for approval decision latency (request and decision may be recorded
            by different workers).
        metrics: Where to record; the process's `METRICS` by default.
    """

    def __init__(self, store: Store, metrics: Metrics = METRICS) -> None:
        self.store = store
        self.metrics = metrics

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        """Wrap activity execution."""
        return _Inbound(next, self)


class _Inbound(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, root: MetricsInterceptor) -> None:
        super().__init__(next)
        self._root = root
        self._record: dict[str, Callable[[Any, Any], Any]] = {
            names.CALL_MODEL: self._model_call,
            names.CALL_SKILL: self._skill_call,
            names.RECORD_EVENTS: self._events,
            names.FINISH_SESSION: self._finish,
            names.RECORD_APPROVAL_REQUEST: self._approval_request,
            names.REQUEST_APPROVAL: self._approval_request,
            names.CHECK_CALL: self._call_check,
        }

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        name = info.activity_type
        arg = input.args[0] if input.args else None
        # A skill call carrying the approval that let it run records that decision first
        # (`patches.GATE_GENERATION`); counted once, on its first attempt, however it ends.
        rider = arg.decision if isinstance(arg, SkillCallInput) and info.attempt == 1 else None
        started = time.perf_counter()
        try:
            result = await super().execute_activity(input)
        except BaseException:
            if name == names.CALL_MODEL and isinstance(arg, ModelCallInput):
                self._root.metrics.provider_latency.labels(arg.model, "", "error").observe(
                    time.perf_counter() - started
                )
            if rider is not None:
                await self._approval_decision(rider)
            raise
        if rider is not None:
            await self._approval_decision(rider)
        if name == names.RECORD_APPROVAL_DECISION and isinstance(arg, ApprovalDecisionInput):
            await self._approval_decision(arg)
        elif name in self._record:
            self._record[name](arg, result)
        return result

    def _model_call(self, call: object, result: object) -> None:
        if not (isinstance(call, ModelCallInput) and isinstance(result, ModelCallResult)):
            return
        # Events pending before the call ride in it (`bookkeeping-batch-v1`).
        self._count_events(call.events)
        m = self._root.metrics
        tenant = call.tenant or DEFAULT_TENANT
        usage = result.response.usage
        m.tokens.labels(tenant, call.model, "input").inc(usage.input_tokens)
        m.tokens.labels(tenant, call.model, "output").inc(usage.output_tokens)
        m.cost.labels(tenant, call.model).inc(result.cost_usd)
        m.provider_latency.labels(call.model, result.deployment, "ok").observe(
            result.duration_ms / 1000
        )

    def _skill_call(self, call: object, result: object) -> None:
        if not (isinstance(call, SkillCallInput) and isinstance(result, SkillCallResult)):
            return
        if result.ok and call.validate_only:
            return
        outcome = "ok" if result.ok else result.error_kind or "error"
        self._root.metrics.tool_calls.labels(call.skill, outcome).inc()

    def _events(self, batch: object, _result: object) -> None:
        if isinstance(batch, RecordEventsInput):
            self._count_events(batch.events)

    def _finish(self, finish: object, _result: object) -> None:
        # The last step's events ride in finish_session (`bookkeeping-batch-v1`).
        if isinstance(finish, FinishSessionInput):
            self._count_events(finish.events)

    def _count_events(self, events: list[WorkflowEvent]) -> None:
        m = self._root.metrics
        for event in events:
            p = event.payload
            if event.kind is EventKind.MODEL_PINNED and event.model:
                m.routing_decisions.labels(event.model, reason_label(str(p.get("reason")))).inc()
                previous = p.get("previous")
                if previous and previous != event.model:
                    m.model_switches.labels(str(p.get("boundary") or "unknown")).inc()
            elif event.kind is EventKind.TOOL_ERROR:
                # Decided in the workflow: an unknown tool or unparsable arguments
                # (`tool`), or a skill whose every attempt failed (`skill`).
                if "skill" in p:
                    m.tool_calls.labels(str(p["skill"]), "failed").inc()
                else:
                    m.tool_calls.labels(str(p.get("tool")), "invalid_call").inc()

    def _call_check(self, check: object, result: object) -> None:
        # A gated call checked, and requested if gated (`patches.CHECK_GENERATION`): what
        # a validate-only `call_skill` and `request_approval` counted.
        if not (isinstance(check, CallCheckInput) and isinstance(result, CallCheck)):
            return
        self._count_events(check.events)
        self._skill_call(check.call, result.result)
        if result.approval is not None:
            self._root.metrics.approvals_requested.labels(result.approval.kind).inc()

    def _approval_request(self, request: object, _result: object) -> None:
        if isinstance(request, ApprovalRequestInput):
            # The events pending before it ride in `request_approval` (its old, separate
            # `record_approval_request` never carries any).
            self._count_events(request.events)
            self._root.metrics.approvals_requested.labels(request.approval.kind).inc()

    async def _approval_decision(self, request: ApprovalDecisionInput) -> None:
        m = self._root.metrics
        decision = request.decision
        m.approvals_decided.labels("approved" if decision.approve else "rejected").inc()
        if request.requested_at is not None:
            # What the workflow sent says it all: no read of the request back.
            waited = datetime.now(UTC) - request.requested_at
            m.approval_latency.observe(max(waited.total_seconds(), 0.0))
            if not decision.approve and request.skill:
                m.tool_calls.labels(request.skill, "rejected").inc()
            return
        # Sent by a run that does not know when it asked (it continued as new while it
        # waited), or by a worker from before `requested_at`: the store knows.
        record = await self._root.store.get_approval(decision.approval_id)
        if record is None or record.decided_at is None:
            return
        m.approval_latency.observe((record.decided_at - record.requested_at).total_seconds())
        if record.status is ApprovalStatus.REJECTED and record.skill:
            m.tool_calls.labels(record.skill, "rejected").inc()
