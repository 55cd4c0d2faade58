"""Store fixtures: every store test runs on SQLite and on a scratch PostgreSQL database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from postgres import scratch_database

from orchestrator.store import Store


@pytest.fixture(params=["sqlite", "postgresql"])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """URL of an empty database: a SQLite file, or a PostgreSQL database made for the test."""
    if request.param == "sqlite":
        # The folder does not exist yet: the store must create it.
        yield f"sqlite+aiosqlite:///{tmp_path / 'state' / 'orchestrator.db'}"
    elif request.param == "postgresql":
        async with scratch_database() as url:
            yield url
    else:
        raise AssertionError(f"unknown backend {request.param}")


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    async with await Store.open(store_url) as opened:
        yield opened
