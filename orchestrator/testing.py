"""Helpers for testing plans and skills against a real worker.

Waiting is done by polling with a deadline, never by a fixed sleep, so a test is as fast
as the system under it and fails with a clear message when something never happens.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from temporalio.client import Client, WorkflowHandle

from orchestrator.plans.models import Plan
from orchestrator.service import start_session
from orchestrator.session.types import SessionResult
from orchestrator.session_start import StartOptions
from orchestrator.store.records import ApprovalRecord, ApprovalStatus
from orchestrator.store.store import Store
from orchestrator.types import JsonObject

__all__ = ["GatedSession", "eventually", "start_until_approval", "wait_for_pending_approval"]

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T | None]],
    *,
    timeout: float = 30.0,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """Call `probe` until it returns something other than None, or fail after `timeout`.

    Raises:
        TimeoutError: naming `what` was awaited.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(interval)


async def wait_for_pending_approval(
    store: Store, session_id: str, *, timeout: float = 30.0, skip: frozenset[str] = frozenset()
) -> ApprovalRecord:
    """The first pending approval request of a session not in `skip`."""

    async def probe() -> ApprovalRecord | None:
        for rec in await store.list_approvals(session_id=session_id):
            if rec.status is ApprovalStatus.PENDING and rec.approval_id not in skip:
                return rec
        return None

    return await eventually(probe, timeout=timeout, what=f"an approval request in {session_id}")


@dataclass(frozen=True)
class GatedSession:
    """A session started by a test and now waiting on its first approval."""

    handle: WorkflowHandle[object, SessionResult]
    session_id: str
    pending: ApprovalRecord


async def start_until_approval(
    client: Client,
    store: Store,
    plan: Plan,
    input: JsonObject,
    how: StartOptions | None = None,
    *,
    task_queue: str,
    timeout: float = 30.0,
) -> GatedSession:
    """Start a session of `plan` and wait until it asks for its first approval.

    The set-up most approval and crash tests share: what they test starts at the gate.
    """
    handle = await start_session(
        client,
        plan,
        input,
        how,
        task_queue=task_queue,
    )
    session_id = handle.id.removeprefix("session-")
    pending = await wait_for_pending_approval(store, session_id, timeout=timeout)
    return GatedSession(handle=handle, session_id=session_id, pending=pending)
