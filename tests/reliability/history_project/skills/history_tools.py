"""Tools of the history-limit tests: an effect counted in its own ledger, and a large output.

`tally` writes one ledger row per idempotency key and logs every invocation apart, so a
test can tell an effect that ran twice from one that ran once. `blob` returns as many
kilobytes as asked, to push a payload past Temporal's limits. Contracts beside this file.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.skills import SkillContext


class TallyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item: str = Field(min_length=1)


class Tallied(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item: str
    key: str


class BlobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kilobytes: int = Field(ge=1, le=4096)


class Blob(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str


def _connect(state_dir: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(state_dir / "tally.db", timeout=30)
    conn.execute("CREATE TABLE IF NOT EXISTS effects (idempotency_key TEXT PRIMARY KEY, item TEXT)")
    conn.execute("CREATE TABLE IF NOT EXISTS invocations (idempotency_key TEXT, item TEXT)")
    return conn


async def tally(args: TallyRequest, ctx: SkillContext) -> Tallied:
    """Tally an item, once per idempotency key."""
    conn = _connect(ctx.state_dir)
    try:
        with conn:
            row = (ctx.idempotency_key, args.item)
            conn.execute("INSERT INTO invocations VALUES (?, ?)", row)
            conn.execute("INSERT OR IGNORE INTO effects VALUES (?, ?)", row)
    finally:
        conn.close()
    return Tallied(item=args.item, key=ctx.idempotency_key)


async def blob(args: BlobRequest, ctx: SkillContext) -> Blob:
    """A text of `kilobytes` KiB."""
    return Blob(text="x" * (args.kilobytes * 1024))
