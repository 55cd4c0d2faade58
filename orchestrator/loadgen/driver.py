"""Drive many concurrent sessions through our runtime: start, park, approve, finish, check.

The driver acts as the clients and the approvers would, through the public operations
(`start_session`, `decide_approval`), and watches progress in the store. It never sleeps
for synchronisation: it polls with a deadline. What it checks at the end comes from the
sources of truth: each workflow's own result in Temporal, the audit events in the store,
and the effect ledger the tool keeps.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from temporalio.client import Client

from orchestrator.exceptions import StoreError
from orchestrator.loadgen.report import LoadReport, SessionTrace, summarise
from orchestrator.loadgen.scenario import SessionSpec
from orchestrator.loadgen.tools import read_ledger
from orchestrator.plans.models import Plan
from orchestrator.service import decide_approval, start_session, workflow_id_for
from orchestrator.session.types import SessionResult
from orchestrator.session_start import StartOptions
from orchestrator.store.records import ApprovalStatus, EventKind, SessionStatus
from orchestrator.store.store import Store

if TYPE_CHECKING:
    from orchestrator.runtime import Runtime

__all__ = ["LoadSettings", "run_runtime_load"]


_ENDED = frozenset({SessionStatus.COMPLETED, SessionStatus.FAILED})

_CLOSING_S = 30.0
"""How long a session the store has closed may take to complete its run."""


@dataclass(frozen=True)
class LoadSettings:
    """How a load run is driven (the same for every system under test)."""

    tool_delay_ms: int
    concurrency: int = 64
    """Client calls (starts, decisions, checks) in flight at once."""
    timeout_s: float = 900.0
    """Longest the run may take to park, and again to finish, before it reports what it has."""
    poll_s: float = 0.25
    approver: str = "load-approver"

    @property
    def tool_seconds(self) -> list[float]:
        """The designed duration of each step's tool: the slow lookup, then the effect."""
        return [self.tool_delay_ms / 1000, 0.0]


@dataclass
class _Progress:
    """What the watcher has seen so far."""

    peak_live: int = 0
    parked_at_once: int = 0
    parked_at: float | None = None
    store_errors: int = 0


async def run_runtime_load(
    client: Client,
    store: Store,
    plan: Plan,
    specs: Sequence[SessionSpec],
    *,
    task_queue: str,
    skill_state_dir: Path,
    settings: LoadSettings,
    on_parked: Callable[[], Awaitable[None]] | None = None,
    on_ended: Callable[[], Awaitable[None]] | None = None,
    runtime: Runtime | None = None,
) -> LoadReport:
    """Run `specs` as sessions of `plan` on `task_queue` and report.

    Args:
        client: Temporal client of the server the worker polls.
        store: The worker's store (sessions, approvals, audit events).
        plan: The load plan.
        specs: The sessions to start.
        task_queue: Where the worker listens.
        skill_state_dir: The worker's skill state folder, where the effect ledger is.
        settings: How to drive the run.
        on_parked: Called once every gated session waits for its approval (e.g. to sample
            memory at the peak), before any is approved.
        on_ended: Called once the store shows every session ended, before the checks read
            each session's result and audit trail (e.g. to stop counting CPU: the checks are
            the judge's work, not the run's).
        runtime: The worker's runtime, when the driver runs in the worker's process: each
            start then resolves its session's setup ahead (`service.launch`).
    """
    gate = asyncio.Semaphore(settings.concurrency)
    traces = {s.session_id: SessionTrace(s.session_id, s.mode == "gated", 0.0) for s in specs}

    async def start(spec: SessionSpec) -> None:
        trace = traces[spec.session_id]
        async with gate:
            trace.started_at = time.time()
            try:
                await start_session(
                    client,
                    plan,
                    spec.input,
                    StartOptions(session_id=spec.session_id),
                    task_queue=task_queue,
                    runtime=runtime,
                )
            except Exception as exc:
                trace.error = f"start failed: {exc}"

    first = time.time()
    await asyncio.gather(*(start(spec) for spec in specs))
    gated = {sid for sid, t in traces.items() if t.gated and t.error is None}
    progress = _Progress()
    await _watch(store, traces, gated, progress, settings, until="parked")
    to_parked = (progress.parked_at or time.time()) - first
    if on_parked is not None:
        await on_parked()
    await _approve_all(client, store, traces, gate, settings)
    await _watch(store, traces, gated, progress, settings, until="done")
    if on_ended is not None:
        await on_ended()
    await asyncio.gather(*(_check(client, store, trace, gate) for trace in traces.values()))
    report = summarise(
        "orchestrator",
        list(traces.values()),
        read_ledger(skill_state_dir),
        tool_seconds=settings.tool_seconds,
        parked_at_once=progress.parked_at_once,
        peak_live=progress.peak_live,
        to_parked_s=to_parked,
    )
    return dataclasses.replace(report, driver_retries=progress.store_errors)


async def _watch(
    store: Store,
    traces: dict[str, SessionTrace],
    gated: set[str],
    progress: _Progress,
    settings: LoadSettings,
    *,
    until: str,
) -> None:
    """Poll the store until every gated session is parked, or every session has ended.

    Gives up quietly at the deadline: the final checks then count what never finished.
    """
    running = [sid for sid, t in traces.items() if t.error is None]
    deadline = time.monotonic() + settings.timeout_s
    while time.monotonic() < deadline:
        try:
            # Two narrow reads (ids and statuses), not whole rows: the driver runs in the
            # worker's process, and its polling is counted in the runtime's CPU per step.
            statuses = await store.session_statuses(running)
            waiting = await store.sessions_awaiting_approval() if until == "parked" else set()
        except StoreError:
            # The store is shared with the worker's activities; under load a read may wait
            # out the connection pool. The watcher only reads, so it tries again.
            progress.store_errors += 1
            await asyncio.sleep(settings.poll_s)
            continue
        ended = sum(1 for s in statuses.values() if s in _ENDED)
        progress.peak_live = max(progress.peak_live, len(running) - ended)
        if until == "parked":
            parked = len(waiting & gated)
            progress.parked_at_once = max(progress.parked_at_once, parked)
            if parked == len(gated):
                progress.parked_at = time.time()
                return
        elif ended >= len(running):
            return
        await asyncio.sleep(settings.poll_s)


async def _approve_all(
    client: Client,
    store: Store,
    traces: dict[str, SessionTrace],
    gate: asyncio.Semaphore,
    settings: LoadSettings,
) -> None:
    """Approve every pending request of this run's sessions, as a person would."""
    pending = [
        a
        for a in await store.list_approvals(status=ApprovalStatus.PENDING)
        if a.session_id in traces
    ]

    async def approve(approval_id: str, session_id: str) -> None:
        async with gate:
            traces[session_id].decided_at = time.time()
            for attempt in range(3):
                try:
                    await decide_approval(
                        client,
                        store,
                        approval_id,
                        approve=True,
                        decided_by=settings.approver,
                        reason="load test",
                    )
                    return
                except StoreError as exc:
                    # The same decision again is answered as a duplicate, so a retry is safe.
                    if attempt == 2:
                        traces[session_id].error = f"approval failed: {exc}"
                except Exception as exc:
                    traces[session_id].error = f"approval failed: {exc}"
                    return

    await asyncio.gather(*(approve(a.approval_id, a.session_id) for a in pending))


async def _check(
    client: Client, store: Store, trace: SessionTrace, gate: asyncio.Semaphore
) -> None:
    """Fill a trace from the sources of truth: the workflow's result and the audit trail."""
    if trace.error is not None and trace.error.startswith("start failed"):
        return
    async with gate:
        handle = client.get_workflow_handle(
            workflow_id_for(trace.session_id), result_type=SessionResult
        )
        record = await store.get_session(trace.session_id)
        try:
            described = await handle.describe()
            closed = described.close_time is not None
            if not closed and record is not None and record.ended_at is not None:
                # The store closes the session in the run's last activity; the run itself
                # completes a workflow task later.
                closed = True
            result = await asyncio.wait_for(handle.result(), timeout=_CLOSING_S) if closed else None
        except Exception as exc:
            trace.error = f"no result: {exc}"
            return
        events = await store.list_events(trace.session_id, kind=EventKind.MODEL_CALL)
    trace.model_done = [e.created_at.timestamp() for e in events]
    if result is None:
        trace.error = trace.error or "still running at the deadline"
    elif result.status is SessionStatus.COMPLETED and record is not None:
        trace.completed = record.status is SessionStatus.COMPLETED
        trace.ended_at = record.ended_at.timestamp() if record.ended_at else None
        if not trace.completed:
            trace.error = f"store says {record.status.value}"
    else:
        trace.error = trace.error or f"ended {result.status.value}: {result.error}"
