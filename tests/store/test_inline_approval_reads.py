"""An approval read back on the calling thread (`Store.get_approval` over `driver_sql`).

On a SQLite file the read is one primary-key lookup over the store's inline connection,
its SQL made once and each column read by its own result processor, so the record is
the one the pool reads; it never waits for a writer. The writes stay in the pool.
In-memory SQLite reads through the pool.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_inline_reads import _pool_statements

from orchestrator.store import Store
from orchestrator.store.records import ApprovalRecord, ApprovalStatus

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def _request(approval_id: str) -> ApprovalRecord:
    return ApprovalRecord(
        approval_id=approval_id,
        session_id="s-1",
        workflow_id="session-s-1",
        run_id="r-1",
        step_id="work",
        kind="tool_call",
        skill="load.apply",
        skill_version="1.0.0",
        arguments={"item": "a", "amount": 250, "tags": ["x", None], "nested": {"ok": True}},
        summary="apply a",
        binding_hash="b" * 16,
        requested_at=T0,
    )


async def _fill(store: Store) -> None:
    for approval_id in ("ap-1", "ap-2"):
        assert await store.record_approval_request(_request(approval_id))
    assert await store.decide_approval(
        "ap-2", status=ApprovalStatus.REJECTED, decided_by="ana", reason="no", decided_at=T0
    )


@pytest.mark.parametrize("where", ["file", "memory"])
async def test_an_approval_reads_back_the_same_here_and_through_the_pool(
    tmp_path: Path, where: str
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'o.db'}" if where == "file" else "sqlite+aiosqlite://"
    async with await Store.open(url) as store:
        await _fill(store)
        with _pool_statements(store) as pooled:
            pending = await store.get_approval("ap-1")
            decided = await store.get_approval("ap-2")
            unknown = await store.get_approval("nowhere")
        assert (pooled == []) == (where == "file")
    assert pending == _request("ap-1")
    assert unknown is None
    if where == "file":
        # The pool's answers: a store on the same file, its inline connection switched off.
        async with await Store.open(url) as pooled_only:
            pooled_only._inline_wanted = False
            with _pool_statements(pooled_only) as pooled:
                assert await pooled_only.get_approval("ap-1") == pending
                assert await pooled_only.get_approval("ap-2") == decided
            assert pooled != []
    assert decided is not None
    assert (decided.status, decided.decided_by, decided.reason) == (
        ApprovalStatus.REJECTED,
        "ana",
        "no",
    )
    assert decided.decided_at == T0 and decided.decided_at.tzinfo is not None


async def test_a_read_here_does_not_wait_for_a_writer_elsewhere(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    async with await Store.open(f"sqlite+aiosqlite:///{path}") as store:
        await _fill(store)
        blocker = sqlite3.connect(path, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            blocker.execute("UPDATE approvals SET status = 'approved' WHERE approval_id = 'ap-1'")
            # The write lock is held and the update not committed: the read sees the last
            # commit, at once, on this thread.
            with _pool_statements(store) as pooled:
                seen = await store.get_approval("ap-1")
            assert seen is not None and seen.status is ApprovalStatus.PENDING
            assert pooled == []
            blocker.execute("COMMIT")
        finally:
            blocker.close()
        seen = await store.get_approval("ap-1")
        assert seen is not None and seen.status is ApprovalStatus.APPROVED
