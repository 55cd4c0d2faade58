"""What the store's tests watch it do: the statements it runs through its pool."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import event

from orchestrator.store import Store

__all__ = ["pool_statements", "sqlite_url"]


@contextlib.contextmanager
def pool_statements(store: Store) -> Iterator[list[str]]:
    """The statements run through the store's pool while inside (none: run elsewhere)."""
    seen: list[str] = []

    def count(*args: object) -> None:
        seen.append(str(args[2]))

    event.listen(store.engine.sync_engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(store.engine.sync_engine, "before_cursor_execute", count)


def sqlite_url(folder: Path, where: str) -> str:
    """A store URL on a SQLite file in `folder` (`where="file"`), or in memory."""
    if where == "file":
        return f"sqlite+aiosqlite:///{folder / 'orchestrator.db'}"
    return "sqlite+aiosqlite://"
