"""The tables, as SQLAlchemy Core metadata. Migrations (``transcript_store/migrations``) create
them; this module is what the writer and the repository query against, and must match the
newest migration (tests/integration/store/test_migrations.py compares the two).

Times are epoch seconds (double precision): the same on SQLite and PostgreSQL, and what the
bus messages carry. ``start_seconds``/``end_seconds`` are seconds since the session began.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("session_id", sa.String(128), primary_key=True),
    # The token subject that owns the session; NULL with auth off (the anonymous owner).
    sa.Column("subject", sa.Text, nullable=True),
    sa.Column("source_language", sa.String(16), nullable=True),
    sa.Column("target_language", sa.String(16), nullable=True),
    sa.Column("gateway", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Index("ix_sessions_subject_created", "subject", "created_at"),
    sa.Index("ix_sessions_updated", "updated_at"),
)

segments = sa.Table(
    "segments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "session_id", sa.String(128), sa.ForeignKey("sessions.session_id", ondelete="CASCADE"), nullable=False
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
    # A redelivered final writes nothing: the insert does ON CONFLICT DO NOTHING on this key.
    sa.UniqueConstraint("session_id", "segment_id", name="uq_segments_session_segment"),
    sa.Index("ix_segments_session_order", "session_id", "utterance_index"),
)

translations = sa.Table(
    "translations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "session_id", sa.String(128), sa.ForeignKey("sessions.session_id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("segment_id", sa.String(160), nullable=False),
    sa.Column("utterance_index", sa.Integer, nullable=False),
    sa.Column("target_language", sa.String(16), nullable=False),
    sa.Column("source_language", sa.String(16), nullable=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("worker", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.UniqueConstraint("session_id", "segment_id", "target_language", name="uq_translations_segment_language"),
    sa.Index("ix_translations_session_order", "session_id", "target_language", "utterance_index"),
)

# A deleted session's id (revision 0002): entries still on their way for it are dropped
# instead of bringing the session back. Pruned with the retention policy.
deleted_sessions = sa.Table(
    "deleted_sessions",
    metadata,
    sa.Column("session_id", sa.String(128), primary_key=True),
    sa.Column("deleted_at", sa.Double, nullable=False),
    sa.Index("ix_deleted_sessions_deleted_at", "deleted_at"),
)
