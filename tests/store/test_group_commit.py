"""Group commit: concurrent writers share transactions, and nothing of the store's
guarantees is lost (dense per-session `seq`, idempotent retries, key conflicts, CAS pins),
on SQLite files and PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from orchestrator.exceptions import EventKeyConflict, StoreError
from orchestrator.store import Store
from orchestrator.store.budgets import Reservation, Spend
from orchestrator.store.group_commit import (
    AppendEvent,
    GroupCommit,
    LedgerWrite,
    PutPin,
    StartSession,
)
from orchestrator.store.pins import Pin
from orchestrator.store.records import AuditEvent, EventKind, SessionRecord

NOW = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)


def _event(session: str, key: str, model: str = "m") -> AuditEvent:
    return AuditEvent(
        event_key=key,
        session_id=session,
        workflow_id=session,
        run_id="gateway",
        kind=EventKind.MODEL_CALL,
        model=model,
        payload={"gateway": True},
        created_at=NOW,
    )


def _session(session: str) -> SessionRecord:
    return SessionRecord(
        session_id=session,
        workflow_id=session,
        run_id="gateway",
        plan_name="gateway",
        plan_version="1",
        tenant="t",
        team="x",
        input={},
        started_at=NOW,
    )


def _pin(session: str, deployment: str) -> Pin:
    return Pin(
        session_id=session,
        deployment=deployment,
        key_id="k",
        tenant="t",
        team="x",
        phase="loop",
        version=0,
        updated_at=NOW,
    )


@pytest.fixture
def commits() -> Iterator[list[int]]:
    """Counts the commits of every engine (the store's and the group writer's own)."""
    seen: list[int] = []

    def count(conn: sa.Connection) -> None:
        seen.append(1)

    sa.event.listen(Engine, "commit", count)
    yield seen
    sa.event.remove(Engine, "commit", count)


async def test_concurrent_writers_share_commits_and_keep_seq_dense(
    store: Store, commits: list[int]
) -> None:
    group = GroupCommit(store)
    await group.commit([StartSession(_session("s"))])
    commits.clear()
    results = await asyncio.gather(
        *(group.commit([AppendEvent(_event("s", f"s/{i}"))]) for i in range(40))
    )
    await group.aclose()
    assert results == [[True]] * 40
    assert len(commits) < 40, "every writer committed alone: nothing was batched"
    events = await store.list_events("s")
    assert sorted(e.seq for e in events) == list(range(1, 41))
    assert {e.event_key for e in events} == {f"s/{i}" for i in range(40)}


async def test_retry_is_a_no_op_and_a_conflict_fails_only_its_writer(store: Store) -> None:
    group = GroupCommit(store)
    await group.commit([StartSession(_session("s")), AppendEvent(_event("s", "s/1"))])
    retry, conflict, other = await asyncio.gather(
        group.commit([AppendEvent(_event("s", "s/1"))]),
        group.commit([AppendEvent(_event("s", "s/1", model="other"))]),
        group.commit([AppendEvent(_event("s", "s/2"))]),
        return_exceptions=True,
    )
    await group.aclose()
    assert retry == [False]
    assert isinstance(conflict, EventKeyConflict)
    assert other == [True]
    assert [e.event_key for e in await store.list_events("s")] == ["s/1", "s/2"]


async def test_pins_are_compare_and_set_and_read_back(store: Store) -> None:
    group = GroupCommit(store)
    assert await group.read_pin("p") is None
    first, second = await asyncio.gather(
        group.commit([PutPin(_pin("p", "a"), None)]),
        group.commit([PutPin(_pin("p", "b"), None)]),
    )
    assert (first, second) == ([True], [False])
    pinned = await group.read_pin("p")
    assert pinned is not None and (pinned.deployment, pinned.version) == ("a", 1)
    # A writer that read version 1 wins once; a second one that read 1 too loses.
    assert await group.commit([PutPin(_pin("p", "b"), 1)]) == [True]
    assert await group.commit([PutPin(_pin("p", "c"), 1)]) == [False]
    assert await store.pins.get("p") == await group.read_pin("p")
    moved = await group.read_pin("p")
    assert moved is not None and (moved.deployment, moved.version) == ("b", 2)
    await group.aclose()


async def test_a_caller_that_goes_away_does_not_cancel_the_batch(store: Store) -> None:
    group = GroupCommit(store)
    await group.commit([StartSession(_session("s"))])
    leaving = asyncio.create_task(group.commit([AppendEvent(_event("s", "s/gone"))]))
    staying = asyncio.create_task(group.commit([AppendEvent(_event("s", "s/kept"))]))
    await asyncio.sleep(0)
    leaving.cancel()
    assert await staying == [True]
    await group.aclose()
    # Its write was already queued: it is committed, like a request whose client left.
    assert {e.event_key for e in await store.list_events("s")} == {"s/gone", "s/kept"}


async def test_a_failed_batch_fails_its_writers_with_a_store_error(store: Store) -> None:
    group = GroupCommit(store)
    # No session row and an event in a session that does not exist is fine; a pin whose
    # deployment is NULL is not (NOT NULL column): the whole batch is refused.
    bad = Pin.model_construct(**{**_pin("p", "a").model_dump(), "deployment": None})
    with pytest.raises(StoreError, match="could not commit gateway writes"):
        await group.commit([AppendEvent(_event("s", "s/1")), PutPin(bad, None)])
    await group.aclose()
    assert await store.list_events("s") == []


async def test_a_ledger_write_commits_with_its_batch_and_fails_with_it(store: Store) -> None:
    group = GroupCommit(store)
    hold = Reservation("k", "day", usd=1.0, tokens=10, limit_usd=5.0, limit_tokens=None)
    assert await store.budgets.reserve("s#1", [hold]) is None
    spend = Spend("s#1", [("k", "day")], 0.25, 4, "s#1/spend")
    written = await group.commit(
        [
            LedgerWrite(lambda conn: store.budgets.spend_here(conn, spend, settle=True)),
            AppendEvent(_event("s", "s/1")),
        ]
    )
    assert written == [None, True]
    usage = await store.budgets.usage("k", "day")
    # Spent 0.25 of the 1.0 held, and settled: what was not spent is given back.
    assert (usage.spent_usd, usage.committed_usd, usage.spent_tokens) == (0.25, 0.25, 4)
    again = Spend("s#2", [("k", "day")], 1.0, 1, "s#2/spend")
    bad = Pin.model_construct(**{**_pin("p", "a").model_dump(), "deployment": None})
    with pytest.raises(StoreError):
        await group.commit(
            [
                LedgerWrite(lambda conn: store.budgets.spend_here(conn, again)),
                PutPin(bad, None),
            ]
        )
    await group.aclose()
    assert (await store.budgets.usage("k", "day")).spent_usd == 0.25


async def test_the_kept_read_connection_sees_every_later_commit(store: Store) -> None:
    group = GroupCommit(store)
    assert await group.read_pin("p") is None
    # Written by another connection (another gateway process would do the same).
    await store.pins.put(_pin("p", "a"), expected_version=None)
    first = await group.read_pin("p")
    # Every field as written, the time zone-aware time included.
    assert first == _pin("p", "a").model_copy(update={"version": 1})
    await store.pins.put(_pin("p", "b"), expected_version=1)
    second = await group.read_pin("p")
    assert second is not None and (second.deployment, second.version) == ("b", 2)
    await group.aclose()


async def test_pins_are_read_on_the_connection_that_commits_on_the_loop_thread(
    store: Store,
) -> None:
    if store.dialect != "sqlite":
        pytest.skip("reads on the loop's thread are for SQLite files")
    group = GroupCommit(store)
    # The group's own write, then another connection's: both read back on the connection
    # that commits on this thread.
    assert await group.commit([PutPin(_pin("p", "a"), None)]) == [True]
    assert group._read_inline("p") == (True, _pin("p", "a").model_copy(update={"version": 1}))
    await store.pins.put(_pin("p", "b"), expected_version=1)
    read, pin = group._read_inline("p")
    assert read and pin is not None and (pin.deployment, pin.version) == ("b", 2)
    # `read_pin` reads there too.
    await store.pins.put(_pin("p", "c"), expected_version=2)
    pinned = await group.read_pin("p")
    assert pinned is not None and (pinned.deployment, pinned.version) == ("c", 3)
    await group.aclose()


async def test_a_lone_writer_commits_at_once_and_waits_for_another_process_lock(
    store: Store, commits: list[int]
) -> None:
    if store.dialect != "sqlite":
        pytest.skip("commits on the loop's thread are for SQLite files")
    group = GroupCommit(store)
    await group.commit([StartSession(_session("s"))])
    commits.clear()
    # Nothing queued: committed on the calling thread before the first await returns.
    lone = asyncio.create_task(group.commit([AppendEvent(_event("s", "s/1"))]))
    await asyncio.sleep(0)
    assert lone.done() and lone.result() == [True] and len(commits) == 1
    # Another process holds SQLite's write lock: the writes queue for the writer thread,
    # which waits for the lock (busy timeout), instead of blocking the event loop.
    other = sqlite3.connect(str(store.engine.url.database), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    waiting = asyncio.create_task(group.commit([AppendEvent(_event("s", "s/2"))]))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiting.done()
    other.execute("COMMIT")
    other.close()
    assert await waiting == [True]
    await group.aclose()
    assert [e.seq for e in await store.list_events("s")] == [1, 2]


async def test_events_written_through_the_driver_are_stored_as_the_store_writes_them(
    store: Store,
) -> None:
    group = GroupCommit(store)
    event = _event("s", "s/1").model_copy(
        update={"payload": {"gateway": True, "é": [1, None, "x"]}, "cost_usd": 0.25}
    )
    await group.commit([AppendEvent(event)])
    await group.aclose()
    await store.append_event(event.model_copy(update={"event_key": "s/2"}))
    first, second = await store.list_events("s")
    assert first.model_dump(exclude={"id", "seq", "event_key"}) == second.model_dump(
        exclude={"id", "seq", "event_key"}
    )
    assert (first.seq, second.seq) == (1, 2)


async def test_sessions_started_through_the_driver_read_back_as_the_store_writes_them(
    store: Store,
) -> None:
    group = GroupCommit(store)
    ours = _session("s").model_copy(update={"input": {"key": "k", "é": [1, None]}})
    await group.commit([StartSession(ours)])
    # A known session only gets its run id and status.
    await group.commit([StartSession(ours.model_copy(update={"run_id": "r2", "tenant": "u"}))])
    await group.aclose()
    theirs = ours.model_copy(update={"session_id": "t", "workflow_id": "t"})
    await store.record_session_start(theirs)
    await store.record_session_start(theirs.model_copy(update={"run_id": "r2", "tenant": "u"}))
    read_ours, read_theirs = await store.get_session("s"), await store.get_session("t")
    assert read_ours is not None and read_theirs is not None
    assert read_ours.run_id == "r2" and read_ours.tenant == "t"
    assert read_ours.model_dump(exclude={"session_id", "workflow_id"}) == read_theirs.model_dump(
        exclude={"session_id", "workflow_id"}
    )
