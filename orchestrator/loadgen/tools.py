"""The load test's two tools, and the ledger that proves each effect ran once.

`lookup` is a slow read, so sessions wait on tool calls; `apply` is the effect the load
test counts. It writes one row per idempotency key into its own SQLite ledger in the skill
state folder (a retry finds the row and returns it), and it logs every invocation apart,
so a report can tell a retried call (several invocations, one effect) from an effect that
ran twice (two rows for one session). The LangGraph peer in `bench/` calls these same
functions. Contracts: `tests/reliability/load_project/skills/`.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.skills.models import SkillContext

__all__ = [
    "ApplyRequest",
    "Effect",
    "Item",
    "LedgerCounts",
    "LookupRequest",
    "apply",
    "ledger_path",
    "lookup",
    "read_ledger",
]


class LookupRequest(BaseModel):
    """What to look up, and how long the lookup takes."""

    model_config = ConfigDict(extra="forbid")
    item: str = Field(min_length=1)
    delay_ms: int = Field(ge=0, le=60_000)
    """The run's chosen tool latency, sent by the (scripted) model."""


class Item(BaseModel):
    """A looked-up item."""

    model_config = ConfigDict(extra="forbid")
    item: str
    price: float


class ApplyRequest(BaseModel):
    """The effect to apply: an amount for an item."""

    model_config = ConfigDict(extra="forbid")
    item: str = Field(min_length=1)
    amount: float = Field(gt=0, le=1_000_000)


class Effect(BaseModel):
    """An applied effect, as stored in the ledger."""

    model_config = ConfigDict(extra="forbid")
    effect_id: str
    item: str
    amount: float


def ledger_path(state_dir: Path) -> Path:
    """The ledger file inside a skill state folder."""
    return state_dir / "load_ledger.db"


def _connect(state_dir: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(ledger_path(state_dir), timeout=60)
    conn.execute(
        "CREATE TABLE IF NOT EXISTS effects (idempotency_key TEXT PRIMARY KEY,"
        " session_id TEXT, item TEXT, amount REAL, created_at REAL)"
    )
    conn.execute("CREATE TABLE IF NOT EXISTS invocations (session_id TEXT, idempotency_key TEXT)")
    return conn


async def lookup(args: LookupRequest, ctx: SkillContext) -> Item:
    """Look an item up. Slow on purpose: it takes `delay_ms` milliseconds."""
    await asyncio.sleep(args.delay_ms / 1000)
    return Item(item=args.item, price=float(len(args.item)))


async def apply(args: ApplyRequest, ctx: SkillContext) -> Effect:
    """Apply an item's effect, once per idempotency key."""
    conn = _connect(ctx.state_dir)
    try:
        with conn:
            conn.execute(
                "INSERT INTO invocations VALUES (?, ?)", (ctx.session_id, ctx.idempotency_key)
            )
            conn.execute(
                "INSERT OR IGNORE INTO effects VALUES (?, ?, ?, ?, ?)",
                (ctx.idempotency_key, ctx.session_id, args.item, args.amount, time.time()),
            )
    finally:
        conn.close()
    return Effect(effect_id=f"E-{ctx.idempotency_key[:10]}", item=args.item, amount=args.amount)


@dataclass(frozen=True)
class LedgerCounts:
    """How often each session's effect was applied, and how often `apply` was invoked."""

    effects: Counter[str]
    invocations: Counter[str]


def read_ledger(state_dir: Path) -> LedgerCounts:
    """Count effects and invocations per session; empty when nothing ran yet."""
    if not ledger_path(state_dir).exists():
        return LedgerCounts(Counter(), Counter())
    conn = _connect(state_dir)
    try:
        effects = Counter(row[0] for row in conn.execute("SELECT session_id FROM effects"))
        calls = Counter(row[0] for row in conn.execute("SELECT session_id FROM invocations"))
    finally:
        conn.close()
    return LedgerCounts(effects, calls)
