"""Rate-limit counts in the store: a sliding minute, and no double admission across stores.

Two `Store` objects on one database stand for two gateway processes (each has its own
engine and connections); on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio

from orchestrator.store import Store

MINUTE = 60.0
T0 = 1_000_000 * MINUTE  # the start of a minute


async def test_a_limit_holds_across_two_stores_racing(store_url: str) -> None:
    async with await Store.open(store_url) as one, await Store.open(store_url) as two:
        # 40 requests racing through two stores for 15 places: exactly 15 are admitted.
        stores = [one, two] * 20
        refusals = await asyncio.gather(
            *(s.rates.admit("k", 15, None, T0 + 1 + i / 100) for i, s in enumerate(stores))
        )
        assert sum(r is None for r in refusals) == 15
        refused = next(r for r in refusals if r is not None)
        assert refused.what == "15 requests per minute"
        # This minute alone is full: the next minute frees room, 59 s on.
        assert refused.retry_after == 59
        # Another key is not limited by this one.
        assert await two.rates.admit("other", 15, None, T0 + 2) is None


async def test_the_last_minute_counts_by_the_share_still_inside_the_window(
    store: Store,
) -> None:
    for i in range(10):
        assert await store.rates.admit("k", 10, None, T0 + i) is None
    assert await store.rates.admit("k", 10, None, T0 + 30) is not None
    # A quarter into the next minute three quarters of the 10 still count: 7.5, room for 2.
    later = T0 + MINUTE + 15
    assert await store.rates.admit("k", 10, None, later) is None
    assert await store.rates.admit("k", 10, None, later) is None
    refused = await store.rates.admit("k", 10, None, later)
    assert refused is not None
    # One more needs 2 + 1 + 10 x (1 - e) <= 10: e >= 0.3, 3 s on.
    assert refused.retry_after == 3


async def test_tokens_per_minute_count_what_answers_used(store: Store) -> None:
    assert await store.rates.admit("k", None, 1000, T0) is None
    await store.rates.used("k", 1200, T0 + 1)
    refused = await store.rates.admit("k", None, 1000, T0 + 2)
    assert refused is not None and refused.what == "1000 tokens per minute (1200 used)"
    # Two minutes on, nothing of it is in the window any more.
    assert await store.rates.admit("k", None, 1000, T0 + 2 * MINUTE + 1) is None
