"""Sessions, segments (finals) and translations.

Revision ID: 0001
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("session_id", sa.String(128), primary_key=True),
        sa.Column("subject", sa.Text, nullable=True),
        sa.Column("source_language", sa.String(16), nullable=True),
        sa.Column("target_language", sa.String(16), nullable=True),
        sa.Column("gateway", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
    )
    op.create_index("ix_sessions_subject_created", "sessions", ["subject", "created_at"])
    op.create_index("ix_sessions_updated", "sessions", ["updated_at"])
    op.create_table(
        "segments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "session_id", sa.String(128), sa.ForeignKey("sessions.session_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("segment_id", sa.String(160), nullable=False),
        sa.Column("utterance_index", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("language", sa.String(16), nullable=True),
        sa.Column("language_probability", sa.Double, nullable=True),
        sa.Column("start_seconds", sa.Double, nullable=False),
        sa.Column("end_seconds", sa.Double, nullable=False),
        sa.Column("words", sa.JSON, nullable=True),
        sa.Column("worker", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.UniqueConstraint("session_id", "segment_id", name="uq_segments_session_segment"),
    )
    op.create_index("ix_segments_session_order", "segments", ["session_id", "utterance_index"])
    op.create_table(
        "translations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "session_id", sa.String(128), sa.ForeignKey("sessions.session_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("segment_id", sa.String(160), nullable=False),
        sa.Column("utterance_index", sa.Integer, nullable=False),
        sa.Column("target_language", sa.String(16), nullable=False),
        sa.Column("source_language", sa.String(16), nullable=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("worker", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.UniqueConstraint(
            "session_id", "segment_id", "target_language", name="uq_translations_segment_language"
        ),
    )
    op.create_index(
        "ix_translations_session_order", "translations", ["session_id", "target_language", "utterance_index"]
    )


def downgrade() -> None:
    op.drop_index("ix_translations_session_order", table_name="translations")
    op.drop_table("translations")
    op.drop_index("ix_segments_session_order", table_name="segments")
    op.drop_table("segments")
    op.drop_index("ix_sessions_updated", table_name="sessions")
    op.drop_index("ix_sessions_subject_created", table_name="sessions")
    op.drop_table("sessions")
