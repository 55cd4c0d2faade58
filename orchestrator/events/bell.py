"""A wake-up for one waiting task, cheaper than `asyncio.Event` with `asyncio.wait_for`.

Each SSE watcher waits for its next item with a timeout (its heartbeat). On Python 3.11,
`asyncio.wait_for(event.wait(), timeout)` wraps the wait in a task of its own, so one
wake-up took three turns of the event loop (the inner task, the waiter's release, the
watcher's task) and a task, a future and a timer were made and dropped per wait. When a
crowd's tokens arrive, every watcher of every session wakes at once, and the API process
ran each of those layers for all of them before the first watcher wrote a byte
(bench/README.md, `stream.py`, "the API's fan-out"). A `Bell` wakes its waiter in one
turn: `ring` resolves the waiter's future directly.

A ring is kept until the next `wait` takes it, so a ring that comes while the owner is
busy (not waiting) is never lost: the next `wait` returns at once.
"""

from __future__ import annotations

import asyncio

__all__ = ["Bell"]


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


class Bell:
    """Rung by anyone, waited on by one task at a time."""

    __slots__ = ("_rung", "_waiter")

    def __init__(self) -> None:
        self._rung = False
        self._waiter: asyncio.Future[bool] | None = None

    def ring(self) -> None:
        """Wake the waiter, or have the next `wait` return at once; never waits."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(True)
        else:
            self._rung = True

    async def wait(self, timeout: float | None) -> bool:
        """True once rung (taking the ring); False after `timeout` seconds without one."""
        if self._rung:
            self._rung = False
            return True
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        timer = None if timeout is None else loop.call_later(timeout, _expire, waiter)
        self._waiter = waiter
        try:
            return await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()
