"""Gateway rate-limit counters shared by every gateway process.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 06:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create `gateway_rate_windows`."""
    op.create_table(
        "gateway_rate_windows",
        sa.Column("key_id", sa.String(), nullable=False),
        sa.Column("window", sa.BigInteger(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key_id", "window", name="pk_gateway_rate_windows"),
    )


def downgrade() -> None:
    """Drop `gateway_rate_windows`."""
    op.drop_table("gateway_rate_windows")
