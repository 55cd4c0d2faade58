"""A small load run on the real dev server: 40 concurrent sessions, half parked on approvals.

The suite's reduced form of `bench/load.py`: every session started reaches COMPLETED, each
applies its effect exactly once (counted in the tool's own ledger), and every gated session
was seen waiting for its approval at the same time as all the others. No timing asserts.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client

from orchestrator.loadgen import (
    LoadSettings,
    load_scenario_plan,
    replay_script,
    run_runtime_load,
    session_specs,
)
from orchestrator.replay import ReplayServer
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from orchestrator.store.records import EventKind
from orchestrator.worker import build_worker

PROJECT = Path(__file__).parent / "load_project"
SESSIONS = 40
GATED = 20

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
async def runtime(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Runtime]:
    async with ReplayServer(replay_script(tool_delay_ms=200)) as replay:
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
