"""Routing outcomes: signals the router learns deployment quality from.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 04:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create `routing_outcomes`."""
    op.create_table(
        "routing_outcomes",
        sa.Column("outcome_key", sa.String(), nullable=False),
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("tenant", sa.String(), nullable=False),
        sa.Column("task_type", sa.String(), nullable=False),
        sa.Column("deployment", sa.String(), nullable=False),
        sa.Column("signal", sa.String(32), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("step_id", sa.String(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("outcome_key", name="pk_routing_outcomes"),
    )
    op.create_index("ix_routing_outcomes_session_id", "routing_outcomes", ["session_id"])
    op.create_index("ix_routing_outcomes_tenant_task", "routing_outcomes", ["tenant", "task_type"])


def downgrade() -> None:
    """Drop `routing_outcomes`."""
    op.drop_index("ix_routing_outcomes_tenant_task", table_name="routing_outcomes")
    op.drop_index("ix_routing_outcomes_session_id", table_name="routing_outcomes")
    op.drop_table("routing_outcomes")
