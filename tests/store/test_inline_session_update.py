"""A session's close through the precompiled driver statement stores what Core stored.

`InlineEvents.update_session` runs SQL compiled once per set of changed columns on the
driver's connection; each column's value must reach the file exactly as SQLAlchemy's
`update(SessionRow).values(...)` wrote it (JSON text, UTC timestamps, numbers), or a
reader of the row would see a different session.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import update

from orchestrator.store import SessionRecord, SessionStatus, Store
from orchestrator.store._engine import create_sync_sqlite_engine, parse_url
from orchestrator.store.inline_events import InlineEvents
from orchestrator.store.tables import SessionRow

T0 = datetime(2026, 12, 6, 23, 0, tzinfo=UTC)

# The kinds of value `Store.update_session` passes (activities' close, approvals, status).
CHANGES: list[dict[str, object]] = [
    {"status": SessionStatus.RUNNING.value, "input_tokens": 7},
    {"status": SessionStatus.WAITING_APPROVAL.value},
    {
        "status": SessionStatus.COMPLETED.value,
        "input_tokens": 1_234_567_890_123,
        "output_tokens": 0,
        "cost_usd": 0.1 + 0.2,
        "ended_at": datetime(2026, 12, 6, 23, 5, 7, 123456, tzinfo=UTC),
        "output": {"answer": "déjà vu ✓", "n": [1, 2.5, None, True], "nested": {"a": {}}},
    },
    {
        "status": SessionStatus.FAILED.value,
        "error": "boom: 'quoted' \"text\"\nline two",
        "ended_at": datetime(2026, 12, 7, 1, 0, tzinfo=timezone(timedelta(hours=2))),
        "output": None,
    },
    {"output": "plain string", "ended_at": datetime(2026, 12, 7, 1, 0)},
    {"output": [1, "two", {"three": 3}], "cost_usd": 3},
    {"output": 42},
]


def _record(session_id: str) -> SessionRecord:
    return SessionRecord(
        session_id=session_id,
        workflow_id="wf-1",
        run_id="run-1",
        plan_name="triage",
        plan_version="1.0.0",
        input={"ticket": 42},
        started_at=T0,
    )


def _stored(path: Path, session_id: str) -> list[tuple[object, str]]:
    """Each column's stored value and SQLite type, as the file holds it."""
    columns = [c.name for c in SessionRow.__table__.columns if c.name != "session_id"]
    picks = ", ".join(f"{name}, typeof({name})" for name in columns)
    with sqlite3.connect(path) as conn:
        row = conn.execute(
            f"SELECT {picks} FROM sessions WHERE session_id = ?", (session_id,)
        ).fetchone()
    assert row is not None
    return list(zip(row[::2], row[1::2], strict=True))


@pytest.mark.parametrize("changes", CHANGES, ids=lambda c: "+".join(c))
async def test_the_precompiled_close_writes_what_core_wrote(
    tmp_path: Path, changes: dict[str, object]
) -> None:
    path = tmp_path / "orchestrator.db"
    url = f"sqlite+aiosqlite:///{path}"
    async with await Store.open(url) as store:
        for session_id in ("core", "driver"):
            await store.record_session_start(_record(session_id).model_copy())
    before = _stored(path, "core")

    engine = create_sync_sqlite_engine(parse_url(url))
    try:
        with engine.begin() as conn:
            found = conn.execute(
                update(SessionRow)
                .where(SessionRow.session_id == "core")
                .values(dict(changes))
                .returning(SessionRow.session_id)
            ).scalar_one_or_none()
        assert found == "core"
    finally:
        engine.dispose()

    inline = InlineEvents(parse_url(url))
    try:
        assert inline.update_session("driver", changes, []) == (True, {})
        assert inline.update_session("missing", changes, []) == (False, {})
        # The same columns again: the cached statement, the same result.
        assert inline.update_session("driver", changes, []) == (True, {})
    finally:
        inline.close()

    written = _stored(path, "driver")
    assert written == _stored(path, "core")
    assert written != before


async def test_no_changes_reads_whether_the_row_exists(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'orchestrator.db'}"
    async with await Store.open(url) as store:
        await store.record_session_start(_record("s-1"))
    before = _stored(tmp_path / "orchestrator.db", "s-1")
    inline = InlineEvents(parse_url(url))
    try:
        assert inline.update_session("s-1", {}, []) == (True, {})
        assert inline.update_session("s-2", {}, []) == (False, {})
    finally:
        inline.close()
    assert _stored(tmp_path / "orchestrator.db", "s-1") == before
