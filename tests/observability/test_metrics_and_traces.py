"""Metrics and traces of a demo run on a real worker, dev server and scripted model server.

Metrics are scraped over HTTP from the worker's endpoint before the run, while its refund
waits for approval, and after it; every family must have grown by this run (the registry
is per process, so other tests' counts are taken out by the difference). Traces go to an
in-memory exporter: one trace must hold the client's start, the workflow, the activities
and the HTTP request to the model provider.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from conftest import REPO, Env
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.observability import configure_tracing, serve_http
from orchestrator.plans import load_plan
from orchestrator.service import decide_approval, start_session
from orchestrator.session_start import StartOptions
from orchestrator.store.store import Store
from orchestrator.testing import eventually, wait_for_pending_approval

PLAN = REPO / "workflows/customer_refund.yaml"
SCRIPT = REPO / "model_scripts/customer_refund.yaml"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    # The tracer provider is process-global and set once; httpx instrumentation is undone
    # after this module, so no later test sees trace headers on its requests.
    exporter = InMemorySpanExporter()
    assert configure_tracing("orchestrator-test", processor=SimpleSpanProcessor(exporter))
    yield exporter
    HTTPXClientInstrumentor().uninstrument()


@pytest.fixture
async def scrape(
    env_factory: Callable[[Path], Awaitable[Env]],
) -> AsyncIterator[Callable[[], Awaitable[Samples]]]:
    env = await env_factory(SCRIPT)
    async with serve_http(env.runtime.store, host="127.0.0.1", port=0, required=True) as url:

        async def read() -> Samples:
            async with httpx.AsyncClient() as http:
                response = await http.get(f"{url}/metrics")
            response.raise_for_status()
            return {
                (sample.name, tuple(sorted(sample.labels.items()))): sample.value
                for family in text_string_to_metric_families(response.text)
                for sample in family.samples
            }

        read.env = env  # type: ignore[attr-defined]
        yield read


def total(samples: Samples, name: str, **labels: str) -> float:
    return sum(
        value
        for (sample, sample_labels), value in samples.items()
        if sample == name and set(labels.items()) <= set(sample_labels)
    )


async def run_demo(env: Env, store: Store, between: Callable[[], Awaitable[None]]) -> str:
    handle = await start_session(
        env.client,
        load_plan(PLAN),
        {"ticket_id": "T-1001"},
        StartOptions(tenant="acme"),
        task_queue=env.settings.task_queue,
    )
    session_id = handle.id.removeprefix("session-")
    pending = await wait_for_pending_approval(store, session_id)
    await between()
    await decide_approval(env.client, store, pending.approval_id, approve=True, decided_by="maria")
    await handle.result()
    return handle.id


async def test_metrics_grow_in_every_family_after_a_demo_run(
    scrape: Callable[[], Awaitable[Samples]],
) -> None:
    env: Env = scrape.env  # type: ignore[attr-defined]
    before = await scrape()
    during: list[Samples] = []

    async def while_waiting() -> None:
        # The request's record is written a moment before the session's status, by the same
        # activity; the demo calls this as soon as it sees the record.
        async def waiting() -> Samples | None:
            samples = await scrape()
            return (
                samples
                if total(samples, "orchestrator_sessions", status="waiting_approval")
                else None
            )

        during.append(await eventually(waiting, timeout=10, what="a session waiting_approval"))

    await run_demo(env, env.runtime.store, while_waiting)
    after = await scrape()

    def grew(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert total(during[0], "orchestrator_approvals_pending") >= 1
    assert grew("orchestrator_routing_decisions_total", model="demo-strong") >= 1
    assert grew("orchestrator_routing_decisions_total", model="demo-fast") >= 1
    assert grew("orchestrator_model_switches_total", boundary="step_change") >= 1
    assert grew("orchestrator_tool_calls_total", skill="tickets.get", outcome="ok") >= 1
    assert grew("orchestrator_tool_calls_total", skill="payments.refund", outcome="ok") == 1
    assert grew("orchestrator_approval_requests_total", kind="tool_call") == 1
    assert grew("orchestrator_approval_decisions_total", decision="approved") == 1
    assert grew("orchestrator_approval_decision_seconds_count") == 1
    assert grew("orchestrator_model_tokens_total", tenant="acme", direction="input") > 0
    assert grew("orchestrator_model_tokens_total", tenant="acme", direction="output") > 0
    assert grew("orchestrator_model_cost_usd_total", tenant="acme", model="demo-strong") > 0
    assert grew("orchestrator_provider_request_seconds_count", outcome="ok") >= 3
    assert total(after, "orchestrator_approvals_pending") == 0
    assert total(during[0], "orchestrator_sessions", status="waiting_approval") >= 1
    assert total(after, "orchestrator_sessions", status="completed") >= 1


async def test_one_trace_follows_a_session_to_the_provider(
    spans: InMemorySpanExporter, scrape: Callable[[], Awaitable[Samples]]
) -> None:
    env: Env = scrape.env  # type: ignore[attr-defined]
    spans.clear()

    async def nothing() -> None:
        return None

    workflow_id = await run_demo(env, env.runtime.store, nothing)

    finished = spans.get_finished_spans()
    start = [s for s in finished if s.name == "StartWorkflow:orchestrator.AgentSession"]
    assert len(start) == 1
    assert start[0].attributes is not None
    assert start[0].attributes.get("temporalWorkflowID") == workflow_id
    trace_id = start[0].context.trace_id
    in_trace = {s.name for s in finished if s.context.trace_id == trace_id}
    assert "RunWorkflow:orchestrator.AgentSession" in in_trace
    assert "RunActivity:orchestrator.call_model" in in_trace
    assert "RunActivity:orchestrator.call_skill" in in_trace
    http = [s for s in finished if s.context.trace_id == trace_id and s.name.startswith("POST")]
    assert http, f"no provider HTTP span in the session's trace: {sorted(in_trace)}"
