"""History limits on the dev server: long tool loops continue as new, large payloads never stick.

A tool loop of 30 rounds runs with a small `continue_as_new_after`, so it continues as new
between its rounds several times: the session completes, its run chain has several runs,
every model call of the loop went to the same model (no routing when it continued), each
tally ran exactly once, and the final answer is the one the 31st turn gives. With default
options, a loop of 2,000 tool calls (some 13,000 events in one history) continues when
Temporal suggests it, and no run reaches the 10,240 events Temporal warns at. Large payloads:
a 3 MB skill output comes back to the workflow as a stand-in naming its size and the limit
(the session completes); a conversation that grows towards Temporal's 2 MB payload limit
stops continuing as new once its carry would be too large, then fails its step with a clear
error instead of scheduling a model call Temporal would refuse.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from orchestrator.client import connect
from orchestrator.devserver import DevServer, free_port
from orchestrator.plans.models import AgentStep, Plan, SkillStep
from orchestrator.plugin import workflow_runner
from orchestrator.runtime import Runtime
from orchestrator.scripted_model import ScriptedModelServer
from orchestrator.service import start_session
from orchestrator.session.payloads import (
    INLINE_OUTPUT_BYTES,
    MAX_ANSWER_BYTES,
    MAX_CARRY_BYTES,
    MAX_CONVERSATION_BYTES,
    MAX_RESULT_BYTES,
    fit_outputs,
    json_size,
)
from orchestrator.session.types import SessionOptions, SessionResult
from orchestrator.session.workflow import AgentSessionWorkflow
from orchestrator.session_start import StartOptions
from orchestrator.settings import Settings
from orchestrator.store.records import EventKind, SessionRecord, SessionStatus
from orchestrator.testing import eventually
from orchestrator.types import JsonObject, JsonValue
from orchestrator.worker import build_worker

HERE = Path(__file__).resolve().parent
PROJECT = HERE / "history_project"
SCRIPTS = HERE / "scripts"
HISTORIES = HERE.parent / "histories"

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
    """A worker on the history project, its runtime and the scripted model server it talks to."""

    def __init__(self, client: Client, runtime: Runtime, replay: ScriptedModelServer) -> None:
        self.client = client
        self.runtime = runtime
        self.replay = replay

    @property
    def task_queue(self) -> str:
        return self.runtime.settings.task_queue


@contextlib.asynccontextmanager
async def _history_envs(
    client: Client, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Callable[[str | Path], Awaitable[HistoryEnv]]]:
    """Makes workers on the history project for `client`'s server; closes them after."""
    opened: list[tuple[ScriptedModelServer, Runtime, object]] = []

    async def make(script: str | Path) -> HistoryEnv:
        replay = ScriptedModelServer(SCRIPTS / script)
        await replay.__aenter__()
        monkeypatch.setenv("ORCHESTRATOR_REPLAY_URL", replay.base_url)
        runtime = await Runtime.open(settings.model_copy(update={"project_dir": PROJECT}))
        worker = build_worker(client, runtime, task_queue=settings.task_queue)
        await worker.__aenter__()
        opened.append((replay, runtime, worker))
        return HistoryEnv(client, runtime, replay)

    try:
        yield make
    finally:
        for replay, runtime, worker in reversed(opened):
            await worker.__aexit__(None, None, None)  # type: ignore[attr-defined]
            await runtime.close()
            await replay.__aexit__(None, None, None)


@pytest.fixture
async def history_env(
    client: Client, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Callable[[str | Path], Awaitable[HistoryEnv]]]:
    async with _history_envs(client, settings, monkeypatch) as make:
        yield make


SUGGEST_AT, WARN_AT = 300, 800
"""History limits of the low-limits server: Temporal's defaults are 4,096 events (suggest
continue-as-new) and 10,240 (warn), which take a loop of some 13,000 events to pass."""


@pytest.fixture
async def low_limits_env(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[Callable[[str | Path], Awaitable[HistoryEnv]]]:
    """Workers on a dev server of its own whose history limits are `SUGGEST_AT`/`WARN_AT`.

    The session's options stay the defaults: what is lowered is the server's own
    suggestion, so the same path runs as at 4,096 events, in a tenth of the events.
    """
    server = DevServer(
        db_file=tmp_path / "low-limits" / "temporal.db",
        port=free_port(),
        ui_port=None,
        flags=[
            "--dynamic-config-value",
            f"limit.historyCount.suggestContinueAsNew={SUGGEST_AT}",
            "--dynamic-config-value",
            f"limit.historyCount.warn={WARN_AT}",
        ],
    )
    await server.start()
    try:
        low = settings.model_copy(update={"temporal_address": server.address})
        async with _history_envs(await connect(low), low, monkeypatch) as make:
            yield make
    finally:
        await server.stop()


def _ledger(state_dir: Path) -> tuple[list[str], list[str]]:
    """Items of `hist.tally`'s effects, and of every invocation, in the order written."""
    conn = sqlite3.connect(state_dir / "tally.db")
    try:
        effects = [r[0] for r in conn.execute("SELECT item FROM effects ORDER BY rowid")]
        calls = [r[0] for r in conn.execute("SELECT item FROM invocations ORDER BY rowid")]
    finally:
        conn.close()
    return effects, calls


def _one_step(step_id: str, goal: str, skill: str, model: str, max_rounds: int = 10) -> Plan:
    """A plan of one agent step offered one skill."""
    step = AgentStep(id=step_id, goal=goal, skills=[skill], model=model, max_rounds=max_rounds)
    return Plan(name=f"{step_id}-plan", steps=[step])


async def _start(
    env: HistoryEnv, plan: Plan, *, continue_as_new_after: int | None = None
) -> WorkflowHandle[object, SessionResult]:
    options = SessionOptions(continue_as_new_after=continue_as_new_after)
    return await start_session(
        env.client, plan, {}, StartOptions(options=options), task_queue=env.task_queue
    )


def _tally(item: str) -> JsonObject:
    return {"name": "hist_tally", "arguments": {"item": item}}


async def _failed_with(
    env: HistoryEnv, handle: WorkflowHandle[object, SessionResult], *phrases: str
) -> SessionRecord:
    """The session's record, after checking that it failed with an error saying `phrases`."""
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    record = await env.runtime.store.get_session(handle.id.removeprefix("session-"))
    assert record is not None and record.status is SessionStatus.FAILED
    for phrase in phrases:
        assert phrase in str(failed.value.cause)
        assert phrase in (record.error or "")
    return record


async def _runs(client: Client, workflow_id: str, count: int) -> list[WorkflowExecution]:
    async def listed() -> list[WorkflowExecution] | None:
        found = [run async for run in client.list_workflows(f"WorkflowId = '{workflow_id}'")]
        # Visibility lags the run: a closed run can still be listed as RUNNING for a moment.
        closed = all(r.status and r.status != WorkflowExecutionStatus.RUNNING for r in found)
        return found if len(found) == count and closed else None

    return await eventually(listed, what=f"{count} runs of {workflow_id} in visibility")


async def test_a_long_tool_loop_continues_as_new_with_its_pin_and_conversation(
    history_env: Callable[[str | Path], Awaitable[HistoryEnv]],
) -> None:
    env = await history_env("long_loop.yaml")
    store = env.runtime.store
    handle = await _start(env, LOOP_PLAN, continue_as_new_after=80)
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
    for number, run in enumerate(sorted(runs, key=lambda r: r.start_time), start=1):
        history = await env.client.get_workflow_handle(handle.id, run_id=run.run_id).fetch_history()
        replayed = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        assert replayed.replay_failure is None, replayed.replay_failure
        if number <= 2 and os.environ.get("ORCHESTRATOR_RECORD_HISTORIES"):
            # The first run continues mid-loop; the second takes a loop over and continues
            # again. tests/session/test_replay_histories.py replays both in CI.
            recorded = {"workflow_id": history.workflow_id, **json.loads(history.to_json())}
            path = HISTORIES / f"long_loop_run{number}.json"
            path.write_text(json.dumps(recorded, indent=1) + "\n")


async def test_a_loop_that_failed_over_carries_its_reuse_map_across_runs(
    history_env: Callable[[str | Path], Awaitable[HistoryEnv]],
) -> None:
    """The first deployment dies at round 8; the step re-runs from its start on the other
    one, answering the first eight tallies from what they returned before, and continues
    as new between rounds of that re-run: the attempt, the reuse map and the failed-over
    pin cross each time, so no tally runs twice and no second failover or routing happens."""
    env = await history_env("failover_loop.yaml")
    plan = _one_step("grind", "Tally n00 to n11", "hist.tally", "loop-any", max_rounds=20)
    handle = await _start(env, plan, continue_as_new_after=60)
    result = await handle.result()

    assert result.final_output == "Tallied 12 items."
    assert [(p.model, p.boundary.value) for p in result.model_timeline] == [
        ("loop-fast", "session_start"),
        ("loop-strong", "forced_failover"),
    ]
    session_id = handle.id.removeprefix("session-")
    events = await env.runtime.store.list_events(session_id)
    continued = [e for e in events if e.kind is EventKind.CONTINUED_AS_NEW]
    in_rerun = [e for e in continued if e.payload["attempt"] == 1]
    assert in_rerun and {e.model for e in in_rerun} == {"loop-strong"}
    assert len([e for e in events if e.kind is EventKind.MODEL_PINNED]) == 2
    reused = [e for e in events if e.kind is EventKind.TOOL_CALL and e.payload.get("reused")]
    assert sorted(str(e.payload["call_id"]) for e in reused) == [f"f1.{r}.0" for r in range(8)]
    effects, invocations = _ledger(env.runtime.skill_state_dir)
    assert effects == invocations == [f"n{i:02d}" for i in range(12)]
    strong = [r.turn for r in env.replay.requests if r.model == "replay-strong"]
    assert strong == list(range(13))


async def test_without_a_threshold_a_loop_continues_before_temporal_warns(
    low_limits_env: Callable[[str | Path], Awaitable[HistoryEnv]], tmp_path: Path
) -> None:
    """Default options: 25 rounds of 10 tallies would write over `WARN_AT` events in one
    history; the loop continues as new when Temporal suggests it (at `SUGGEST_AT` on this
    server), and no run's history reaches the count Temporal warns at."""
    rounds, calls = 25, 10
    turns: list[JsonObject] = [
        {"tool_calls": [_tally(f"r{r}c{c}") for c in range(calls)]} for r in range(rounds)
    ]
    turns.append({"content": "Tallied them all."})
    grind = {"name": "grind", "match": {"contains": "Step: grind"}, "turns": turns}
    script = tmp_path / "wide_loop.yaml"
    script.write_text(json.dumps({"conversations": [grind]}))
    env = await low_limits_env(script)
    plan = _one_step("grind", "Tally every item", "hist.tally", "loop-strong", rounds + 1)
    handle = await _start(env, plan)
    result = await handle.result()

    assert result.status is SessionStatus.COMPLETED
    assert result.outputs["grind"] == "Tallied them all."
    session_id = handle.id.removeprefix("session-")
    continued = await env.runtime.store.list_events(session_id, kind=EventKind.CONTINUED_AS_NEW)
    assert continued and all(str(e.payload["point"]).startswith("loop:0:") for e in continued)
    runs = await _runs(env.client, handle.id, len(continued) + 1)
    lengths = []
    for run in runs:
        history = await env.client.get_workflow_handle(handle.id, run_id=run.run_id).fetch_history()
        lengths.append(len(history.events))
    assert sum(lengths) > WARN_AT > max(lengths), lengths
    served = [r for r in env.replay.requests if r.conversation == "grind"]
    assert {r.model for r in served} == {"replay-strong"}
    assert [r.turn for r in served] == list(range(rounds + 1))
    effects, invocations = _ledger(env.runtime.skill_state_dir)
    expected = [f"r{r}c{c}" for r in range(rounds) for c in range(calls)]
    assert effects == invocations == expected


async def test_a_3mb_skill_output_comes_back_as_a_stand_in(
    history_env: Callable[[str | Path], Awaitable[HistoryEnv]],
) -> None:
    env = await history_env("large_payloads.yaml")
    plan = Plan(
        name="large-output",
        steps=[
            AgentStep(id="fetch", goal="Read the blob", skills=["hist.blob"], model="loop-strong"),
            SkillStep(type="skill", id="dump", skill="hist.blob", arguments={"kilobytes": 3072}),
        ],
    )
    handle = await _start(env, plan)
    result = await handle.result()

    assert result.status is SessionStatus.COMPLETED
    assert result.outputs["fetch"] == "The blob was too large to read in full."
    dump = result.outputs["dump"]
    assert isinstance(dump, dict)
    assert dump["truncated"] is True
    assert dump["size_bytes"] == len('{"text":""}') + 3072 * 1024
    assert dump["limit_bytes"] == INLINE_OUTPUT_BYTES
    assert "hist.blob@1.0.0" in str(dump["note"]) and "3.0 MiB" in str(dump["note"])
    assert str(dump["preview"]).startswith('{"text":"xxx')
    # The model saw the stand-in, not 3 MB: its second request carried a small conversation.
    served = [r for r in env.replay.requests if r.conversation == "fetch"]
    assert [r.turn for r in served] == [0, 1]
    session_id = handle.id.removeprefix("session-")
    events = await env.runtime.store.list_events(session_id, kind=EventKind.TOOL_CALL)
    assert [e.payload.get("output_bytes") for e in events] == [len('{"text":""}') + 3072 * 1024] * 2


async def test_a_conversation_near_the_payload_limit_fails_its_step_clearly(
    history_env: Callable[[str | Path], Awaitable[HistoryEnv]],
) -> None:
    env = await history_env("large_payloads.yaml")
    plan = _one_step("pile", "Read blobs until done", "hist.blob", "loop-strong", 20)
    handle = await _start(env, plan, continue_as_new_after=1)
    await _failed_with(
        env,
        handle,
        "the conversation of step 'pile'",
        f"over the limit of 1.5 MiB ({MAX_CONVERSATION_BYTES} bytes)",
    )
    session_id = handle.id.removeprefix("session-")
    # 200 KiB per round: seven results fit under the 1.5 MiB limit, the eighth round's
    # call went out with them, and the ninth was never asked for.
    served = [r for r in env.replay.requests if r.conversation == "pile"]
    assert len(served) == MAX_CONVERSATION_BYTES // (200 * 1024) + 1
    # It continued as new between every two rounds while the carry (conversation, plus the
    # result kept for reuse after a failover) fit; from round 7 on it did not, so it
    # went on in the same run instead of handing Temporal a payload it would refuse.
    continued = await env.runtime.store.list_events(session_id, kind=EventKind.CONTINUED_AS_NEW)
    assert [e.payload["point"] for e in continued] == [f"loop:0:0:{r}" for r in range(1, 7)]
    assert all(int(str(e.payload["carry_bytes"])) <= MAX_CARRY_BYTES for e in continued)
    runs = await _runs(env.client, handle.id, 7)
    assert sorted(r.status for r in runs if r.status) == sorted(
        [WorkflowExecutionStatus.CONTINUED_AS_NEW] * 6 + [WorkflowExecutionStatus.FAILED]
    )


async def test_a_model_answer_over_the_limit_fails_its_step_clearly(
    history_env: Callable[[str | Path], Awaitable[HistoryEnv]],
) -> None:
    env = await history_env("large_payloads.yaml")
    plan = _one_step("shout", "Answer", "hist.blob", "loop-strong")
    handle = await _start(env, plan)
    record = await _failed_with(
        env,
        handle,
        # The answer holds the 2.2 MB arguments twice: as sent, and parsed.
        "the answer of loop-strong (round 0) is 4.2 MiB",
        f"over the limit of 1.5 MiB ({MAX_ANSWER_BYTES} bytes)",
    )
    session_id = record.session_id
    # Asked once (refused for good, not retried); the call's cost is still on the record.
    assert [r.turn for r in env.replay.requests] == [0]
    [call] = await env.runtime.store.list_events(session_id, kind=EventKind.MODEL_CALL)
    assert record.cost_usd == call.cost_usd > 0
    assert await env.runtime.store.list_events(session_id, kind=EventKind.TOOL_CALL) == []


async def test_a_large_final_answer_still_fits_the_session_result(
    history_env: Callable[[str | Path], Awaitable[HistoryEnv]], tmp_path: Path
) -> None:
    """Found by this test: the workflow task completing the session failed for ever."""
    answer = "y" * (1400 * 1024)
    turns = [{"content": answer}]
    script = tmp_path / "big_answer.yaml"
    script.write_text(json.dumps({"conversations": [{"name": "write", "turns": turns}]}))
    env = await history_env(script)
    handle = await _start(env, _one_step("write", "Write a lot", "hist.blob", "loop-strong"))
    result = await handle.result()

    # 1.4 MiB is fine for one answer, but the result holds it twice (step output and final
    # output): Temporal would refuse that and the session would never complete.
    assert result.status is SessionStatus.COMPLETED
    stand_in = result.outputs["write"]
    assert isinstance(stand_in, dict) and stand_in["truncated"] is True
    assert stand_in["size_bytes"] == len(answer) + 2
    assert "the output of step 'write' is 1.4 MiB" in str(stand_in["note"])
    assert result.final_output == stand_in
    record = await env.runtime.store.get_session(handle.id.removeprefix("session-"))
    assert record is not None and record.output == answer


async def test_a_final_answer_over_the_limit_never_closes_the_session(
    history_env: Callable[[str | Path], Awaitable[HistoryEnv]], tmp_path: Path
) -> None:
    """The plan's last step may close the session from its model call (generation 5); an
    answer too large is refused instead, and the session's one end is `session_failed`."""
    script = tmp_path / "huge_answer.yaml"
    huge = {"content": "z" * (MAX_ANSWER_BYTES + 1)}
    script.write_text(json.dumps({"conversations": [{"name": "write", "turns": [huge]}]}))
    env = await history_env(script)
    handle = await _start(env, _one_step("write", "Write a lot", "hist.blob", "loop-strong"))
    record = await _failed_with(env, handle, "the answer of loop-strong (round 0)")

    events = await env.runtime.store.list_events(record.session_id)
    assert [e.kind for e in events][-3:] == [
        EventKind.MODEL_CALL,
        EventKind.STEP_FAILED,
        EventKind.SESSION_FAILED,
    ]
    assert EventKind.SESSION_COMPLETED not in {e.kind for e in events}
    assert record.output is None and record.cost_usd == events[-3].cost_usd > 0


def test_many_small_outputs_are_fitted_too() -> None:
    """A loop's many iterations: none is large, together they are over the limit."""
    outputs: dict[str, JsonValue] = {f"step#{n}": "z" * 3000 for n in range(1000)}
    outputs["tiny"] = "ok"
    fitted = fit_outputs(outputs, MAX_RESULT_BYTES // 2)
    assert json_size(fitted) <= MAX_RESULT_BYTES // 2 < json_size(outputs)
    assert fitted.keys() == outputs.keys()
    assert fitted["tiny"] == "ok"
    replaced = [v for v in fitted.values() if v != "z" * 3000 and v != "ok"]
    assert replaced and all(v == {"truncated": True, "size_bytes": 3002} for v in replaced)
