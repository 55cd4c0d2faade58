"""A request page, live: `GET /inbox/requests/{id}/events` says when its session moved.

The page carries the `seq` of the last audit event it was rendered from; the stream
watches the request's session from there (`EventHub.watch`, the same cursor the session
event stream keeps: woken by the SQLite poll or PostgreSQL's `NOTIFY`, re-read at every
heartbeat, so a lost notice delays an update, never loses it). Each new durable event
(a step completed, the request escalated, delegated or decided by someone else, the
session finished) is sent as `event: moved` with `id: <seq>` and only its kind: the page's
script (`live.js`) then fetches the page again, which shows the new state (a decided
request shows who decided it and offers no decision form). The stream says nothing an
approver could not read on the page itself, so model deltas are skipped.

After the session's last event the stream sends `event: end` and closes; when the person
is signed out it does the same. `id:` lets `EventSource` resume after a disconnect with
`Last-Event-ID`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Callable
from typing import Final

from orchestrator.events.hub import EventHub
from orchestrator.events.models import TERMINAL_KINDS, Dropped, StreamDelta
from orchestrator.events.sse import comment, frame

__all__ = ["HEARTBEAT_S", "request_events"]

HEARTBEAT_S: Final = 15.0
"""Seconds between keepalives, each with a fresh read of the session's events."""


async def request_events(
    hub: EventHub,
    session_id: str,
    after: int,
    signed_in: Callable[[], bool],
    *,
    heartbeat: float = HEARTBEAT_S,
) -> AsyncGenerator[bytes, None]:
    """SSE chunks: `event: moved` for each durable event of `session_id` after `after`.

    Args:
        hub: The process's event hub.
        session_id: The request's session.
        after: The `seq` of the last event the page was rendered from.
        signed_in: Whether the person is still signed in (checked before each send).
        heartbeat: Seconds between keepalives (and unprompted reads).
    """
    with hub.watch(session_id, after=after) as watch:
        yield b"retry: 2000\n\n"
        while True:
            item = await watch.next(heartbeat)
            if isinstance(item, StreamDelta):
                continue  # tokens are not on the page; only what changes it is sent
            if not signed_in():
                yield frame(json.dumps({"reason": "signed out"}), event="end")
                return
            if item is None:
                yield comment("keepalive")
            elif isinstance(item, Dropped):
                return  # the client reconnects with the last id it got
            else:
                data = json.dumps({"seq": item.seq, "kind": item.kind.value})
                yield frame(data, event="moved", id=item.seq)
                if item.kind in TERMINAL_KINDS:
                    yield frame(json.dumps({"last_seq": item.seq}), event="end")
                    return
