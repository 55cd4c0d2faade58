"""The queue, live: `GET /inbox/queue/events` says when what a person's queue shows changed.

The page carries a version of what it shows (`version`); the stream starts from it, and
sends `event: queue` (data: the new version and the filters' counts) each time the
queue's version moves on, so a change made between the page load and the stream's start
is not missed. The page's script (`live.js`) then fetches the page again.

What wakes the stream is the event hub's `any_change` (the SQLite poll, or PostgreSQL's
`NOTIFY`): any session's new audit event, since a request appears, escalates, is
delegated or is decided through one. The queue is then read afresh: at once after a
quiet spell, at most once per `settle` seconds while events keep coming, and at every
`heartbeat` anyway (with a keepalive comment), so a lost notice delays an update, never
loses it. When the person
is signed out (the cookie expired, or they left the approvers file) the stream sends
`event: end` and closes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Final

from orchestrator.approvals.queue import Queue
from orchestrator.events.hub import EventHub
from orchestrator.events.sse import comment, frame

__all__ = ["HEARTBEAT_S", "SETTLE_S", "queue_events", "version"]

HEARTBEAT_S: Final = 15.0
"""Seconds between keepalives, each with a fresh read of the queue."""
SETTLE_S: Final = 0.5
"""Least seconds between two reads of the queue while events keep coming (a read of 200
pending requests takes tens of milliseconds: `bench/inbox_queue.py`)."""


def version(queue: Queue) -> str:
    """A short digest of what the queue shows: rows, their state and who decides, counts.

    Not the time: "in 5 minutes" going stale is not a change worth a reload.
    """
    rows = [
        [
            e.record.approval_id,
            e.record.status.value,
            e.gate.group,
            e.gate.delegate,
            list(e.gate.approved_by),
            e.gate.deadline.isoformat() if e.gate.deadline else None,
            e.refusal,
            e.record.decided_by,
        ]
        for e in queue.entries
    ]
    text = json.dumps([queue.show, rows, sorted(queue.counts.items())], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


async def queue_events(
    hub: EventHub,
    load: Callable[[], Awaitable[Queue | None]],
    since: str,
    *,
    heartbeat: float = HEARTBEAT_S,
    settle: float = SETTLE_S,
) -> AsyncGenerator[bytes, None]:
    """SSE chunks: `event: queue` whenever `load()`'s version differs from the last sent.

    Args:
        hub: The process's event hub.
        load: Reads the person's queue; None once they are signed out.
        since: The version the page was rendered with.
        heartbeat: Seconds between keepalives (and unprompted reads).
        settle: Seconds between reads while events keep coming.
    """
    clock = asyncio.get_running_loop().time
    with hub.any_change() as changed:
        yield b"retry: 2000\n\n"
        last = since
        while True:
            read_at = clock()
            queue = await load()
            if queue is None:
                yield frame(json.dumps({"reason": "signed out"}), event="end")
                return
            now = version(queue)
            if now != last:
                counts = dict(queue.counts)
                yield frame(json.dumps({"version": now, "counts": counts}), event="queue")
                last = now
            if not await changed.wait(heartbeat):
                yield comment("keepalive")
                continue
            # The first event after a quiet spell is read at once; a burst, once a `settle`.
            await asyncio.sleep(max(0.0, read_at + settle - clock()))
