"""Routing: budget usage per scope and period, and per-session reservations.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the budget tables."""
    op.create_table(
        "budget_usage",
        sa.Column("scope", sa.String(), nullable=False),
        sa.Column("period", sa.String(), nullable=False),
        sa.Column("committed_usd", sa.Float(), nullable=False),
        sa.Column("committed_tokens", sa.BigInteger(), nullable=False),
        sa.Column("spent_usd", sa.Float(), nullable=False),
        sa.Column("spent_tokens", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "period", name="pk_budget_usage"),
    )
    op.create_table(
        "budget_reservations",
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("scope", sa.String(), nullable=False),
        sa.Column("period", sa.String(), nullable=False),
        sa.Column("reserved_usd", sa.Float(), nullable=False),
        sa.Column("reserved_tokens", sa.BigInteger(), nullable=False),
        sa.Column("spent_usd", sa.Float(), nullable=False),
        sa.Column("spent_tokens", sa.BigInteger(), nullable=False),
        sa.Column("settled", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", "scope", name="pk_budget_reservations"),
    )


def downgrade() -> None:
    """Drop the budget tables."""
    op.drop_table("budget_reservations")
    op.drop_table("budget_usage")
