"""Run a worker for the session workflow on a task queue until told to stop."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from temporalio.client import Client
from temporalio.worker import Plugin, Worker

from orchestrator.plugin import OrchestratorPlugin
from orchestrator.runtime import Runtime

__all__ = ["build_worker", "run_worker"]


def build_worker(
    client: Client,
    runtime: Runtime,
    *,
    task_queue: str | None = None,
    plugins: Sequence[Plugin] = (),
) -> Worker:
    """A worker with the runtime plugged in, on the settings' task queue unless given one.

    Its workflow cache holds `settings.max_cached_workflows` runs; with 0 every task
    replays the history first, so a nondeterministic change fails at once. `plugins` are
    applied after the runtime's own (a benchmark's sandbox variant, say).
    """
    return Worker(
        client,
        task_queue=task_queue or runtime.settings.task_queue,
        plugins=[OrchestratorPlugin(runtime), *plugins],
        max_cached_workflows=runtime.settings.max_cached_workflows,
    )


async def run_worker(
    client: Client, runtime: Runtime, stop: asyncio.Event, *, task_queue: str | None = None
) -> None:
    """Poll until `stop` is set, then finish in-flight tasks and return."""
    worker = build_worker(client, runtime, task_queue=task_queue)
    async with worker:
        await stop.wait()
