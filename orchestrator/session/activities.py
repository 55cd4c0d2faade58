"""The session workflow's activities: every piece of I/O it needs.

Each activity writes its own audit event with a key derived from the workflow and the
point in it, so a retried activity records once. Errors a retry cannot fix (a 4xx from a
provider, an unknown model) are raised non-retryable, with a message that names what.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from temporalio import activity

from orchestrator.approvals.people import approvers_file, load_approvers
from orchestrator.approvals.rules import policy_for
from orchestrator.cache.service import CacheHit
from orchestrator.cache.sessions import SessionCache
from orchestrator.connectors.audit import audited_mcp_call, mcp_target
from orchestrator.events.publisher import Tags
from orchestrator.exceptions import (
    ConfigError,
    PayloadTooLargeError,
    PermanentError,
    ProviderError,
    SessionEnded,
    SkillArgumentsError,
    SkillOutputError,
    SkillToolError,
    UnknownSkillError,
    to_failure,
)
from orchestrator.logs import get_logger
from orchestrator.providers.messages import ChatMessage, ModelRequest, ModelResponse, Usage
from orchestrator.providers.streaming import DeltaSink, ModelDelta, answer_deltas
from orchestrator.providers.usage import cache_counts
from orchestrator.routing.learning import Signal
from orchestrator.runtime import Runtime
from orchestrator.session import names
from orchestrator.session.approval_activities import ApprovalActivities
from orchestrator.session.approval_requests import call_summary, pending_request
from orchestrator.session.last_call import LastCallEnd, final_output, step_completed_payload
from orchestrator.session.outcomes import event_signal, record_outcome
from orchestrator.session.payloads import (
    INLINE_OUTPUT_BYTES,
    MAX_ANSWER_BYTES,
    RefusedAnswer,
    json_size,
    model_size,
    stand_in,
    too_large,
)
from orchestrator.session.pinning import first_route_request
from orchestrator.session.resolution import (
    RESOLVE_ERRORS,
    resolve,
    route_ahead,
    setup_of,
)
from orchestrator.session.routing_activities import RoutingActivities, failure_error, record_spend
from orchestrator.session.types import (
    Ack,
    ApprovalDecisionInput,
    ApprovalPolicy,
    ApprovalRequestInput,
    CallCheck,
    CallCheckInput,
    CallContext,
    FinishSessionInput,
    ModelCallInput,
    ModelCallResult,
    RecordEventsInput,
    SessionClosed,
    SessionClosing,
    SessionOpening,
    SessionSetup,
    SessionStartInput,
    SkillCallInput,
    SkillCallResult,
    WorkflowEvent,
)
from orchestrator.skills.approval import condition_holds
from orchestrator.skills.models import SkillContext, SkillSpec
from orchestrator.store.records import (
    ApprovalRecord,
    ApprovalStatus,
    AuditEvent,
    EventKind,
    SessionRecord,
    SessionStatus,
)
from orchestrator.types import JsonObject

__all__ = ["SessionActivities", "beating_sink"]

log = get_logger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


@contextlib.asynccontextmanager
async def _bound(ctx: CallContext) -> AsyncIterator[None]:
    """Bind the session ids to every log line written inside."""
    with structlog.contextvars.bound_contextvars(
        session_id=ctx.session_id,
        workflow_id=ctx.workflow_id,
        run_id=ctx.run_id,
        step_id=ctx.step_id,
    ):
        yield


@contextlib.asynccontextmanager
async def _heartbeating() -> AsyncIterator[None]:
    """Heartbeat while a long call runs, so a dead worker is noticed quickly."""
    info = activity.info()
    if info.is_local or not info.heartbeat_timeout:
        yield
        return
    every = max(info.heartbeat_timeout.total_seconds() / 3, 0.05)
    loop = asyncio.get_running_loop()
    timer: asyncio.TimerHandle | None = None

    def beat() -> None:
        nonlocal timer
        activity.heartbeat()
        timer = loop.call_later(every, beat)

    # The first beat only after `every`: the server times the heartbeat timeout from the
    # activity's start, and each beat is a call to it, so a call that ends sooner (most
    # tool calls, a fast model) needs none. A timer, not a task: nothing to schedule, cancel
    # and await on every call (the timer runs in this activity's context, as a task would).
    timer = loop.call_later(every, beat)
    try:
        yield
    finally:
        timer.cancel()  # the one pending: `beat` replaces it before it returns


def beating_sink(publish: DeltaSink | None, *, every: float = 1.0) -> DeltaSink:
    """A delta sink that heartbeats as the answer streams in, then passes each delta on.

    A stream that keeps arriving is proof of progress, so the activity says so, at most
    once per `every` seconds (Temporal throttles further); `_heartbeating` covers the wait
    for the first delta. The first beat comes `every` after the sink was made, not with the
    first delta: the server times the heartbeat timeout from the activity's start, and each
    beat is a call to it (and a write of the activity's state there), so an answer streamed
    in under `every` (a fast model, the scripted one) needs none.
    """
    info = activity.info()
    beats = not info.is_local and info.heartbeat_timeout is not None
    last = time.monotonic()

    async def sink(delta: ModelDelta) -> None:
        nonlocal last
        now = time.monotonic()
        if beats and now - last >= every:
            activity.heartbeat()
            last = now
        if publish is not None:
            await publish(delta)

    return sink


EVIDENCE_BYTES = 8 * 1024
"""A tool result up to this size is kept on its audit event, for the approval inbox."""


def _said(text: str | None) -> dict[str, str]:
    """The model's words beside its calls, for the audit event: an approver's "why"."""
    return {"text": text[:EVIDENCE_BYTES]} if text and text.strip() else {}


class SessionActivities:
    """Activities bound to one `Runtime`."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._routing = RoutingActivities(runtime)
        self._skill_state_dir: Path | None = None

    @property
    def skill_state_dir(self) -> Path:
        """The runtime's folder for skills' own state, made and resolved once per worker.

        `Runtime.skill_state_dir` makes it and resolves the state folder's path on each
        read: file-system calls on every tool call.
        """
        if self._skill_state_dir is None:
            self._skill_state_dir = self.runtime.skill_state_dir
        return self._skill_state_dir

    def all(self) -> list[Callable[..., Any]]:
        """Every activity, for a worker's `activities=`."""
        return [
            self.start_session,
            self.call_model,
            self.call_skill,
            self.record_events,
            self.record_approval_request,
            self.request_approval,
            self.check_call,
            self.record_approval_decision,
            self.finish_session,
            self.closed_by_call,
            *self._routing.all(),
            *ApprovalActivities(self.runtime).all(),
        ]

    @staticmethod
    def _event_key(ctx: CallContext, key: str) -> str:
        return f"{ctx.workflow_id}:{ctx.step_id or '-'}:{key}"

    def _event(self, ctx: CallContext, key: str, kind: EventKind, **fields: Any) -> AuditEvent:
        return AuditEvent(
            event_key=self._event_key(ctx, key),
            session_id=ctx.session_id,
            workflow_id=ctx.workflow_id,
            run_id=ctx.run_id,
            kind=kind,
            step_id=ctx.step_id,
            created_at=_now(),
            **fields,
        )

    @activity.defn(name=names.START_SESSION)
    async def start_session(self, start: SessionStartInput) -> SessionSetup:
        """Resolve the skills and models the session will use, and record the session.

        A starter that holds the runtime resolves the same ahead instead, and the run then
        skips this activity (`session.resolution`, `patches.OPENING_GENERATION`).
        """
        info = activity.info()
        ctx = CallContext(
            session_id=start.session_id,
            workflow_id=info.workflow_id,
            run_id=info.workflow_run_id,
        )
        try:
            resolved = resolve(self.runtime, start)
        except RESOLVE_ERRORS as exc:
            raise to_failure(PermanentError(f"plan {start.plan.name!r}: {exc}")) from None
        await self._open(ctx, SessionOpening.of(start, resolved.specs), [])
        request = first_route_request(start, {spec.name: spec for spec in resolved.specs})
        first = await route_ahead(self._routing, request, ctx)
        return setup_of(self.runtime, resolved, first)

    async def _open(
        self,
        ctx: CallContext,
        opening: SessionOpening,
        events: list[AuditEvent],
        status: SessionStatus = SessionStatus.RUNNING,
    ) -> None:
        """The session row, its `session_started` event and `events` after it.

        One transaction; a retry rewrites nothing (the row's run id and status are set
        again).
        """
        await self.runtime.store.record_session_start(
            SessionRecord(
                session_id=ctx.session_id,
                workflow_id=ctx.workflow_id,
                run_id=ctx.run_id,
                plan_name=opening.plan_name,
                plan_version=opening.plan_version,
                tenant=opening.tenant,
                team=opening.team,
                status=status,
                input=opening.input,
                started_at=_now(),
            ),
            events=[
                self._event(
                    ctx.model_copy(update={"step_id": None}),
                    "session_started",
                    EventKind.SESSION_STARTED,
                    payload={
                        "plan": opening.plan_name,
                        "plan_version": opening.plan_version,
                        "skills": dict(opening.skills),
                        "skill_refs": list(opening.skill_refs),
                        "deprecated": dict(opening.deprecated),
                        "requested_by": opening.requested_by,
                    },
                ),
                *events,
            ],
        )
        async with _bound(ctx):
            refs = [f"{name}@{version}" for name, version in opening.skills.items()]
            log.info("session started", plan=opening.plan_name, skills=refs)
            if opening.deprecated:
                log.warning("session uses deprecated skill versions", deprecated=opening.deprecated)

    @activity.defn(name=names.CALL_MODEL)
    async def call_model(self, call: ModelCallInput) -> ModelCallResult:
        """Ask the pinned model for the next answer of the tool loop, streaming its deltas.

        The deltas go to watchers tagged with the step, round, step attempt and this
        activity's Temporal attempt; when the attempt fails after some were sent (a cut
        stream, an answer refused, a cancel), an `abandoned` delta tells watchers to drop
        that attempt's text. A worker that dies sends nothing: its retry streams under a
        larger attempt, which tells the same.
        """
        if call.closing is not None and (call.attempt or activity.info().attempt > 1):
            # A retry (or a step's re-run) of a call that may have closed the session: an
            # earlier attempt that wrote the end and died before it reported must not be
            # asked again, nor its end written twice (nor the row's status reopened).
            done = await self._closed_before(call, call.closing)
            if done is not None:
                return done
        if call.opening is not None:
            # The run's first activity: the session row and its first event go first.
            await self._open(call.ctx, call.opening, _audited(call.ctx, call.events))
            await self._credit_outcomes(call.ctx, call.events)
        elif call.events:  # most rounds carry none: no store call for them
            await self._write_events(call.ctx, call.events)
        publisher = self.runtime.deltas
        if publisher is None:
            return await self._call_model(call, None)
        tags = Tags(
            call.ctx.session_id,
            call.ctx.step_id,
            call.round,
            call.attempt,
            activity.info().attempt,
        )
        try:
            return await self._call_model(call, publisher.sink(tags), publisher.drain)
        except BaseException:
            publisher.abandoned(tags)
            raise

    async def _from_cache(
        self,
        call: ModelCallInput,
        hit: CacheHit,
        deployment: str,
        max_tokens: int | None,
        publish: DeltaSink | None,
        sent: Callable[[], Awaitable[None]] | None,
    ) -> ModelCallResult:
        """A step's answer from the response cache: no tokens spent, the hit audited."""
        response = SessionCache.answer(hit)
        if publish is not None:
            for delta in answer_deltas(response):
                await publish(delta)
        if sent is not None:
            await sent()
        tool_calls = [tc.name for tc in response.message.tool_calls]
        point = (
            f"model_call:{call.attempt}.{call.round}"
            if call.attempt
            else f"model_call:{call.round}"
        )
        await self.runtime.store.append_event(
            self._event(
                call.ctx,
                point,
                EventKind.MODEL_CALL,
                model=call.model,
                input_tokens=0,
                output_tokens=0,
                cost_usd=0.0,
                duration_ms=0.0,
                payload={
                    "round": call.round,
                    "deployment": hit.deployment,
                    "tool_calls": tool_calls,
                    "final": not tool_calls,
                    "attempt": call.attempt,
                    "cache": hit.kind,
                    "similarity": hit.similarity,
                    "saved_usd": hit.saved_usd,
                },
            )
        )
        return ModelCallResult(
            response=response,
            cost_usd=0.0,
            deployment=deployment,
            duration_ms=0.0,
            max_tokens=max_tokens,
        )

    async def _call_model(
        self,
        call: ModelCallInput,
        publish: DeltaSink | None,
        sent: Callable[[], Awaitable[None]] | None = None,
    ) -> ModelCallResult:
        """The model's answer, its spend and its `model_call` event.

        `sent` resolves once every delta published before it left for the watchers: the
        deltas go from a thread of their own, and the event's commit notifies watchers by
        another way (PostgreSQL's NOTIFY, the worker's notice), so without this wait the
        call's event could reach a watcher before the last of its text.
        """
        async with _bound(call.ctx):
            try:
                entry, provider = self.runtime.model(call.model)
            except ConfigError as exc:
                raise to_failure(PermanentError(str(exc))) from None
            max_tokens = call.max_tokens or entry.max_tokens
            request = ModelRequest(
                model=entry.model,
                messages=call.messages,
                tools=call.tools,
                max_tokens=max_tokens,
                temperature=call.temperature,
                stream=entry.stream,
                prompt_cache=entry.caches_prompts,
            )
            cached = await self.runtime.response_cache.lookup(call, request)
            if cached.hit is not None:
                return await self._from_cache(
                    call, cached.hit, entry.model, max_tokens, publish, sent
                )
            started = time.perf_counter()
            try:
                async with _heartbeating():
                    response = await provider.complete(request, on_delta=beating_sink(publish))
            except ProviderError as exc:
                log.warning(
                    "model call failed", model=call.model, error=str(exc), retryable=exc.retryable
                )
                raise failure_error(
                    self.runtime.metrics, call.model, exc, endpoint_retries=entry.endpoint_retries
                ) from None
            duration_ms = (time.perf_counter() - started) * 1000
            if sent is not None:
                await sent()
            self.runtime.metrics.record_success(call.model, duration_ms)
            usage = response.usage
            cost = entry.usage_cost(usage)
            tool_calls = [tc.name for tc in response.message.tool_calls]
            point = f"model_call:{call.round}"
            if call.attempt:
                point = f"model_call:{call.attempt}.{call.round}"
            # A retried activity asked the model again (and may have got another answer):
            # a second call, recorded under its own key; the spend stays keyed by the point.
            tries = activity.info().attempt
            event = self._event(
                call.ctx,
                point if tries == 1 else f"{point}:try{tries}",
                EventKind.MODEL_CALL,
                model=call.model,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cost_usd=cost,
                duration_ms=duration_ms,
                payload={
                    "round": call.round,
                    "deployment": entry.model,
                    "tool_calls": list(tool_calls),
                    "final": not tool_calls,
                    "attempt": call.attempt,
                    **({"try": tries} if tries > 1 else {}),
                    **cache_counts(usage),
                    **_said(response.message.content),
                },
            )
            result = ModelCallResult(
                response=response,
                cost_usd=cost,
                deployment=entry.model,
                duration_ms=duration_ms,
                max_tokens=max_tokens,
            )
            size = model_size(result)  # refused below when too large: never a closing
            closing = call.closing
            if closing is not None and not (
                tool_calls or response.truncated or size > MAX_ANSWER_BYTES
            ):
                result.closed = SessionClosed(
                    input_tokens=closing.input_tokens + usage.input_tokens,
                    output_tokens=closing.output_tokens + usage.output_tokens,
                    cost_usd=closing.cost_usd + cost,
                )
            spend_key = self._event_key(call.ctx, point)
            if result.closed is None:
                # Spend, keyed by the point in the loop (a retried call adds nothing twice),
                # and the call's event: one transaction.
                await record_spend(
                    self.runtime.store,
                    call.ctx.session_id,
                    cost,
                    usage.total_tokens,
                    key=spend_key,
                    events=[event],
                )
            else:
                await self._close(call, result, event, spend_key)
            await self.runtime.response_cache.save(cached, response, entry.model, cost)
            log.info(
                "model call",
                model=call.model,
                round=call.round,
                tool_calls=tool_calls,
                tokens=usage.total_tokens,
                ms=round(duration_ms, 1),
            )
            if size > MAX_ANSWER_BYTES:
                # Temporal would refuse it (or the next call carrying it); asking again
                # gets the same answer. Spend and event are recorded: the call was made.
                message = too_large(
                    f"the answer of {call.model} (round {call.round})", size, MAX_ANSWER_BYTES
                )
                log.error("model answer too large", model=call.model, size_bytes=size)
                spent = RefusedAnswer(
                    input_tokens=usage.input_tokens,
                    output_tokens=usage.output_tokens,
                    cost_usd=cost,
                )
                raise to_failure(PayloadTooLargeError(message), spent.model_dump())
            return result

    async def _close(
        self, call: ModelCallInput, result: ModelCallResult, event: AuditEvent, spend_key: str
    ) -> None:
        """The call's spend and event, and the session's end its final answer makes.

        What `finish_session` would write after it, from the same functions the workflow
        uses (`last_call`): the step's `step_completed` event, the closing event and the
        row, with the call's event first in that one transaction, unless a budget holds a
        reservation: then the spend and the event are their own transaction first, as
        without a closing. A session that ended otherwise meanwhile keeps its end
        (`SessionEnded`): the call's spend and event are written alone, and its result
        closes nothing.
        """
        ctx, closing, closed = call.ctx, call.closing, result.closed
        assert closing is not None and closed is not None
        store = self.runtime.store
        step_id = ctx.step_id or "-"
        output = final_output([*call.messages, result.response.message])
        finish = FinishSessionInput(
            ctx=ctx.model_copy(update={"step_id": None}),
            status=SessionStatus.COMPLETED,
            output=output,
            input_tokens=closed.input_tokens,
            output_tokens=closed.output_tokens,
            cost_usd=closed.cost_usd,
            events=[
                WorkflowEvent(
                    key=self._event_key(ctx, EventKind.STEP_COMPLETED.value),
                    kind=EventKind.STEP_COMPLETED,
                    step_id=ctx.step_id,
                    payload=step_completed_payload(step_id, output),
                )
            ],
            settle_budget=closing.settle_budget,
        )
        tokens = result.response.usage.total_tokens
        spent = bool(await store.budgets.session_scopes(ctx.session_id))
        if spent:
            await record_spend(
                store, ctx.session_id, result.cost_usd, tokens, key=spend_key, events=[event]
            )
        try:
            # Nothing to spend from: the spend's event and the end in one transaction.
            await self._finish(finish, *(() if spent else (event,)))
        except SessionEnded as exc:
            # The session ended otherwise meanwhile (a late attempt, after the workflow
            # failed it): its end stays; the call was made, so its spend and event are
            # written alone, and it answers as a call that closed nothing.
            log.warning("session ended before its last call could close it", error=str(exc))
            result.closed = None
            if not spent:
                await record_spend(
                    store, ctx.session_id, result.cost_usd, tokens, key=spend_key, events=[event]
                )

    @activity.defn(name=names.CLOSED_BY_CALL)
    async def closed_by_call(self, call: ModelCallInput) -> LastCallEnd:
        """Whether a closing model call that failed for good wrote the session's end first.

        Its attempts may each have written the end and never reported it (a worker killed
        after the commit, a retry that could not read the store, a cancel or a timeout of
        the attempt); the workflow asks before it fails the step
        (`patches.LAST_CALL_FAILURE_GENERATION`), and completes with the end it finds.
        """
        if call.closing is None:
            return LastCallEnd()
        return LastCallEnd(result=await self._closed_before(call, call.closing))

    async def _closed_before(
        self, call: ModelCallInput, closing: SessionClosing
    ) -> ModelCallResult | None:
        """The end an earlier attempt of this call wrote, as its result; None if none did.

        Read only on a retry: the closing event of this run, with the totals it wrote, and
        the row's output. The answer itself is not kept; the workflow completes with the
        output and totals written (`SessionClosed.output`), and the model is not asked.
        """
        ctx, store = call.ctx, self.runtime.store
        key = self._event_key(ctx.model_copy(update={"step_id": None}), "session_completed")
        ends = await store.list_events(ctx.session_id, kind=EventKind.SESSION_COMPLETED)
        end = next((e for e in ends if e.event_key == key and e.run_id == ctx.run_id), None)
        row = await store.get_session(ctx.session_id) if end is not None else None
        if end is None or row is None:
            return None
        closed = SessionClosed(
            input_tokens=end.input_tokens,
            output_tokens=end.output_tokens,
            cost_usd=end.cost_usd,
            output=row.output,
        )
        async with _bound(ctx):
            log.info("model call answered by the session's end", attempt=activity.info().attempt)
        usage = Usage(
            input_tokens=closed.input_tokens - closing.input_tokens,
            output_tokens=closed.output_tokens - closing.output_tokens,
        )
        return ModelCallResult(
            response=ModelResponse(
                message=ChatMessage(role="assistant", content=""),
                usage=usage,
                finish_reason="stop",
            ),
            cost_usd=closed.cost_usd - closing.cost_usd,
            deployment=call.model,
            duration_ms=0.0,
            closed=closed,
        )

    @activity.defn(name=names.CALL_SKILL)
    async def call_skill(self, call: SkillCallInput) -> SkillCallResult:
        """Validate a skill call's arguments and, unless only validating, run it.

        The approval that let the call run, when it rides along (`call.decision`), is
        recorded first, whatever becomes of the call: a retry records nothing twice.
        """
        if call.decision is not None and not call.validate_only:
            await self._store_decision(call.decision)
        async with _bound(call.ctx):
            try:
                skill = self.runtime.skills.get(call.skill, call.version)
            except UnknownSkillError as exc:
                raise to_failure(
                    PermanentError(
                        f"session resolved {call.skill}@{call.version};"
                        f" this worker cannot run it: {exc}"
                    )
                ) from None
            try:
                parsed = skill.validate_arguments(call.arguments)
            except SkillArgumentsError as exc:
                await self._tool_event(call, EventKind.TOOL_ERROR, error=str(exc))
                if call.credit is not None:
                    await record_outcome(
                        self.runtime.store,
                        call.credit,
                        Signal.TOOL_ARGUMENT_ERROR,
                        key=f"arguments:{call.ctx.workflow_id}:{call.idempotency_key}",
                        session_id=call.ctx.session_id,
                        step_id=call.ctx.step_id,
                        detail=str(exc),
                    )
                log.info("tool arguments rejected", skill=call.skill, error=str(exc))
                return SkillCallResult(ok=False, error=str(exc), error_kind="invalid_arguments")
            arguments = parsed.model_dump(mode="json")
            gated = _needs_approval(skill.spec, arguments)
            if call.validate_only:
                return SkillCallResult(ok=True, arguments=arguments, needs_approval=gated)
            if gated and not call.approval_id:
                raise to_failure(
                    PermanentError(f"{call.skill} requires an approval and none was given")
                )
            info = activity.info()
            ctx = SkillContext(
                session_id=call.ctx.session_id,
                workflow_id=call.ctx.workflow_id,
                run_id=call.ctx.run_id,
                step_id=call.ctx.step_id or "",
                call_id=call.call_id,
                idempotency_key=call.idempotency_key,
                attempt=info.attempt,
                state_dir=self.skill_state_dir,
            )
            started = time.perf_counter()
            try:
                async with (
                    _heartbeating(),
                    audited_mcp_call(self.runtime.store, skill.spec, ctx) as guarded,
                ):
                    result = await skill.fn(parsed, guarded)
            except SkillToolError as exc:
                # The tool's answer, not a fault: never retried (it may have had an effect).
                await self._tool_event(call, EventKind.TOOL_ERROR, error=str(exc))
                log.info("tool answered with an error", skill=call.skill, error=str(exc))
                return SkillCallResult(ok=False, error=str(exc), error_kind="tool_error")
            duration_ms = (time.perf_counter() - started) * 1000
            try:
                output = skill.validate_output(result)
            except SkillOutputError as exc:
                await self._tool_event(
                    call,
                    EventKind.TOOL_ERROR,
                    error=str(exc),
                    arguments=arguments,
                    invalid_output=True,
                )
                log.error("tool output breaks its contract", skill=call.skill, error=str(exc))
                raise to_failure(exc) from None
            size = json_size(output)
            if size > INLINE_OUTPUT_BYTES:
                # See `payloads`: the effect happened; the session carries a stand-in.
                output = stand_in(f"the output of {call.skill}@{call.version}", output)
                log.warning("tool output over the inline limit", skill=call.skill, size_bytes=size)
            target = mcp_target(skill.spec)
            await self._tool_event(
                call,
                EventKind.TOOL_CALL,
                duration_ms=duration_ms,
                arguments=arguments,
                output_bytes=size if size > INLINE_OUTPUT_BYTES else None,
                connector=target[0] if target else None,
                output=output,
                output_size=size if size <= INLINE_OUTPUT_BYTES else None,
            )
            log.info("tool call", skill=call.skill, ms=round(duration_ms, 1))
            return SkillCallResult(ok=True, output=output, arguments=arguments)

    async def _tool_event(
        self,
        call: SkillCallInput,
        kind: EventKind,
        *,
        error: str | None = None,
        duration_ms: float | None = None,
        arguments: dict[str, Any] | None = None,
        invalid_output: bool = False,
        output_bytes: int | None = None,
        connector: str | None = None,
        output: JsonObject | None = None,
        output_size: int | None = None,
    ) -> None:
        """Write the call's `tool_call` or `tool_error` event.

        `output_size` is `output`'s JSON size when the caller measured it already: the
        output is then not serialized a second time to tell whether it is kept as evidence.
        """
        payload: dict[str, Any] = {
            "call_id": call.call_id,
            "version": call.version,
            "arguments": arguments if arguments is not None else call.arguments,
            "idempotency_key": call.idempotency_key,
        }
        if error:
            payload["error"] = error
        if invalid_output:
            payload["error_kind"] = "invalid_output"
        if output_bytes is not None:
            payload["output_bytes"] = output_bytes  # over the inline limit: a stand-in went on
        if call.approval_id:
            payload["approval_id"] = call.approval_id
        if connector:
            payload["connector"] = connector  # its mcp_call row must exist (chaos checks)
        if output is not None:
            size = output_size if output_size is not None else json_size(output)
            if size <= EVIDENCE_BYTES:
                payload["output"] = output  # evidence that the approver of a later call reads
        await self.runtime.store.append_event(
            self._event(
                call.ctx,
                f"tool:{call.call_id}",
                kind,
                skill=call.skill,
                duration_ms=duration_ms,
                payload=payload,
            )
        )

    @activity.defn(name=names.RECORD_EVENTS)
    async def record_events(self, batch: RecordEventsInput) -> Ack:
        """Write the events the workflow decided (steps, pins) and its status.

        A session that has ended refuses a status that would reopen it (its last model
        call closed it, and the workflow did not hear of it): for good, nothing written.
        """
        with _ended_for_good():
            return await self._record_events(batch)

    async def _record_events(self, batch: RecordEventsInput) -> Ack:
        if batch.opening is not None:
            # The run's first activity: the session row, its first event, then these.
            await self._open(
                batch.ctx,
                batch.opening,
                _audited(batch.ctx, batch.events),
                batch.status or SessionStatus.RUNNING,
            )
            await self._credit_outcomes(batch.ctx, batch.events)
            return Ack()
        if batch.status is None:
            await self._write_events(batch.ctx, batch.events)
            return Ack()
        # The events and the status in one transaction.
        await self.runtime.store.update_session(
            batch.ctx.session_id, status=batch.status, events=_audited(batch.ctx, batch.events)
        )
        await self._credit_outcomes(batch.ctx, batch.events)
        return Ack()

    async def _write_events(
        self, ctx: CallContext, events: list[WorkflowEvent], *then: AuditEvent
    ) -> None:
        """Write workflow-decided events under their keys (a retry rewrites nothing).

        All of them, and the activity's own events `then` after them, in one transaction:
        one commit per activity, not one per event.
        """
        await self.runtime.store.append_events([*_audited(ctx, events), *then])
        await self._credit_outcomes(ctx, events)

    async def _credit_outcomes(self, ctx: CallContext, events: list[WorkflowEvent]) -> None:
        """The outcomes some written events stand for, credited to their deployment."""
        for event in events:
            signal = event_signal(event)
            if signal is not None and event.credit is not None:
                await record_outcome(
                    self.runtime.store,
                    event.credit,
                    signal,
                    key=f"event:{event.key}",
                    session_id=ctx.session_id,
                    step_id=event.step_id,
                    detail=str(event.payload.get("error", "")) or None,
                )

    @activity.defn(name=names.RECORD_APPROVAL_REQUEST)
    async def record_approval_request(self, request: ApprovalRequestInput) -> Ack:
        """Store a pending approval so people can find and decide it."""
        await self._store_request(request)
        return Ack()

    @activity.defn(name=names.REQUEST_APPROVAL)
    async def request_approval(self, request: ApprovalRequestInput) -> ApprovalPolicy:
        """Resolve who decides a request, store it and the events pending before it.

        One local activity where a session before `patches.GATE_GENERATION` ran
        `resolve_approval_policy`, `record_events` and `record_approval_request`.
        """
        directory = load_approvers(approvers_file(self.runtime.settings.project_dir))
        policy = policy_for(directory, request.approval)
        await self._store_request(request)
        return policy

    @activity.defn(name=names.CHECK_CALL)
    async def check_call(self, check: CallCheckInput) -> CallCheck:
        """Check a gated call's arguments and, when its contract gates them, request it.

        One local activity where a session before `patches.CHECK_GENERATION` ran a
        validate-only `call_skill` and then `request_approval`. The request is the one the
        workflow would build from the same arguments (`approval_requests`).
        """
        call = check.call.model_copy(update={"validate_only": True})
        result = await self.call_skill(call)
        ctx = call.ctx
        if not (result.ok and result.needs_approval):
            if check.events:
                await self._write_events(ctx, check.events)
            return CallCheck(result=result)
        arguments = result.arguments or call.arguments
        spec = self.runtime.skills.get(call.skill, call.version).spec
        pending = pending_request(
            workflow_id=ctx.workflow_id,
            step_id=ctx.step_id or "",
            call_id=call.call_id,
            spec=spec,
            arguments=arguments,
            summary=call_summary(spec, arguments),
        )
        directory = load_approvers(approvers_file(self.runtime.settings.project_dir))
        policy = policy_for(directory, pending)
        pending.group, pending.required = policy.group, policy.required
        await self._store_request(
            ApprovalRequestInput(ctx=ctx, approval=pending, events=check.events)
        )
        return CallCheck(result=result, approval=pending, policy=policy)

    async def _store_request(self, request: ApprovalRequestInput) -> None:
        """The request's row, the events before it, its own and the session's status.

        One transaction (`Store.update_session` with `approval`), on a SQLite file on the
        calling thread when the write lock is free. The row goes first, unless its id is
        there (`INSERT ... ON CONFLICT DO NOTHING`): a retry never resets a decision. It
        runs inside a local activity, so inside a workflow task: through the pool on its
        own, a burst of requests queued on SQLite's write lock past 5 s (bench/README.md).
        """
        pending, ctx = request.approval, request.ctx
        store = self.runtime.store
        approval = ApprovalRecord(
            approval_id=pending.approval_id,
            session_id=ctx.session_id,
            workflow_id=ctx.workflow_id,
            run_id=ctx.run_id,
            step_id=pending.step_id,
            kind=pending.kind,
            skill=pending.skill,
            skill_version=pending.skill_version,
            arguments=pending.arguments,
            summary=pending.summary,
            binding_hash=pending.binding_hash,
            requested_at=_now(),
        )
        requested = self._event(
            ctx,
            f"approval_requested:{pending.approval_id}",
            EventKind.APPROVAL_REQUESTED,
            skill=pending.skill,
            payload={"approval_id": pending.approval_id, "summary": pending.summary},
        )
        with _ended_for_good():
            await store.update_session(
                ctx.session_id,
                status=SessionStatus.WAITING_APPROVAL,
                events=[*_audited(ctx, request.events), requested],
                approval=approval,
            )
        await self._credit_outcomes(ctx, request.events)
        async with _bound(ctx):
            log.info("approval requested", approval_id=pending.approval_id, skill=pending.skill)

    @activity.defn(name=names.RECORD_APPROVAL_DECISION)
    async def record_approval_decision(self, request: ApprovalDecisionInput) -> Ack:
        """Store the decision the workflow accepted, and who took it."""
        await self._store_decision(request)
        return Ack()

    async def _store_decision(self, request: ApprovalDecisionInput) -> None:
        """The decision's row (unless already decided), its outcome, its event and status.

        The event and the status go in one transaction, as the request's do.
        """
        decision, ctx = request.decision, request.ctx
        store = self.runtime.store
        status = ApprovalStatus.APPROVED if decision.approve else ApprovalStatus.REJECTED
        await store.decide_approval(
            decision.approval_id,
            status=status,
            decided_by=decision.decided_by,
            reason=decision.reason,
            decided_at=_now(),
        )
        decided = self._event(
            ctx,
            f"approval_decided:{decision.approval_id}",
            EventKind.APPROVAL_DECIDED,
            payload={
                "approval_id": decision.approval_id,
                "status": status.value,
                "decided_by": decision.decided_by,
                "reason": decision.reason,
                **(
                    {
                        "edited_arguments": decision.arguments,
                        "edited_binding_hash": decision.edited_binding_hash,
                    }
                    if decision.arguments is not None
                    else {}
                ),
            },
        )
        if request.credit is not None:
            # A person approved or rejected a call the model proposed: an outcome of it.
            await record_outcome(
                store,
                request.credit,
                Signal.APPROVAL_APPROVED if decision.approve else Signal.APPROVAL_REJECTED,
                key=f"approval:{decision.approval_id}",
                session_id=ctx.session_id,
                step_id=ctx.step_id,
                detail=decision.reason,
            )
        with _ended_for_good():
            await store.update_session(
                ctx.session_id, status=SessionStatus.RUNNING, events=[decided]
            )
        async with _bound(ctx):
            log.info("approval decided", approval_id=decision.approval_id, status=status.value)

    @activity.defn(name=names.FINISH_SESSION)
    async def finish_session(self, finish: FinishSessionInput) -> Ack:
        """Close the session record with its outcome and totals.

        A session that has ended otherwise keeps its end: a second one is refused for
        good, nothing written.
        """
        with _ended_for_good():
            await self._finish(finish)
        return Ack()

    async def _finish(self, finish: FinishSessionInput, *first: AuditEvent) -> None:
        """The session's end, with `first` before it.

        `first`, its last events, the closing event and the row in one transaction; then
        the outcomes those events stand for, and the budget's settlement (what the session
        reserved and did not spend).
        """
        ctx = finish.ctx
        kind = (
            EventKind.SESSION_COMPLETED
            if finish.status is SessionStatus.COMPLETED
            else EventKind.SESSION_FAILED
        )
        store = self.runtime.store
        closing = self._event(
            ctx,
            kind.value,
            kind,
            input_tokens=finish.input_tokens,
            output_tokens=finish.output_tokens,
            cost_usd=finish.cost_usd,
            payload={"error": finish.error} if finish.error else {},
        )
        # The last events, the closing event and the session row: one transaction.
        await store.update_session(
            ctx.session_id,
            events=[*first, *_audited(ctx, finish.events), closing],
            status=finish.status,
            output=finish.output,
            error=finish.error,
            input_tokens=finish.input_tokens,
            output_tokens=finish.output_tokens,
            cost_usd=finish.cost_usd,
            ended_at=_now(),
        )
        await self._credit_outcomes(ctx, finish.events)
        # Settling is a write transaction; a session that reserved nothing (no budget
        # applies to it) has nothing to give back. Its scopes are known from its model
        # calls, which come after its one reservation, or read once here.
        if finish.settle_budget and await store.budgets.session_scopes(ctx.session_id):
            await store.budgets.settle(ctx.session_id)
        async with _bound(ctx):
            log.info("session finished", status=finish.status.value, cost_usd=finish.cost_usd)


@contextlib.contextmanager
def _ended_for_good() -> Iterator[None]:
    """A write refused because the session has ended fails for good: no retry changes it."""
    try:
        yield
    except SessionEnded as exc:
        raise to_failure(PermanentError(str(exc))) from None


def _audited(ctx: CallContext, events: list[WorkflowEvent]) -> list[AuditEvent]:
    """Workflow-decided events as the audit rows they are written as, under their keys."""
    return [
        AuditEvent(
            event_key=event.key,
            session_id=ctx.session_id,
            workflow_id=ctx.workflow_id,
            run_id=ctx.run_id,
            kind=event.kind,
            step_id=event.step_id,
            model=event.model,
            skill=event.skill,
            payload=event.payload,
            created_at=_now(),
        )
        for event in events
    ]


def _needs_approval(spec: SkillSpec, arguments: JsonObject) -> bool:
    """The contract's approval policy applied to validated arguments; the model has no say."""
    if spec.requires_approval:
        return True
    return spec.approval_condition is not None and condition_holds(
        spec.approval_condition, arguments
    )
