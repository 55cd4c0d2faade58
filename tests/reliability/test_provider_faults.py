"""Provider faults on a real dev server: each ends as designed, never in a stuck session.

The model endpoint is the scripted model server with faults declared in its script
(`faults/provider_faults.yaml`, one conversation per fault, matched by the step id):
transient failures are retried by the activity's retry policy (a 429 after its
`Retry-After`) and the session completes on the same pinned model; a deployment that stays
down fails over to the next one of its alias; a body that is not JSON, an answer too large
for Temporal, an endless tool loop and a spent cost limit end in a clear failed step; bad
tool calls come back to the model as tool errors it reads in its next request.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from orchestrator.exceptions import PlanError
from orchestrator.plans import parse_plan
from orchestrator.plans.models import Plan
from orchestrator.plugin import workflow_runner
from orchestrator.runtime import Runtime
from orchestrator.scripted_model import ScriptedModelServer, ServedRequest, load_model_script
from orchestrator.service import start_session
from orchestrator.session import patches
from orchestrator.session.types import ActivityOptions, Boundary, SessionOptions, SessionResult
from orchestrator.session.workflow import AgentSessionWorkflow
from orchestrator.session_start import StartOptions
from orchestrator.settings import Settings
from orchestrator.store.records import AuditEvent, EventKind, SessionStatus
from orchestrator.worker import build_worker

SCRIPT = Path(__file__).resolve().parent / "faults" / "provider_faults.yaml"

# A 2 s client timeout, so the timeout fault costs seconds, not a minute (and a loaded
# machine's ordinary answers, a few ms each, stay well inside it).
MODELS = """
providers:
  replay: {kind: openai, base_url: "${ORCHESTRATOR_REPLAY_URL}", timeout_seconds: 2}
models:
  strong-a:
    {provider: replay, model: replay-strong, input_price_per_mtok: 3, output_price_per_mtok: 15,
     quality: {default: 0.9}}
  strong-b:
    {provider: replay, model: replay-strong-b, input_price_per_mtok: 3.5,
     output_price_per_mtok: 16, quality: {default: 0.9}}
aliases:
  reasoning-strong: {deployments: [strong-a, strong-b]}
default_model: strong-a
"""

# Short backoff, so spent retries take well under a second; a 429's Retry-After (1 s)
# is far above it, which shows the retry waited for the endpoint and not the backoff.
OPTIONS = SessionOptions(
    model_call=ActivityOptions(
        max_attempts=4,
        initial_retry=timedelta(milliseconds=50),
        max_retry=timedelta(milliseconds=200),
        heartbeat=timedelta(seconds=10),
    )
)


@dataclass
class FaultEnv:
    settings: Settings
    client: Client
    runtime: Runtime
    replay: ScriptedModelServer

    async def run(self, plan: Plan) -> tuple[str, SessionResult | WorkflowFailureError]:
        handle = await start_session(
            self.client,
            plan,
            {},
            StartOptions(options=OPTIONS),
            task_queue=self.settings.task_queue,
        )
        session_id = handle.id.removeprefix("session-")
        try:
            return session_id, await handle.result()
        except WorkflowFailureError as failure:
            return session_id, failure

    def served(self, conversation: str) -> list[ServedRequest]:
        return [r for r in self.replay.requests if r.conversation == conversation]

    async def events(self, session_id: str, kind: EventKind) -> list[AuditEvent]:
        return await self.runtime.store.list_events(session_id, kind=kind)


@pytest.fixture
async def faults(
    settings: Settings,
    client: Client,
    tmp_path: Path,
    replay_factory: Callable[[Path], Awaitable[ScriptedModelServer]],
) -> AsyncIterator[FaultEnv]:
    replay = await replay_factory(SCRIPT)
    models = tmp_path / "models.yaml"
    models.write_text(MODELS)
    settings.models_file = models
    runtime = await Runtime.open(settings)
    worker = build_worker(client, runtime, task_queue=settings.task_queue)
    async with worker:
        yield FaultEnv(settings, client, runtime, replay)
    await runtime.close()


def plan(*steps: dict[str, object], limits: dict[str, object] | None = None) -> Plan:
    return Plan.model_validate(
        {
            "name": f"faults-{uuid.uuid4().hex[:6]}",
            "model": "strong-a",
            "steps": [
                {"type": "agent", "goal": "Read ticket T-1001.", "skills": ["tickets.get"], **s}
                for s in steps
            ],
            **({"limits": limits} if limits is not None else {}),
        }
    )


async def failed_step(env: FaultEnv, session_id: str, outcome: object) -> str:
    """The session failed with one failed step; its error, as the audit trail has it."""
    assert isinstance(outcome, WorkflowFailureError), outcome
    (event,) = await env.events(session_id, EventKind.STEP_FAILED)
    record = await env.runtime.store.get_session(session_id)
    assert record is not None and record.status is SessionStatus.FAILED
    error = event.payload["error"]
    assert isinstance(error, str)
    assert record.error is not None and error in record.error
    return error


@pytest.mark.parametrize(
    ("fault", "times"),
    [
        ("s429", 1),
        ("s500", 2),
        ("s503", 2),
        ("timeout", 1),
        ("reset", 2),
        ("cut", 1),
        ("cut_stream", 1),
    ],
)
async def test_a_transient_fault_is_retried_and_the_session_completes(
    faults: FaultEnv, fault: str, times: int
) -> None:
    session_id, result = await faults.run(plan({"id": fault}))
    assert isinstance(result, SessionResult), result
    assert result.final_output.startswith("done after")  # type: ignore[union-attr]
    served = faults.served(fault)
    kind = "status" if fault.startswith("s") else fault
    assert [r.fault for r in served if r.fault is not None] == [kind] * times
    assert served[0].fault is None and served[-1].fault is None
    # Retried inside the tool loop on the same pinned deployment: no failover.
    assert {r.model for r in served} == {"replay-strong"}
    assert [pin.model for pin in result.model_timeline] == ["strong-a"]
    # The tool ran once: a retried model call does not repeat the round's tool calls.
    assert len(await faults.events(session_id, EventKind.TOOL_CALL)) == 1
    if fault == "s429":
        assert served[-1].received_at - served[-2].received_at >= 1.0


async def test_a_stream_cut_mid_answer_is_retried_and_never_a_partial_result(
    faults: FaultEnv,
) -> None:
    scripted = load_model_script(SCRIPT).find("replay-strong", "Step: cut_stream")
    assert scripted is not None
    whole = scripted.turns[1].content
    session_id, result = await faults.run(plan({"id": "cut_stream"}))
    assert isinstance(result, SessionResult), result
    assert result.final_output == whole
    served = faults.served("cut_stream")
    assert [(r.turn, r.stream, r.fault) for r in served] == [
        (0, True, None),
        (1, True, "cut_stream"),
        (1, True, None),
    ]
    # One model_call record per round: the cut attempt left none, and its tokens were
    # not spent twice.
    calls = await faults.events(session_id, EventKind.MODEL_CALL)
    assert [event.payload["round"] for event in calls] == [0, 1]


@pytest.mark.parametrize(
    ("fault", "failures", "cause", "answer"),
    [
        # Down for good: its retries are spent, then the step re-runs on strong-b.
        (
            "down",
            [503] * OPTIONS.model_call.max_attempts,
            "HTTP 503",
            "done on the next one",
        ),
        # One 429 asking for 120 s: not waited out, no retry on strong-a.
        ("ratelimited", [429], "retry after 120s", "done without waiting"),
    ],
)
async def test_a_deployment_that_fails_hard_fails_over_to_the_next(
    faults: FaultEnv, fault: str, failures: list[int], cause: str, answer: str
) -> None:
    session_id, result = await faults.run(plan({"id": fault, "model": "reasoning-strong"}))
    assert isinstance(result, SessionResult), result
    assert result.final_output == answer
    assert [(r.model, r.status) for r in faults.served(fault)] == [
        ("replay-strong", 200),
        *[("replay-strong", status) for status in failures],
        ("replay-strong-b", 200),
        ("replay-strong-b", 200),
    ]
    first, forced = result.model_timeline
    assert (first.model, forced.model, forced.boundary) == (
        "strong-a",
        "strong-b",
        Boundary.FORCED_FAILOVER,
    )
    assert forced.cause is not None and cause in forced.cause
    # The re-run on strong-b reused the ticket read instead of running it again.
    calls = await faults.events(session_id, EventKind.TOOL_CALL)
    assert [bool(c.payload.get("reused")) for c in calls] == [False, True]


@pytest.mark.parametrize("fault", ["truncated", "garbage"])
async def test_a_body_that_is_not_json_fails_the_step_clearly(faults: FaultEnv, fault: str) -> None:
    session_id, outcome = await faults.run(plan({"id": fault}))
    error = await failed_step(faults, session_id, outcome)
    assert error.startswith("model call failed: model 'strong-a': ")
    assert "response is not JSON (HTTP 200, body starts" in error
    # Not retried: the same request would get the same broken answer.
    assert [r.fault for r in faults.served(fault)] == [None, "bad_json"]
    # The new path (patch model-call-failure-v1, which a session of generation 1 takes
    # without asking: `patches.GENERATION`) replays from its own history, which holds no
    # patch marker at all.
    history = await faults.client.get_workflow_handle(f"session-{session_id}").fetch_history()
    replayer = Replayer(
        workflows=[AgentSessionWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    )
    markers = [e for e in history.events if e.HasField("marker_recorded_event_attributes")]
    assert patches.GENERATION >= 1
    assert not any(
        patch.encode() in e.SerializeToString()
        for e in markers
        for patch in (*patches.LIVE, *patches.RETIRED)
    )
    replayed = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert replayed.replay_failure is None, replayed.replay_failure


async def test_bad_tool_calls_come_back_to_the_model_as_tool_errors(faults: FaultEnv) -> None:
    session_id, result = await faults.run(plan({"id": "badcalls"}))
    assert isinstance(result, SessionResult), result
    assert result.final_output == "told about both"
    unknown, invalid = faults.served("badcalls")[1].tool_results
    assert unknown == (
        "ERROR (invalid_call): unknown tool 'refunds_issue'; tools offered: tickets_get"
    )
    assert invalid.startswith("ERROR (invalid_arguments): ")
    assert "ticket_id" in invalid
    errors = await faults.events(session_id, EventKind.TOOL_ERROR)
    assert len(errors) == 2
    assert await faults.events(session_id, EventKind.TOOL_CALL) == []


async def test_arguments_over_two_megabytes_fail_the_step_naming_the_size(
    faults: FaultEnv,
) -> None:
    session_id, outcome = await faults.run(plan({"id": "huge"}))
    error = await failed_step(faults, session_id, outcome)
    assert "MiB" in error and "over the limit" in error
    assert [r.turn for r in faults.served("huge")] == [0]
    assert await faults.events(session_id, EventKind.TOOL_CALL) == []


async def test_an_endless_tool_loop_is_stopped_by_the_step_limit(faults: FaultEnv) -> None:
    session_id, outcome = await faults.run(plan({"id": "endless", "max_rounds": 3}))
    error = await failed_step(faults, session_id, outcome)
    assert error == "no final answer after max_rounds=3 model calls"
    assert len(faults.served("endless")) == 3


@pytest.mark.parametrize(
    ("steps", "limits", "message", "calls"),
    [
        (
            [{"id": "costly"}],
            {"max_cost_usd": 0.03},
            "cost limit $0.03 reached ($0.036 spent)",
            2,
        ),
        (
            [{"id": "warmup"}, {"id": "costly", "max_cost_usd": 0.02}],
            None,
            "step cost limit $0.02 reached ($0.036 spent in step 'costly')",
            2,
        ),
        (
            [{"id": "warmup"}, {"id": "costly"}],
            {"max_model_calls": 3},
            "model call limit 3 reached (3 calls made)",
            2,
        ),
    ],
    ids=["session-cost", "step-cost", "model-calls"],
)
async def test_a_limit_stops_the_session_at_its_next_model_call(
    faults: FaultEnv,
    steps: list[dict[str, object]],
    limits: dict[str, object] | None,
    message: str,
    calls: int,
) -> None:
    session_id, outcome = await faults.run(plan(*steps, limits=limits))
    assert await failed_step(faults, session_id, outcome) == message
    assert len(faults.served("costly")) == calls
    model_calls = await faults.events(session_id, EventKind.MODEL_CALL)
    assert len(model_calls) == len(faults.replay.requests)


@pytest.mark.parametrize(
    ("extra", "step_extra", "message"),
    [
        ("limits: {max_cost_usd: 0}", "", "limits.max_cost_usd: Input should be greater than 0"),
        ("limits: {max_model_calls: 0}", "", "limits.max_model_calls: Input should be greater"),
        ("limits: {max_dollars: 1}", "", "limits.max_dollars: Extra inputs are not permitted"),
        (
            "",
            ", max_cost_usd: -1",
            "line 4, column 49: steps.0.max_cost_usd: Input should be greater",
        ),
    ],
)
def test_bad_limits_are_refused_naming_the_field(extra: str, step_extra: str, message: str) -> None:
    text = f"name: p\n{extra}\nsteps:\n  - {{id: a, type: agent, goal: g{step_extra}}}\n"
    with pytest.raises(PlanError) as caught:
        parse_plan(text, "limits.yaml")
    assert str(caught.value).startswith("limits.yaml")
    assert message in str(caught.value)


def test_limits_are_in_the_plan_schema() -> None:
    schema = Plan.model_json_schema(by_alias=True, mode="validation")
    limits = schema["$defs"]["PlanLimits"]["properties"]
    assert set(limits) == {"max_cost_usd", "max_model_calls"}
    assert "max_cost_usd" in schema["$defs"]["AgentStep"]["properties"]
