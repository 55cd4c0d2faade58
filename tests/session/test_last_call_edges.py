"""The edges of a session closed by its last model call (`patches.LAST_CALL_GENERATION`).

The audit trail ends with exactly one terminal event, whatever becomes of the call that
wrote it:
- every attempt's report is lost after the commit (a worker killed after it each time, a
  store the retry cannot read, a timeout): the workflow asks whether the call closed the
  session before failing the step (`patches.LAST_CALL_FAILURE`), and completes with what
  was written;
- a cancel arrives after the commit, before the workflow completes: the same;
- the store refuses to change an ended session's status (a second, contradicting end,
  or a write that would reopen it), and a closing call that finds the session already
  ended records its spend alone;
- an answer from the response cache, a truncated answer and an answer too large never
  close the session.

Faults come in through Temporal's own activity interceptor (a worker plugin): the call's
activity runs for real, and what the workflow hears of it is what a dead worker, or a
cancel, leaves it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from postgres import scratch_database
from temporalio import activity
from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.exceptions import ApplicationError
from temporalio.plugin import SimplePlugin
from temporalio.testing import ActivityEnvironment
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    Replayer,
)

from orchestrator.exceptions import SessionEnded
from orchestrator.plans import parse_plan
from orchestrator.plugin import OrchestratorPlugin
from orchestrator.providers.messages import ChatMessage
from orchestrator.runtime import Runtime
from orchestrator.scripted_model import ReplayScript, ScriptedModelServer
from orchestrator.service import start_session
from orchestrator.session import names, patches
from orchestrator.session.activities import SessionActivities
from orchestrator.session.types import (
    ActivityOptions,
    CallContext,
    ModelCallInput,
    ModelCallResult,
    SessionClosing,
    SessionOptions,
    SessionResult,
)
from orchestrator.session.workflow import AgentSessionWorkflow
from orchestrator.session_start import StartOptions
from orchestrator.settings import Settings
from orchestrator.store.records import AuditEvent, EventKind, SessionRecord, SessionStatus
from orchestrator.store.store import Store
from orchestrator.worker import build_worker

ANSWER = "All done."
SCRIPT = ReplayScript.model_validate(
    {
        "conversations": [
            {
                "name": "answer",
                "match": {"contains": "Step: answer"},
                "turns": [{"content": ANSWER}],
                "after_last": "repeat_last",
            }
        ]
    }
)
PLAN = parse_plan(
    """
name: edge
steps:
  - {id: answer, type: agent, goal: Answer.}
""",
    "edge.yaml",
)
QUICK = StartOptions(
    options=SessionOptions(
        model_call=ActivityOptions(
            heartbeat=timedelta(seconds=10),
            max_attempts=3,
            initial_retry=timedelta(milliseconds=10),
            max_retry=timedelta(milliseconds=10),
        )
    )
)
"""Three quick attempts of each model call."""

TERMINAL = {EventKind.SESSION_COMPLETED, EventKind.SESSION_FAILED}


@dataclass
class Faults:
    """What the interceptor does to a model call that closed the session, and saw."""

    lose_reports: bool = False
    """Every such attempt's report is lost after its commit (the worker died)."""
    unread_retries: bool = False
    """After one such attempt, every retry of the call fails before it runs (the store
    unreachable for its read of the end), so only the workflow's own check finds it."""
    hold: bool = False
    """Such an attempt waits, after its commit, until `release` is set."""
    committed: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    closing_attempts: int = 0


class _Inbound(ActivityInboundInterceptor):
    def __init__(self, nxt: ActivityInboundInterceptor, faults: Faults) -> None:
        super().__init__(nxt)
        self.faults = faults

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        faults = self.faults
        if faults.unread_retries and faults.closing_attempts and activity.info().attempt > 1:
            raise ApplicationError("the store is unreachable")  # retryable
        result = await super().execute_activity(input)
        closed = isinstance(result, ModelCallResult) and result.closed is not None
        if activity.info().activity_type != names.CALL_MODEL or not closed:
            return result
        faults.closing_attempts += 1
        faults.committed.set()
        if faults.hold:
            await faults.release.wait()
        if faults.lose_reports:
            raise ApplicationError("the worker died after the commit")  # retryable
        return result


class _FaultInterceptor(Interceptor):
    def __init__(self, faults: Faults) -> None:
        self.faults = faults

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Inbound(next, self.faults)


@dataclass
class Env:
    client: Client
    settings: Settings
    runtime: Runtime
    replay: ScriptedModelServer
    faults: Faults


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[None]:
    """The worker's store: the state folder's SQLite file, or a scratch PostgreSQL one."""
    if request.param == "sqlite":
        yield
        return
    async with scratch_database() as url:
        settings.database_url = url
        yield


@pytest.fixture
async def edge_env(
    settings: Settings, client: Client, database: None, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Callable[[Faults], Awaitable[Env]]]:
    async with contextlib.AsyncExitStack() as stack:

        async def make(faults: Faults) -> Env:
            replay = await stack.enter_async_context(ScriptedModelServer(SCRIPT))
            monkeypatch.setenv("ORCHESTRATOR_REPLAY_URL", replay.base_url)
            runtime = await Runtime.open(settings)
            stack.push_async_callback(runtime.close)
            plugin = SimplePlugin("faults", interceptors=[_FaultInterceptor(faults)])
            worker = build_worker(client, runtime, task_queue=settings.task_queue, plugins=[plugin])
            await stack.enter_async_context(worker)
            # Whatever the test did, a held attempt lets the worker stop.
            stack.callback(faults.release.set)
            return Env(client, settings, runtime, replay, faults)

        yield make


async def _start(env: Env, session_id: str) -> WorkflowHandle[Any, SessionResult]:
    return await start_session(
        env.client,
        PLAN,
        {},
        QUICK.model_copy(update={"session_id": session_id}),
        task_queue=env.settings.task_queue,
        runtime=env.runtime,
    )


async def _assert_completed_once(env: Env, session_id: str, result: SessionResult) -> None:
    """One end, `session_completed`, after the answer; the row completed with it."""
    events = await env.runtime.store.list_events(session_id)
    kinds = [e.kind for e in events]
    assert [k for k in kinds if k in TERMINAL] == [EventKind.SESSION_COMPLETED], kinds
    assert EventKind.STEP_FAILED not in kinds
    assert kinds[-3:] == [
        EventKind.MODEL_CALL,
        EventKind.STEP_COMPLETED,
        EventKind.SESSION_COMPLETED,
    ]
    row = await env.runtime.store.get_session(session_id)
    assert row is not None
    assert (row.status, row.output, row.error) == (SessionStatus.COMPLETED, ANSWER, None)
    assert result.status is SessionStatus.COMPLETED and result.final_output == ANSWER
    assert (result.input_tokens, result.cost_usd) == (row.input_tokens, row.cost_usd)
    assert len(env.replay.requests) == 1  # the retries were answered by the written end


def _patched(history: WorkflowHistory) -> bool:
    """Whether the run recorded the marker of `patches.LAST_CALL_FAILURE`."""
    return any(
        patches.LAST_CALL_FAILURE.encode() in e.SerializeToString()
        for e in history.events
        if e.HasField("marker_recorded_event_attributes")
    )


@pytest.mark.parametrize("generation", [patches.GENERATION, patches.LAST_CALL_GENERATION])
async def test_a_closing_call_whose_every_report_is_lost_completes_the_session(
    edge_env: Callable[[Faults], Awaitable[Env]],
    monkeypatch: pytest.MonkeyPatch,
    generation: int,
) -> None:
    """On generation 6 without a marker; a session of generation 5 records its patch's."""
    env = await edge_env(Faults(lose_reports=True))
    # The setup the starter resolves says which generation's paths the session takes.
    monkeypatch.setattr(patches, "GENERATION", generation)
    handle = await _start(env, "lost-reports")
    result = await handle.result()

    assert env.faults.closing_attempts == 3  # each attempt closed it (or found it closed)
    await _assert_completed_once(env, "lost-reports", result)
    history = await handle.fetch_history()
    assert _patched(history) is (generation < patches.LAST_CALL_FAILURE_GENERATION)
    replayed = await Replayer(
        workflows=[AgentSessionWorkflow], plugins=[OrchestratorPlugin()]
    ).replay_workflow(history)
    assert replayed.replay_failure is None


async def test_a_closing_call_whose_retries_cannot_read_the_store_completes_the_session(
    edge_env: Callable[[Faults], Awaitable[Env]],
) -> None:
    env = await edge_env(Faults(lose_reports=True, unread_retries=True))
    handle = await _start(env, "unread-retries")
    result = await handle.result()

    assert env.faults.closing_attempts == 1  # the retries never reached the store
    await _assert_completed_once(env, "unread-retries", result)


async def test_a_cancel_after_the_closing_commit_reads_completed(
    edge_env: Callable[[Faults], Awaitable[Env]],
) -> None:
    env = await edge_env(Faults(hold=True))
    handle = await _start(env, "cancelled-after-close")
    await asyncio.wait_for(env.faults.committed.wait(), 30)
    await handle.cancel()
    result = await handle.result()
    env.faults.release.set()

    await _assert_completed_once(env, "cancelled-after-close", result)


def _row(session_id: str) -> SessionRecord:
    return SessionRecord(
        session_id=session_id,
        workflow_id=f"session-{session_id}",
        run_id="run-1",
        plan_name="edge",
        plan_version="1",
        started_at=datetime.now(UTC),
    )


def _end(session_id: str, kind: EventKind, key: str | None = None) -> AuditEvent:
    return AuditEvent(
        event_key=f"session-{session_id}:-:{key or kind.value}",
        session_id=session_id,
        workflow_id=f"session-{session_id}",
        run_id="run-1",
        kind=kind,
        created_at=datetime.now(UTC),
    )


async def test_the_store_refuses_to_change_an_ended_sessions_status(store: Store) -> None:
    await store.record_session_start(_row("ended"))
    done = _end("ended", EventKind.SESSION_COMPLETED)
    await store.update_session("ended", status=SessionStatus.COMPLETED, output="x", events=[done])
    # The same end again (a retry of its write) is accepted, and writes nothing twice.
    await store.update_session("ended", status=SessionStatus.COMPLETED, output="x", events=[done])
    written = await store.list_events("ended")

    for status, event in (
        (SessionStatus.FAILED, _end("ended", EventKind.SESSION_FAILED)),  # a second end
        (SessionStatus.RUNNING, _end("ended", EventKind.STEP_FAILED, "answer:step_failed")),
    ):
        with pytest.raises(SessionEnded) as refused:
            await store.update_session("ended", status=status, error="late", events=[event])
        assert (refused.value.status, refused.value.wanted) == (SessionStatus.COMPLETED, status)

    # Nor may a later write of its run carrying the session's opening again set it running.
    late = _end("ended", EventKind.STEP_FAILED, "answer:step_failed")
    with pytest.raises(SessionEnded):
        await store.record_session_start(_row("ended"), events=[late])
    assert await store.list_events("ended") == written  # the refused events are not written
    row = await store.get_session("ended")
    assert row is not None and (row.status, row.output, row.error) == (
        SessionStatus.COMPLETED,
        "x",
        None,
    )
    # A new run of the session id starts it again; a session still running takes any status.
    await store.record_session_start(_row("ended").model_copy(update={"run_id": "run-2"}))
    again = await store.get_session("ended")
    assert again is not None and (again.status, again.run_id) == (SessionStatus.RUNNING, "run-2")
    await store.record_session_start(_row("live"))
    await store.update_session("live", status=SessionStatus.WAITING_APPROVAL)
    await store.update_session("live", status=SessionStatus.FAILED)
    live = await store.get_session("live")
    assert live is not None and live.status is SessionStatus.FAILED


async def test_a_closing_call_after_the_session_failed_records_its_spend_alone(
    edge_env: Callable[[Faults], Awaitable[Env]],
) -> None:
    """A late attempt (a zombie worker) closing a session the workflow has failed since."""
    env = await edge_env(Faults())
    store = env.runtime.store
    await store.record_session_start(_row("failed-first"))
    failed = _end("failed-first", EventKind.SESSION_FAILED)
    await store.update_session(
        "failed-first", status=SessionStatus.FAILED, error="step failed", events=[failed]
    )
    ask = ModelCallInput(
        ctx=CallContext(
            session_id="failed-first",
            workflow_id="session-failed-first",
            run_id="run-1",
            step_id="answer",
        ),
        round=0,
        model="demo-fast",
        messages=[ChatMessage(role="user", content="Step: answer")],
        tools=[],
        closing=SessionClosing(input_tokens=0, output_tokens=0, cost_usd=0.0),
    )
    call = ActivityEnvironment()
    call.info = dataclasses.replace(call.info, heartbeat_timeout=None)
    answer = await call.run(SessionActivities(env.runtime).call_model, ask)

    assert answer.closed is None and answer.response.message.content == ANSWER
    events = await store.list_events("failed-first")
    assert [e.kind for e in events] == [EventKind.SESSION_FAILED, EventKind.MODEL_CALL]
    row = await store.get_session("failed-first")
    assert row is not None and (row.status, row.output) == (SessionStatus.FAILED, None)
