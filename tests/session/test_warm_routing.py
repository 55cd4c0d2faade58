"""A session tells the router what its pin holds warm and how many calls a step binds.

On a dev server with the scripted model server: `keeper` reads its prompt cache for free but
lists dearer than `lister`. Step one pins `keeper` by name; step two offers the same tools,
so `keeper` holds the head of its prompt (3 KB of tool definitions) warm and stays, where
list prices would switch; step three offers none, nothing is warm, and the router
switches. Each `model_pinned` record carries `warm_input_tokens` and `expected_calls`, and
the history replays.
"""

from __future__ import annotations

from pathlib import Path

from conftest import worker_with_models
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from orchestrator.plans import parse_plan
from orchestrator.plans.models import Plan
from orchestrator.plugin import OrchestratorPlugin
from orchestrator.providers.registry import ModelEntry
from orchestrator.routing.scoring import MIN_CACHED_TOKENS
from orchestrator.routing.types import ScoreTerms
from orchestrator.scripted_model import ReplayScript, ScriptedModelServer
from orchestrator.service import start_session
from orchestrator.session.prompt_cache import FIRST_LOOP_CALLS
from orchestrator.session.types import SessionResult
from orchestrator.settings import Settings
from orchestrator.store.records import AuditEvent, EventKind, SessionStatus

MODELS = """
providers:
  scripted: {kind: openai, base_url: "BASE"}
models:
  keeper: {provider: scripted, model: m-keeper, input_price_per_mtok: 1.1,
           cached_input_price_per_mtok: 0.0, output_price_per_mtok: 4, quality: {default: 0.8}}
  lister: {provider: scripted, model: m-lister, input_price_per_mtok: 1.0,
           output_price_per_mtok: 4, quality: {default: 0.8}}
aliases:
  both: {deployments: [keeper, lister]}
default_model: both
routing:
  default_policy: cost
  policies:
    cost: {weights: {quality: 1.0, cost: 1.0, latency: 0.0}, stickiness: 0.0}
"""

PLAN = parse_plan(
    """
name: warm
steps:
  - {id: one, type: agent, model: keeper, difficulty: low, goal: Look up the order.,
     skills: [orders.get, payments.refund, tickets.get, sources.read, deploys.rollback,
       incidents.alerts, incidents.deploys, incidents.logs]}
  - {id: two, type: agent, model: both, difficulty: low, goal: Draft the reply.,
     skills: [orders.get, payments.refund, tickets.get, sources.read, deploys.rollback,
       incidents.alerts, incidents.deploys, incidents.logs]}
  - {id: three, type: agent, model: both, difficulty: low, goal: Sign off.}
""",
    "warm.yaml",
)

USAGE = {"input_tokens": 1250, "output_tokens": 2}
SCRIPT = ReplayScript.model_validate(
    {
        "conversations": [
            {
                "name": name,
                "match": {"model": f"m-{name}"},
                # The scripted server counts message text only; a provider counts the
                # tool definitions too (3 KB of JSON schemas, about 2.5 characters a token),
                # so their shared prefix passes the 1024 tokens a provider caches from.
                "turns": [{"content": "Done.", "usage": USAGE}],
                "after_last": "repeat_last",
            }
            for name in ("keeper", "lister")
        ]
    }
)


def terms(payload: object) -> dict[str, ScoreTerms]:
    assert isinstance(payload, dict)
    return {
        c["deployment"]: ScoreTerms.model_validate(c["terms"])
        for c in payload["candidates"]
        if c["terms"] is not None
    }


async def run(
    settings: Settings, client: Client, tmp_path: Path, plan: Plan
) -> tuple[SessionResult, WorkflowHistory, list[AuditEvent], ModelEntry]:
    """A session of `plan` on keeper and lister: its result, history, pins, and keeper."""
    async with ScriptedModelServer(SCRIPT) as server:
        models = MODELS.replace("BASE", server.base_url)
        async with worker_with_models(settings, client, models, tmp_path) as runtime:
            handle = await start_session(client, plan, {}, task_queue=settings.task_queue)
            result = await handle.result()
            history = await handle.fetch_history()
            pins = await runtime.store.list_events(result.session_id, kind=EventKind.MODEL_PINNED)
            return result, history, pins, runtime.models.models["keeper"]


async def test_a_warm_pin_stays_where_list_prices_would_switch(
    settings: Settings, client: Client, tmp_path: Path
) -> None:
    result, history, pins, keeper = await run(settings, client, tmp_path, PLAN)
    assert result.status is SessionStatus.COMPLETED
    assert [p.model for p in pins] == ["keeper", "keeper", "lister"]
    one, two, three = (p.payload for p in pins)
    # Nothing served yet; no tool-offering step finished: a loop's fewest calls.
    assert (one["warm_input_tokens"], one["expected_calls"]) == (0, FIRST_LOOP_CALLS)
    # Step one answered in one call, so step two is expected to take as many.
    warm = two["warm_input_tokens"]
    assert isinstance(warm, int) and warm >= MIN_CACHED_TOKENS and two["expected_calls"] == 1.0
    scored = terms(two)
    assert (scored["keeper"].warm_tokens, scored["lister"].warm_tokens) == (warm, 0)
    assert scored["keeper"].cost_usd < scored["lister"].cost_usd
    # Priced at list (nothing warm), keeper would have cost more than lister: a switch.
    cached = keeper.cached_input_price_per_mtok or 0.0
    listed = scored["keeper"].cost_usd + warm * (keeper.input_price_per_mtok - cached) / 1e6
    assert listed > scored["lister"].cost_usd
    # Step three offers no tools: its prompt shares no leading block, so nothing is warm.
    assert (three["warm_input_tokens"], three["expected_calls"]) == (0, 1.0)
    replayed = await Replayer(workflows=[], plugins=[OrchestratorPlugin()]).replay_workflow(history)
    assert replayed.replay_failure is None


SAME_TOOLS = parse_plan(
    """
name: same-tools
steps:
  - {id: one, type: agent, model: keeper, difficulty: low, goal: Look up the order.,
     skills: &tools [orders.get, payments.refund, tickets.get, sources.read,
       deploys.rollback, incidents.alerts, incidents.deploys, incidents.logs]}
  - {id: two, type: agent, model: both, difficulty: low, goal: Check the refund.,
     skills: *tools}
  - {id: three, type: agent, model: both, difficulty: low, goal: Draft the reply.,
     skills: *tools}
""",
    "same-tools.yaml",
)


async def test_the_session_tells_the_router_its_steps_left_and_prefix(
    settings: Settings, client: Client, tmp_path: Path
) -> None:
    """Each pin's record carries the steps left and the prefix every later step re-reads."""
    result, history, pins, _ = await run(settings, client, tmp_path, SAME_TOOLS)
    assert result.status is SessionStatus.COMPLETED
    told = [(p.payload["horizon_steps"], p.payload["session_prefix_tokens"]) for p in pins]
    # Nothing served at the start: the tools block at the default rate is shorter than a
    # provider caches. Once keeper answered, its reported rate counts the same block past
    # it, and every later step offers the same tools: the prefix is told.
    assert told[0] == (3.0, 0)
    assert told[1][0] == 2.0 and told[1][1] >= MIN_CACHED_TOKENS
    assert told[2][0] == 1.0
    # The prefix is what a step change finds warm: the tools block, as keeper counted it.
    assert told[1][1] == pins[1].payload["warm_input_tokens"]
    assert [p.model for p in pins] == ["keeper", "keeper", "keeper"]
    replayed = await Replayer(workflows=[], plugins=[OrchestratorPlugin()]).replay_workflow(history)
    assert replayed.replay_failure is None
