"""A store's connection pool takes the size it is given (the store's own by default).

`bench/store_pool.py` compares pool sizes under 50-200 concurrent sessions through this
parameter; the default stays SQLAlchemy's on that measurement (issue 16 item 7).
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.pool import QueuePool

from orchestrator.store import Store
from orchestrator.store._engine import STORE_POOL, PoolSize, create_store_engine


async def test_a_sqlite_store_holds_as_many_connections_as_its_pool_allows(
    tmp_path: Path,
) -> None:
    size = PoolSize(size=3, overflow=20)
    engine = create_store_engine(f"sqlite+aiosqlite:///{tmp_path / 'state' / 'o.db'}", pool=size)
    try:
        async with AsyncExitStack() as held:
            for _ in range(size.size + size.overflow):
                # Past the pool's room this would wait out the 30 s checkout timeout.
                conn = await asyncio.wait_for(held.enter_async_context(engine.connect()), 10)
                assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
    finally:
        await engine.dispose()


def test_a_postgresql_store_gets_the_store_pool_unless_told_otherwise() -> None:
    url = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    for size in (STORE_POOL, PoolSize(size=2, overflow=3)):
        store = Store(url, pool=size)
        pool = store._engine.sync_engine.pool
        assert isinstance(pool, QueuePool)
        assert (pool.size(), pool._max_overflow) == (size.size, size.overflow)
