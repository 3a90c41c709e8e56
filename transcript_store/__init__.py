"""The transcript store: sessions, finals and translations from the ``transcripts`` stream into
a database (SQLite by default, PostgreSQL with ``DATABASE_URL``), with migrations, retention
and backup. The gateway reads it through :mod:`transcript_store.repository`. Audio is never
stored: no ``transcripts`` entry carries any.
"""
