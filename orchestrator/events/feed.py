"""One session's durable events, read from the store once for all its watchers here.

With many watchers on one session (a chat product's open tabs, the inbox, the CLI), each
reading `seq > cursor` from the store on every notice costs one query per watcher per
event: 200 watchers on 50 sessions made 200 reads, each blocking the event loop for a
millisecond of ORM work, every time the sessions moved, and tokens queued behind them
(bench/README.md, `stream.py`). A `SessionFeed` makes one read per notice instead and
keeps what it read in a window that every watcher of the session reads from, each item
encoded as a Server-Sent Event once (`SharedItem.sse`).

The exactness rule of `hub` is unchanged: the feed reads `seq > head` (the last `seq` it
read) whenever it is asked, and the window holds every event in `(base, head]`, so a
watcher whose cursor is at least `base` finds each event after its cursor in the window,
in order, once. A watcher behind `base` (it resumed from long ago, or it fell more than
`MAX_WINDOW` events behind) reads the store itself, as every watcher used to, until it
catches up: the window is bounded, and nothing durable is ever held per watcher.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Callable
from typing import Final

from orchestrator.events.models import Dropped, StreamDelta, StreamItem
from orchestrator.events.reads import EventReads
from orchestrator.events.sse import frame
from orchestrator.exceptions import StoreError
from orchestrator.store.records import AuditEvent

__all__ = ["MAX_WINDOW", "READ_BATCH", "SessionFeed", "SharedItem"]

READ_BATCH: Final = 200
"""Durable events read from the store at a time."""

MAX_WINDOW: Final = 256
"""Durable events a feed keeps for watchers that have not read them yet; a watcher
further behind reads the store itself."""


class SharedItem:
    """One item of a session's stream as all its watchers get it: encoded once, if at all."""

    __slots__ = ("_sse", "item")

    def __init__(self, item: StreamItem) -> None:
        self.item = item
        self._sse: bytes | None = None

    @property
    def sse(self) -> bytes:
        """The item as one Server-Sent Event, encoded on first use and reused after.

        A durable event has `id: <seq>`; a delta is `event: delta`, a drop `event: dropped`.
        """
        if self._sse is None:
            item = self.item
            if isinstance(item, StreamDelta):
                self._sse = frame(item.model_dump_json(), event="delta")
            elif isinstance(item, Dropped):
                self._sse = frame(item.model_dump_json(), event="dropped")
            else:
                self._sse = frame(item.model_dump_json(), id=item.seq)
        return self._sse


class SessionFeed:
    """The durable events of one session, read by one task, kept until its watchers read them.

    Args:
        reads: Where events are read (`reads.reads_for`).
        session_id: The session.
        base: The `seq` the window starts after (the first watcher's cursor).
        on_read: Called after each read that found events or that someone waits for.
    """

    def __init__(
        self, reads: EventReads, session_id: str, base: int, on_read: Callable[[], None]
    ) -> None:
        self.session_id = session_id
        self.base = base
        """Every event with `seq` in `(base, head]` is in the window."""
        self.head = base
        """The `seq` of the last event read (or `base`)."""
        self.caught_up = 0
        """Number of the newest read that reached the end of the session's events: every
        event committed before that read started is in the window (or before `base`)."""
        self.failed: StoreError | None = None
        """The error of the newest read that failed, if one did."""
        self.failed_read = 0
        """Number of that read."""
        self._reads = reads
        self._on_read = on_read
        self._items: list[SharedItem] = []
        self._seqs: list[int] = []
        self._stale = False
        self._started = 0
        self._waiting = 0
        self._reader: asyncio.Task[None] | None = None

    def request_read(self, *, waited_for: bool = False) -> int:
        """Read the session's new events soon; returns the number of that read.

        A read numbered at least this one starts after the call, so once `caught_up`
        reaches it, every event committed before the call is in the window. Several
        requests before the read starts are served by the same read. `waited_for`: a
        watcher will wait for this read, so tell it when it ends even if it finds nothing.
        """
        self._stale = True
        if waited_for:
            self._waiting = self._started + 1
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read(), name=f"feed:{self.session_id}")
        return self._started + 1

    def after(self, cursor: int) -> SharedItem | None:
        """The window's first event with `seq > cursor` (for a cursor of at least `base`)."""
        index = bisect.bisect_right(self._seqs, cursor)
        return self._items[index] if index < len(self._items) else None

    def trim(self, low: int) -> None:
        """Forget what every watcher has read, and what is beyond `MAX_WINDOW`.

        `low`: the smallest cursor of the watchers reading from the window. Watchers that
        had not read an event forgotten for the bound read the store themselves.
        """
        cut = bisect.bisect_right(self._seqs, low)
        cut = max(cut, len(self._seqs) - MAX_WINDOW)
        if cut > 0:
            self.base = max(self.base, self._seqs[cut - 1])
            del self._seqs[:cut], self._items[:cut]

    @property
    def held(self) -> int:
        """Events in the window (for tests and the bench)."""
        return len(self._items)

    def close(self) -> None:
        """Stop reading: the session has no watcher here any more."""
        if self._reader is not None:
            self._reader.cancel()

    async def _read(self) -> None:
        while self._stale:
            self._stale = False
            self._started += 1
            number = self._started
            try:
                rows: list[AuditEvent] = await self._reads.events_after(
                    self.session_id, self.head, READ_BATCH
                )
            except StoreError as exc:
                # Whoever waits for this read, or for one asked for meanwhile, is told;
                # the next notice, or a watcher's recheck, asks again.
                self.failed, self.failed_read = exc, max(number, self._waiting)
                self._waiting = 0
                self._on_read()
                return
            for row in rows:
                seq = row.seq or 0
                if seq > self.head:
                    self._items.append(SharedItem(row))
                    self._seqs.append(seq)
                    self.head = seq
            if len(rows) == READ_BATCH:
                self._stale = True  # more to read
            else:
                self.caught_up = number
            if rows or (self._waiting and self.caught_up >= self._waiting):
                if self.caught_up >= self._waiting:
                    self._waiting = 0
                self._on_read()
