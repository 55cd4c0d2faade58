"""Sessions record whose they are (tenant, team), for cost reports and the audit trail.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 00:00:01

Existing sessions were all started before tenants existed: they belong to `default`,
the tenant a session gets when none is given.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add `sessions.tenant` and `sessions.team`; index what cost reports filter on."""
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("tenant", sa.String(), nullable=False, server_default="default"))
        batch.add_column(sa.Column("team", sa.String(), nullable=False, server_default="default"))
    op.create_index("ix_sessions_tenant", "sessions", ["tenant"])
    op.create_index("ix_audit_events_created_at", "audit_events", ["created_at"])


def downgrade() -> None:
    """Drop the columns and indexes again."""
    op.drop_index("ix_audit_events_created_at", table_name="audit_events")
    op.drop_index("ix_sessions_tenant", table_name="sessions")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("team")
        batch.drop_column("tenant")
