"""Remembered model answers of the agent-safe response cache, with their expiry.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 03:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create `response_cache`."""
    op.create_table(
        "response_cache",
        sa.Column("entry", sa.String(64), nullable=False),
        sa.Column("tenant", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("frame", sa.String(64), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("embedding", sa.JSON(), nullable=True),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("deployment", sa.String(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("entry", name="pk_response_cache"),
    )
    op.create_index("ix_response_cache_scope", "response_cache", ["tenant", "name", "frame"])
    op.create_index("ix_response_cache_expires_at", "response_cache", ["expires_at"])


def downgrade() -> None:
    """Drop `response_cache`."""
    op.drop_index("ix_response_cache_expires_at", table_name="response_cache")
    op.drop_index("ix_response_cache_scope", table_name="response_cache")
    op.drop_table("response_cache")
