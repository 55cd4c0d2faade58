"""An answer that moves no pin goes out before its audit row commits; the row follows.

The commit is a fifth of a sequential request's time in the gateway (bench/README.md), and
only the pin must be in the store before the loop's next call. The store's write lock is
held by another connection while the gateway answers: the answer comes anyway, its row is
committed once the lock is free, and no row is lost.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest
from gw_harness import TOKEN, serve_gateway

from orchestrator.store import Store
from orchestrator.store.records import EventKind

HERE = Path(__file__).parent
SESSION = "gw:acme:later"


def _calls(db: sqlite3.Connection) -> int:
    """The session's model-call rows that this connection sees."""
    row = db.execute(
        "SELECT count(*) FROM audit_events WHERE session_id = ? AND kind = ?",
        (SESSION, EventKind.MODEL_CALL.value),
    ).fetchone()
    return int(row[0])


@pytest.mark.parametrize("asgi", [False, True], ids=["own server", "mounted in Starlette"])
async def test_an_answer_that_moves_no_pin_does_not_wait_for_its_audit_row(
    tmp_path: Path, asgi: bool
) -> None:
    path = tmp_path / "gw.db"
    store_url = f"sqlite+aiosqlite:///{path}"
    headers = {"authorization": f"Bearer {TOKEN}", "x-session-id": "later"}

    def body(text: str) -> dict[str, object]:
        return {"model": "cheap", "messages": [{"role": "user", "content": text}]}

    async with (
        serve_gateway(HERE / "plain.yaml", store_url, asgi=asgi) as served,
        httpx.AsyncClient(base_url=served.base_url, headers=headers) as http,
    ):
        # The session's first answer writes its pin, committed before the answer.
        first = await http.post("chat/completions", json=body("one"))
        assert first.status_code == 200
        holder = sqlite3.connect(path, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")  # the store's write lock, held
            second = await http.post("chat/completions", json=body("two"))
            assert second.status_code == 200
            assert second.headers["x-orchestrator-deployment"] == "fast"
            # The same deployment and phase: no pin write, so the answer did not wait.
            assert _calls(holder) == 1
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        third = await http.post("chat/completions", json=body("three"))
        assert third.status_code == 200
    async with await Store.open(store_url) as store:
        events = await store.list_events(SESSION, kind=EventKind.MODEL_CALL)
    assert [e.payload["outcome"] for e in events] == ["ok"] * 3
    assert [e.payload["boundary"] for e in events] == ["session_start", "user_turn", "user_turn"]
    assert all(e.duration_ms is not None and e.duration_ms > 0 for e in events)
