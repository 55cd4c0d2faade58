"""Watchers' reads on the event loop's thread (SQLite file): the same events as the store's
own read, each read seeing every commit made before it, and the store's read when the
blocking one fails."""

from __future__ import annotations

from pathlib import Path

from event_serving import append, new_session

from orchestrator.events.reads import BlockingSqliteReads, reads_for
from orchestrator.store import EventKind, Store


async def test_blocking_reads_equal_the_stores_and_see_each_new_commit(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'orchestrator.db'}"
    async with await Store.open(url) as store, await Store.open(url) as writer:
        reads = reads_for(store)
        assert isinstance(reads, BlockingSqliteReads)
        try:
            await new_session(writer, "s1")
            await new_session(writer, "s2")
            for n in range(5):
                await append(writer, "s1", f"e{n}", payload={"n": n, "text": "é ✓", "deep": [n]})
                await append(writer, "s2", f"e{n}", EventKind.MODEL_CALL)
            assert await reads.events_after("s1", 0, 200) == await store.stream.events_after(
                "s1", 0, 200
            )
            assert await reads.events_after("s2", 2, 2) == await store.stream.events_after(
                "s2", 2, 2
            )
            await append(writer, "s1", "late")  # committed after the first read
            got = await reads.events_after("s1", 5, 200)
            assert [(e.seq, e.event_key) for e in got] == [(6, "session-s1:late")]
            # A read that fails (here: its connection was closed under it) is the store's.
            assert reads._conn is not None
            reads._conn.close()
            assert await reads.events_after("s1", 0, 200) == await store.stream.events_after(
                "s1", 0, 200
            )
            assert len(await reads.events_after("s1", 0, 200)) == 6  # and it reconnects
        finally:
            reads.close()


async def test_other_stores_keep_their_own_reads(store: Store) -> None:
    """PostgreSQL (and an in-memory SQLite) read through the store as before."""
    if store.dialect == "sqlite":
        async with await Store.open("sqlite+aiosqlite:///:memory:") as memory:
            assert reads_for(memory) is memory.stream
    else:
        assert reads_for(store) is store.stream
