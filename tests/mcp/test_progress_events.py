"""`report_events`: a waiting call is told each event of its session once, in order,
including those written just before its result, on either store."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from orchestrator.events import EventHub
from orchestrator.mcp.progress import describe_event, report_events
from orchestrator.store import AuditEvent, EventKind, Store

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "events"))
from event_serving import append, new_session


def describe(event: AuditEvent) -> str | None:
    return describe_event(event, "payments.refund@1.0.0")


async def write_story(store: Store, session_id: str) -> None:
    """A gated call's events after its start, and one that is not worth a message."""
    await append(store, session_id, "a", EventKind.APPROVAL_REQUESTED, {"approval_id": "apr_1"})
    await append(store, session_id, "pin", EventKind.MODEL_PINNED)
    await append(store, session_id, "c", EventKind.STEP_COMPLETED)
    await append(store, session_id, "end", EventKind.SESSION_COMPLETED)


STORY = [
    "session p1 started",
    "session p1: waiting for a person to approve step s1 (approval apr_1)",
    "step s1 completed",
    "session p1 completed",
]


async def test_events_are_told_live_once_in_order_until_the_end(store: Store) -> None:
    await new_session(store, "p1")
    await append(store, "p1", "s", EventKind.SESSION_STARTED)
    hub = EventHub(store, recheck=0.05)  # no notice source: the recheck alone wakes it
    told: list[str] = []
    first = asyncio.Event()

    async def tell(line: str) -> None:
        told.append(line)
        first.set()

    never: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    reporting = asyncio.create_task(report_events(hub, "p1", never, tell, describe))
    await asyncio.wait_for(first.wait(), 10)
    await write_story(store, "p1")
    await asyncio.wait_for(reporting, 10)  # ends at the session's last event by itself
    assert told == STORY
    assert hub.watchers == 0


async def test_events_written_before_the_result_are_told_after_it(store: Store) -> None:
    await new_session(store, "p1")
    await append(store, "p1", "s", EventKind.SESSION_STARTED)
    await write_story(store, "p1")
    hub = EventHub(store, recheck=60)
    told: list[str] = []

    async def tell(line: str) -> None:
        told.append(line)

    done: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    done.set_result(None)
    await asyncio.wait_for(report_events(hub, "p1", done, tell, describe), 10)
    assert told == STORY
