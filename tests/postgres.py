"""Scratch PostgreSQL databases for tests.

The server is the one on 127.0.0.1:5432 (trust auth, as user `postgres` or `root`) that
CI and this machine run, or whatever `ORCHESTRATOR_TEST_POSTGRES_URL` names (an asyncpg URL
to a database the user may `CREATE DATABASE` from). Each user of `scratch_database` gets a
database with a unique name, dropped afterwards. When the server cannot be reached the
caller is skipped with the reason, except in CI (`CI=true`), where that is a failure: CI
must prove the store on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from typing import Final

import asyncpg
import pytest
from sqlalchemy.engine import make_url

__all__ = ["ADMIN_URL", "require_postgres", "scratch_database"]

_CANDIDATES: Final = (
    [os.environ["ORCHESTRATOR_TEST_POSTGRES_URL"]]
    if os.environ.get("ORCHESTRATOR_TEST_POSTGRES_URL")
    else [
        # Trust auth for the superuser, or for the login user as on some CI images.
        "postgresql+asyncpg://postgres@127.0.0.1:5432/test",
        "postgresql+asyncpg://root@127.0.0.1:5432/test",
    ]
)

ADMIN_URL: str = _CANDIDATES[0]
"""The admin URL in use: the first candidate that connects (set by `require_postgres`)."""

_unreachable: list[str] = []


def _dsn(url: str) -> str:
    """The asyncpg DSN of a SQLAlchemy URL (asyncpg does not know `+asyncpg`)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def require_postgres() -> None:
    """Skip (or, with `CI=true`, fail) the calling test if PostgreSQL is not reachable."""
    global ADMIN_URL
    if not _unreachable:
        errors = []
        for url in _CANDIDATES:
            try:
                conn = await asyncpg.connect(_dsn(url), timeout=5)
            except (OSError, asyncpg.PostgresError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            await conn.close()
            ADMIN_URL = url
            errors = []
            break
        _unreachable.append("; ".join(errors))
    reason = _unreachable[0]
    if not reason:
        return
    where = " or ".join(make_url(url).render_as_string(hide_password=True) for url in _CANDIDATES)
    message = f"PostgreSQL not reachable at {where} ({reason})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; CI=true requires the PostgreSQL tests to run")
    pytest.skip(message)


@contextlib.asynccontextmanager
async def scratch_database() -> AsyncIterator[str]:
    """A fresh, empty database; yields its SQLAlchemy async URL and drops it on exit."""
    await require_postgres()
    name = f"orch_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(_dsn(ADMIN_URL), timeout=5)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
        finally:
            # FORCE ends connections a failed test may have left open.
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
