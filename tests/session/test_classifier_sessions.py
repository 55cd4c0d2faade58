"""A plan step that declares no difficulty, in a real session: the route activity asks the
classifier deployment (the scripted model server over HTTP), routes on its level, records
it with its cost in the decision, and the history replays without asking again; a
classifier that times out leaves the step routed on the heuristic; a forced failover reuses
the step's estimate instead of asking again."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from conftest import worker_with_models
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from orchestrator.observability.metrics import METRICS
from orchestrator.plans import parse_plan
from orchestrator.plugin import OrchestratorPlugin, workflow_runner
from orchestrator.runtime import Runtime
from orchestrator.scripted_model import ReplayScript, ScriptedModelServer
from orchestrator.service import start_session
from orchestrator.session.types import ActivityOptions, SessionOptions
from orchestrator.session.workflow import AgentSessionWorkflow
from orchestrator.session_start import StartOptions
from orchestrator.settings import Settings
from orchestrator.store.records import EventKind, SessionStatus

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
    settings: Settings,
    client: Client,
    tmp_path: Path,
    judge: dict[str, Any],
    *,
    models_yaml: str = MODELS,
    answers: ReplayScript | None = None,
) -> AsyncIterator[tuple[Runtime, ScriptedModelServer]]:
    async with ScriptedModelServer(answers or script(judge)) as server:
        models = models_yaml.replace("BASE", server.base_url)
        async with worker_with_models(settings, client, models, tmp_path) as runtime:
            yield runtime, server


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


async def test_a_forced_failover_reuses_the_steps_estimate_without_asking_again(
    settings: Settings, client: Client, tmp_path: Path
) -> None:
    # A second strong deployment to fail over to; the first one is down for good.
    models = MODELS.replace(
        "  judge:",
        "  strong2: {provider: scripted, model: m-strong2, input_price_per_mtok: 4,\n"
        "            output_price_per_mtok: 16, quality: {default: 0.9}}\n  judge:",
    ).replace("[strong, cheap]", "[strong, strong2, cheap]")
    judge = {"usage": {"input_tokens": 1000, "output_tokens": 1}, "content": "High."}
    answers = ReplayScript.model_validate(
        {
            "conversations": [
                {"name": "judge", "match": {"model": "m-judge"}, "turns": [judge]},
                {
                    "name": "strong",
                    "match": {"model": "m-strong"},
                    "turns": [{"content": "x", "fault": {"kind": "status", "status": 503}}],
                },
                {"name": "strong2", "match": {"model": "m-strong2"}, "turns": [{"content": "Hi!"}]},
            ]
        }
    )
    fast = StartOptions(
        options=SessionOptions(
            model_call=ActivityOptions(
                max_attempts=2,
                initial_retry=timedelta(milliseconds=50),
                heartbeat=timedelta(seconds=10),
            )
        )
    )
    before = estimates("classifier", "ok")
    async with worker(settings, client, tmp_path, {}, models_yaml=models, answers=answers) as (
        runtime,
        server,
    ):
        handle = await start_session(client, PLAN, {}, fast, task_queue=settings.task_queue)
        result = await handle.result()
        pins = await runtime.store.list_events(result.session_id, kind=EventKind.MODEL_PINNED)
        asked = [r.model for r in server.requests]
        history = await handle.fetch_history()
    assert result.status is SessionStatus.COMPLETED
    # The classifier was asked once, at the step's boundary; not again at the failover.
    assert asked == ["m-judge", "m-strong", "m-strong", "m-strong2"]
    assert estimates("classifier", "ok") - before == 1
    first, failover = pins
    assert (first.model, failover.model) == ("strong", "strong2")
    assert failover.payload["boundary"] == "forced_failover"
    assert (first.payload["difficulty_reused"], failover.payload["difficulty_reused"]) == (
        False,
        True,
    )
    was, now = first.payload["difficulty_estimate"], failover.payload["difficulty_estimate"]
    assert isinstance(was, dict) and isinstance(now, dict)
    assert (now["difficulty"], now["source"], now["classifier"]) == ("high", "classifier", "judge")
    # Its cost was spent once, at the boundary.
    assert (was["cost_usd"], now["cost_usd"], now["tokens"]) == (0.001004, 0.0, 0)
    replayed = await Replayer(workflows=[], plugins=[OrchestratorPlugin()]).replay_workflow(history)
    assert replayed.replay_failure is None
