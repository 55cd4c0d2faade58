"""Approvals and outcomes written on the calling thread (`InlineEvents.write`).

On a SQLite file a request's row, its decision, its read back and an outcome signal are
short transactions over the store's inline connection, with the same answers as through
the pool (each pooled statement is a hand-off to the driver's thread); when the file's
write lock is held elsewhere the write is not waited for here, and the pool's path (which
waits) takes it. In-memory SQLite goes through the pool.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from store_probes import pool_statements, sqlite_url

from orchestrator.exceptions import StoreError
from orchestrator.routing.learning import Signal
from orchestrator.store import Store
from orchestrator.store._engine import parse_url
from orchestrator.store.inline_events import InlineEvents
from orchestrator.store.outcomes import OutcomeKeyConflict, OutcomeRecord
from orchestrator.store.records import ApprovalRecord, ApprovalStatus

T0 = datetime(2026, 12, 7, 5, 0, tzinfo=UTC)


def _request(approval_id: str = "ap-1") -> ApprovalRecord:
    return ApprovalRecord(
        approval_id=approval_id,
        session_id="s-1",
        workflow_id="session-s-1",
        run_id="r-1",
        step_id="work",
        kind="tool_call",
        skill="load.apply",
        skill_version="1.0.0",
        arguments={"item": "a", "amount": 250},
        summary="apply a",
        binding_hash="b" * 16,
        requested_at=T0,
    )


def _outcome(score: float) -> OutcomeRecord:
    return OutcomeRecord(
        outcome_key="approval:ap-1",
        session_id="s-1",
        tenant="acme",
        task_type="code",
        deployment="mid",
        signal=Signal.FEEDBACK,
        score=score,
        created_at=T0,
    )


@pytest.mark.parametrize("where", ["file", "memory"])
async def test_an_approval_and_its_outcome_are_written_here_on_a_file(
    tmp_path: Path, where: str
) -> None:
    url = sqlite_url(tmp_path, where)
    async with await Store.open(url) as store:
        with pool_statements(store) as pooled:
            assert await store.record_approval_request(_request()) is True
            assert await store.record_approval_request(_request()) is False
            assert await store.get_approval("nowhere") is None
            assert (await store.get_approval("ap-1")) == _request()
            decide = {"decided_by": "ana", "reason": "fine", "decided_at": T0}
            approved = ApprovalStatus.APPROVED
            assert await store.decide_approval("ap-1", status=approved, **decide) is True
            assert await store.decide_approval("ap-1", status=approved, **decide) is False
            with pytest.raises(StoreError, match="does not exist"):
                await store.decide_approval("nowhere", status=approved, **decide)
            stored = await store.get_approval("ap-1")
            assert stored is not None
            assert (stored.status, stored.decided_by, stored.decided_at) == (approved, "ana", T0)
            assert await store.outcomes.record(_outcome(1.0)) is True
            assert await store.outcomes.record(_outcome(1.0)) is False
            with pytest.raises(OutcomeKeyConflict, match="score"):
                await store.outcomes.record(_outcome(0.0))
        assert (len(pooled) == 0) == (where == "file")
        assert [o.score for o in await store.outcomes.list("s-1")] == [1.0]


async def test_a_write_here_is_not_waited_for_while_the_lock_is_held_elsewhere(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'orchestrator.db'}"
    async with await Store.open(url) as store:
        assert await store.record_approval_request(_request()) is True
        inline = InlineEvents(parse_url(url))
        blocker = sqlite3.connect(tmp_path / "orchestrator.db", isolation_level=None)
        decide = text("UPDATE approvals SET status = 'approved' WHERE approval_id = 'ap-1'")
        try:
            blocker.execute("BEGIN IMMEDIATE")
            # Locked: None at once, nothing written (the store's pooled path would wait).
            assert inline.write(lambda conn: conn.execute(decide).rowcount) is None
            blocker.execute("ROLLBACK")
            assert inline.write(lambda conn: conn.execute(decide).rowcount) == 1
        finally:
            blocker.close()
            inline.close()
        stored = await store.get_approval("ap-1")
        assert stored is not None and stored.status is ApprovalStatus.APPROVED
