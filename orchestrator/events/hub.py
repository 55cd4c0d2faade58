"""One process's fan-out of session events to its watchers.

A watcher never receives a durable event pushed from elsewhere: it keeps its cursor (the
last `seq` it got) and reads `seq > cursor` from the store whenever a notice says its
session moved (`touch`), when it starts, and at every heartbeat. So however notices are
lost, merged or repeated, a watcher sees each committed event once, in order, and holds
no durable event in memory beyond one read batch: a watcher that never reads costs a
cursor and a flag.

Deltas are pushed (they exist nowhere else) into a bounded queue per watcher. A watcher
whose queue is full is dropped: it gets a `Dropped` naming the `seq` to resume after, and
its queue is freed. Publishing never waits for a watcher, so no watcher slows anything.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Final, Self

from orchestrator.events.models import Dropped, StreamDelta, StreamItem
from orchestrator.store.records import AuditEvent
from orchestrator.store.store import Store

__all__ = ["DEFAULT_MAX_DELTAS", "READ_BATCH", "AnyChange", "EventHub", "Watch"]

DEFAULT_MAX_DELTAS: Final = 1024
"""Deltas a watcher may have unread before it is dropped (about 1024 tokens)."""

READ_BATCH: Final = 200
"""Durable events read from the store at a time."""


class Watch:
    """One watcher of one session: iterate it for `StreamItem`s; close it when done."""

    def __init__(
        self, hub: EventHub, session_id: str, after: int, max_deltas: int, recheck: float
    ) -> None:
        self.session_id = session_id
        self.cursor = after
        """The `seq` of the last durable event yielded: resume after it."""
        self._hub = hub
        self._max_deltas = max_deltas
        self._recheck = recheck
        self._moved = True
        self._signal = asyncio.Event()
        self._signal.set()
        self._batch: collections.deque[AuditEvent] = collections.deque()
        self._deltas: collections.deque[StreamDelta] = collections.deque()
        self._overflowed = False
        self._closed = False

    def touch(self) -> None:
        """The session has new durable events (or may have): read them next."""
        self._moved = True
        self._signal.set()

    def offer(self, delta: StreamDelta) -> None:
        """Queue a delta, or drop the watcher if it has too many unread."""
        if self._overflowed or self._closed:
            return
        if len(self._deltas) >= self._max_deltas:
            self._overflowed = True
            self._deltas.clear()
        else:
            self._deltas.append(delta)
        self._signal.set()

    @property
    def queued(self) -> int:
        """Deltas waiting to be read (for tests and the bench)."""
        return len(self._deltas)

    def close(self) -> None:
        """Stop watching; the hub forgets this watcher."""
        if not self._closed:
            self._closed = True
            self._hub._forget(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __aiter__(self) -> AsyncIterator[StreamItem]:
        return self._items()

    async def _items(self) -> AsyncIterator[StreamItem]:
        while not self._closed:
            item = await self.next(self._recheck)
            if item is None:
                continue
            yield item
            if isinstance(item, Dropped):
                return

    async def next(self, timeout: float | None = None) -> StreamItem | None:
        """The next item (durable events first, then deltas), or None after a quiet `timeout`.

        Every timeout also reads the store once more, whatever the notices said: the
        bound on the delay a lost notice can cause.
        """
        while True:
            if self._overflowed:
                self.close()
                return Dropped(
                    resume_after=self.cursor,
                    reason=f"more than {self._max_deltas} deltas unread",
                )
            if self._batch:
                event = self._batch.popleft()
                self.cursor = event.seq or self.cursor
                return event
            if self._moved:
                self._moved = False
                rows = await self._hub.store.stream.events_after(
                    self.session_id, self.cursor, READ_BATCH
                )
                self._batch.extend(rows)
                self._moved = len(rows) == READ_BATCH or self._moved
                continue
            if self._deltas:
                return self._deltas.popleft()
            self._signal.clear()
            try:
                await asyncio.wait_for(self._signal.wait(), timeout)
            except TimeoutError:
                self._moved = True
                return None


class AnyChange:
    """A flag raised whenever any session moves: for views over many sessions.

    The approval queue is one: it cannot watch every session, so it waits on this and
    then reads what it shows afresh. Several notices before it looks are one.
    """

    def __init__(self, hub: EventHub) -> None:
        self._hub = hub
        self._flag = asyncio.Event()

    def raise_(self) -> None:
        """Something moved (the hub calls this)."""
        self._flag.set()

    async def wait(self, timeout: float | None) -> bool:
        """True once something moved since the last wait (clearing it); False after `timeout`."""
        try:
            await asyncio.wait_for(self._flag.wait(), timeout)
        except TimeoutError:
            return False
        self._flag.clear()
        return True

    def close(self) -> None:
        """Stop listening; the hub forgets this flag."""
        self._hub._any.discard(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class EventHub:
    """Watchers of sessions in this process, woken by a notice source (see `sources`).

    Args:
        store: Where durable events are read.
        max_deltas: Unread deltas per watcher before it is dropped.
        recheck: Seconds after which an idle watcher reads the store anyway, whatever
            notices said: the bound on the delay a lost notice can cause.
    """

    def __init__(
        self, store: Store, *, max_deltas: int = DEFAULT_MAX_DELTAS, recheck: float = 5.0
    ) -> None:
        self.store = store
        self._max_deltas = max_deltas
        self._recheck = recheck
        self._watches: dict[str, set[Watch]] = {}
        self._any: set[AnyChange] = set()

    def watch(self, session_id: str, *, after: int = 0) -> Watch:
        """Start watching `session_id` from the event after `seq` `after`."""
        watch = Watch(self, session_id, after, self._max_deltas, self._recheck)
        self._watches.setdefault(session_id, set()).add(watch)
        return watch

    def any_change(self) -> AnyChange:
        """A flag raised whenever any session moves (close it, or use it in `with`)."""
        flag = AnyChange(self)
        self._any.add(flag)
        return flag

    @property
    def watched(self) -> set[str]:
        """Sessions with at least one watcher."""
        return set(self._watches)

    @property
    def watchers(self) -> int:
        """Watchers in this process (`any_change` flags included)."""
        return sum(len(w) for w in self._watches.values()) + len(self._any)

    def touch(self, session_id: str) -> None:
        """Wake the session's watchers to read its new events."""
        for watch in self._watches.get(session_id, ()):
            watch.touch()
        for flag in self._any:
            flag.raise_()

    def touch_all(self) -> None:
        """Wake every watcher (after notices may have been missed)."""
        for watches in self._watches.values():
            for watch in watches:
                watch.touch()
        for flag in self._any:
            flag.raise_()

    def publish(self, delta: StreamDelta) -> None:
        """Hand a delta to the session's watchers; never waits."""
        for watch in self._watches.get(delta.session_id, ()):
            watch.offer(delta)

    def _forget(self, watch: Watch) -> None:
        watches = self._watches.get(watch.session_id)
        if watches is not None:
            watches.discard(watch)
            if not watches:
                del self._watches[watch.session_id]
