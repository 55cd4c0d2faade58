"""Notices to approvers (e-mail, chat), one row per request × stage × channel × recipient.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create `notices`."""
    op.create_table(
        "notices",
        sa.Column("notice_key", sa.String(), nullable=False),
        sa.Column("approval_id", sa.String(), nullable=False),
        sa.Column("stage", sa.String(), nullable=False),
        sa.Column("group", sa.String(), nullable=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("recipient", sa.String(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("notice_key", name="pk_notices"),
    )
    op.create_index("ix_notices_approval_id", "notices", ["approval_id"])
    op.create_index("ix_notices_status", "notices", ["status"])
    op.create_index("ix_notices_due_at", "notices", ["due_at"])


def downgrade() -> None:
    """Drop `notices`."""
    op.drop_index("ix_notices_due_at", table_name="notices")
    op.drop_index("ix_notices_status", table_name="notices")
    op.drop_index("ix_notices_approval_id", table_name="notices")
    op.drop_table("notices")
