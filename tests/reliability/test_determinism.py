"""Determinism in CI: the longer plan's history is recorded beside the demo's and replays
against the current workflow code (tests/session/test_replay_histories.py replays every
file in tests/histories/); a command-changing edit replays old histories only when it is
guarded with `workflow.patched`; and the demo and the longer plan run with the workflow
cache off, so every workflow task is a replay of the history so far.

Re-record `tests/histories/refund_audit.json` after an intended, versioned change:
`ORCHESTRATOR_RECORD_HISTORIES=1 .venv/bin/pytest tests/reliability/test_determinism.py`.
Run any workflow tests with the cache off: `ORCHESTRATOR_MAX_CACHED_WORKFLOWS=0 pytest ...`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from _changed_workflow import GuardedChange, UnguardedChange
from conftest import REPO, Env
from temporalio.client import WorkflowHandle, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from orchestrator.plans import load_plan
from orchestrator.plugin import workflow_runner
from orchestrator.service import decide_approval, start_session
from orchestrator.session.types import SessionResult
from orchestrator.session.workflow import AgentSessionWorkflow
from orchestrator.settings import Settings
from orchestrator.store.records import ApprovalStatus, SessionStatus
from orchestrator.testing import eventually
from orchestrator.worker import build_worker

HERE = Path(__file__).resolve().parent
HISTORIES = REPO / "tests/histories"
HISTORY_FILES = sorted(HISTORIES.glob("*.json"))

PLANS = {
    "customer_refund": (
        REPO / "workflows/customer_refund.yaml",
        REPO / "model_scripts/customer_refund.yaml",
    ),
    "refund_audit": (
        HERE / "plans/refund_audit.yaml",
        HERE / "plans/refund_audit.replay.yaml",
    ),
}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared test settings with the workflow cache off: every task replays."""
    return settings.model_copy(update={"max_cached_workflows": 0})


def replayer(workflow: type) -> Replayer:
    return Replayer(
        workflows=[workflow],
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    )


def recorded(path: Path) -> WorkflowHistory:
    data = json.loads(path.read_text())
    return WorkflowHistory.from_json(data.pop("workflow_id"), data)


async def approve_until_done(env: Env, handle: WorkflowHandle[object, SessionResult]) -> int:
    """Approve each request of the session as it appears; the number approved."""
    session_id = handle.id.removeprefix("session-")
    store = env.runtime.store
    approved: set[str] = set()

    async def next_step() -> str | None:
        description = await handle.describe()
        if description.status is not None and description.status.name != "RUNNING":
            return "done"
        for rec in await store.list_approvals(session_id=session_id):
            if rec.status is ApprovalStatus.PENDING and rec.approval_id not in approved:
                return rec.approval_id
        return None

    while (found := await eventually(next_step, timeout=120, what="an approval")) != "done":
        await decide_approval(env.client, store, found, approve=True, decided_by="maria")
        approved.add(found)
    return len(approved)


@pytest.mark.parametrize(("name", "approvals"), [("customer_refund", 1), ("refund_audit", 2)])
async def test_plans_run_with_the_workflow_cache_off(
    env_factory: Callable[[Path], Awaitable[Env]], name: str, approvals: int
) -> None:
    plan, script = PLANS[name]
    env = await env_factory(script)
    assert env.settings.max_cached_workflows == 0
    probe = build_worker(env.client, env.runtime, task_queue=f"{env.settings.task_queue}-probe")
    assert probe.config()["max_cached_workflows"] == 0
    handle = await start_session(
        env.client, load_plan(plan), {"ticket_id": "T-1001"}, task_queue=env.settings.task_queue
    )
    assert await approve_until_done(env, handle) == approvals
    result = await handle.result()
    assert result.status is SessionStatus.COMPLETED
    history = await handle.fetch_history()
    replayed = await replayer(AgentSessionWorkflow).replay_workflow(
        history, raise_on_replay_failure=False
    )
    assert replayed.replay_failure is None, replayed.replay_failure
    if name == "refund_audit" and os.environ.get("ORCHESTRATOR_RECORD_HISTORIES"):
        data = {"workflow_id": history.workflow_id, **json.loads(history.to_json())}
        (HISTORIES / "refund_audit.json").write_text(json.dumps(data, indent=1) + "\n")


def test_the_longer_plan_has_a_recorded_history() -> None:
    assert (HISTORIES / "refund_audit.json") in HISTORY_FILES
    assert (HISTORIES / "customer_refund.json") in HISTORY_FILES


@pytest.mark.parametrize("path", HISTORY_FILES, ids=lambda p: p.name)
async def test_a_guarded_change_replays_old_histories_an_unguarded_one_does_not(
    path: Path,
) -> None:
    history = recorded(path)
    guarded = await replayer(GuardedChange).replay_workflow(history, raise_on_replay_failure=False)
    assert guarded.replay_failure is None, guarded.replay_failure
    unguarded = await replayer(UnguardedChange).replay_workflow(
        history, raise_on_replay_failure=False
    )
    assert unguarded.replay_failure is not None
    assert "nondetermin" in str(unguarded.replay_failure).lower()
