"""Budget spend is recorded once per model call, keyed by the call's audit event key.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 00:00:02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create `budget_spend`."""
    op.create_table(
        "budget_spend",
        sa.Column("spend_key", sa.String(), nullable=False),
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("spend_key", name="pk_budget_spend"),
    )
    op.create_index("ix_budget_spend_session_id", "budget_spend", ["session_id"])


def downgrade() -> None:
    """Drop `budget_spend`."""
    op.drop_table("budget_spend")
