"""Routing on a real dev server: pins hold through tool loops, a step change may switch, a
dead deployment fails over once with its cause recorded, a rate-limited one is avoided
until its cooldown ends, and a budget refuses a session it cannot cover.

The model endpoint is the replay app behind `Faults`, an ASGI middleware that can hold a
request or answer for one model id with an error status, so failures land at known points
without sleeps; the router's clock is a fake one the test moves.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import REPO
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowHistory,
)
from temporalio.common import WorkflowIDConflictPolicy

from orchestrator.exceptions import StoreError
from orchestrator.plans import load_plan, parse_plan
from orchestrator.routing.learning import Tally
from orchestrator.runtime import Runtime
from orchestrator.scripted_model import LoopbackServer, ServedRequest, create_replay_app
from orchestrator.scripted_model.script import ReplayScript, load_model_script
from orchestrator.service import decide_approval, launch, start_session, workflow_id_for
from orchestrator.session import names
from orchestrator.session.resolution import prepare_start
from orchestrator.session.types import (
    ActivityOptions,
    Boundary,
    ModelSwitchRequest,
    ModelSwitchResult,
    SessionOptions,
    SessionResult,
    SessionStartInput,
)
from orchestrator.session_start import StartOptions, build_start
from orchestrator.settings import Settings
from orchestrator.store.records import AuditEvent, EventKind, SessionStatus
from orchestrator.testing import wait_for_pending_approval
from orchestrator.worker import build_worker

MODELS = """
providers:
  replay: {kind: openai, base_url: "${ORCHESTRATOR_REPLAY_URL}"}
models:
  strong-a:
    {provider: replay, model: replay-strong, input_price_per_mtok: 3, output_price_per_mtok: 15,
     quality: {default: 0.9}, data_classes: [public, internal, pii]}
  strong-b:
    {provider: replay, model: replay-strong-b, input_price_per_mtok: 3.5,
     output_price_per_mtok: 16, quality: {default: 0.9}, data_classes: [public, internal, pii]}
  cheap-a:
    {provider: replay, model: replay-fast, input_price_per_mtok: 0.1,
     output_price_per_mtok: 0.4, quality: {default: 0.6}}
  cheap-b:
    {provider: replay, model: replay-fast-b, input_price_per_mtok: 0.2,
     output_price_per_mtok: 0.8, quality: {default: 0.6}}
aliases:
  reasoning-strong: {deployments: [strong-a, strong-b]}
  fast-cheap: {deployments: [cheap-a, cheap-b]}
default_model: fast-cheap
routing:
  default_policy: default
  policies:
    default: {}
    carry: {failover: carry_over}
budgets:
  - {tenant: thrifty, period: month, limit_usd: 1.0, session_reserve_usd: 0.6}
"""

# Short retries, so a dead deployment exhausts its attempts in well under a second.
FAST = SessionOptions(
    model_call=ActivityOptions(
        max_attempts=2,
        initial_retry=timedelta(milliseconds=50),
        heartbeat=timedelta(seconds=10),
    )
)

TWO_STEPS = ReplayScript.model_validate(
    {
        "conversations": [
            {"name": "one", "match": {"contains": "Step: one"}, "turns": [{"content": "1"}]},
            {"name": "two", "match": {"contains": "Step: two"}, "turns": [{"content": "2"}]},
        ]
    }
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Faults:
    """ASGI middleware over the replay app: holds one request, or fails one model id."""

    app: ASGIApp
    hold_at: int | None = None
    fail_model: str | None = None
    fail_from: int = 1
    """Fail the fail_model's requests from its Nth on."""
    fail_count: int | None = None
    """How many of its requests fail (None: all from fail_from on)."""
    status: int = 503
    headers: dict[str, str] = field(default_factory=dict)
    seen: int = 0
    seen_by_model: dict[str, int] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/chat/completions"):
            await self.app(scope, receive, send)
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        self.seen += 1
        if self.seen == self.hold_at:
            self.arrived.set()
            await self.release.wait()
        model = body.split(b'"model":"', 1)[-1].split(b'"', 1)[0].decode()
        n = self.seen_by_model[model] = self.seen_by_model.get(model, 0) + 1
        failing = model == self.fail_model and n >= self.fail_from
        if failing and (self.fail_count is None or len(self.failed) < self.fail_count):
            self.failed.append(model)
            response = JSONResponse(
                {"error": {"message": f"injected {self.status}"}},
                status_code=self.status,
                headers=self.headers,
            )
            await response(scope, receive, send)
            return
        sent = False

        async def replay_receive() -> dict[str, object]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay_receive, send)


@dataclass
class RoutedEnv:
    settings: Settings
    client: Client
    runtime: Runtime
    faults: Faults
    served: list[ServedRequest]
    clock: Clock

    def models_served(self, conversation: str | None = None) -> list[str]:
        return [
            r.model for r in self.served if conversation is None or r.conversation == conversation
        ]


@pytest.fixture
async def routed(
    settings: Settings, client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Callable[..., Awaitable[RoutedEnv]]]:
    stack: list[tuple[LoopbackServer, Runtime, object]] = []

    async def make(
        script: ReplayScript | Path, models_yaml: str = MODELS, **faults: object
    ) -> RoutedEnv:
        loaded = script if isinstance(script, ReplayScript) else load_model_script(script)
        served: list[ServedRequest] = []
        gate = Faults(create_replay_app(loaded, served=served), **faults)  # type: ignore[arg-type]
        server = LoopbackServer(gate)
        await server.__aenter__()
        monkeypatch.setenv("ORCHESTRATOR_REPLAY_URL", f"{server.url}/v1")
        models = tmp_path / "models.yaml"
        models.write_text(models_yaml)
        settings.models_file = models
        runtime = await Runtime.open(settings)
        clock = Clock()
        runtime.metrics.clock = clock
        worker = build_worker(client, runtime, task_queue=settings.task_queue)
        await worker.__aenter__()
        stack.append((server, runtime, worker))
        return RoutedEnv(settings, client, runtime, gate, served, clock)

    yield make
    for server, runtime, worker in reversed(stack):
        await worker.__aexit__(None, None, None)  # type: ignore[attr-defined]
        await runtime.close()
        await server.__aexit__(None, None, None)


def reasons(pin: AuditEvent) -> dict[str, str]:
    """Deployment -> why it won or lost, from a MODEL_PINNED event."""
    out: dict[str, str] = {}
    candidates = pin.payload["candidates"]
    assert isinstance(candidates, list)
    for candidate in candidates:
        assert isinstance(candidate, dict)
        out[str(candidate["deployment"])] = str(candidate["reason"])
    return out


async def refund_with_failover(env: RoutedEnv, *, policy: str | None) -> tuple[str, SessionResult]:
    """The refund demo on the aliases, approved when asked; returns the session and result."""
    plan = load_plan(REPO / "workflows/customer_refund.yaml")
    plan.policy = policy
    plan.steps[0].model = "reasoning-strong"  # type: ignore[union-attr]
    plan.steps[1].model = "fast-cheap"  # type: ignore[union-attr]
    handle = await start_session(
        env.client,
        plan,
        {"ticket_id": "T-1001"},
        StartOptions(options=FAST),
        task_queue=env.settings.task_queue,
    )
    session_id = handle.id.removeprefix("session-")
    pending = await wait_for_pending_approval(env.runtime.store, session_id)
    await decide_approval(
        env.client, env.runtime.store, pending.approval_id, approve=True, decided_by="maria"
    )
    return session_id, await handle.result()


def refunds(settings: Settings) -> int:
    path = settings.resolved_state_dir / "skills" / "refunds.db"
    if not path.exists():
        return 0
    with sqlite3.connect(path, timeout=30) as conn:
        return int(conn.execute("SELECT count(*) FROM refunds").fetchone()[0])


LOOP_SCRIPT = ReplayScript.model_validate(
    {
        "conversations": [
            {
                "name": "loop",
                "match": {"contains": "Step: loop"},
                "turns": [
                    *[
                        {
                            "tool_calls": [
                                {"name": "tickets_get", "arguments": {"ticket_id": "T-1001"}}
                            ]
                        }
                        for _ in range(12)
                    ],
                    {"content": "looked twelve times"},
                ],
            },
            {"name": "after", "match": {"contains": "Step: after"}, "turns": [{"content": "ok"}]},
        ]
    }
)

LOOP_PLAN = parse_plan(
    """
name: long-loop
steps:
  - id: loop
    type: agent
    model: reasoning-strong
    goal: Read the ticket many times.
    skills: [tickets.get]
    max_rounds: 20
  - id: after
    type: agent
    model: reasoning-strong
    goal: Say ok.
""",
    "long-loop.yaml",
)


async def test_a_long_tool_loop_never_switches_and_the_next_step_may(
    routed: Callable[..., Awaitable[RoutedEnv]],
) -> None:
    env = await routed(LOOP_SCRIPT, hold_at=6)
    handle = await start_session(
        env.client, LOOP_PLAN, {}, StartOptions(options=FAST), task_queue=env.settings.task_queue
    )
    await asyncio.wait_for(env.faults.arrived.wait(), 30)
    # Mid-loop: a switch is requested and the pinned deployment starts to look bad. Neither
    # may move the pin before the loop ends.
    await handle.execute_update(
        names.REQUEST_MODEL_SWITCH, ModelSwitchRequest(model="strong-b", reason="try b")
    )
    env.runtime.metrics.record_failure("strong-a", "HTTP 500", retry_after=3600)
    env.faults.release.set()
    result = await handle.result()

    assert result.status is SessionStatus.COMPLETED
    assert env.models_served("loop") == ["replay-strong"] * 13
    assert env.models_served("after") == ["replay-strong-b"]
    timeline = [(p.step_id, p.model, p.boundary) for p in result.model_timeline]
    assert timeline == [
        ("loop", "strong-a", Boundary.SESSION_START),
        ("after", "strong-b", Boundary.STEP_CHANGE),
    ]
    assert "try b" in result.model_timeline[1].reason


async def test_a_deployment_dying_mid_loop_fails_over_once_and_no_effect_repeats(
    routed: Callable[..., Awaitable[RoutedEnv]],
) -> None:
    # replay-strong answers the ticket, order and refund rounds, then returns 503 for good:
    # the refund has run (approved) when the pinned deployment dies.
    env = await routed(
        REPO / "model_scripts/customer_refund.yaml", fail_model="replay-strong", fail_from=4
    )
    session_id, result = await refund_with_failover(env, policy=None)

    assert result.status is SessionStatus.COMPLETED
    forced = [p for p in result.model_timeline if p.boundary is Boundary.FORCED_FAILOVER]
    assert len(forced) == 1
    assert forced[0].step_id == "investigate" and forced[0].model == "strong-b"
    assert forced[0].cause is not None and "HTTP 503" in forced[0].cause
    # The step restarted on strong-b from its first turn; the refund ran once, was approved
    # once, and the re-run got the recorded results instead of running anything again.
    assert env.models_served("investigate") == ["replay-strong"] * 3 + ["replay-strong-b"] * 4
    assert env.faults.failed == ["replay-strong"] * 2  # both attempts of the 4th call
    assert refunds(env.settings) == 1
    assert len(await env.runtime.store.list_approvals(session_id=session_id)) == 1
    events = await env.runtime.store.list_events(session_id)
    ran = [e.skill for e in events if e.kind is EventKind.TOOL_CALL and e.skill]
    assert ran == ["tickets.get", "orders.get", "payments.refund"]
    reused = [e for e in events if e.kind is EventKind.TOOL_CALL and e.payload.get("reused")]
    assert len(reused) == 3
    pins = [e for e in events if e.kind is EventKind.MODEL_PINNED]
    failover = [e for e in pins if e.payload["boundary"] == "forced_failover"]
    assert len(failover) == 1 and "HTTP 503" in str(failover[0].payload["cause"])
    assert reasons(failover[0])["strong-a"].startswith("failed in this step: ")


async def test_a_carry_over_policy_hands_the_conversation_to_the_next_deployment(
    routed: Callable[..., Awaitable[RoutedEnv]],
) -> None:
    env = await routed(
        REPO / "model_scripts/customer_refund.yaml", fail_model="replay-strong", fail_from=4
    )
    session_id, result = await refund_with_failover(env, policy="carry")

    assert result.status is SessionStatus.COMPLETED
    forced = [p for p in result.model_timeline if p.boundary is Boundary.FORCED_FAILOVER]
    assert len(forced) == 1 and "carry_over" in forced[0].reason
    # strong-b picked the conversation up at its fourth turn: nothing was re-run or reused.
    assert env.models_served("investigate") == ["replay-strong"] * 3 + ["replay-strong-b"]
    assert refunds(env.settings) == 1
    events = await env.runtime.store.list_events(session_id)
    assert not [e for e in events if e.payload.get("reused")]


async def test_a_rate_limited_deployment_is_avoided_until_its_cooldown_ends(
    routed: Callable[..., Awaitable[RoutedEnv]],
) -> None:
    env = await routed(
        TWO_STEPS,
        fail_model="replay-fast",
        fail_count=1,
        status=429,
        headers={"retry-after": "120"},
    )
    plan = parse_plan(
        """
name: two
steps:
  - {id: one, type: agent, model: fast-cheap, goal: First.}
  - {id: two, type: agent, model: fast-cheap, goal: Second.}
""",
        "two.yaml",
    )
    first = await start_session(env.client, plan, {}, task_queue=env.settings.task_queue)
    result = await first.result()
    timeline = [(p.step_id, p.model, p.boundary) for p in result.model_timeline]
    # cheap-a is cheapest; its 429 with a long Retry-After is not waited out in the step:
    # the step fails over, and the next step avoids cheap-a while it cools down.
    assert timeline == [
        ("one", "cheap-a", Boundary.SESSION_START),
        ("one", "cheap-b", Boundary.FORCED_FAILOVER),
        ("two", "cheap-b", Boundary.STEP_CHANGE),
    ]
    assert result.model_timeline[1].cause is not None
    assert "HTTP 429" in result.model_timeline[1].cause
    events = await env.runtime.store.list_events(result.session_id, kind=EventKind.MODEL_PINNED)
    step_two = next(e for e in events if e.step_id == "two")
    assert reasons(step_two)["cheap-a"].startswith("cooling down for ")

    env.clock.now += 121
    second = await start_session(env.client, plan, {}, task_queue=env.settings.task_queue)
    again = await second.result()
    assert [p.model for p in again.model_timeline] == ["cheap-a", "cheap-a"]


ONE_STEP = parse_plan(
    "name: one\nsteps:\n  - {id: one, type: agent, model: fast-cheap, goal: First.}\n", "one.yaml"
)


def _in_two_minutes() -> str:
    return (datetime.now(UTC) + timedelta(seconds=120)).isoformat()


@pytest.mark.parametrize(
    "headers",
    [
        {"llm_provider-retry-after": "120"},
        {"x-ratelimit-reset-requests": "2m0s", "x-ratelimit-remaining-requests": "0"},
        {"anthropic-ratelimit-requests-reset": "in two minutes"},
    ],
)
async def test_a_long_rate_limit_in_any_header_fails_over_after_one_request(
    routed: Callable[..., Awaitable[RoutedEnv]], headers: dict[str, str]
) -> None:
    headers = {k: _in_two_minutes() if v == "in two minutes" else v for k, v in headers.items()}
    env = await routed(TWO_STEPS, fail_model="replay-fast", status=429, headers=headers)
    handle = await start_session(env.client, ONE_STEP, {}, task_queue=env.settings.task_queue)
    result = await handle.result()
    # Behind a gateway the hint comes in its own header; missed, the default five
    # attempts would each hit the rate-limited backend before the failover.
    assert env.faults.failed == ["replay-fast"]
    assert [(p.model, p.boundary) for p in result.model_timeline] == [
        ("cheap-a", Boundary.SESSION_START),
        ("cheap-b", Boundary.FORCED_FAILOVER),
    ]


@pytest.mark.parametrize("gateway", ["endpoint_retries", "x-should-retry"])
async def test_a_deployment_behind_a_retrying_gateway_gets_one_request(
    routed: Callable[..., Awaitable[RoutedEnv]], gateway: str
) -> None:
    models = MODELS
    headers: dict[str, str] = {}
    if gateway == "endpoint_retries":
        models = MODELS.replace(
            "output_price_per_mtok: 0.4,", "output_price_per_mtok: 0.4, endpoint_retries: true,"
        )
        assert models != MODELS
    else:
        headers = {"x-should-retry": "false"}
    env = await routed(TWO_STEPS, models, fail_model="replay-fast", status=503, headers=headers)
    handle = await start_session(env.client, ONE_STEP, {}, task_queue=env.settings.task_queue)
    result = await handle.result()
    assert env.faults.failed == ["replay-fast"]
    assert [p.model for p in result.model_timeline] == ["cheap-a", "cheap-b"]
    cause = result.model_timeline[1].cause or ""
    assert "HTTP 503" in cause
    assert ("retries itself" if gateway == "endpoint_retries" else "says not to retry") in cause


async def test_a_budget_refuses_a_session_it_cannot_cover(
    routed: Callable[..., Awaitable[RoutedEnv]],
) -> None:
    env = await routed(TWO_STEPS)
    plan = parse_plan(
        """
name: held
steps:
  - {id: one, type: agent, model: fast-cheap, goal: First.}
  - {id: gate, type: approval, summary: Hold the session open.}
""",
        "held.yaml",
    )

    async def start(session_id: str) -> WorkflowHandle[object, SessionResult]:
        return await env.client.start_workflow(
            names.WORKFLOW_NAME,
            SessionStartInput(session_id=session_id, plan=plan, tenant="thrifty"),
            id=f"session-{session_id}",
            task_queue=env.settings.task_queue,
            result_type=SessionResult,
        )

    # The first session holds 0.60 of the 1.00 budget while it waits for a person; a
    # second one cannot reserve another 0.60 and is refused with the figures.
    first = await start("thrifty-1")
    pending = await wait_for_pending_approval(env.runtime.store, "thrifty-1")
    second = await start("thrifty-2")
    with pytest.raises(WorkflowFailureError):
        await second.result()
    record = await env.runtime.store.get_session("thrifty-2")
    assert record is not None and record.status is SessionStatus.FAILED
    assert "budget thrifty/* (month" in (record.error or "")
    assert "is exhausted: $0.6000 of $1.00 committed" in (record.error or "")

    # Once the first session ends, what it reserved but did not spend comes back.
    await decide_approval(
        env.client, env.runtime.store, pending.approval_id, approve=True, decided_by="maria"
    )
    assert (await first.result()).status is SessionStatus.COMPLETED
    third = await start("thrifty-3")
    await wait_for_pending_approval(env.runtime.store, "thrifty-3")
    period = datetime.now(UTC).strftime("%Y-%m")
    usage = await env.runtime.store.budgets.usage("thrifty/*", period)
    assert 0 < usage.spent_usd < 0.01
    # The first session's spend, plus the third's 0.60 reservation (it spent less).
    assert usage.committed_usd == pytest.approx(0.6 + usage.spent_usd, abs=1e-3)
    await third.terminate()


async def test_a_cascade_step_escalates_when_the_cheap_answer_fails_its_check(
    routed: Callable[..., Awaitable[RoutedEnv]],
) -> None:
    script = ReplayScript.model_validate(
        {
            "conversations": [
                {
                    "name": "cheap",
                    "match": {"model": "replay-fast", "contains": "Step: decide"},
                    "turns": [{"content": "I am not sure."}],
                },
                {
                    "name": "strong",
                    "match": {"model": "replay-strong", "contains": "Step: decide"},
                    "turns": [{"content": '{"refund": true}'}],
                },
                {"name": "easy", "match": {"contains": "Step: easy"}, "turns": [{"content": "{}"}]},
            ]
        }
    )
    env = await routed(script)
    plan = parse_plan(
        """
name: cascade
steps:
  - id: decide
    type: agent
    model: fast-cheap
    goal: Decide, as JSON.
    accept: 'answer.startsWith("{")'
    escalate_to: reasoning-strong
  - id: easy
    type: agent
    model: fast-cheap
    goal: Say {}.
    accept: 'answer.startsWith("{")'
    escalate_to: reasoning-strong
""",
        "cascade.yaml",
    )
    handle = await start_session(env.client, plan, {}, task_queue=env.settings.task_queue)
    result = await handle.result()

    assert result.outputs["decide"] == '{"refund": true}'
    timeline = [(p.step_id, p.model, p.boundary) for p in result.model_timeline]
    assert timeline == [
        ("decide", "cheap-a", Boundary.SESSION_START),
        ("decide", "strong-a", Boundary.ESCALATION),
        ("easy", "cheap-a", Boundary.STEP_CHANGE),
    ]
    assert "gave False" in result.model_timeline[1].reason
    assert env.models_served() == ["replay-fast", "replay-strong", "replay-fast"]

    # Each check is an outcome of the deployment that answered, for the router to learn
    # from: cheap-a escalated once and passed once (an escalated answer is not checked).
    outcomes = await env.runtime.store.outcomes.list(handle.id.removeprefix("session-"))
    assert [(o.step_id, o.deployment, o.signal.value, o.score) for o in outcomes] == [
        ("decide", "cheap-a", "escalated", 0.0),
        ("easy", "cheap-a", "accepted", 1.0),
    ]
    assert await env.runtime.store.outcomes.tallies("default", "default") == {
        "cheap-a": Tally(1.0, 1.0)
    }
    # The next session's decision records the estimates it was scored on: 1 of 2 is within
    # noise of the declared 0.6, so the declaration stands.
    again = await start_session(env.client, plan, {}, task_queue=env.settings.task_queue)
    await again.result()
    events = await env.runtime.store.list_events(again.id.removeprefix("session-"))
    pinned = next(e for e in events if e.kind is EventKind.MODEL_PINNED)
    cheap = next(c for c in pinned.payload["candidates"] if c["deployment"] == "cheap-a")
    assert cheap["terms"]["declared_quality"] == 0.6
    assert cheap["terms"]["observations"] == 2.0
    assert cheap["terms"]["quality_value"] == 0.6


async def test_an_unknown_policy_or_escalation_target_fails_the_session_at_start(
    routed: Callable[..., Awaitable[RoutedEnv]],
) -> None:
    env = await routed(TWO_STEPS)
    for extra, expected in (
        ("policy: nope\n", "unknown routing policy 'nope' (known: carry, default)"),
        ("", "unknown model 'gpt-nope'"),
    ):
        escalate = "" if extra else "    accept: 'true'\n    escalate_to: gpt-nope\n"
        plan = parse_plan(
            f"name: bad\n{extra}steps:\n  - id: one\n    type: agent\n    goal: First.\n{escalate}",
            "bad.yaml",
        )
        handle = await start_session(env.client, plan, {}, task_queue=env.settings.task_queue)
        with pytest.raises(WorkflowFailureError) as info:
            await handle.result()
        assert expected in str(info.value.cause)


async def test_a_hard_step_escalates_before_it_runs_and_the_next_comes_back_down(
    routed: Callable[..., Awaitable[RoutedEnv]],
) -> None:
    script = ReplayScript.model_validate(
        {"conversations": [{"name": "any", "turns": [{"content": "done"}]}]}
    )
    env = await routed(script)
    plan = parse_plan(
        """
name: escalate
steps:
  - {id: triage, type: agent, goal: Triage., difficulty: low}
  - {id: diagnose, type: agent, goal: Diagnose., difficulty: high}
  - {id: reply, type: agent, goal: Reply., difficulty: low}
""",
        "escalate.yaml",
    )
    handle = await start_session(env.client, plan, {}, task_queue=env.settings.task_queue)
    result = await handle.result()
    timeline = [(p.step_id, p.model, p.boundary) for p in result.model_timeline]
    assert timeline == [
        ("triage", "cheap-a", Boundary.SESSION_START),
        ("diagnose", "strong-a", Boundary.STEP_CHANGE),
        ("reply", "cheap-a", Boundary.STEP_CHANGE),
    ]
    events = await env.runtime.store.list_events(result.session_id, kind=EventKind.MODEL_PINNED)
    diagnose = next(e for e in events if e.step_id == "diagnose")
    assert reasons(diagnose)["cheap-a"] == "quality 0.60 below high floor 0.80"


TWO_STEP_PLAN = parse_plan(
    """
name: two-steps
steps:
  - {id: one, type: agent, goal: First., model: reasoning-strong}
  - {id: two, type: agent, goal: Second., model: fast-cheap}
""",
    "two-steps.yaml",
)


def local_activities(history: WorkflowHistory) -> list[str]:
    """The activity type of each local-activity marker in a history, in order."""
    found: list[str] = []
    for event in history.events:
        marker = event.marker_recorded_event_attributes
        if event.HasField("marker_recorded_event_attributes") and marker.marker_name in (
            "core_local_activity"
        ):
            found.append(json.loads(marker.details["data"].payloads[0].data)["activity_type"])
    return found


async def test_the_first_routing_decision_rides_in_start_session(
    routed: Callable[..., Awaitable[RoutedEnv]],
) -> None:
    """Generation 1: no route activity before the first call, and no patch marker at all."""
    env = await routed(TWO_STEPS)
    handle = await start_session(
        env.client,
        TWO_STEP_PLAN,
        {},
        StartOptions(tenant="thrifty"),
        task_queue=env.settings.task_queue,
    )
    result = await handle.result()

    timeline = [(p.step_id, p.model, p.boundary) for p in result.model_timeline]
    assert timeline == [
        ("one", "strong-a", Boundary.SESSION_START),
        ("two", "cheap-a", Boundary.STEP_CHANGE),
    ]
    history = await handle.fetch_history()
    assert local_activities(history) == [
        names.START_SESSION,
        names.RECORD_EVENTS,  # the first step's close
        names.ROUTE,  # the second step's boundary
        # no finish_session: the last call closed the session (`LAST_CALL_GENERATION`)
    ]
    kinds = {EventType.Name(e.event_type) for e in history.events}
    assert "EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES" not in kinds
    # The decision taken ahead reserved the session's budget, as the route activity did.
    assert await env.runtime.store.budgets.session_scopes(result.session_id)
    pins = await env.runtime.store.list_events(result.session_id, kind=EventKind.MODEL_PINNED)
    assert [(e.step_id, e.payload["boundary"]) for e in pins] == [
        ("one", "session_start"),
        ("two", "step_change"),
    ]
    # The question asked ahead held the session's steps left, as the workflow's did.
    assert [(e.payload["horizon_steps"], e.payload["session_prefix_tokens"]) for e in pins] == [
        (2.0, 0),
        (1.0, 0),
    ]


async def _switched_at_start(env: RoutedEnv, start: SessionStartInput) -> WorkflowHistory:
    """Run `start` of `TWO_STEP_PLAN` with a switch to strong-b sent with the start itself
    (so the first workflow task holds it before it routes); its history once it ends."""
    begin = WithStartWorkflowOperation(
        names.WORKFLOW_NAME,
        start,
        id=workflow_id_for(start.session_id),
        task_queue=env.settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        result_type=SessionResult,
    )
    await env.client.execute_update_with_start_workflow(
        names.REQUEST_MODEL_SWITCH,
        ModelSwitchRequest(model="strong-b", reason="asked at start"),
        start_workflow_operation=begin,
        result_type=ModelSwitchResult,
    )
    handle = await begin.workflow_handle()
    result = await handle.result()
    assert [(p.step_id, p.model) for p in result.model_timeline] == [
        ("one", "strong-b"),
        ("two", "cheap-a"),
    ]
    assert "asked at start" in result.model_timeline[0].reason
    return await handle.fetch_history()


async def test_a_switch_before_the_first_boundary_asks_the_router_again(
    routed: Callable[..., Awaitable[RoutedEnv]],
) -> None:
    """The decision taken ahead answers another question: the workflow asks the activity."""
    env = await routed(TWO_STEPS)
    start = build_start(TWO_STEP_PLAN, {}, StartOptions(), fresh_id=lambda: uuid.uuid4().hex)
    history = await _switched_at_start(env, start)
    assert local_activities(history) == [
        names.START_SESSION,
        names.ROUTE,
        names.RECORD_EVENTS,
        names.ROUTE,
        # no finish_session: the last call closed the session (`LAST_CALL_GENERATION`)
    ]


async def _opening_trail(env: RoutedEnv, session_id: str) -> list[AuditEvent]:
    """The session's audit trail, checked to open with its row's `session_started` event."""
    events = await env.runtime.store.list_events(session_id)
    assert events[0].kind is EventKind.SESSION_STARTED
    assert events[0].step_id is None
    assert events[0].event_key == f"{workflow_id_for(session_id)}:-:session_started"
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    return events


async def test_a_starter_with_the_runtime_resolves_the_setup_and_no_start_session_runs(
    routed: Callable[..., Awaitable[RoutedEnv]],
) -> None:
    """Generation 4: the setup comes in the start input; the first model call writes the row."""
    env = await routed(TWO_STEPS)
    handle = await start_session(
        env.client,
        TWO_STEP_PLAN,
        {"case": 1},
        task_queue=env.settings.task_queue,
        runtime=env.runtime,
    )
    result = await handle.result()

    assert [(p.step_id, p.model, p.boundary) for p in result.model_timeline] == [
        ("one", "strong-a", Boundary.SESSION_START),
        ("two", "cheap-a", Boundary.STEP_CHANGE),
    ]
    history = await handle.fetch_history()
    assert local_activities(history) == [
        names.RECORD_EVENTS,  # the first step's close
        names.ROUTE,  # the second step's boundary
        # no finish_session: the last call closed the session (`LAST_CALL_GENERATION`)
    ]
    events = await _opening_trail(env, result.session_id)
    assert [e.kind for e in events[:4]] == [
        EventKind.SESSION_STARTED,
        EventKind.STEP_STARTED,
        EventKind.MODEL_PINNED,
        EventKind.MODEL_CALL,
    ]
    assert events[0].payload == {
        "plan": "two-steps",
        "plan_version": TWO_STEP_PLAN.version,
        "skills": {},
        "skill_refs": [],
        "deprecated": {},
        "requested_by": None,
    }
    record = await env.runtime.store.get_session(result.session_id)
    assert record is not None
    assert (record.status, record.input, record.run_id) == (
        SessionStatus.COMPLETED,
        {"case": 1},
        history.events[0].workflow_execution_started_event_attributes.original_execution_run_id,
    )
    # No budget applies to this tenant: nothing was reserved, ahead or later.
    assert not await env.runtime.store.budgets.session_scopes(result.session_id)


async def test_a_switch_before_the_first_boundary_writes_the_row_before_the_route(
    routed: Callable[..., Awaitable[RoutedEnv]],
) -> None:
    """The setup came with the start, but its first route answers another question: the
    route activity runs first, after a `record_events` that writes the session's row."""
    env = await routed(TWO_STEPS)
    start = build_start(TWO_STEP_PLAN, {}, StartOptions(), fresh_id=lambda: uuid.uuid4().hex)
    start = await prepare_start(env.runtime, start)
    assert start.setup is not None and start.setup.first_route is not None
    history = await _switched_at_start(env, start)
    assert local_activities(history) == [
        names.RECORD_EVENTS,  # the session's row and first event, before anything else
        names.ROUTE,
        names.RECORD_EVENTS,
        names.ROUTE,
        # no finish_session: the last call closed the session (`LAST_CALL_GENERATION`)
    ]
    await _opening_trail(env, start.session_id)


async def test_a_budget_or_a_join_leaves_the_setup_to_start_session(
    routed: Callable[..., Awaitable[RoutedEnv]],
) -> None:
    """A starter reserves nothing and a join writes nothing: both runs resolve themselves."""
    env = await routed(TWO_STEPS)
    budgeted = build_start(
        TWO_STEP_PLAN, {}, StartOptions(tenant="thrifty"), fresh_id=lambda: uuid.uuid4().hex
    )
    assert (await prepare_start(env.runtime, budgeted)).setup is None
    joined = build_start(TWO_STEP_PLAN, {}, StartOptions(), fresh_id=lambda: uuid.uuid4().hex)
    for start in (budgeted, joined):
        handle = await launch(
            env.client,
            start,
            task_queue=env.settings.task_queue,
            join=start is joined,
            runtime=env.runtime,
        )
        result = await handle.result()
        history = await handle.fetch_history()
        assert local_activities(history)[0] == names.START_SESSION
        await _opening_trail(env, result.session_id)
    # The budgeted session's reservation was the route's, taken ahead in `start_session`.
    assert await env.runtime.store.budgets.session_scopes(budgeted.session_id)


async def test_a_first_model_call_that_fails_for_good_leaves_the_row_and_its_whole_trail(
    routed: Callable[..., Awaitable[RoutedEnv]],
) -> None:
    """The call that carried the row failed: the step's failure carries it again (the
    write is idempotent), so the failed session is in the store with its trail."""
    env = await routed(TWO_STEPS, fail_model="replay-strong", status=400)
    handle = await start_session(
        env.client, TWO_STEP_PLAN, {}, task_queue=env.settings.task_queue, runtime=env.runtime
    )
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    session_id = handle.id.removeprefix("session-")
    history = await handle.fetch_history()
    assert local_activities(history) == [names.RECORD_EVENTS, names.FINISH_SESSION]
    events = await _opening_trail(env, session_id)
    assert [e.kind for e in events] == [
        EventKind.SESSION_STARTED,
        EventKind.STEP_STARTED,
        EventKind.MODEL_PINNED,
        EventKind.STEP_FAILED,
        EventKind.SESSION_FAILED,
    ]
    record = await env.runtime.store.get_session(session_id)
    assert record is not None and record.status is SessionStatus.FAILED


async def test_a_store_the_starter_cannot_read_leaves_the_setup_to_start_session(
    routed: Callable[..., Awaitable[RoutedEnv]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The router's figures unread at the start: the start goes on, and the run resolves
    itself (`start_session` reads them again, with its retries)."""
    env = await routed(TWO_STEPS)
    start = build_start(TWO_STEP_PLAN, {}, StartOptions(), fresh_id=lambda: uuid.uuid4().hex)

    async def unreadable(*_: object) -> object:
        raise StoreError("read outcomes: the database is locked")

    monkeypatch.setattr(env.runtime.store.outcomes, "tallies", unreadable)
    assert (await prepare_start(env.runtime, start)).setup is None
