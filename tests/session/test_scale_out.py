"""Several workers share one task queue: two `orchestrator worker` processes against the
dev server, on SQLite and on PostgreSQL, take sessions' work between them and every
session completes.

Which worker ran what is read from Temporal itself: each `ActivityTaskStarted` event in a
session's history carries the identity (`pid@host`) of the worker that picked the task up.
Each worker also serves its own `/metrics`; between them they counted every model call.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from conftest import REPO
from postgres import scratch_database
from prometheus_client.parser import text_string_to_metric_families
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from test_worker_crash import WorkerProcess

from orchestrator.plans import load_plan
from orchestrator.scripted_model import ScriptedModelServer
from orchestrator.service import decide_approval, start_session
from orchestrator.settings import Settings
from orchestrator.store.records import EventKind, SessionStatus
from orchestrator.store.store import Store
from orchestrator.testing import eventually, wait_for_pending_approval

PLAN = REPO / "workflows/customer_refund.yaml"
SCRIPT = REPO / "model_scripts/customer_refund.yaml"
SESSIONS = 6


@pytest.fixture(params=["sqlite", "postgresql"])
async def store_url(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield settings.resolved_database_url
    else:
        async with scratch_database() as url:
            yield url


async def pollers(client: Client, task_queue: str, kind: TaskQueueType.ValueType) -> set[str]:
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=kind,
        )
    )
    return {poller.identity for poller in response.pollers}


async def provider_calls(url: str) -> float:
    async with httpx.AsyncClient() as http:
        response = await http.get(url)
    response.raise_for_status()
    return sum(
        sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name == "orchestrator_provider_request_seconds_count"
        and sample.labels.get("outcome") == "ok"
    )


async def test_sessions_spread_over_two_workers_and_all_complete(
    settings: Settings,
    client: Client,
    replay_factory: Callable[[Path], Awaitable[ScriptedModelServer]],
    store_url: str,
) -> None:
    replay = await replay_factory(SCRIPT)
    workers = [WorkerProcess(settings, replay.base_url) for _ in range(2)]
    for worker in workers:
        worker.env["ORCHESTRATOR_DATABASE_URL"] = store_url
        # Both on one host: each takes a free port for its metrics page.
        worker.env["ORCHESTRATOR_METRICS_PORT"] = "0"
        worker.start()
    try:
        identities = {f"{w.proc.pid}@{socket.gethostname()}" for w in workers if w.proc}

        async def both_polling() -> bool | None:
            # A worker that died (a migration race, say) fails now, with what it printed.
            dead = [w for w in workers if not w.running]
            assert not dead, dead[0].log.read_text(encoding="utf-8")[-4000:]
            for kind in (
                TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
                TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
            ):
                if not identities <= await pollers(client, settings.task_queue, kind):
                    return None
            return True

        # Two cold interpreters on a loaded 2-core machine can take a while to start polling.
        await eventually(both_polling, timeout=120, what="both workers polling the task queue")

        async with await Store.open(store_url) as store:
            handles = [
                await start_session(
                    client,
                    load_plan(PLAN),
                    {"ticket_id": "T-1001"},
                    task_queue=settings.task_queue,
                )
                for _ in range(SESSIONS)
            ]
            for handle in handles:
                pending = await wait_for_pending_approval(
                    store, handle.id.removeprefix("session-"), timeout=60
                )
                await decide_approval(
                    client, store, pending.approval_id, approve=True, decided_by="maria"
                )
            async with asyncio.timeout(120):
                results = await asyncio.gather(*(handle.result() for handle in handles))
            assert [r.status for r in results] == [SessionStatus.COMPLETED] * SESSIONS
            for handle in handles:
                record = await store.get_session(handle.id.removeprefix("session-"))
                assert record is not None and record.status is SessionStatus.COMPLETED

        ran_by: dict[str, int] = {}
        for handle in handles:
            history = await handle.fetch_history()
            for event in history.events:
                if event.HasField("activity_task_started_event_attributes"):
                    who = event.activity_task_started_event_attributes.identity
                    ran_by[who] = ran_by.get(who, 0) + 1
        assert set(ran_by) == identities, f"activities ran on {ran_by}, workers {identities}"

        # Each worker process serves its own /metrics; together they counted every call.
        urls = re.findall(r'"url": "(http://[^"]+/metrics)"', workers[0].log.read_text())
        assert len(urls) == 2, urls
        per_worker = [await provider_calls(url) for url in urls]
        assert all(count > 0 for count in per_worker), per_worker
        async with await Store.open(store_url) as store:
            calls = [
                e
                for handle in handles
                for e in await store.list_events(handle.id.removeprefix("session-"))
                if e.kind is EventKind.MODEL_CALL
            ]
        assert sum(per_worker) == len(calls)
    finally:
        for worker in workers:
            worker.stop()
