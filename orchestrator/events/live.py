"""An `EventHub` wired to the notices its store's backend offers.

- SQLite (embedded default): a worker tells every registered API process over loopback
  UDP, after each commit of audit events, which sessions moved (`udp`), along with the
  deltas; the process reads them at once. A task also asks the store every
  `poll_interval` seconds which sessions gained events since the last row id it saw (one
  indexed query; 0.1 s while anyone watches, 0.5 s while nobody does): the safety net for
  a lost datagram and for writers that send no notice, which it bounds to 0.1 s.
- PostgreSQL: `LISTEN` on the event and delta channels (`postgres`); no polling, and any
  number of API processes and workers share the notices.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Final

from orchestrator.events.hub import EventHub
from orchestrator.events.models import StreamDelta
from orchestrator.events.reads import BlockingSqliteReads, reads_for
from orchestrator.exceptions import StoreError
from orchestrator.logs import get_logger
from orchestrator.store.store import Store

__all__ = ["ACTIVE_POLL_S", "IDLE_POLL_S", "live_hub"]

log = get_logger(__name__)

ACTIVE_POLL_S: Final = 0.1
"""SQLite poll period while some watcher is connected (the UDP notice is the fast path)."""
IDLE_POLL_S: Final = 0.5
"""SQLite poll period while nobody watches (keeps the cursor current, costs nearly nothing)."""


def _deliver(hub: EventHub, deltas: list[StreamDelta]) -> None:
    for delta in deltas:
        hub.publish(delta)


def _touch(hub: EventHub, moved: Mapping[str, int]) -> None:
    for session_id, seq in moved.items():
        hub.touch(session_id, seq)


async def _poll(hub: EventHub, store: Store, active: float) -> None:
    seen = await store.stream.newest_id()
    while True:
        await asyncio.sleep(active if hub.watchers else IDLE_POLL_S)
        try:
            seen, moved = await store.stream.moved_since(seen)
        except StoreError as exc:
            log.warning("event poll failed", error=str(exc))
            continue
        _touch(hub, moved)


@contextlib.asynccontextmanager
async def live_hub(
    store: Store,
    state_dir: Path | None,
    *,
    poll_interval: float = ACTIVE_POLL_S,
    deltas: bool = True,
) -> AsyncIterator[EventHub]:
    """A hub fed by the store's notices while the block runs.

    Args:
        store: The store the worker writes.
        state_dir: The project's state folder, where SQLite receivers of the workers'
            notices and deltas register; None: on SQLite, neither (durable events come
            by the poll alone).
        poll_interval: The SQLite poll period while someone watches.
        deltas: Whether watchers get deltas (False: durable events only).
    """
    if store.dialect == "postgresql":
        hub = EventHub(store)
        from orchestrator.events.postgres import PostgresListener

        def on_event(session_id: str) -> None:
            if session_id == "*":
                hub.touch_all()
            else:
                hub.touch(session_id)

        listener = PostgresListener(
            store.raw_url,
            on_event,
            (lambda got: _deliver(hub, got)) if deltas else (lambda got: None),
            hub.touch_all,
        )
        await listener.start()
        try:
            yield hub
        finally:
            await listener.close()
        return
    from orchestrator.events.udp import UdpDeltaReceiver

    reads = reads_for(store)
    hub = EventHub(store, reads=reads)
    receiver = None
    if state_dir is not None:
        receiver = UdpDeltaReceiver(
            state_dir,
            (lambda got: _deliver(hub, got)) if deltas else (lambda got: None),
            lambda moved: _touch(hub, moved),
        )
        await receiver.start()

    def local(moved: Mapping[str, int]) -> None:
        _touch(hub, moved)

    # This process's own writes through the store (an API process's feedback) tell the
    # hub directly, unless a worker here already announces them to every receiver.
    if store.on_events_committed is None:
        store.on_events_committed = local
    poller = asyncio.create_task(_poll(hub, store, poll_interval), name="event-poll")
    try:
        yield hub
    finally:
        if store.on_events_committed is local:
            store.on_events_committed = None
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller
        if receiver is not None:
            await receiver.close()
        if isinstance(reads, BlockingSqliteReads):
            reads.close()
