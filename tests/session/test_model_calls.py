"""A model call as a session makes it, on a real dev server against OpenAI- and
Anthropic-compatible endpoints on loopback: its activity timeout comes from the
deployment; a step's max_tokens and temperature reach the wire; an answer cut off at the
output limit fails the step (or is continued) instead of passing as final.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError

from orchestrator.plans import Plan, parse_plan
from orchestrator.runtime import Runtime
from orchestrator.scripted_model import LoopbackServer
from orchestrator.service import start_session
from orchestrator.session import names
from orchestrator.session.call_timeouts import CALL_MARGIN, model_call_options
from orchestrator.session.truncation import CONTINUE_PROMPT
from orchestrator.session.types import ActivityOptions
from orchestrator.settings import Settings
from orchestrator.store.records import EventKind, SessionStatus
from orchestrator.types import JsonObject
from orchestrator.worker import build_worker

MODELS = """
providers:
  local: {kind: openai, base_url: "${FAKE_OPENAI_URL}", timeout_seconds: 600}
  fast: {kind: openai, base_url: "${FAKE_OPENAI_URL}", timeout_seconds: 20}
models:
  slow-local: {provider: local, model: llama-70b}
  quick: {provider: fast, model: small}
default_model: slow-local
"""

ONE_STEP = parse_plan(
    """
name: one
steps:
  - {id: one, type: agent, goal: Answer., model: slow-local}
  - {id: two, type: agent, goal: Answer again., model: quick}
""",
    "one.yaml",
)


def _answer(body: JsonObject, content: str = "done") -> JsonObject:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": body["model"],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 2},
    }


Answer = Callable[[JsonObject], JsonObject]


@dataclass
class Endpoint:
    """OpenAI- and Anthropic-compatible routes whose answers the test decides."""

    answer: Answer = _answer
    bodies: list[JsonObject] = field(default_factory=list)

    async def chat(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.bodies.append(body)
        return JSONResponse(self.answer(body))

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/v1/messages", self.chat, methods=["POST"]),
            ]
        )


@dataclass
class Env:
    client: Client
    settings: Settings
    runtime: Runtime
    endpoint: Endpoint


@pytest.fixture
async def session_env(
    settings: Settings, client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Callable[..., Awaitable[Env]]]:
    async with contextlib.AsyncExitStack() as stack:

        async def make(models: str = MODELS) -> Env:
            endpoint = Endpoint()
            server = await stack.enter_async_context(LoopbackServer(endpoint.app()))
            monkeypatch.setenv("FAKE_OPENAI_URL", f"{server.url}/v1")
            path = tmp_path / "models.yaml"
            path.write_text(models)
            settings.models_file = path
            runtime = await Runtime.open(settings)
            stack.push_async_callback(runtime.close)
            await stack.enter_async_context(
                build_worker(client, runtime, task_queue=settings.task_queue)
            )
            return Env(client, settings, runtime, endpoint)

        yield make


def test_the_activity_timeout_follows_the_deployment() -> None:
    base = ActivityOptions(start_to_close=timedelta(seconds=120), max_attempts=3)
    slow = model_call_options(base, 600)
    assert slow.start_to_close == timedelta(seconds=600) + CALL_MARGIN
    assert slow.max_attempts == 3 and base.start_to_close == timedelta(seconds=120)
    assert model_call_options(base, 20) is base  # never shorter than the session's floor
    assert model_call_options(base, None) is base  # recorded before timeouts were known


async def _failure(env: Env, plan: Plan) -> str:
    """The message a session that must fail ends with; its record says failed too."""
    handle = await start_session(env.client, plan, {}, task_queue=env.settings.task_queue)
    with pytest.raises(WorkflowFailureError) as info:
        await handle.result()
    record = await env.runtime.store.get_session(handle.id.removeprefix("session-"))
    assert record is not None and record.status is SessionStatus.FAILED
    return str(info.value.cause)


async def test_a_slow_deployment_gets_its_own_timeout(
    session_env: Callable[..., Awaitable[Env]],
) -> None:
    env = await session_env()
    handle = await start_session(env.client, ONE_STEP, {}, task_queue=env.settings.task_queue)
    await handle.result()
    history = await handle.fetch_history()
    timeouts = [
        event.activity_task_scheduled_event_attributes.start_to_close_timeout.ToTimedelta()
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and event.activity_task_scheduled_event_attributes.activity_type.name == names.CALL_MODEL
    ]
    # slow-local waits up to 600 s for its endpoint: cutting it at 120 s would throw the
    # answer away and regenerate it on every retry. quick keeps the session's 120 s.
    assert timeouts == [timedelta(seconds=630), timedelta(seconds=120)]


TRUNCATING = """
providers:
  openai: {kind: openai, base_url: "${FAKE_OPENAI_URL}"}
  claude: {kind: anthropic, base_url: "${FAKE_OPENAI_URL}"}
models:
  writer: {provider: openai, model: gpt-x}
  claude: {provider: claude, model: claude-x, max_tokens: 1000}
default_model: writer
"""


def _plan(step: str) -> Plan:
    return parse_plan(f"name: cut\nsteps:\n  - {step}\n", "cut.yaml")


def _cut_chat(parts: list[str], *, tool_call: bool = False) -> Answer:
    """Answers `parts` in turn; all but the last are cut off at the limit."""

    def answer(body: JsonObject) -> JsonObject:
        n = sum(1 for m in body["messages"] if m["role"] == "assistant")  # type: ignore[union-attr,index]
        last = n == len(parts) - 1
        message: JsonObject = {"role": "assistant", "content": parts[n]}
        if tool_call and not last:
            message["tool_calls"] = [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "tickets_get", "arguments": '{"ticket_id": "T-10'},
                }
            ]
        reply = _answer(body)
        reply["choices"] = [
            {"index": 0, "message": message, "finish_reason": "stop" if last else "length"}
        ]
        return reply

    return answer


async def test_a_cut_answer_fails_the_step_naming_the_deployment_and_limit(
    session_env: Callable[..., Awaitable[Env]],
) -> None:
    env = await session_env(TRUNCATING)
    env.endpoint.answer = _cut_chat(["The refund policy says that", "unused"])
    plan = _plan("{id: draft, type: agent, goal: Write., max_tokens: 50, temperature: 0.2}")
    error = await _failure(env, plan)
    assert "step 'draft': the answer of 'writer' (model 'gpt-x') was cut off at max_tokens=50" in (
        error
    )
    assert "on_truncation: continue" in error
    assert len(env.endpoint.bodies) == 1
    assert (env.endpoint.bodies[0]["max_tokens"], env.endpoint.bodies[0]["temperature"]) == (
        50,
        0.2,
    )


async def test_a_cut_tool_call_fails_even_when_continuing(
    session_env: Callable[..., Awaitable[Env]],
) -> None:
    env = await session_env(TRUNCATING)
    env.endpoint.answer = _cut_chat(["", "unused"], tool_call=True)
    plan = _plan(
        "{id: look, type: agent, goal: Look., skills: [tickets.get], on_truncation: continue}"
    )
    error = await _failure(env, plan)
    assert "a tool call of 'writer'" in error
    assert "the endpoint's own output limit" in error and "on_truncation" not in error
    assert len(env.endpoint.bodies) == 1  # no tool error went back to the model


async def test_a_cut_answer_is_continued_when_the_step_says_so(
    session_env: Callable[..., Awaitable[Env]],
) -> None:
    env = await session_env(TRUNCATING)
    env.endpoint.answer = _cut_chat(["The refund ", "policy says ", "yes."])
    plan = _plan("{id: draft, type: agent, goal: Write., on_truncation: continue}")
    handle = await start_session(env.client, plan, {}, task_queue=env.settings.task_queue)
    result = await handle.result()
    assert result.status is SessionStatus.COMPLETED
    assert result.final_output == "The refund policy says yes."
    last = env.endpoint.bodies[-1]["messages"]
    assert isinstance(last, list)
    assert [m["role"] for m in last[-4:]] == ["assistant", "user", "assistant", "user"]  # type: ignore[index]
    assert last[-1]["content"] == CONTINUE_PROMPT  # type: ignore[index]
    assert "max_tokens" not in env.endpoint.bodies[0]


async def test_a_cut_last_answer_never_closes_the_session(
    session_env: Callable[..., Awaitable[Env]],
) -> None:
    """The plan's last step closes the session from its model call (generation 5) only
    with a whole answer: a cut one is continued (or fails the step), and the session has
    one end, after the answer that ended it."""
    env = await session_env(TRUNCATING)
    env.endpoint.answer = _cut_chat(["The refund ", "yes."])
    plan = _plan("{id: draft, type: agent, goal: Write., on_truncation: continue}")
    handle = await start_session(env.client, plan, {}, task_queue=env.settings.task_queue)
    assert (await handle.result()).final_output == "The refund yes."
    events = await env.runtime.store.list_events(handle.id.removeprefix("session-"))
    assert [e.kind for e in events][-4:] == [
        EventKind.MODEL_CALL,  # cut: it closed nothing
        EventKind.MODEL_CALL,
        EventKind.STEP_COMPLETED,
        EventKind.SESSION_COMPLETED,
    ]
    assert [e.kind for e in events].count(EventKind.SESSION_COMPLETED) == 1

    env.endpoint.answer = _cut_chat(["The refund ", "unused"])
    cut = _plan("{id: draft, type: agent, goal: Write.}")
    await _failure(env, cut)
    [failed] = await env.runtime.store.list_sessions(status=SessionStatus.FAILED)
    ends = [
        e.kind
        for e in await env.runtime.store.list_events(failed.session_id)
        if e.kind in (EventKind.SESSION_COMPLETED, EventKind.SESSION_FAILED)
    ]
    assert ends == [EventKind.SESSION_FAILED]


async def test_anthropic_takes_the_deployments_max_tokens_and_stops_at_it(
    session_env: Callable[..., Awaitable[Env]],
) -> None:
    env = await session_env(TRUNCATING)

    def cut(body: JsonObject) -> JsonObject:
        return {
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [{"type": "text", "text": "A long essay that"}],
            "stop_reason": "max_tokens",
            "usage": {"input_tokens": 10, "output_tokens": 1000},
        }

    env.endpoint.answer = cut
    plan = _plan("{id: essay, type: agent, goal: Write., model: claude}")
    error = await _failure(env, plan)
    assert env.endpoint.bodies[0]["max_tokens"] == 1000  # the deployment's, not a fixed 4096
    assert "'claude' (model 'claude-x') was cut off at max_tokens=1000" in error
    assert "finish reason 'max_tokens'" in error


CACHED = """
providers:
  openai: {kind: openai, base_url: "${FAKE_OPENAI_URL}"}
models:
  cached:
    {provider: openai, model: gpt-c, input_price_per_mtok: 2.5,
     cached_input_price_per_mtok: 1.25, output_price_per_mtok: 10}
default_model: cached
budgets:
  - {tenant: default, period: total, limit_usd: 10, session_reserve_usd: 1}
"""


async def test_cached_prompt_tokens_are_priced_in_audit_budgets_and_reports(
    session_env: Callable[..., Awaitable[Env]],
) -> None:
    env = await session_env(CACHED)

    def cached(body: JsonObject) -> JsonObject:
        reply = _answer(body)
        reply["usage"] = {
            "prompt_tokens": 10_000,
            "completion_tokens": 500,
            "prompt_tokens_details": {"cached_tokens": 8_000},
        }
        return reply

    env.endpoint.answer = cached
    plan = _plan("{id: ask, type: agent, goal: Answer.}")
    handle = await start_session(env.client, plan, {}, task_queue=env.settings.task_queue)
    result = await handle.result()
    # 2,000 fresh x 2.5 + 8,000 cached x 1.25 + 500 out x 10 per million: $0.02 (at the full
    # input price it would be $0.03).
    assert result.cost_usd == 0.02
    (call,) = await env.runtime.store.list_events(result.session_id, kind=EventKind.MODEL_CALL)
    assert (call.cost_usd, call.input_tokens, call.payload["cached_input_tokens"]) == (
        0.02,
        10_000,
        8_000,
    )
    (row,) = await env.runtime.store.reports.spend("model")
    assert (row.cost_usd, row.input_tokens, row.cached_input_tokens) == (0.02, 10_000, 8_000)
    budget = await env.runtime.store.budgets.usage("default/*", "total")
    assert (budget.spent_usd, budget.spent_tokens) == (0.02, 10_500)


async def test_an_ensemble_counts_a_cut_answer_as_none(
    session_env: Callable[..., Awaitable[Env]],
) -> None:
    models = """
providers:
  openai: {kind: openai, base_url: "${FAKE_OPENAI_URL}"}
models:
  writer: {provider: openai, model: gpt-a}
  writer-b: {provider: openai, model: gpt-b}
  writer-c: {provider: openai, model: gpt-c}
default_model: writer
"""
    env = await session_env(models)

    def answer(body: JsonObject) -> JsonObject:
        reply = _answer(body, "yes")
        if body["model"] == "gpt-c":
            reply["choices"][0]["finish_reason"] = "length"  # type: ignore[index]
        return reply

    env.endpoint.answer = answer
    plan = _plan("{id: vote, type: ensemble, goal: Say yes., models: [writer, writer-b, writer-c]}")
    handle = await start_session(env.client, plan, {}, task_queue=env.settings.task_queue)
    result = await handle.result()
    assert result.final_output == "yes"
    (merged,) = await env.runtime.store.list_events(
        result.session_id, kind=EventKind.ENSEMBLE_MERGED
    )
    assert merged.payload["tally"] == {"yes": 2}
    assert "'writer-c' (model 'gpt-c') was cut off" in str(merged.payload["ballots"])


async def test_an_error_in_a_200_body_fails_the_step_with_the_providers_message(
    session_env: Callable[..., Awaitable[Env]],
) -> None:
    env = await session_env(TRUNCATING)
    env.endpoint.answer = lambda body: {
        "error": {
            "message": "Your credit balance is too low to access the API.",
            "type": "invalid_request_error",
            "code": "insufficient_quota",
        }
    }
    error = await _failure(env, _plan("{id: draft, type: agent, goal: Write.}"))
    assert "Your credit balance is too low to access the API." in error
    assert "(type invalid_request_error, code insufficient_quota)" in error
    assert "no choices" not in error
    assert len(env.endpoint.bodies) == 1  # not retried: the provider said why


STREAMING = """
providers:
  local: {kind: openai, base_url: "${FAKE_OPENAI_URL}"}
models:
  slow-local: {provider: local, model: llama-70b}
  quick: {provider: local, model: small, stream: false}
default_model: slow-local
"""


async def test_calls_stream_unless_the_deployment_says_stream_false(
    session_env: Callable[..., Awaitable[Env]],
) -> None:
    env = await session_env(STREAMING)
    handle = await start_session(env.client, ONE_STEP, {}, task_queue=env.settings.task_queue)
    await handle.result()
    # This endpoint answers whole bodies even when asked to stream; the call still succeeds.
    asked = [
        (body["model"], body.get("stream"), body.get("stream_options"))
        for body in env.endpoint.bodies
    ]
    assert asked == [
        ("llama-70b", True, {"include_usage": True}),
        ("small", None, None),
    ]
