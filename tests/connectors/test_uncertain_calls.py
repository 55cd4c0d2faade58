"""A call that may have reached a tool that is not idempotent is never sent again.

Temporal retries an activity whose attempt timed out or whose worker died, and that
attempt may already have reached the tool. Against `counting_server.py` (an MCP server
built with the official SDK that counts every call it receives, even one it never
answers) and a real Temporal dev server: a worker process SIGKILLed while the tool holds
the call, and an attempt cut off by its timeout. Each time the tool runs once and the step
fails with a message naming the tool, the session and the step, for a person to decide.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import Env
from connector_fixtures import innermost, project_fixture, settings_fixture  # noqa: F401
from counting_server import calls
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from test_tool_errors import counting_project, one_call

from orchestrator.chaos import WorkerProcess
from orchestrator.connectors.audit import may_have_run
from orchestrator.plans.models import AgentStep, Plan
from orchestrator.scripted_model import ScriptedModelServer
from orchestrator.service import start_session
from orchestrator.settings import Settings
from orchestrator.skills.models import SkillContext
from orchestrator.store.records import AuditEvent, EventKind
from orchestrator.store.store import Store

HELD = "counting.hold@1.0.0: tool 'hold' of MCP server counting may have run already"


async def _failure(handle: WorkflowHandle[object, object]) -> str:
    with pytest.raises(WorkflowFailureError) as failed:
        async with asyncio.timeout(120):
            await handle.result()
    return innermost(failed.value)


def _attempts(events: list[AuditEvent]) -> tuple[list[object], list[tuple[str, bool]]]:
    """The attempts that wrote `mcp_sending`, and each `mcp_call` outcome with `sent`."""
    sending = [e.payload["attempt"] for e in events if e.kind is EventKind.MCP_SENDING]
    outcomes = [
        (str(e.payload["outcome"]), bool(e.payload["sent"]))
        for e in events
        if e.kind is EventKind.MCP_CALL
    ]
    return sending, outcomes


async def test_a_call_whose_worker_died_in_it_is_not_sent_again(
    project: Path,
    settings: Settings,
    client: Client,
    replay_factory: Callable[[Path], Awaitable[ScriptedModelServer]],
) -> None:
    script, counts = await counting_project(project, timeouts={"counting.hold": "8s"})
    replay = await replay_factory(script)
    worker = WorkerProcess(settings, replay.base_url)
    worker.start()
    try:
        handle = await start_session(
            client, one_call("counting.hold"), {}, task_queue=settings.task_queue
        )
        async with asyncio.timeout(90):
            while calls(counts, "hold") == 0:
                await asyncio.sleep(0.05)
        worker.kill()  # the tool holds the call; its worker dies without a word
        worker.start()  # Temporal retries the attempt here once its timeout has passed
        why = await _failure(handle)
    finally:
        worker.stop()

    session_id = handle.id.removeprefix("session-")
    assert calls(counts, "hold") == 1
    assert HELD in why
    assert f"in step 'call' of session {session_id}" in why
    assert "not idempotent, so it is not sent again" in why
    async with await Store.open(settings.resolved_database_url) as store:
        events = await store.list_events(session_id)
    sending, outcomes = _attempts(events)
    assert len(sending) == 1, "one attempt reached the tool"
    # The killed attempt wrote no outcome; the retry refused before it sent anything.
    assert outcomes[-1] == ("held", False)
    assert ("ok", True) not in outcomes
    [failed] = [e for e in events if e.kind is EventKind.STEP_FAILED]
    assert HELD in str(failed.payload["error"])


async def _warm_env(
    project: Path, env_factory: Callable[[Path], Awaitable[Env]]
) -> tuple[Env, Path]:
    """A worker whose `hold` attempts time out after 4 s, its connection already open (one
    call first), so the timed call is sent well within its timeout."""
    script, counts = await counting_project(project, timeouts={"counting.hold": "4s"})
    env = await env_factory(script)
    plan = one_call("counting.charge")
    handle = await start_session(env.client, plan, {}, task_queue=env.settings.task_queue)
    await _failure(handle)
    return env, counts


async def test_a_call_cut_off_by_its_timeout_is_not_sent_again(
    project: Path, env_factory: Callable[[Path], Awaitable[Env]]
) -> None:
    env, counts = await _warm_env(project, env_factory)

    handle = await start_session(
        env.client, one_call("counting.hold"), {}, task_queue=env.settings.task_queue
    )
    why = await _failure(handle)

    assert calls(counts, "hold") == 1
    assert HELD in why and "step 'call'" in why
    sending, outcomes = _attempts(await env.runtime.store.list_events(handle.id[8:]))
    assert len(sending) == 1
    # The retry held the call back (the timed-out attempt records its end when it ends).
    assert outcomes[-1] == ("held", False)


async def test_an_agent_step_fails_rather_than_let_its_model_try_again(
    project: Path, env_factory: Callable[[Path], Awaitable[Env]]
) -> None:
    """The model is not told "failed" (it would call again under a new call id)."""
    env, counts = await _warm_env(project, env_factory)
    plan = Plan(
        name="book",
        steps=[AgentStep(id="book", goal="Book a payment", skills=["counting.hold"])],
    )

    handle = await start_session(env.client, plan, {}, task_queue=env.settings.task_queue)
    why = await _failure(handle)

    assert calls(counts, "hold") == 1
    assert HELD in why and f"call 0.0 in step 'book' of session {handle.id[8:]}" in why
    asked = [r.turn for r in env.replay.requests if r.conversation == "book"]
    assert asked == [0], "the model is not asked again after the call"


def _row(kind: EventKind, attempt: int, **payload: object) -> AuditEvent:
    return AuditEvent(
        event_key=f"k{kind}{attempt}",
        session_id="s",
        workflow_id="wf",
        run_id="r",
        kind=kind,
        step_id="pay",
        payload={"direction": "out", "call_id": "0.0", "attempt": attempt, **payload},
        created_at=datetime.now(UTC),
    )


def test_only_attempts_that_reached_the_send_may_have_run(tmp_path: Path) -> None:
    ctx = SkillContext(
        session_id="s",
        workflow_id="wf",
        run_id="r",
        step_id="pay",
        call_id="0.0",
        idempotency_key="k",
        attempt=4,
        state_dir=tmp_path,
    )
    refused = _row(EventKind.MCP_CALL, 1, outcome="failed", sent=False)
    assert may_have_run([refused], ctx) == []
    sending = _row(EventKind.MCP_SENDING, 2)
    assert may_have_run([refused, sending], ctx) == [2]
    legacy = _row(EventKind.MCP_CALL, 3, outcome="failed")  # before `sent` was recorded
    blocked = _row(EventKind.MCP_CALL, 3, outcome="blocked")
    assert may_have_run([refused, legacy], ctx) == [3]
    assert may_have_run([refused, blocked], ctx) == []
    later = _row(EventKind.MCP_SENDING, 4)
    other_call = _row(EventKind.MCP_SENDING, 1, call_id="1.0")
    other_step = _row(EventKind.MCP_SENDING, 1).model_copy(update={"step_id": "other"})
    assert may_have_run([later, other_call, other_step], ctx) == []
