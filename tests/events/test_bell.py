"""The watchers' wake-up: a ring is never lost, a quiet wait ends at its timeout."""

from __future__ import annotations

import asyncio

from orchestrator.events.bell import Bell


async def test_a_ring_before_the_wait_is_kept_for_it() -> None:
    bell = Bell()
    bell.ring()
    bell.ring()  # several rings before a wait are one
    assert await bell.wait(0) is True
    assert await bell.wait(0.01) is False


async def test_a_ring_wakes_the_waiter_at_once() -> None:
    bell = Bell()
    waiting = asyncio.create_task(bell.wait(30))
    await asyncio.sleep(0)  # the waiter is parked
    assert not waiting.done()
    bell.ring()
    async with asyncio.timeout(5):
        assert await waiting is True
    assert await bell.wait(0) is False  # the ring was taken by that wait


async def test_a_ring_after_a_timeout_waits_for_the_next_wait() -> None:
    bell = Bell()
    assert await bell.wait(0) is False
    bell.ring()
    assert await bell.wait(None) is True


async def test_a_cancelled_wait_leaves_the_bell_usable() -> None:
    bell = Bell()
    waiting = asyncio.create_task(bell.wait(None))
    await asyncio.sleep(0)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    bell.ring()
    assert await bell.wait(0) is True
