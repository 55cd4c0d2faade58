"""The response cache in plan sessions, on a real dev server with the scripted model server.

A second session asking the same step gets both model calls from the cache (the second
after a read-only tool's result); a step with `cache: false` asks the model every time;
and the workflow history of a session answered from the cache replays.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from conftest import worker_with_models
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from orchestrator.observability.metrics import METRICS
from orchestrator.plans import Plan, parse_plan
from orchestrator.plugin import workflow_runner
from orchestrator.runtime import Runtime
from orchestrator.scripted_model import ReplayScript, ScriptedModelServer
from orchestrator.service import decide_approval, start_session
from orchestrator.session import names
from orchestrator.session.workflow import AgentSessionWorkflow
from orchestrator.settings import Settings
from orchestrator.store.records import EventKind, SessionStatus
from orchestrator.testing import start_until_approval

MODELS = """
providers:
  replay: {kind: openai, base_url: "BASE"}
models:
  answerer: {provider: replay, model: replay-answerer, input_price_per_mtok: 3,
             output_price_per_mtok: 15}
  embedder: {provider: replay, model: replay-embed, input_price_per_mtok: 0.02}
aliases:
  support: {deployments: [answerer]}
default_model: support
cache: {models: [support], embeddings: embedder}
"""

SCRIPT = ReplayScript.model_validate(
    {
        "conversations": [
            {
                "name": "lookup",
                "match": {"model": "replay-answerer"},
                "turns": [
                    {"tool_calls": [{"name": "tickets_get", "arguments": {"ticket_id": "T-1001"}}]},
                    {"content": "It is about a broken kettle."},
                ],
                "after_last": "repeat_last",
            }
        ]
    }
)


def plan(cache: bool) -> Plan:
    return parse_plan(
        f"""
name: lookup
steps:
  - id: lookup
    type: agent
    model: support
    cache: {str(cache).lower()}
    goal: Find what ticket T-1001 is about.
    skills: [tickets.get]
""",
        "lookup.yaml",
    )


@contextlib.asynccontextmanager
async def cached_worker(
    settings: Settings, client: Client, tmp_path: Path, script: ReplayScript = SCRIPT
) -> AsyncIterator[tuple[Runtime, ScriptedModelServer]]:
    """A worker whose models file caches `support`, answering from the scripted model server."""
    async with ScriptedModelServer(script) as replay:
        models = MODELS.replace("BASE", replay.base_url)
        async with worker_with_models(settings, client, models, tmp_path) as runtime:
            yield runtime, replay


def _finish_session_ran(history: WorkflowHistory) -> bool:
    """Whether the run closed its session with the `finish_session` local activity."""
    return any(
        names.FINISH_SESSION.encode()
        in e.marker_recorded_event_attributes.details["data"].payloads[0].data
        for e in history.events
        if e.HasField("marker_recorded_event_attributes")
        and "data" in e.marker_recorded_event_attributes.details
    )


async def test_a_second_session_is_answered_from_the_cache_and_replays(
    settings: Settings, client: Client, tmp_path: Path
) -> None:
    async with cached_worker(settings, client, tmp_path) as (runtime, replay):
        results, finishes = [], []
        for _ in range(2):
            handle = await start_session(client, plan(True), {}, task_queue=settings.task_queue)
            results.append(await handle.result())
            history = await handle.fetch_history()
            finishes.append(_finish_session_ran(history))
        second = await runtime.store.list_events(results[1].session_id, kind=EventKind.MODEL_CALL)
        ends = [
            e.kind
            for e in await runtime.store.list_events(results[1].session_id)
            if e.kind in (EventKind.SESSION_COMPLETED, EventKind.SESSION_FAILED)
        ]
        served = len(replay.requests)
    assert [r.status for r in results] == [SessionStatus.COMPLETED] * 2
    assert results[1].final_output == results[0].final_output == "It is about a broken kettle."
    assert served == 2
    assert [(e.payload.get("cache"), e.cost_usd) for e in second] == [("exact", 0.0)] * 2
    # The model's last answer closed the first session itself (generation 5); an answer
    # from the cache never closes one: `finish_session` wrote the second's one end.
    assert finishes == [False, True]
    assert ends == [EventKind.SESSION_COMPLETED]
    replayed = await Replayer(
        workflows=[AgentSessionWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    ).replay_workflow(history)
    assert replayed.replay_failure is None


async def test_a_step_marked_uncacheable_asks_the_model_every_time(
    settings: Settings, client: Client, tmp_path: Path
) -> None:
    async with cached_worker(settings, client, tmp_path) as (_, replay):
        for _ in range(2):
            handle = await start_session(client, plan(False), {}, task_queue=settings.task_queue)
            assert (await handle.result()).status is SessionStatus.COMPLETED
        assert len(replay.requests) == 4


REFUND_SCRIPT = ReplayScript.model_validate(
    {
        "conversations": [
            {
                "name": "refund",
                "match": {"model": "replay-answerer"},
                "turns": [
                    {
                        "tool_calls": [
                            {
                                "name": "payments_refund",
                                "arguments": {
                                    "order_id": "A-1001",
                                    "amount": 20,
                                    "currency": "EUR",
                                    "reason": "broken kettle",
                                },
                            }
                        ]
                    },
                    {"content": "Refunded."},
                ],
                "after_last": "repeat_last",
            }
        ]
    }
)


def after_write_lookups() -> float:
    value = METRICS.registry.get_sample_value(
        "orchestrator_cache_lookups_total", {"name": "support", "result": "after_write"}
    )
    return value or 0.0


async def test_no_model_call_after_a_write_skill_uses_the_cache(
    settings: Settings, client: Client, tmp_path: Path
) -> None:
    refund = parse_plan(
        """
name: refund
steps:
  - id: refund
    type: agent
    model: support
    goal: Refund order A-1001.
    skills: [payments.refund]
""",
        "refund.yaml",
    )
    before = after_write_lookups()
    async with cached_worker(settings, client, tmp_path, REFUND_SCRIPT) as (runtime, replay):
        ids = []
        for _ in range(2):
            gated = await start_until_approval(
                client, runtime.store, refund, {}, task_queue=settings.task_queue
            )
            approval = gated.pending.approval_id
            await decide_approval(client, runtime.store, approval, approve=True, decided_by="maria")
            assert (await gated.handle.result()).status is SessionStatus.COMPLETED
            ids.append(gated.session_id)
        second = await runtime.store.list_events(ids[1], kind=EventKind.MODEL_CALL)
        served = len(replay.requests)
    # The refund proposal, before any write, may come from the cache; the answer after the
    # refund ran (a write) never does.
    assert [e.payload.get("cache") for e in second] == ["exact", None]
    assert served == 3
    assert after_write_lookups() - before == 2
