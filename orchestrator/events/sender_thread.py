"""A thread of its own for a carrier's plain sends: the worker's event loop only queues.

A UDP `sendto` never blocks, but it is a system call, and every system call lets the
interpreter's lock go: under a crowd, another thread that runs Python (a workflow task,
the store's driver) takes it, and the event loop waits for it back for the switch interval
(5 ms) or longer, in the middle of a provider's stream (bench/README.md, `stream.py`,
"the sender thread"). Here the loop's part is one `SimpleQueue.put` (no system call that
lets the lock go); the thread takes everything queued at each wake-up, so a burst goes out
in one encoding and as few datagrams as fit, and a stalled loop (a long garbage
collection aside, which stops every thread) does not hold deltas back.

What it keeps:

- **Order**: one thread, one queue: deltas (and notices) leave in the order they were
  put, so a session's deltas keep their order.
- **Bounds**: at most `max_queued` items wait. Past that a delta is dropped at once, not
  queued (the loop never waits for the thread), and counted: watchers see the gap in the
  delta's `n`, as with any lost datagram, and the worker logs that it fell behind, once
  per stretch of drops, like a slow watcher's drop. Nothing durable goes this way: a
  notice of committed events is a hint (the API process's poll reads the rows anyway).
- **Flush**: `flushed()` resolves once everything put before it was handed to the carrier;
  `close()` sends what is queued, then ends the thread.
"""

from __future__ import annotations

import concurrent.futures
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Final, TypeVar

from orchestrator.events.models import StreamDelta
from orchestrator.logs import get_logger

__all__ = ["MAX_QUEUED", "SenderThread"]

log = get_logger(__name__)

MAX_QUEUED: Final = 4096
"""Items (deltas, notices) waiting for the thread at most."""

SendNow = Callable[[Sequence[StreamDelta]], None]
Notify = Callable[[Mapping[str, int]], None]


class _Notice:
    """Sessions' newest committed `seq`, for the carrier's `moved`."""

    __slots__ = ("notify", "sessions")

    def __init__(self, notify: Notify, sessions: Mapping[str, int]) -> None:
        self.notify = notify
        self.sessions = sessions


class _Stop:
    """The last item: the thread ends after it."""


_Item = StreamDelta | _Notice | concurrent.futures.Future[None] | _Stop


class SenderThread:
    """Runs `send_now` for queued deltas on a daemon thread, in the order they were put."""

    def __init__(
        self, send_now: SendNow, *, max_queued: int = MAX_QUEUED, name: str = "delta-sender"
    ) -> None:
        self._send_now = send_now
        self._max = max_queued
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._closed = False
        self._ended = False
        self._ending = threading.Lock()
        """Held to put a flush marker, and to say the thread ended: no marker waits for ever."""
        self._behind = False
        self.dropped = 0
        """Deltas dropped because `max_queued` were waiting."""
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, delta: StreamDelta) -> bool:
        """Queue a delta for the thread; never waits. False: dropped (full, or closed)."""
        if self._closed:
            return False
        if self._queue.qsize() >= self._max:
            self.dropped += 1
            if not self._behind:
                self._behind = True
                log.warning(
                    "delta sender behind: dropping deltas", queued=self._max, dropped=self.dropped
                )
            return False
        self._behind = False
        self._queue.put(delta)
        return True

    def notifier(self, notify: Notify) -> Notify:
        """`notify` (a carrier's `moved`), run on the thread after what is queued before it.

        A notice that finds the queue full is dropped: it is only a hint.
        """

        def queued(sessions: Mapping[str, int]) -> None:
            if not self._closed and self._queue.qsize() < self._max:
                self._queue.put(_Notice(notify, dict(sessions)))

        return queued

    def flushed(self) -> concurrent.futures.Future[None]:
        """Resolves once everything put before was handed to the carrier."""
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        with self._ending:
            if not self._ended:
                self._queue.put(done)
                return done
        done.set_result(None)
        return done

    def close(self) -> threading.Thread:
        """Send what is queued, then end; returns the thread to join. Idempotent."""
        if not self._closed:
            self._closed = True
            self._queue.put(_Stop())
        return self._thread

    def _run(self) -> None:
        while True:
            items = [self._queue.get()]
            while True:  # everything at hand: a burst goes out in one batch
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if not self._handle(items):
                break
        with self._ending:
            self._ended = True
        while True:  # markers put after the stop: nothing more will be sent
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, concurrent.futures.Future) and not item.done():
                item.set_result(None)

    def _handle(self, items: list[_Item]) -> bool:
        """Hand `items` on in order; False after the stop."""
        batch: list[StreamDelta] = []
        for item in items:
            if isinstance(item, StreamDelta):
                batch.append(item)
                continue
            self._send(batch)
            batch = []
            if isinstance(item, _Notice):
                _guarded(item.notify, item.sessions)
            elif isinstance(item, _Stop):
                for rest in items[items.index(item) + 1 :]:
                    if isinstance(rest, concurrent.futures.Future) and not rest.done():
                        rest.set_result(None)
                return False
            elif not item.done():
                item.set_result(None)
        self._send(batch)
        return True

    def _send(self, batch: list[StreamDelta]) -> None:
        if batch:
            _guarded(self._send_now, batch)


_T = TypeVar("_T")


def _guarded(call: Callable[[_T], None], argument: _T) -> None:
    """A carrier's call, whose failure must not end the thread (deltas are best effort)."""
    try:
        call(argument)
    except Exception as exc:  # logged: the next batch may get through
        log.warning("delta sender failed", error=repr(exc))
