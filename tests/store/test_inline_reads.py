"""The ledgers' reads on a session's start path, on the calling thread (`InlineEvents.read`).

On a SQLite file the router's outcome tallies and a session's budget scopes are read over
the store's inline connection, with the same answer as through the pool, never waiting for
a writer; when that read cannot run (another thread, a failed connection) the pool's does.
In-memory SQLite (and PostgreSQL, `tests/store/test_outcomes.py`) read through the pool.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Connection, event, text
from sqlalchemy.ext.asyncio import async_sessionmaker

from orchestrator.routing.learning import Signal, Tally
from orchestrator.store import Store
from orchestrator.store._engine import parse_url
from orchestrator.store.budgets import BudgetLedger, Reservation
from orchestrator.store.inline_events import InlineEvents
from orchestrator.store.ledger import LedgerParts
from orchestrator.store.outcomes import OutcomeLedger, OutcomeRecord

T0 = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)


def _outcome(key: str, deployment: str, score: float, tenant: str = "acme") -> OutcomeRecord:
    return OutcomeRecord(
        outcome_key=key,
        session_id="s-1",
        tenant=tenant,
        task_type="code",
        deployment=deployment,
        signal=Signal.FEEDBACK,
        score=score,
        created_at=T0,
    )


async def _fill(store: Store) -> None:
    for i, (deployment, score) in enumerate([("mid", 1.0), ("mid", 0.25), ("big", 0.0)]):
        await store.outcomes.record(_outcome(f"o{i}", deployment, score))
    await store.outcomes.record(_outcome("other", "mid", 1.0, tenant="other"))
    wanted = [
        Reservation("acme/a", "2026-12", 1.0, 10, 100.0, None),
        Reservation("acme", "2026-12", 1.0, 10, None, 1000),
    ]
    assert await store.budgets.reserve("s-1", wanted) is None


def _pooled(store: Store) -> LedgerParts:
    """The store's parts without a read on the calling thread: every read is the pool's."""
    return LedgerParts(
        async_sessionmaker(store.engine), store.dialect, lambda _what: contextlib.nullcontext()
    )


@contextlib.contextmanager
def _pool_statements(store: Store) -> Iterator[list[str]]:
    """The statements run through the store's pool while inside."""
    seen: list[str] = []

    def count(*args: object) -> None:
        seen.append(str(args[2]))

    event.listen(store.engine.sync_engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(store.engine.sync_engine, "before_cursor_execute", count)


@pytest.mark.parametrize("where", ["file", "memory"])
async def test_tallies_and_scopes_are_the_pools_and_read_here_on_a_file(
    tmp_path: Path, where: str
) -> None:
    url = (
        f"sqlite+aiosqlite:///{tmp_path / 'orchestrator.db'}"
        if where == "file"
        else "sqlite+aiosqlite://"
    )
    async with await Store.open(url) as store:
        await _fill(store)
        with _pool_statements(store) as pooled_statements:
            tallies = await store.outcomes.tallies("acme", "code")
            scopes = await store.budgets.session_scopes("s-1")
        assert tallies == {"mid": Tally(1.25, 0.75), "big": Tally(0.0, 1.0)}
        assert sorted(scopes) == [("acme", "2026-12"), ("acme/a", "2026-12")]
        assert len(pooled_statements) == (0 if where == "file" else 2)
        pooled = _pooled(store)
        assert await OutcomeLedger(pooled).tallies("acme", "code") == tallies
        assert await BudgetLedger(pooled).session_scopes("s-1") == scopes


async def test_a_read_here_does_not_wait_for_a_writer_elsewhere(tmp_path: Path) -> None:
    async with await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'orchestrator.db'}") as store:
        await _fill(store)
        blocker = sqlite3.connect(tmp_path / "orchestrator.db", isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            blocker.execute("DELETE FROM routing_outcomes")
            # The write lock is held and the delete is not committed: the read sees the
            # last commit, at once, on this thread.
            with _pool_statements(store) as pooled_statements:
                tallies = await store.outcomes.tallies("acme", "code")
            assert tallies == {"mid": Tally(1.25, 0.75), "big": Tally(0.0, 1.0)}
            assert pooled_statements == []
            blocker.execute("COMMIT")
            assert await store.outcomes.tallies("acme", "code") == {}
        finally:
            blocker.close()


async def test_a_read_that_cannot_run_here_answers_none_and_the_next_one_reconnects(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'orchestrator.db'}"
    async with await Store.open(url) as store:
        await _fill(store)
        inline = InlineEvents(parse_url(url))
        try:

            def count(conn: Connection) -> int:
                return int(conn.execute(text("SELECT count(*) FROM routing_outcomes")).scalar_one())

            assert inline.read(count) == 4
            # A failing read: None, and the connection is made anew for the next one.
            assert inline.read(lambda conn: conn.execute(text("SELECT * FROM nowhere"))) is None
            assert inline.read(count) == 4
            answers: list[int | None] = []
            thread = threading.Thread(target=lambda: answers.append(inline.read(count)))
            thread.start()
            thread.join()
            assert answers == [None]
        finally:
            inline.close()
