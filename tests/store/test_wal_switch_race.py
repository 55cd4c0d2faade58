"""Two connections opening a new SQLite file at once both get it in WAL mode.

SQLite answers the switch to WAL with SQLITE_BUSY at once, without its busy handler, when
another connection switches the same new file meanwhile; the store tries it again
(`orchestrator.store._engine`). Without that, about one racing pair in twelve failed
(`test_concurrent_migrations_from_two_stores` failed in CI that way).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.store._engine import create_store_engine

PAIRS = 60


async def _journal_mode(engine: AsyncEngine) -> str:
    async with engine.connect() as connection:
        return str((await connection.execute(text("PRAGMA journal_mode"))).scalar_one())


async def test_two_engines_opening_a_new_file_together_both_connect_in_wal(
    tmp_path: Path,
) -> None:
    modes: list[str] = []
    for n in range(PAIRS):
        url = f"sqlite+aiosqlite:///{tmp_path / f'new-{n}.db'}"
        engines = [create_store_engine(url), create_store_engine(url)]
        try:
            modes += await asyncio.gather(*(_journal_mode(e) for e in engines))
        finally:
            for engine in engines:
                await engine.dispose()

    assert modes == ["wal"] * (2 * PAIRS)
