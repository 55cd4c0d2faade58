"""A small load run on the real dev server: 40 concurrent sessions, half parked on approvals.

The suite's reduced form of `bench/load.py`: every session started reaches COMPLETED, each
applies its effect exactly once (counted in the tool's own ledger), and every gated session
was seen waiting for its approval at the same time as all the others. No timing asserts.

Also a ceiling on how many history events one gated session costs, so it cannot grow
unnoticed: the history is exact and deterministic, so its counts are asserted (issue 16
item 7; the figures before and after are in bench/README.md).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from orchestrator.loadgen import (
    LoadSettings,
    load_scenario_plan,
    model_script,
    run_runtime_load,
    session_specs,
)
from orchestrator.runtime import Runtime
from orchestrator.scripted_model import ScriptedModelServer
from orchestrator.session.names import workflow_id_for
from orchestrator.settings import Settings
from orchestrator.store.records import EventKind, SessionStatus
from orchestrator.worker import build_worker

PROJECT = Path(__file__).parent / "load_project"
SESSIONS = 40
GATED = 20

pytestmark = pytest.mark.timeout(600)

MAX_EVENTS = 42
"""Events in the history of one gated three-call session (70 before issue 16 item 7, 59
before the first routing decision rode in `start_session` and patches were skipped by
generation, 56 before the approval gate's generation 2, `patches.GATE_GENERATION`, 49
before generation 3, `patches.CHECK_GENERATION`, and 43 before generation 4,
`patches.OPENING_GENERATION`, or when started without the runtime at hand)."""

MAX_MARKERS = 2
"""Markers among them (13, 6, 4, then 3 before): local activities (store writes on the
decision path: `check_call`, `finish_session`; `start_session` too when the starter does
not hold the runtime, which these sessions' driver does); no patch marker
(`patches.GENERATION`)."""

MAX_ACTIVITIES = 5
"""Regular activities among them (7 before generation 2, 6 before generation 3): the
approved call's decision is recorded by the call itself, not by
`record_approval_decision`, and its arguments are checked by `check_call`, not by a
validate-only `call_skill`."""

MAX_UPSERTS = 0
"""Search-attribute upserts (5, then 1 before): the SDK adds one to each patch marker, and
a session of generation 1 records none."""


@pytest.fixture
async def runtime(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Runtime]:
    async with ScriptedModelServer(model_script(tool_delay_ms=200)) as replay:
        monkeypatch.setenv("ORCHESTRATOR_REPLAY_URL", replay.base_url)
        opened = await Runtime.open(settings.model_copy(update={"project_dir": PROJECT}))
        try:
            yield opened
        finally:
            await opened.close()


async def test_concurrent_sessions_none_lost_each_effect_once(
    client: Client, runtime: Runtime
) -> None:
    specs = session_specs(SESSIONS, GATED, prefix=f"load-{uuid.uuid4().hex[:6]}")
    task_queue = runtime.settings.task_queue
    async with build_worker(client, runtime, task_queue=task_queue):
        report = await run_runtime_load(
            client,
            runtime.store,
            load_scenario_plan(PROJECT),
            specs,
            task_queue=task_queue,
            skill_state_dir=runtime.skill_state_dir,
            settings=LoadSettings(tool_delay_ms=200, timeout_s=300),
            runtime=runtime,
        )

    assert report.errors == []
    assert (report.started, report.gated) == (SESSIONS, GATED)
    assert report.completed == SESSIONS
    assert report.lost == 0
    assert report.parked_at_once == GATED
    assert report.effects_once == SESSIONS
    assert (report.duplicate_effects, report.missing_effects, report.stray_effects) == (0, 0, 0)
    # Three model calls per session: look up, apply, answer.
    assert report.steps == 3 * SESSIONS
    assert report.step.n == 2 * SESSIONS
    # Every gated session's approval is in its audit trail, decided by the driver's approver.
    for spec in specs:
        decided = await runtime.store.list_events(spec.session_id, kind=EventKind.APPROVAL_DECIDED)
        assert len(decided) == (1 if spec.mode == "gated" else 0), spec.session_id


async def test_gated_session_history_stays_small(client: Client, runtime: Runtime) -> None:
    specs = session_specs(1, 1, prefix=f"size-{uuid.uuid4().hex[:6]}")
    task_queue = runtime.settings.task_queue
    async with build_worker(client, runtime, task_queue=task_queue):
        report = await run_runtime_load(
            client,
            runtime.store,
            load_scenario_plan(PROJECT),
            specs,
            task_queue=task_queue,
            skill_state_dir=runtime.skill_state_dir,
            settings=LoadSettings(tool_delay_ms=200, timeout_s=120, poll_s=0.05),
            runtime=runtime,
        )
    assert (report.completed, report.effects_once, report.errors) == (1, 1, [])

    session_id = specs[0].session_id
    history = await client.get_workflow_handle(workflow_id_for(session_id)).fetch_history()
    kinds = Counter(EventType.Name(e.event_type) for e in history.events)
    assert len(history.events) <= MAX_EVENTS, kinds
    assert kinds["EVENT_TYPE_MARKER_RECORDED"] <= MAX_MARKERS, kinds
    assert kinds["EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES"] <= MAX_UPSERTS, kinds
    assert kinds["EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"] <= MAX_ACTIVITIES, kinds

    # Fewer activities, the same audit trail, in the same order.
    events = await runtime.store.list_events(session_id)
    assert [e.kind for e in events] == [
        EventKind.SESSION_STARTED,
        EventKind.STEP_STARTED,
        EventKind.MODEL_PINNED,
        EventKind.MODEL_CALL,
        EventKind.TOOL_CALL,
        EventKind.MODEL_CALL,
        EventKind.APPROVAL_REQUESTED,
        EventKind.APPROVAL_DECIDED,
        EventKind.TOOL_CALL,
        EventKind.MODEL_CALL,
        EventKind.STEP_COMPLETED,
        EventKind.SESSION_COMPLETED,
    ]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    session = await runtime.store.get_session(session_id)
    assert session is not None
    assert session.status is SessionStatus.COMPLETED
