"""History limits on the dev server: a long tool loop continues as new between its rounds.

A tool loop of 30 rounds runs with a small `continue_as_new_after`, so it continues as new
between its rounds several times: the session completes, its run chain has several runs,
every model call of the loop went to the same model (no routing when it continued), each
tally ran exactly once, and the final answer is the one the 31st turn gives.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionStatus,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from orchestrator.plans.models import AgentStep, Plan
from orchestrator.plugin import workflow_runner
from orchestrator.replay import ReplayServer
from orchestrator.runtime import Runtime
from orchestrator.service import start_session
from orchestrator.session.types import SessionOptions
from orchestrator.session.workflow import AgentSessionWorkflow
from orchestrator.settings import Settings
from orchestrator.store.records import EventKind, SessionStatus
from orchestrator.testing import eventually
from orchestrator.worker import build_worker

HERE = Path(__file__).resolve().parent
PROJECT = HERE / "history_project"
SCRIPTS = HERE / "scripts"

pytestmark = pytest.mark.timeout(600)

LOOP_PLAN = Plan(
    name="long-loop",
    steps=[
        AgentStep(
            id="grind",
            goal="Tally the items n00 to n29, one call each",
            skills=["hist.tally"],
            model="loop-strong",
            max_rounds=40,
        ),
        AgentStep(id="wrap", goal="Say that it is done", model="loop-fast"),
    ],
)


class HistoryEnv:
    """A worker on the history project, its runtime and the replay server it talks to."""

    def __init__(self, client: Client, runtime: Runtime, replay: ReplayServer) -> None:
        self.client = client
        self.runtime = runtime
        self.replay = replay

    @property
    def task_queue(self) -> str:
        return self.runtime.settings.task_queue


@pytest.fixture
async def history_env(
    client: Client, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Callable[[str], Awaitable[HistoryEnv]]]:
    opened: list[tuple[ReplayServer, Runtime, object]] = []

    async def make(script: str) -> HistoryEnv:
        replay = ReplayServer(SCRIPTS / script)
        await replay.__aenter__()
        monkeypatch.setenv("ORCHESTRATOR_REPLAY_URL", replay.base_url)
        runtime = await Runtime.open(settings.model_copy(update={"project_dir": PROJECT}))
        worker = build_worker(client, runtime, task_queue=settings.task_queue)
        await worker.__aenter__()
        opened.append((replay, runtime, worker))
        return HistoryEnv(client, runtime, replay)

    yield make
    for replay, runtime, worker in reversed(opened):
        await worker.__aexit__(None, None, None)  # type: ignore[attr-defined]
        await runtime.close()
        await replay.__aexit__(None, None, None)


def _ledger(state_dir: Path) -> tuple[list[str], list[str]]:
    """Items of `hist.tally`'s effects, and of every invocation, in the order written."""
    conn = sqlite3.connect(state_dir / "tally.db")
    try:
        effects = [r[0] for r in conn.execute("SELECT item FROM effects ORDER BY rowid")]
        calls = [r[0] for r in conn.execute("SELECT item FROM invocations ORDER BY rowid")]
    finally:
        conn.close()
    return effects, calls


async def _runs(client: Client, workflow_id: str, count: int) -> list[WorkflowExecution]:
    async def listed() -> list[WorkflowExecution] | None:
        found = [run async for run in client.list_workflows(f"WorkflowId = '{workflow_id}'")]
        return found if len(found) == count and all(r.status for r in found) else None

    return await eventually(listed, what=f"{count} runs of {workflow_id} in visibility")


async def test_a_long_tool_loop_continues_as_new_with_its_pin_and_conversation(
    history_env: Callable[[str], Awaitable[HistoryEnv]],
) -> None:
    env = await history_env("long_loop.yaml")
    store = env.runtime.store
    handle = await start_session(
        env.client,
        LOOP_PLAN,
        {},
        task_queue=env.task_queue,
        options=SessionOptions(continue_as_new_after=80),
    )
    session_id = handle.id.removeprefix("session-")
    result = await handle.result()

    assert result.status is SessionStatus.COMPLETED
    assert result.outputs["grind"] == "Tallied 30 items, n00 to n29."
    assert result.final_output == "All done."

    # The loop continued as new between its rounds, more than once, always on its model.
    events = await store.list_events(session_id)
    continued = [e for e in events if e.kind is EventKind.CONTINUED_AS_NEW]
    in_loop = [e for e in continued if str(e.payload["point"]).startswith("loop:0:")]
    assert len(in_loop) >= 2, [e.payload for e in continued]
    assert {e.model for e in in_loop} == {"loop-strong"}
    assert all(e.step_id == "grind" for e in in_loop)
    rounds = [int(str(e.payload["round"])) for e in in_loop]
    assert rounds == sorted(set(rounds)) and all(0 < r < 31 for r in rounds)

    # The pin held: one routing decision for the loop, every call to the same model.
    pins = [e for e in events if e.kind is EventKind.MODEL_PINNED]
    assert [(e.step_id, e.model) for e in pins] == [("grind", "loop-strong"), ("wrap", "loop-fast")]
    assert pins[1].payload["boundary"] == "step_change"
    assert [(p.step_id, p.model) for p in result.model_timeline] == [
        ("grind", "loop-strong"),
        ("wrap", "loop-fast"),
    ]
    served = [r for r in env.replay.requests if r.conversation == "grind"]
    assert {r.model for r in served} == {"replay-strong"}
    # Each turn was asked for once: the carried conversation went on where it stopped.
    assert [r.turn for r in served] == list(range(31))

    # No effect repeated: 30 tallies, each invoked and applied exactly once.
    effects, invocations = _ledger(env.runtime.skill_state_dir)
    expected = [f"n{i:02d}" for i in range(30)]
    assert effects == expected
    assert invocations == expected
    tool_events = [e for e in events if e.kind is EventKind.TOOL_CALL]
    assert len(tool_events) == 30
    assert len({e.payload["idempotency_key"] for e in tool_events}) == 30

    # Tokens and cost crossed every run: the totals are the sum of every model call.
    calls = [e for e in events if e.kind is EventKind.MODEL_CALL]
    assert len(calls) == 32
    assert result.input_tokens == sum(e.input_tokens for e in calls)
    assert result.cost_usd == pytest.approx(sum(e.cost_usd for e in calls))

    # The run chain: every run but the last continued as new, and each one replays.
    runs = await _runs(env.client, handle.id, len(continued) + 1)
    assert sorted(r.status for r in runs if r.status) == sorted(
        [WorkflowExecutionStatus.CONTINUED_AS_NEW] * len(continued)
        + [WorkflowExecutionStatus.COMPLETED]
    )
    replayer = Replayer(
        workflows=[AgentSessionWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    )
    for run in runs:
        history = await env.client.get_workflow_handle(handle.id, run_id=run.run_id).fetch_history()
        replayed = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        assert replayed.replay_failure is None, replayed.replay_failure
