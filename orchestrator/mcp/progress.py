"""Progress of a call's run, told from its session's event stream.

While a `tools/call` waits for its run, every durable event of the run's session (step
started, approval requested and decided, session completed, ...) becomes one
`notifications/progress` message, in the order the store numbered them, each once. The
events come from the process's `EventHub`: woken by `NOTIFY` on PostgreSQL, by the worker's
loopback UDP notice (a 0.1 s poll behind it) on SQLite, and in any case by a read every
`recheck` seconds. Nothing asks Temporal while the call waits. The SDK sends a
notification only when the client gave a `progressToken`; without one the messages cost
nothing but the reads.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from orchestrator.events.hub import READ_BATCH, EventHub
from orchestrator.events.models import TERMINAL_KINDS, Dropped, StreamDelta
from orchestrator.store.records import AuditEvent, EventKind

__all__ = ["TOLD_KINDS", "Describe", "describe_event", "report_events"]

Describe = Callable[[AuditEvent], str | None]
"""One line about an event for a person watching the call; None: not worth a message."""


_SIMPLE = {
    EventKind.SESSION_STARTED: "session {session} started",
    EventKind.STEP_STARTED: "step {step} started",
    EventKind.STEP_COMPLETED: "step {step} completed",
    EventKind.STEP_FAILED: "step {step} failed: {error}",
    EventKind.APPROVAL_DECIDED: "approval {approval} {status} by {decided_by}",
    EventKind.APPROVAL_ESCALATED: "approval {approval} escalated",
    EventKind.APPROVAL_DELEGATED: "approval {approval} delegated",
    EventKind.APPROVAL_PARTIAL: "approval {approval}: one of several approvals given",
    EventKind.TOOL_CALL: "{skill} ran",
    EventKind.TOOL_ERROR: "{skill} answered an error",
    EventKind.MODEL_CALL: "step {step}: model call {round} answered",
    EventKind.SESSION_COMPLETED: "session {session} completed",
    EventKind.SESSION_FAILED: "session {session} failed: {error}",
}
"""One line per kind worth telling; the kinds left out (pins, merges, MCP calls) are not."""

TOLD_KINDS: frozenset[EventKind] = frozenset({*_SIMPLE, EventKind.APPROVAL_REQUESTED})
"""Every kind `describe_event` tells about."""


def describe_event(event: AuditEvent, skill_ref: str | None = None) -> str | None:
    """What a watcher of a call is told about one event of its session.

    Args:
        event: The event.
        skill_ref: `name@version` of the called skill, named in an approval wait.
    """
    p = event.payload
    step = event.step_id or "?"
    if event.kind is EventKind.APPROVAL_REQUESTED:
        same = skill_ref is not None and event.skill == skill_ref.split("@")[0]
        what = skill_ref if same else event.skill or f"step {step}"
        return (
            f"session {event.session_id}: waiting for a person to approve {what}"
            f" (approval {p.get('approval_id')})"
        )
    template = _SIMPLE.get(event.kind)
    if template is None:
        return None
    return template.format(
        session=event.session_id,
        step=step,
        skill=event.skill or p.get("tool"),
        approval=p.get("approval_id"),
        status=p.get("status"),
        decided_by=p.get("decided_by"),
        error=p.get("error"),
        round=p.get("round"),
    )


async def report_events(
    events: EventHub,
    session_id: str,
    done: asyncio.Future[Any],
    tell: Callable[[str], Awaitable[None]],
    describe: Describe,
) -> None:
    """Tell each durable event of the session, once and in order, until `done` is.

    After `done`, the events already committed are told too (the run's last events are
    written before its result exists), so a finished call has told its whole story.
    """
    told = 0

    async def follow() -> None:
        nonlocal told
        while True:
            with events.watch(session_id, after=told) as watch:
                async for item in watch:
                    if isinstance(item, StreamDelta):
                        continue
                    if isinstance(item, Dropped):
                        break  # fell behind on deltas: watch again from `told`
                    await _tell(item)
                    if item.kind in TERMINAL_KINDS:
                        return

    async def _tell(event: AuditEvent) -> None:
        nonlocal told
        line = describe(event)
        if line is not None:
            await tell(line)
        told = event.seq or told

    follower = asyncio.ensure_future(follow())
    try:
        await asyncio.wait({follower, done}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not follower.done():
            follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
    while rows := await events.store.stream.events_after(session_id, told, READ_BATCH):
        for event in rows:
            await _tell(event)
