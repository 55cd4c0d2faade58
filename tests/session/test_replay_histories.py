"""Determinism: recorded histories of the session workflow replay without errors.

`tests/histories/` holds histories recorded from earlier versions of the workflow; a
change that breaks their replay would break every session running when it deploys.
Set `ORCHESTRATOR_RECORD_HISTORIES=1` to record the demo history of the current
generation (`refund_gen<N>.json`, N being `patches.GENERATION`) after an intended change
of the commands a new session issues; the histories of earlier generations stay as they
were recorded, for the old paths they cover.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from conftest import REPO, Env
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from orchestrator import OrchestratorPlugin, SessionFailed
from orchestrator.plans import load_plan
from orchestrator.service import decide_approval, start_session
from orchestrator.session import patches
from orchestrator.session.workflow import AgentSessionWorkflow
from orchestrator.testing import wait_for_pending_approval

HISTORIES = Path(__file__).resolve().parent.parent / "histories"


def replayer() -> Replayer:
    """The plugin alone sets the replayer up: converter, sandbox pass-throughs, failures."""
    return Replayer(workflows=[AgentSessionWorkflow], plugins=[OrchestratorPlugin()])


def test_the_plugin_alone_gives_a_replayer_the_session_workflow_once() -> None:
    for listed in ([], [AgentSessionWorkflow]):
        config = Replayer(workflows=listed, plugins=[OrchestratorPlugin()]).config(
            active_config=True
        )
        assert config.get("workflows") == [AgentSessionWorkflow]
        assert config.get("workflow_failure_exception_types") == [SessionFailed]


async def test_a_fresh_demo_history_replays(env_factory: Callable[[Path], Awaitable[Env]]) -> None:
    env = await env_factory(REPO / "model_scripts/customer_refund.yaml")
    handle = await start_session(
        env.client,
        load_plan(REPO / "workflows/customer_refund.yaml"),
        {"ticket_id": "T-1001"},
        task_queue=env.settings.task_queue,
        runtime=env.runtime,
    )
    pending = await wait_for_pending_approval(env.runtime.store, handle.id.removeprefix("session-"))
    await decide_approval(
        env.client, env.runtime.store, pending.approval_id, approve=True, decided_by="maria"
    )
    await handle.result()
    history = await handle.fetch_history()
    result = await replayer().replay_workflow(history)
    assert result.replay_failure is None
    if os.environ.get("ORCHESTRATOR_RECORD_HISTORIES"):
        recorded = {"workflow_id": history.workflow_id, **json.loads(history.to_json())}
        target = HISTORIES / f"refund_gen{patches.GENERATION}.json"
        target.write_text(json.dumps(recorded, indent=1) + "\n")


@pytest.mark.parametrize("path", sorted(HISTORIES.glob("*.json")), ids=lambda p: p.name)
async def test_recorded_histories_replay(path: Path) -> None:
    recorded = json.loads(path.read_text())
    history = WorkflowHistory.from_json(recorded.pop("workflow_id"), recorded)
    result = await replayer().replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
