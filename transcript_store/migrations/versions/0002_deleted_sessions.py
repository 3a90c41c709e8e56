"""Tombstones of deleted sessions, so results still on their way do not bring one back.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deleted_sessions",
        sa.Column("session_id", sa.String(128), primary_key=True),
        sa.Column("deleted_at", sa.Double, nullable=False),
    )
    op.create_index("ix_deleted_sessions_deleted_at", "deleted_sessions", ["deleted_at"])


def downgrade() -> None:
    op.drop_index("ix_deleted_sessions_deleted_at", table_name="deleted_sessions")
    op.drop_table("deleted_sessions")
