"""Store tests against a real database.

Every test goes through the `store_url` fixture, so the whole suite runs on SQLite and
on PostgreSQL (a scratch database per test, see `tests/postgres.py`; skipped with the
reason when no server is reachable, except in CI); only the few tests marked SQLite-only
look at the file itself.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import create_async_engine

import orchestrator.store
from orchestrator.exceptions import EventKeyConflict, StoreError
from orchestrator.store import (
    ApprovalRecord,
    ApprovalStatus,
    AuditEvent,
    EventKind,
    SessionRecord,
    SessionStatus,
    Store,
    upgrade,
)
from orchestrator.store._engine import create_store_engine
from orchestrator.store.migrate import alembic_config
from orchestrator.store.tables import Base

T = TypeVar("T")

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def in_thread(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine on a private loop, for checks made from sync tests."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


async def on_sync_connection(url: str, fn: Callable[[sa.Connection], T]) -> T:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(fn)
    finally:
        await engine.dispose()


def schema_of(conn: sa.Connection) -> dict[str, Any]:
    inspector = sa.inspect(conn)
    return {
        "tables": set(inspector.get_table_names()),
        "indexes": {
            # PostgreSQL also reports the index behind each unique constraint; those are
            # checked as constraints below.
            table: {
                ix["name"]: tuple(ix["column_names"])
                for ix in inspector.get_indexes(table)
                if "duplicates_constraint" not in ix
            }
            for table in ("sessions", "audit_events", "approvals")
        },
        "unique": {
            tuple(uc["column_names"]) for uc in inspector.get_unique_constraints("audit_events")
        },
        "version": conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one(),
    }


def session_rec(session_id: str = "s-1", **changes: Any) -> SessionRecord:
    fields: dict[str, Any] = {
        "session_id": session_id,
        "workflow_id": f"wf-{session_id}",
        "run_id": "run-1",
        "plan_name": "triage",
        "plan_version": "1.0.0",
        "input": {"ticket": 42, "tags": ["a", "b"], "nested": {"x": None}},
        "started_at": T0,
    }
    return SessionRecord(**{**fields, **changes})


def event(key: str, session_id: str = "s-1", **changes: Any) -> AuditEvent:
    fields: dict[str, Any] = {
        "event_key": key,
        "session_id": session_id,
        "workflow_id": f"wf-{session_id}",
        "run_id": "run-1",
        "kind": EventKind.MODEL_CALL,
        "created_at": T0,
    }
    return AuditEvent(**{**fields, **changes})


def approval(approval_id: str = "ap-1", **changes: Any) -> ApprovalRecord:
    fields: dict[str, Any] = {
        "approval_id": approval_id,
        "session_id": "s-1",
        "workflow_id": "wf-s-1",
        "run_id": "run-1",
        "step_id": "refund",
        "kind": "tool_call",
        "skill": "payments.refund",
        "skill_version": "1.2.0",
        "arguments": {"amount": 120.5, "currency": "EUR"},
        "summary": "Refund 120.50 EUR to customer 7",
        "binding_hash": "sha256:abc",
        "requested_at": T0,
    }
    return ApprovalRecord(**{**fields, **changes})


def test_public_api_is_exactly_exported() -> None:
    assert sorted(orchestrator.store.__all__) == [
        "ApprovalRecord",
        "ApprovalStatus",
        "AuditEvent",
        "EventKind",
        "SessionRecord",
        "SessionStatus",
        "Store",
        "upgrade",
    ]


# Migrations


async def test_migrations_create_tables_indexes_and_unique_key(
    store: Store, store_url: str
) -> None:
    schema = await on_sync_connection(store_url, schema_of)

    assert {"sessions", "audit_events", "approvals", "alembic_version"} <= schema["tables"]
    assert schema["indexes"]["sessions"] == {
        "ix_sessions_workflow_id": ("workflow_id",),
        "ix_sessions_status": ("status",),
        "ix_sessions_started_at": ("started_at",),
        "ix_sessions_tenant": ("tenant",),
    }
    assert schema["indexes"]["audit_events"] == {
        "ix_audit_events_session_id": ("session_id",),
        "ix_audit_events_workflow_id": ("workflow_id",),
        "ix_audit_events_created_at": ("created_at",),
    }
    assert schema["indexes"]["approvals"] == {
        "ix_approvals_session_id": ("session_id",),
        "ix_approvals_workflow_id": ("workflow_id",),
        "ix_approvals_status": ("status",),
        "ix_approvals_requested_at": ("requested_at",),
    }
    assert ("event_key",) in schema["unique"]
    assert schema["version"] == HEAD


async def test_migrations_match_the_table_models(store: Store, store_url: str) -> None:
    def diff(conn: sa.Connection) -> list[object]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    assert await on_sync_connection(store_url, diff) == []


async def test_migrate_twice_is_a_no_op(store: Store, store_url: str) -> None:
    await store.record_session_start(session_rec())

    await store.migrate()
    await store.migrate()

    assert await store.get_session("s-1") == session_rec()
    assert (await on_sync_connection(store_url, schema_of))["version"] == HEAD


async def test_concurrent_migrations_from_two_stores(store_url: str) -> None:
    async with Store(store_url) as first, Store(store_url) as second:
        await asyncio.gather(first.migrate(), second.migrate())
        await first.record_session_start(session_rec())
        assert await second.get_session("s-1") is not None


def test_sync_upgrade_works_from_plain_code(store_url: str) -> None:
    upgrade(store_url)
    upgrade(store_url)

    assert in_thread(lambda: on_sync_connection(store_url, schema_of))["version"] == HEAD


async def test_sync_upgrade_also_works_inside_a_running_loop(store_url: str) -> None:
    upgrade(store_url)

    async with await Store.open(store_url, migrate=False) as store:
        await store.record_session_start(session_rec())


# Sessions


async def test_session_round_trip(store: Store) -> None:
    rec = session_rec(output={"answer": [1, 2.5, "x", True, None]}, error="boom")

    await store.record_session_start(rec)

    assert await store.get_session("s-1") == rec
    assert await store.get_session("missing") is None


async def test_session_start_is_idempotent_and_updates_only_run_and_status(
    store: Store,
) -> None:
    await store.record_session_start(session_rec())
    await store.record_session_start(session_rec())
    await store.record_session_start(
        session_rec(
            run_id="run-2",
            status=SessionStatus.WAITING_APPROVAL,
            plan_name="other",
            input={"changed": True},
        )
    )

    assert await store.list_sessions() == [
        session_rec(run_id="run-2", status=SessionStatus.WAITING_APPROVAL)
    ]


async def test_update_session_sets_only_given_fields(store: Store) -> None:
    await store.record_session_start(session_rec(output={"keep": 1}))

    await store.update_session("s-1", input_tokens=10, output_tokens=20, cost_usd=0.25)
    await store.update_session("s-1", input_tokens=10, output_tokens=20, cost_usd=0.25)
    partial = await store.get_session("s-1")
    assert partial is not None
    assert (partial.input_tokens, partial.output_tokens, partial.cost_usd) == (10, 20, 0.25)
    assert partial.output == {"keep": 1}
    assert partial.status is SessionStatus.RUNNING

    ended = T0 + timedelta(minutes=5)
    await store.update_session(
        "s-1", status=SessionStatus.FAILED, output=None, error="tool failed", ended_at=ended
    )
    await store.update_session("s-1")

    assert await store.get_session("s-1") == session_rec(
        status=SessionStatus.FAILED,
        output=None,
        error="tool failed",
        input_tokens=10,
        output_tokens=20,
        cost_usd=0.25,
        ended_at=ended,
    )


async def test_update_unknown_session_raises(store: Store) -> None:
    with pytest.raises(StoreError, match=r"'nope'.*does not exist"):
        await store.update_session("nope", status=SessionStatus.COMPLETED)
    with pytest.raises(StoreError, match="does not exist"):
        await store.update_session("nope")


async def test_list_sessions_newest_first_with_filter_and_limit(store: Store) -> None:
    for n in range(5):
        status = SessionStatus.COMPLETED if n % 2 else SessionStatus.RUNNING
        await store.record_session_start(
            session_rec(f"s-{n}", started_at=T0 + timedelta(seconds=n), status=status)
        )

    assert [s.session_id for s in await store.list_sessions()] == [
        "s-4",
        "s-3",
        "s-2",
        "s-1",
        "s-0",
    ]
    assert [s.session_id for s in await store.list_sessions(limit=2)] == ["s-4", "s-3"]
    completed = await store.list_sessions(status=SessionStatus.COMPLETED)
    assert [s.session_id for s in completed] == ["s-3", "s-1"]
    with pytest.raises(StoreError, match="limit"):
        await store.list_sessions(limit=0)


# Audit events


async def test_append_event_dedupes_a_retry_on_event_key(store: Store) -> None:
    first = event("run-1/step-1/call-1", input_tokens=5, payload={"model": "a", "n": 0.1})
    # A retry measures time afresh, and a run continued as new has another run id.
    retry = first.model_copy(
        update={"created_at": T0 + timedelta(seconds=3), "duration_ms": 12.5, "run_id": "run-2"}
    )

    assert await store.append_event(first) is True
    assert await store.append_event(first) is False
    assert await store.append_event(retry) is False

    events = await store.list_events("s-1")
    assert len(events) == 1
    assert events[0] == first.model_copy(update={"id": events[0].id, "seq": 1})


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"input_tokens": 999}, "input_tokens"),
        ({"step_id": "other-step"}, "step_id"),
        ({"payload": {"model": "a", "secret": "sk-123"}}, "payload.secret"),
        ({"payload": {"model": "b"}}, "payload.model"),
    ],
)
async def test_append_event_refuses_a_key_collision(
    store: Store, change: dict[str, Any], named: str
) -> None:
    first = event("wf:step:call", input_tokens=5, payload={"model": "a"})
    assert await store.append_event(first) is True

    with pytest.raises(EventKeyConflict, match=r"'wf:step:call'.*" + named) as caught:
        await store.append_event(first.model_copy(update=change))

    assert caught.value.event_key == "wf:step:call"
    assert caught.value.fields == [named]
    assert "sk-123" not in str(caught.value)  # fields are named, values never shown
    assert [e.input_tokens for e in await store.list_events("s-1")] == [5]


async def test_append_events_writes_a_batch_in_order_and_dedupes_retries(store: Store) -> None:
    first, second = event("b-1", step_id="one"), event("b-2", step_id="two")
    assert await store.append_events([]) == []
    assert await store.append_events([first]) == [True]

    # A retried activity rewrites what it wrote before (False) and adds the rest.
    assert await store.append_events([first, second]) == [False, True]

    events = await store.list_events("s-1")
    assert [(e.event_key, e.seq) for e in events] == [("b-1", 1), ("b-2", 2)]


async def test_append_events_writes_nothing_when_one_key_conflicts(store: Store) -> None:
    await store.append_event(event("c-1", input_tokens=5))
    fresh, changed = event("c-2"), event("c-1", input_tokens=6)

    with pytest.raises(EventKeyConflict, match="'c-1'"):
        await store.append_events([fresh, changed])

    assert [e.event_key for e in await store.list_events("s-1")] == ["c-1"]


async def test_session_start_writes_its_first_events_in_the_same_transaction(
    store: Store,
) -> None:
    started = event("e-1", kind=EventKind.SESSION_STARTED, payload={"plan": "triage"})
    await store.append_event(event("e-0", session_id="s-2"))

    # A conflicting event: neither the row nor any event is written.
    with pytest.raises(EventKeyConflict, match="'e-0'"):
        await store.record_session_start(
            session_rec(), events=[started, event("e-0", session_id="s-2", input_tokens=9)]
        )
    assert await store.get_session("s-1") is None
    assert await store.list_events("s-1") == []

    await store.record_session_start(session_rec(), events=[started])
    # A retried start rewrites nothing and moves only run and status.
    await store.record_session_start(session_rec(run_id="run-2"), events=[started])

    assert await store.get_session("s-1") == session_rec(run_id="run-2")
    assert [(e.event_key, e.seq) for e in await store.list_events("s-1")] == [("e-1", 1)]


async def test_update_session_writes_its_events_in_the_same_transaction(store: Store) -> None:
    await store.record_session_start(session_rec())
    await store.append_event(event("d-1", input_tokens=1))
    closing = event("d-2", kind=EventKind.SESSION_COMPLETED)

    # A conflicting event: neither the events nor the row change.
    with pytest.raises(EventKeyConflict, match="'d-1'"):
        await store.update_session(
            "s-1",
            status=SessionStatus.COMPLETED,
            events=[closing, event("d-1", input_tokens=2)],
        )
    assert [e.event_key for e in await store.list_events("s-1")] == ["d-1"]
    assert (await store.get_session("s-1")).status is SessionStatus.RUNNING  # type: ignore[union-attr]

    await store.update_session("s-1", status=SessionStatus.COMPLETED, events=[closing])
    assert [e.event_key for e in await store.list_events("s-1")] == ["d-1", "d-2"]
    assert (await store.get_session("s-1")).status is SessionStatus.COMPLETED  # type: ignore[union-attr]


async def test_events_keep_write_order_and_filter_by_kind(store: Store) -> None:
    kinds = [EventKind.SESSION_STARTED, EventKind.MODEL_CALL, EventKind.TOOL_CALL] * 3
    for n, kind in enumerate(kinds):
        # Timestamps deliberately out of order: the id, not the clock, orders events.
        await store.append_event(
            event(f"k-{n}", kind=kind, created_at=T0 - timedelta(seconds=n), step_id=f"{n}")
        )
    await store.append_event(event("other-session", session_id="s-2"))

    events = await store.list_events("s-1")
    assert [e.event_key for e in events] == [f"k-{n}" for n in range(9)]
    ids = [e.id for e in events if e.id is not None]
    assert len(ids) == 9
    assert ids == sorted(ids)
    assert len(set(ids)) == 9

    calls = await store.list_events("s-1", kind=EventKind.TOOL_CALL)
    assert [e.event_key for e in calls] == ["k-2", "k-5", "k-8"]
    assert await store.list_events("nobody") == []


async def test_concurrent_duplicate_events_are_written_once(store: Store) -> None:
    results = await asyncio.gather(*(store.append_event(event("same")) for _ in range(10)))

    assert results.count(True) == 1
    assert len(await store.list_events("s-1")) == 1


# Approvals


async def test_approval_request_is_idempotent(store: Store) -> None:
    rec = approval()

    assert await store.record_approval_request(rec) is True
    assert await store.record_approval_request(rec.model_copy(update={"summary": "x"})) is False

    assert await store.get_approval("ap-1") == rec
    assert await store.get_approval("missing") is None


async def test_retried_request_does_not_reset_a_decision(store: Store) -> None:
    await store.record_approval_request(approval())
    await store.decide_approval(
        "ap-1", status=ApprovalStatus.APPROVED, decided_by="ann", reason=None, decided_at=T0
    )

    assert await store.record_approval_request(approval()) is False

    decided = await store.get_approval("ap-1")
    assert decided is not None
    assert decided.status is ApprovalStatus.APPROVED


async def test_decide_approval_claims_exactly_once(store: Store) -> None:
    await store.record_approval_request(approval())
    decided_at = T0 + timedelta(minutes=1)

    async def decide(n: int) -> bool:
        status = ApprovalStatus.APPROVED if n % 2 else ApprovalStatus.REJECTED
        return await store.decide_approval(
            "ap-1", status=status, decided_by=f"user-{n}", reason=f"r{n}", decided_at=decided_at
        )

    results = await asyncio.gather(*(decide(n) for n in range(10)))

    assert results.count(True) == 1
    winner = results.index(True)
    decided = await store.get_approval("ap-1")
    assert decided is not None
    assert decided.decided_by == f"user-{winner}"
    assert decided.reason == f"r{winner}"
    assert decided.status is (ApprovalStatus.APPROVED if winner % 2 else ApprovalStatus.REJECTED)
    assert decided.decided_at == decided_at


async def test_decide_approval_claims_once_across_two_stores(store_url: str) -> None:
    async with await Store.open(store_url) as first, await Store.open(store_url) as second:
        await first.record_approval_request(approval())

        results = await asyncio.gather(
            *(
                s.decide_approval(
                    "ap-1",
                    status=ApprovalStatus.APPROVED,
                    decided_by=f"{name}-{n}",
                    reason=None,
                    decided_at=T0,
                )
                for n in range(5)
                for name, s in (("first", first), ("second", second))
            )
        )

        assert results.count(True) == 1
        assert await first.get_approval("ap-1") == await second.get_approval("ap-1")


async def test_decide_unknown_or_with_pending_status_raises(store: Store) -> None:
    with pytest.raises(StoreError, match=r"'ghost'.*does not exist"):
        await store.decide_approval(
            "ghost", status=ApprovalStatus.APPROVED, decided_by="ann", reason=None, decided_at=T0
        )

    await store.record_approval_request(approval())
    with pytest.raises(StoreError, match="pending"):
        await store.decide_approval(
            "ap-1", status=ApprovalStatus.PENDING, decided_by="ann", reason=None, decided_at=T0
        )
    still = await store.get_approval("ap-1")
    assert still is not None
    assert still.status is ApprovalStatus.PENDING


async def test_list_approvals_oldest_first_with_filters(store: Store) -> None:
    await store.record_approval_request(approval("ap-b", requested_at=T0 + timedelta(seconds=2)))
    await store.record_approval_request(approval("ap-a", requested_at=T0 + timedelta(seconds=1)))
    await store.record_approval_request(approval("ap-c", session_id="s-2", requested_at=T0))
    await store.decide_approval(
        "ap-b", status=ApprovalStatus.REJECTED, decided_by="bob", reason="no", decided_at=T0
    )

    assert [a.approval_id for a in await store.list_approvals()] == ["ap-c", "ap-a", "ap-b"]
    pending = await store.list_approvals(status=ApprovalStatus.PENDING)
    assert [a.approval_id for a in pending] == ["ap-c", "ap-a"]
    in_s1 = await store.list_approvals(session_id="s-1")
    assert [a.approval_id for a in in_s1] == ["ap-a", "ap-b"]
    both = await store.list_approvals(status=ApprovalStatus.PENDING, session_id="s-1")
    assert [a.approval_id for a in both] == ["ap-a"]


async def test_sessions_awaiting_approval_are_those_with_a_pending_request(store: Store) -> None:
    assert await store.sessions_awaiting_approval() == set()
    await store.record_approval_request(approval("ap-a"))
    await store.record_approval_request(approval("ap-b"))
    await store.record_approval_request(approval("ap-c", session_id="s-2"))
    await store.record_approval_request(approval("ap-d", session_id="s-3"))
    await store.decide_approval(
        "ap-c", status=ApprovalStatus.APPROVED, decided_by="bob", reason=None, decided_at=T0
    )

    assert await store.sessions_awaiting_approval() == {"s-1", "s-3"}


async def test_session_statuses_reads_the_asked_sessions_only(store: Store) -> None:
    await store.record_session_start(session_rec("s-1"))
    await store.record_session_start(session_rec("s-2", status=SessionStatus.COMPLETED))
    await store.record_session_start(session_rec("s-3", status=SessionStatus.FAILED))

    statuses = await store.session_statuses(["s-1", "s-2", "s-9"])

    assert statuses == {"s-1": SessionStatus.RUNNING, "s-2": SessionStatus.COMPLETED}
    assert await store.session_statuses([]) == {}


# Datetimes


async def test_datetimes_come_back_aware_utc(store: Store) -> None:
    plus_two = timezone(timedelta(hours=2))
    local = datetime(2025, 3, 1, 14, 0, tzinfo=plus_two)
    await store.record_session_start(session_rec(started_at=local))
    await store.update_session("s-1", ended_at=local + timedelta(hours=1))
    await store.append_event(event("e", created_at=local))
    await store.record_approval_request(approval(requested_at=local))
    await store.decide_approval(
        "ap-1", status=ApprovalStatus.APPROVED, decided_by="ann", reason=None, decided_at=local
    )

    session = await store.get_session("s-1")
    [stored_event] = await store.list_events("s-1")
    decided = await store.get_approval("ap-1")
    assert session is not None
    assert decided is not None
    stamps = [
        session.started_at,
        session.ended_at,
        stored_event.created_at,
        decided.requested_at,
        decided.decided_at,
    ]
    for stamp in stamps:
        assert stamp is not None
        assert stamp.utcoffset() == timedelta(0)
    assert session.started_at == local
    assert session.started_at.hour == 12


async def test_ordering_uses_instants_not_local_wall_clock(store: Store) -> None:
    # 13:00+02:00 is earlier than 12:30 UTC, although its wall clock reads later.
    await store.record_session_start(
        session_rec(
            "early", started_at=datetime(2025, 3, 1, 13, 0, tzinfo=timezone(timedelta(hours=2)))
        )
    )
    await store.record_session_start(
        session_rec("late", started_at=datetime(2025, 3, 1, 12, 30, tzinfo=UTC))
    )

    assert [s.session_id for s in await store.list_sessions()] == ["late", "early"]


# Errors and SQLite specifics


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+asyncpg://ann:s3cr3t-pw@127.0.0.1:1/orchestrator",
        "mysql+aiomysql://ann:s3cr3t-pw@127.0.0.1:1/orchestrator",
        "sqlite:///plain-sync-driver.db",
        "not a url with s3cr3t-pw",
    ],
)
async def test_errors_never_show_the_password(url: str) -> None:
    with pytest.raises(StoreError) as info:
        async with await Store.open(url):
            pass

    assert "s3cr3t-pw" not in str(info.value)


async def test_database_failures_become_store_errors(tmp_path: Path) -> None:
    # A folder where the database file should be: SQLite cannot open it.
    with pytest.raises(StoreError, match="unable to open database file"):
        await Store.open(f"sqlite+aiosqlite:///{tmp_path}")


async def test_sqlite_file_uses_wal_and_a_busy_timeout(store: Store, store_url: str) -> None:
    if not store_url.startswith("sqlite"):
        pytest.skip("SQLite only")

    def pragmas(conn: sa.Connection) -> tuple[str, int]:
        return (
            conn.exec_driver_sql("PRAGMA journal_mode").scalar_one(),
            conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one(),
        )

    # A fresh engine made by the store's own factory shows what every connection gets.
    engine = create_store_engine(store_url)
    try:
        async with engine.connect() as conn:
            mode, timeout = await conn.run_sync(pragmas)
    finally:
        await engine.dispose()

    assert mode == "wal"
    assert timeout >= 1000
    assert Path(store_url.removeprefix("sqlite+aiosqlite:///")).is_file()
