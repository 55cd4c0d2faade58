"""One process's fan-out of session events to its watchers.

A watcher never receives a durable event pushed from elsewhere: the session's events are
read from the store, `seq > head`, whenever a notice says the session moved (`touch`),
when a watcher starts, and when a watcher's heartbeat asks for a fresh read. So however
notices are lost, merged or repeated, a watcher sees each committed event once, in order.

One read serves every watcher of a session in this process (`feed.SessionFeed`): the
rows go into the session's window, each encoded once (`SharedItem.sse`), and every
watcher takes from the window what is after its own cursor. A watcher holds no durable
event of its own, except one read batch while it is behind the window (it resumed from
long ago, or fell more than `MAX_WINDOW` events behind): then it reads the store itself
until it catches up, so a slow watcher costs the others nothing and loses nothing.

Deltas are pushed (they exist nowhere else) into a bounded queue per watcher, shared
objects encoded at most once. A watcher whose queue is full is dropped: it gets a
`Dropped` naming the `seq` to resume after, and its queue is freed. Publishing never
waits for a watcher, so no watcher slows anything.
"""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Final, Self

from orchestrator.events.bell import Bell
from orchestrator.events.feed import MAX_WINDOW, READ_BATCH, SessionFeed, SharedItem
from orchestrator.events.models import TERMINAL_KINDS, Dropped, StreamDelta, StreamItem
from orchestrator.events.reads import EventReads
from orchestrator.store.records import AuditEvent
from orchestrator.store.store import Store

__all__ = [
    "DEFAULT_MAX_DELTAS",
    "MAX_WINDOW",
    "READ_BATCH",
    "AnyChange",
    "EventHub",
    "SharedItem",
    "Watch",
]

DEFAULT_MAX_DELTAS: Final = 1024
"""Deltas a watcher may have unread before it is dropped (about 1024 tokens)."""

BATCH_ITEMS: Final = 256
"""Items `Watch.next_batch` hands over at most at once."""


class Watch:
    """One watcher of one session: iterate it for `StreamItem`s; close it when done."""

    def __init__(
        self,
        hub: EventHub,
        feed: SessionFeed,
        after: int,
        max_deltas: int,
        recheck: float,
    ) -> None:
        self.session_id = feed.session_id
        self.cursor = after
        """The `seq` of the last durable event yielded: resume after it."""
        self._hub = hub
        self._feed = feed
        self._max_deltas = max_deltas
        self._recheck = recheck
        self._moved = True
        """Behind the window: read the store before anything else."""
        self._fresh: int | None = feed.request_read(waited_for=True)
        """The feed's read that must end before this watcher may say nothing is new."""
        self._bell = Bell()
        self._bell.ring()
        self._batch: collections.deque[AuditEvent] = collections.deque()
        self._deltas: collections.deque[SharedItem] = collections.deque()
        self._overflowed = False
        self._closed = False

    @property
    def behind(self) -> bool:
        """Whether this watcher reads the store itself (its cursor is before the window)."""
        return self.cursor < self._feed.base

    def touch(self) -> None:
        """The session has new durable events (or may have): read them next."""
        self._moved = True
        self._bell.ring()

    def wake(self) -> None:
        """Something this watcher may want is at hand (the hub calls this)."""
        self._bell.ring()

    def offer(self, delta: SharedItem) -> None:
        """Queue a delta, or drop the watcher if it has too many unread."""
        if self._overflowed or self._closed:
            return
        if len(self._deltas) >= self._max_deltas:
            self._overflowed = True
            self._deltas.clear()
        else:
            self._deltas.append(delta)
        self._bell.ring()

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

        The deltas at hand go before the session's last event (`_at_hand`).

        Every timeout also has the session's events read once more, whatever the
        notices said (the next call waits for that read): the bound on the delay a lost
        notice can cause.

        Raises:
            StoreError: a read this watcher waited for failed.
        """
        shared = await self._next(timeout)
        return None if shared is None else shared.item

    async def next_batch(self, timeout: float | None, most: int = BATCH_ITEMS) -> list[SharedItem]:
        """Like `next`, with everything else at hand too (up to `most` items), in order.

        What a stream sends in one write. Empty after a quiet `timeout`; a `Dropped` ends
        it.

        Raises:
            StoreError: a read this watcher waited for failed.
        """
        first = await self._next(timeout)
        if first is None:
            return []
        batch = [first]
        while len(batch) < most and not isinstance(batch[-1].item, Dropped):
            more = self._at_hand()
            if more is None:
                break
            batch.append(more)
        return batch

    async def _next(self, timeout: float | None) -> SharedItem | None:
        while True:
            shared = await self._take()
            if shared is not None:
                return shared
            if self._fresh is not None:
                await self._bell.wait(None)  # a read it asked for is under way: not quiet yet
                continue
            if not await self._bell.wait(timeout):
                self._moved = True
                self._fresh = self._feed.request_read(waited_for=True)
                return None

    async def _take(self) -> SharedItem | None:
        """The next item, reading the store first if this watcher is behind the window."""
        while True:
            if self.behind and self._moved and not self._batch and not self._overflowed:
                self._moved = False
                rows = await self._hub.reads.events_after(self.session_id, self.cursor, READ_BATCH)
                self._batch.extend(rows)
                if len(rows) == READ_BATCH:
                    self._moved = True
                else:
                    self._fresh = None  # this read saw everything committed before it
                continue
            shared = self._at_hand()
            if shared is not None or self._fresh is None or self.behind:
                return shared
            feed = self._feed
            if feed.failed is not None and feed.failed_read >= self._fresh:
                self._fresh = None
                raise feed.failed
            if feed.caught_up < self._fresh:
                return None
            self._fresh = None

    def _at_hand(self) -> SharedItem | None:
        """The next item already in memory: durable events first, then deltas.

        Except the session's last event: the deltas already here go before it. A watcher
        stops at that event, and the text of the session's last model call arrives just
        before it (the call that writes the session's end sends its text first), so
        putting the end first would lose that text.
        """
        if self._overflowed:
            self.close()
            return SharedItem(
                Dropped(
                    resume_after=self.cursor,
                    reason=f"more than {self._max_deltas} deltas unread",
                )
            )
        while self._batch:
            event = self._batch[0]
            if (event.seq or 0) <= self.cursor:
                self._batch.popleft()
                continue
            if self._deltas and event.kind in TERMINAL_KINDS:
                return self._deltas.popleft()
            self._batch.popleft()
            self.cursor = event.seq or self.cursor
            return SharedItem(event)
        if not self.behind:
            shared = self._feed.after(self.cursor)
            if shared is not None:
                assert isinstance(shared.item, AuditEvent)
                if self._deltas and shared.item.kind in TERMINAL_KINDS:
                    return self._deltas.popleft()
                self.cursor = shared.item.seq or self.cursor
                return shared
        if self._deltas:
            return self._deltas.popleft()
        return None


class AnyChange:
    """A flag raised whenever any session moves: for views over many sessions.

    The approval queue is one: it cannot watch every session, so it waits on this and
    then reads what it shows afresh. Several notices before it looks are one.
    """

    def __init__(self, hub: EventHub) -> None:
        self._hub = hub
        self._flag = Bell()

    def raise_(self) -> None:
        """Something moved (the hub calls this)."""
        self._flag.ring()

    async def wait(self, timeout: float | None) -> bool:
        """True once something moved since the last wait (clearing it); False after `timeout`."""
        return await self._flag.wait(timeout)

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
        reads: How the store's events are read (`reads.reads_for`); the store's own
            reads when not given.
    """

    def __init__(
        self,
        store: Store,
        *,
        max_deltas: int = DEFAULT_MAX_DELTAS,
        recheck: float = 5.0,
        reads: EventReads | None = None,
    ) -> None:
        self.store = store
        self.reads: EventReads = reads if reads is not None else store.stream
        """Where the session's durable events are read."""
        self._max_deltas = max_deltas
        self._recheck = recheck
        self._watches: dict[str, set[Watch]] = {}
        self._feeds: dict[str, SessionFeed] = {}
        self._any: set[AnyChange] = set()

    def watch(self, session_id: str, *, after: int = 0) -> Watch:
        """Start watching `session_id` from the event after `seq` `after`."""
        feed = self._feeds.get(session_id)
        if feed is None:
            feed = SessionFeed(self.reads, session_id, after, lambda: self._after_read(session_id))
            self._feeds[session_id] = feed
        watch = Watch(self, feed, after, self._max_deltas, self._recheck)
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

    def held(self, session_id: str) -> int:
        """Durable events kept in memory for the session's watchers (tests, the bench)."""
        feed = self._feeds.get(session_id)
        return 0 if feed is None else feed.held

    def touch(self, session_id: str, seq: int | None = None) -> None:
        """Have the session's new events read (once, for all its watchers here).

        `seq`: the newest event the notice knows of. When the session's feed has read that
        far already (a second notice of the same commit), nothing is read again: the read
        that got it woke every watcher, those behind the window included.
        """
        feed = self._feeds.get(session_id)
        if seq is not None and feed is not None and feed.head >= seq:
            return
        self._touch(session_id)
        for flag in self._any:
            flag.raise_()

    def touch_all(self) -> None:
        """Have every watched session read again (after notices may have been missed)."""
        for session_id in list(self._watches):
            self._touch(session_id)
        for flag in self._any:
            flag.raise_()

    def _touch(self, session_id: str) -> None:
        feed = self._feeds.get(session_id)
        if feed is None:
            return
        feed.request_read()
        for watch in self._watches.get(session_id, ()):
            if watch.behind:
                watch.touch()

    def publish(self, delta: StreamDelta) -> None:
        """Hand a delta to the session's watchers; never waits."""
        watches = self._watches.get(delta.session_id)
        if watches:
            shared = SharedItem(delta)
            for watch in watches:
                watch.offer(shared)

    def _after_read(self, session_id: str) -> None:
        """The feed read: forget what every watcher has taken, and wake them all."""
        feed = self._feeds.get(session_id)
        watches = self._watches.get(session_id, ())
        if feed is None:
            return
        feed.trim(min((w.cursor for w in watches if not w.behind), default=feed.head))
        for watch in watches:
            if watch.behind:
                watch.touch()  # fell out of the window: it reads the store itself
            else:
                watch.wake()

    def _forget(self, watch: Watch) -> None:
        watches = self._watches.get(watch.session_id)
        if watches is not None:
            watches.discard(watch)
            if not watches:
                del self._watches[watch.session_id]
                feed = self._feeds.pop(watch.session_id, None)
                if feed is not None:
                    feed.close()
