"""Audit events carry a per-session sequence number, the id a watcher resumes from.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 00:00:00

Existing events are numbered 1, 2, ... per session in the order they were written (`id`),
the order every reader has shown them in so far.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add `audit_events.seq`, number the rows there are, make (session, seq) unique."""
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
    op.execute(
        "UPDATE audit_events SET seq = (SELECT count(*) FROM audit_events AS earlier"
        " WHERE earlier.session_id = audit_events.session_id AND earlier.id <= audit_events.id)"
    )
    with op.batch_alter_table("audit_events") as batch:
        batch.alter_column("seq", existing_type=sa.BigInteger(), nullable=False)
        batch.create_unique_constraint("uq_audit_events_session_id_seq", ["session_id", "seq"])


def downgrade() -> None:
    """Drop the sequence numbers again."""
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_constraint("uq_audit_events_session_id_seq", type_="unique")
        batch.drop_column("seq")
