"""Test skills with their own ledger: effects are rows, so a test can count them."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.skills import SkillContext


class Charge(BaseModel):
    model_config = ConfigDict(extra="forbid")
    account: str
    amount: float = Field(gt=0)


class Receipt(BaseModel):
    model_config = ConfigDict(extra="forbid")
    receipt_id: str
    amount: float


def ledger(state_dir: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(state_dir / "ledger.db", timeout=30)
    conn.execute(
        "CREATE TABLE IF NOT EXISTS effects (key TEXT PRIMARY KEY, account TEXT, amount REAL)"
    )
    conn.execute("CREATE TABLE IF NOT EXISTS attempts (key TEXT, attempt INTEGER)")
    return conn


def _apply(args: Charge, ctx: SkillContext) -> Receipt:
    conn = ledger(ctx.state_dir)
    try:
        with conn:
            conn.execute("INSERT INTO attempts VALUES (?, ?)", (ctx.idempotency_key, ctx.attempt))
            conn.execute(
                "INSERT OR IGNORE INTO effects VALUES (?, ?, ?)",
                (ctx.idempotency_key, args.account, args.amount),
            )
    finally:
        conn.close()
    return Receipt(receipt_id=f"C-{ctx.idempotency_key[:8]}", amount=args.amount)


async def charge(args: Charge, ctx: SkillContext) -> Receipt:
    """Charge an account; the first attempt loses its connection after the charge is made."""
    receipt = _apply(args, ctx)
    if ctx.attempt == 1:
        raise ConnectionError("connection lost after the charge was written")
    return receipt


async def credit(args: Charge, ctx: SkillContext) -> Receipt:
    """Credit an account: large credits need a person's approval."""
    return _apply(args, ctx)


async def broken(args: Charge, ctx: SkillContext) -> Receipt:
    """Return a receipt that breaks the output contract."""
    return Receipt.model_construct(receipt_id=None, amount="lots")


async def slow(args: Charge, ctx: SkillContext) -> Receipt:
    """Take longer than the contract's timeout allows."""
    await asyncio.sleep(30)
    return _apply(args, ctx)
