"""Budget ledger: atomic reservations, spend beyond a reservation, settling, refusal."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from orchestrator.exceptions import BudgetExceededError
from orchestrator.routing.budgets import check_new_session, reservation
from orchestrator.routing.policy import Budget
from orchestrator.store.budgets import Reservation
from orchestrator.store.store import Store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}") as opened:
        yield opened


def want(usd: float = 1.0, tokens: int = 100, limit_usd: float | None = 5.0) -> Reservation:
    return Reservation(
        scope="acme/*",
        period="2026-11",
        usd=usd,
        tokens=tokens,
        limit_usd=limit_usd,
        limit_tokens=10_000,
    )


async def test_concurrent_sessions_cannot_overspend_together(store: Store) -> None:
    results = await asyncio.gather(*(store.budgets.reserve(f"s{i}", [want()]) for i in range(12)))
    assert sum(1 for r in results if r is None) == 5
    usage = await store.budgets.usage("acme/*", "2026-11")
    assert usage.committed_usd == 5.0 and usage.committed_tokens == 500


async def test_a_retried_reservation_holds_nothing_more(store: Store) -> None:
    assert await store.budgets.reserve("s1", [want()]) is None
    assert await store.budgets.reserve("s1", [want()]) is None
    assert (await store.budgets.usage("acme/*", "2026-11")).committed_usd == 1.0


async def test_all_or_nothing_across_scopes(store: Store) -> None:
    team = Reservation("acme/ops", "2026-11", 1.0, 0, limit_usd=0.5, limit_tokens=None)
    refused = await store.budgets.reserve("s1", [want(), team])
    assert refused == team
    assert (await store.budgets.usage("acme/*", "2026-11")).committed_usd == 0.0


async def test_spend_beyond_the_reservation_commits_more_and_settle_gives_back(
    store: Store,
) -> None:
    assert await store.budgets.reserve("s1", [want(usd=1.0)]) is None
    scopes = await store.budgets.session_scopes("s1")
    assert await store.budgets.record_spend("s1", scopes, 0.4, 40, key="call-1")
    # A retried call (same key) adds nothing.
    assert not await store.budgets.record_spend("s1", scopes, 0.4, 40, key="call-1")
    usage = await store.budgets.usage("acme/*", "2026-11")
    assert (usage.committed_usd, usage.spent_usd) == (1.0, 0.4)
    await store.budgets.record_spend("s1", scopes, 0.8, 80, key="call-2")
    usage = await store.budgets.usage("acme/*", "2026-11")
    assert usage.committed_usd == pytest.approx(1.2) and usage.spent_usd == pytest.approx(1.2)
    await store.budgets.settle("s1")
    await store.budgets.settle("s1")
    assert (await store.budgets.usage("acme/*", "2026-11")).committed_usd == pytest.approx(1.2)


async def test_settle_returns_the_unspent_part(store: Store) -> None:
    assert await store.budgets.reserve("s1", [want(usd=2.0)]) is None
    scopes = await store.budgets.session_scopes("s1")
    await store.budgets.record_spend("s1", scopes, 0.5, 10, key="call-1")
    await store.budgets.settle("s1")
    usage = await store.budgets.usage("acme/*", "2026-11")
    assert usage.committed_usd == pytest.approx(0.5) and usage.committed_tokens == 10


async def test_a_new_session_past_the_budget_is_refused_with_the_figures(store: Store) -> None:
    budget = Budget(tenant="acme", period="month", limit_usd=1.0, session_reserve_usd=0.6)
    now = datetime(2026, 11, 24, tzinfo=UTC)
    await check_new_session(store, [budget], "acme", "ops", now)
    await check_new_session(store, [budget], "other", "ops", now)
    assert await store.budgets.reserve("s1", [reservation(budget, now)]) is None
    with pytest.raises(BudgetExceededError) as info:
        await check_new_session(store, [budget], "acme", "ops", now)
    assert str(info.value) == (
        "budget acme/* (month 2026-11) is exhausted: $0.6000 of $1.00 committed,"
        " a session reserves $0.60; new sessions are refused until the period ends or the"
        " limit is raised"
    )


async def test_session_scopes_are_read_once_and_forgotten_by_a_reserve(store: Store) -> None:
    assert await store.budgets.session_scopes("s1") == []
    # Written behind the ledger's back (another process): the remembered answer stands,
    # as it may, since a session's reservations precede its first model call.
    async with store.engine.begin() as conn:
        await conn.execute(
            sa.text(
                "INSERT INTO budget_reservations (session_id, scope, period, reserved_usd,"
                " reserved_tokens, spent_usd, spent_tokens, settled)"
                " VALUES ('s1', 'x/*', '2026-11', 0, 0, 0, 0, false)"
            )
        )
    assert await store.budgets.session_scopes("s1") == []

    assert await store.budgets.reserve("s1", [want()]) is None
    assert sorted(await store.budgets.session_scopes("s1")) == [
        ("acme/*", "2026-11"),
        ("x/*", "2026-11"),
    ]
