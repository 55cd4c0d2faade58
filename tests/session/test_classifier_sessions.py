"""A plan step that declares no difficulty, in a real session: the route activity asks the
classifier deployment (the scripted model server over HTTP), routes on its level, records
it with its cost in the decision, and the history replays without asking again; a
classifier that times out leaves the step routed on the heuristic."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from orchestrator.observability.metrics import METRICS
from orchestrator.plans import parse_plan
from orchestrator.plugin import workflow_runner
from orchestrator.runtime import Runtime
from orchestrator.scripted_model import ReplayScript, ScriptedModelServer
from orchestrator.service import start_session
from orchestrator.session.workflow import AgentSessionWorkflow
from orchestrator.settings import Settings
from orchestrator.store.records import EventKind, SessionStatus
from orchestrator.worker import build_worker

MODELS = """
providers:
  scripted: {kind: openai, base_url: "BASE"}
models:
  strong: {provider: scripted, model: m-strong, input_price_per_mtok: 3,
           output_price_per_mtok: 12, quality: {default: 0.9}}
  cheap: {provider: scripted, model: m-cheap, input_price_per_mtok: 0.1,
          output_price_per_mtok: 0.4, quality: {default: 0.6}}
  judge: {provider: scripted, model: m-judge, input_price_per_mtok: 1,
          output_price_per_mtok: 4}
aliases:
  answerers: {deployments: [strong, cheap]}
default_model: answerers
routing:
  complexity: {classifier: judge, timeout_seconds: 0.5}
"""

PLAN = parse_plan(
    """
name: greet
steps:
  - id: greet
    type: agent
    model: answerers
    goal: Say hello to the customer.
""",
    "greet.yaml",
)


def script(judge: dict[str, Any]) -> ReplayScript:
    answer = {"turns": [{"content": "Hello!"}], "after_last": "repeat_last"}
    return ReplayScript.model_validate(
        {
            "conversations": [
                {
                    "name": "judge",
                    "match": {"model": "m-judge"},
                    "turns": [{"usage": {"input_tokens": 1000, "output_tokens": 1}, **judge}],
                    "after_last": "repeat_last",
                },
                {"name": "strong", "match": {"model": "m-strong"}, **answer},
                {"name": "cheap", "match": {"model": "m-cheap"}, **answer},
            ]
        }
    )


@contextlib.asynccontextmanager
async def worker(
    settings: Settings, client: Client, tmp_path: Path, judge: dict[str, Any]
) -> AsyncIterator[tuple[Runtime, ScriptedModelServer]]:
    async with ScriptedModelServer(script(judge)) as server:
        models = tmp_path / "models.yaml"
        models.write_text(MODELS.replace("BASE", server.base_url))
        settings.models_file = models
        runtime = await Runtime.open(settings)
        try:
            async with build_worker(client, runtime, task_queue=settings.task_queue):
                yield runtime, server
        finally:
            await runtime.close()


def estimates(source: str, result: str) -> float:
    labels = {"source": source, "result": result}
    value = METRICS.registry.get_sample_value("orchestrator_difficulty_estimates_total", labels)
    return value or 0.0


async def test_the_classifiers_level_routes_the_step_and_is_replayed_not_asked_again(
    settings: Settings, client: Client, tmp_path: Path
) -> None:
    before = estimates("classifier", "ok")
    async with worker(settings, client, tmp_path, {"content": "High."}) as (runtime, server):
        handle = await start_session(client, PLAN, {}, task_queue=settings.task_queue)
        result = await handle.result()
        pins = await runtime.store.list_events(result.session_id, kind=EventKind.MODEL_PINNED)
        asked = [r.model for r in server.requests]
        history = await handle.fetch_history()
    assert result.status is SessionStatus.COMPLETED
    assert asked == ["m-judge", "m-strong"]
    [pin] = pins
    assert pin.model == "strong"  # the heuristic alone calls this step low: cheap
    guess = pin.payload["difficulty_estimate"]
    assert isinstance(guess, dict)
    assert (guess["difficulty"], guess["source"], guess["classifier"], guess["fallback"]) == (
        "high",
        "classifier",
        "judge",
        None,
    )
    assert guess["cost_usd"] == 0.001004 and guess["tokens"] == 1001
    assert estimates("classifier", "ok") - before == 1
    replayed = await Replayer(
        workflows=[AgentSessionWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    ).replay_workflow(history)
    assert replayed.replay_failure is None


async def test_a_classifier_that_times_out_leaves_the_heuristic_to_route(
    settings: Settings, client: Client, tmp_path: Path
) -> None:
    before = estimates("heuristic", "timeout")
    judge = {"content": "high", "fault": {"kind": "timeout", "seconds": 10}}
    async with worker(settings, client, tmp_path, judge) as (runtime, _):
        handle = await start_session(client, PLAN, {}, task_queue=settings.task_queue)
        result = await handle.result()
        pins = await runtime.store.list_events(result.session_id, kind=EventKind.MODEL_PINNED)
    assert result.status is SessionStatus.COMPLETED
    [pin] = pins
    assert pin.model == "cheap"
    guess = pin.payload["difficulty_estimate"]
    assert isinstance(guess, dict)
    assert (guess["difficulty"], guess["source"], guess["fallback"], guess["cost_usd"]) == (
        "low",
        "heuristic",
        "timed out after 0.5s",
        0.0,
    )
    assert estimates("heuristic", "timeout") - before == 1
