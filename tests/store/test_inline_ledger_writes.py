"""The ledgers' writes on a gateway request's path, on the calling thread (`write_here`).

On a SQLite file a budget reservation, a spend with its settling and a rate admission are
each one transaction on the store's inline connection; on PostgreSQL (and when the file's
write lock is taken) the same transaction runs pooled. Either way the conditional updates
admit exactly what the limits leave, however the requests race, through one store or two
(two gateway processes).
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from test_inline_reads import _pool_statements

from orchestrator.store import Store
from orchestrator.store.budgets import Reservation

MINUTE = 60.0
T0 = 1_000_000 * MINUTE  # the start of a minute


def _hold(usd: float = 1.0, tokens: int = 100) -> Reservation:
    return Reservation("gateway-key/k", "2026-12-07", usd, tokens, 5.0, 10_000)


async def test_reservations_racing_through_two_stores_never_overspend(store_url: str) -> None:
    async with await Store.open(store_url) as one, await Store.open(store_url) as two:
        stores = [one, two] * 10
        with _pool_statements(one) as pooled_one, _pool_statements(two) as pooled_two:
            refused = await asyncio.gather(
                *(s.budgets.reserve(f"r{i}", [_hold()]) for i, s in enumerate(stores))
            )
            admitted = [f"r{i}" for i, r in enumerate(refused) if r is None]
            assert len(admitted) == 5
            assert all(r == _hold() for r in refused if r is not None)
            usage = await one.budgets.usage("gateway-key/k", "2026-12-07")
            assert (usage.committed_usd, usage.committed_tokens) == (5.0, 500)
            # Each admitted request spends less than it held and settles in the same write.
            for i, ledger_id in enumerate(admitted):
                new = await stores[i].budgets.record_spend(
                    ledger_id,
                    [("gateway-key/k", "2026-12-07")],
                    0.25,
                    40,
                    key=f"{ledger_id}/spend",
                    settle=True,
                )
                assert new
            # A retried spend changes nothing, and the settled holds are given back once.
            again = await two.budgets.record_spend(
                admitted[0],
                [("gateway-key/k", "2026-12-07")],
                0.25,
                40,
                key=f"{admitted[0]}/spend",
                settle=True,
            )
            assert not again
        usage = await two.budgets.usage("gateway-key/k", "2026-12-07")
        assert usage.committed_usd == usage.spent_usd == 1.25
        assert usage.committed_tokens == usage.spent_tokens == 200
        budget_writes = [s for s in pooled_one + pooled_two if not s.startswith("SELECT")]
        # A SQLite file's writes ran on this thread; PostgreSQL's went through the pool.
        assert (budget_writes == []) == store_url.startswith("sqlite")


async def test_a_reservation_waits_its_turn_when_another_writer_holds_the_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "orchestrator.db"
    async with await Store.open(f"sqlite+aiosqlite:///{path}") as store:
        assert await store.budgets.reserve("first", [_hold(usd=4.0)]) is None
        blocker = sqlite3.connect(path, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            with _pool_statements(store) as pooled:
                racing = asyncio.create_task(store.budgets.reserve("second", [_hold(usd=2.0)]))
                # The attempt on this thread found the lock taken; the pooled one waits.
                await asyncio.sleep(0)
                assert not racing.done()
                blocker.execute("COMMIT")
                refused = await racing
            assert refused == _hold(usd=2.0)
            assert any("budget_usage" in s for s in pooled)
        finally:
            blocker.close()
        usage = await store.budgets.usage("gateway-key/k", "2026-12-07")
        assert usage.committed_usd == 4.0


async def test_rate_admissions_racing_through_two_stores_take_exactly_the_limit(
    store_url: str,
) -> None:
    async with await Store.open(store_url) as one, await Store.open(store_url) as two:
        with _pool_statements(one) as pooled:
            refusals = await asyncio.gather(
                *(
                    s.rates.admit("k", 7, 1000, T0 + 1 + i / 100)
                    for i, s in enumerate([one, two] * 8)
                )
            )
            await one.rates.used("k", 1200, T0 + 2)
            over_tokens = await one.rates.admit("k", 100, 1000, T0 + 3)
        assert sum(r is None for r in refusals) == 7
        assert over_tokens is not None
        assert over_tokens.what == "1000 tokens per minute (1200 used)"
        writes = [s for s in pooled if not s.startswith("SELECT")]
        assert (writes == []) == store_url.startswith("sqlite")
