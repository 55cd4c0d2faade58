"""The risky skill of the refund demo: pay money back to a customer.

Its effect is a row in its own ledger (SQLite in the project's state folder), written
once per idempotency key: a retried or replayed call returns the refund already made
instead of paying twice. Contract: `payments.refund@1.0.0.contract.yaml` beside this file.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.skills import SkillContext


class RefundRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    order_id: str
    amount: float = Field(gt=0, le=10_000)
    currency: Literal["EUR", "USD", "GBP"]
    reason: str = Field(min_length=3)


class Refund(BaseModel):
    model_config = ConfigDict(extra="forbid")
    refund_id: str
    order_id: str
    amount: float
    currency: str
    status: Literal["issued"]
    created_at: str


def ledger_path(state_dir: Path) -> Path:
    return state_dir / "refunds.db"


def _ledger(state_dir: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(ledger_path(state_dir), timeout=30)
    conn.execute(
        "CREATE TABLE IF NOT EXISTS refunds (idempotency_key TEXT PRIMARY KEY, refund_id TEXT,"
        " order_id TEXT, amount REAL, currency TEXT, reason TEXT, created_at TEXT)"
    )
    return conn


async def refund(args: RefundRequest, ctx: SkillContext) -> Refund:
    """Refund money to the customer of an order. Irreversible: needs a person's approval."""
    conn = _ledger(ctx.state_dir)
    try:
        with conn:
            conn.execute(
                "INSERT OR IGNORE INTO refunds VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    ctx.idempotency_key,
                    f"R-{ctx.idempotency_key[:8].upper()}",
                    args.order_id,
                    args.amount,
                    args.currency,
                    args.reason,
                    datetime.now(UTC).isoformat(),
                ),
            )
        row = conn.execute(
            "SELECT refund_id, order_id, amount, currency, created_at FROM refunds"
            " WHERE idempotency_key = ?",
            (ctx.idempotency_key,),
        ).fetchone()
    finally:
        conn.close()
    return Refund(
        refund_id=row[0],
        order_id=row[1],
        amount=row[2],
        currency=row[3],
        status="issued",
        created_at=row[4],
    )
