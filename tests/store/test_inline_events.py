"""Audit events on a SQLite file, committed on the calling thread (`inline_events`).

The store writes a session's events in one short transaction on the event loop's thread,
never waiting for SQLite's write lock there: with the lock taken elsewhere the store's
pooled path (which waits) writes them. And a model call's spend rides in its event's
transaction (`append_events(spend=...)`), all or nothing, on every backend.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from orchestrator.exceptions import EventKeyConflict, StoreError
from orchestrator.store import AuditEvent, EventKind, SessionRecord, SessionStatus, Store
from orchestrator.store._engine import parse_url
from orchestrator.store.budgets import Spend
from orchestrator.store.inline_events import InlineEvents, _locked

T0 = datetime(2026, 12, 6, 23, 0, tzinfo=UTC)


def _event(key: str, session_id: str = "s-1", **changes: object) -> AuditEvent:
    fields: dict[str, object] = {
        "event_key": key,
        "session_id": session_id,
        "workflow_id": f"wf-{session_id}",
        "run_id": "run-1",
        "kind": EventKind.MODEL_CALL,
        "created_at": T0,
    }
    return AuditEvent.model_validate({**fields, **changes})


def _url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'orchestrator.db'}"


async def test_events_are_committed_in_order_and_announced(tmp_path: Path) -> None:
    announced: list[dict[str, int]] = []
    async with await Store.open(_url(tmp_path)) as store, Store(_url(tmp_path)) as other:
        store.on_events_committed = lambda moved: announced.append(dict(moved))
        assert await store.append_events([_event("a"), _event("b"), _event("x", "s-2")]) == [
            True,
            True,
            True,
        ]
        # A retry rewrites nothing and announces nothing new.
        assert await store.append_events([_event("b"), _event("c")]) == [False, True]
        assert await store.append_event(_event("d")) is True

        # Another connection (another process) sees them committed, numbered densely.
        seen = [(e.event_key, e.seq) for e in await other.list_events("s-1")]
        assert seen == [("a", 1), ("b", 2), ("c", 3), ("d", 4)]
    assert announced == [{"s-1": 2, "s-2": 1}, {"s-1": 3}, {"s-1": 4}]


async def test_a_conflict_writes_none_of_the_events(tmp_path: Path) -> None:
    async with await Store.open(_url(tmp_path)) as store:
        await store.append_event(_event("a", input_tokens=1))
        with pytest.raises(EventKeyConflict, match="'a'"):
            await store.append_events([_event("b"), _event("a", input_tokens=2)])
        assert [e.event_key for e in await store.list_events("s-1")] == ["a"]


async def test_a_held_write_lock_is_not_waited_for_on_the_calling_thread(tmp_path: Path) -> None:
    async with await Store.open(_url(tmp_path)) as store:
        inline = InlineEvents(parse_url(_url(tmp_path)))
        blocker = sqlite3.connect(tmp_path / "orchestrator.db", isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            # Another writer holds the lock: no wait here; the store's pooled path writes.
            assert inline.append([_event("a")]) is None
            blocker.execute("COMMIT")
            assert inline.append([_event("a")]) == ([True], {"s-1": 1})
        finally:
            blocker.close()
            inline.close()
        assert [e.seq for e in await store.list_events("s-1")] == [1]


async def test_only_the_first_thread_writes_through_its_connection(tmp_path: Path) -> None:
    async with await Store.open(_url(tmp_path)):
        inline = InlineEvents(parse_url(_url(tmp_path)))
        try:
            assert inline.append([_event("a")]) == ([True], {"s-1": 1})
            answers: list[object] = []
            thread = threading.Thread(target=lambda: answers.append(inline.append([_event("b")])))
            thread.start()
            thread.join()
            assert answers == [None]
        finally:
            inline.close()


def _session(run_id: str = "run-1") -> SessionRecord:
    return SessionRecord(
        session_id="s-1",
        workflow_id="wf-s-1",
        run_id=run_id,
        plan_name="triage",
        plan_version="1.0.0",
        input={"ticket": 42},
        started_at=T0,
    )


async def test_a_session_start_commits_its_row_and_first_event_on_the_calling_thread(
    tmp_path: Path,
) -> None:
    announced: list[dict[str, int]] = []
    async with await Store.open(_url(tmp_path)) as store, Store(_url(tmp_path)) as other:
        store.on_events_committed = lambda moved: announced.append(dict(moved))
        await store.append_event(_event("taken", "s-0"))
        # A conflicting event: neither the row nor the first event is written.
        with pytest.raises(EventKeyConflict, match="'taken'"):
            await store.record_session_start(
                _session(), events=[_event("started"), _event("taken", "s-0", input_tokens=3)]
            )
        assert await other.get_session("s-1") is None

        await store.record_session_start(_session(), events=[_event("started")])
        await store.record_session_start(_session("run-2"), events=[_event("started")])
        assert await other.get_session("s-1") == _session("run-2")
        assert [(e.event_key, e.seq) for e in await other.list_events("s-1")] == [("started", 1)]
    assert announced == [{"s-0": 1}, {"s-1": 1}]


async def test_a_session_start_with_the_lock_held_elsewhere_is_not_waited_for(
    tmp_path: Path,
) -> None:
    async with await Store.open(_url(tmp_path)) as store:
        inline = InlineEvents(parse_url(_url(tmp_path)))
        blocker = sqlite3.connect(tmp_path / "orchestrator.db", isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            assert inline.append([_event("a")], start=_session()) is None
            blocker.execute("COMMIT")
            assert inline.append([_event("a")], start=_session()) == ([True], {"s-1": 1})
        finally:
            blocker.close()
            inline.close()
        assert await store.get_session("s-1") == _session()


async def test_a_session_close_commits_its_events_and_row_on_the_calling_thread(
    tmp_path: Path,
) -> None:
    announced: list[dict[str, int]] = []
    async with await Store.open(_url(tmp_path)) as store, Store(_url(tmp_path)) as other:
        await store.record_session_start(_session(), events=[_event("started")])
        store.on_events_committed = lambda moved: announced.append(dict(moved))
        ended = datetime(2026, 12, 6, 23, 5, tzinfo=UTC)
        # A conflicting event: neither the events nor the row's changes are written.
        with pytest.raises(EventKeyConflict, match="'started'"):
            await store.update_session(
                "s-1",
                status=SessionStatus.COMPLETED,
                events=[_event("last"), _event("started", input_tokens=9)],
            )
        held = await other.get_session("s-1")
        assert held is not None and held.status is SessionStatus.RUNNING

        close = {"status": SessionStatus.COMPLETED, "output": {"answer": "done"}}
        await store.update_session("s-1", **close, ended_at=ended, events=[_event("last")])
        # A retried close rewrites nothing.
        await store.update_session("s-1", **close, ended_at=ended, events=[_event("last")])
        closed = await other.get_session("s-1")
        assert closed is not None
        assert (closed.status, closed.output, closed.ended_at) == (
            SessionStatus.COMPLETED,
            {"answer": "done"},
            ended,
        )
        assert [(e.event_key, e.seq) for e in await other.list_events("s-1")] == [
            ("started", 1),
            ("last", 2),
        ]
        # An unknown session is an error, after its events are committed (as pooled).
        with pytest.raises(StoreError, match=r"'s-9'.*does not exist"):
            await store.update_session("s-9", events=[_event("lost", "s-9")])
        assert [e.event_key for e in await other.list_events("s-9")] == ["lost"]
    assert announced == [{"s-1": 2}, {"s-9": 1}]


async def test_a_session_close_with_the_lock_held_elsewhere_is_not_waited_for(
    tmp_path: Path,
) -> None:
    async with await Store.open(_url(tmp_path)) as store:
        await store.record_session_start(_session())
        inline = InlineEvents(parse_url(_url(tmp_path)))
        blocker = sqlite3.connect(tmp_path / "orchestrator.db", isolation_level=None)
        changes = {"status": SessionStatus.FAILED.value, "error": "boom"}
        try:
            blocker.execute("BEGIN IMMEDIATE")
            assert inline.update_session("s-1", changes, [_event("a")]) is None
            blocker.execute("COMMIT")
            assert inline.update_session("s-1", changes, [_event("a")]) == (True, {"s-1": 1})
            assert inline.update_session("s-2", {}, []) == (False, {})
        finally:
            blocker.close()
            inline.close()
        closed = await store.get_session("s-1")
        assert closed is not None and (closed.status, closed.error) == (
            SessionStatus.FAILED,
            "boom",
        )


async def test_spend_and_events_commit_together(store: Store) -> None:
    scope, period = "acme/support", "2026-12"
    spend = Spend("s-1", [(scope, period)], 0.25, 100, key="wf-s-1:main:model_call:0")
    await store.append_event(_event("taken", input_tokens=1))

    # The event's key holds another event: the spend is not booked either.
    with pytest.raises(EventKeyConflict):
        await store.append_events([_event("taken", input_tokens=2)], spend=spend)
    assert (await store.budgets.usage(scope, period)).spent_usd == 0.0

    assert await store.append_events([_event("call")], spend=spend) == [True]
    # A retried call: neither the spend nor the event counts twice.
    assert await store.append_events([_event("call")], spend=spend) == [False]
    usage = await store.budgets.usage(scope, period)
    assert (usage.spent_usd, usage.spent_tokens) == (0.25, 100)
    assert [e.event_key for e in await store.list_events("s-1")] == ["taken", "call"]


async def test_a_write_lets_other_tasks_run(tmp_path: Path) -> None:
    async with await Store.open(_url(tmp_path)) as store:
        ran: list[int] = []

        async def other() -> None:
            ran.append(1)

        task = asyncio.create_task(other())
        # Committed on this thread, it still suspends once, as the pooled write does: a
        # writer in a loop must not starve the watchers of what it writes.
        await store.append_event(_event("a"))
        assert ran == [1]
        await task


def test_a_held_lock_is_told_from_other_failures_by_its_sqlite_code(tmp_path: Path) -> None:
    """Locked or busy: the pooled path waits and the connection is kept; anything else
    (here a missing table) drops the connection. Told by SQLite's result code, not text."""
    path = tmp_path / "lock.db"
    blocker = sqlite3.connect(path, isolation_level=None)
    waiter = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        blocker.execute("CREATE TABLE t (x)")
        blocker.execute("BEGIN IMMEDIATE")
        with pytest.raises(sqlite3.OperationalError) as busy:
            waiter.execute("BEGIN IMMEDIATE")
        with pytest.raises(sqlite3.OperationalError) as missing:
            waiter.execute("SELECT * FROM nowhere")
    finally:
        blocker.close()
        waiter.close()
    assert _locked(OperationalError("BEGIN IMMEDIATE", None, busy.value))
    assert not _locked(OperationalError("SELECT", None, missing.value))
