"""Persistence: SQLAlchemy 2.0 models (`models`), Core helpers for the hot path (`queries`),
engines and self-migration (`db`), Alembic revisions (`migrations/`).

SQLite (aiosqlite, WAL) by default; PostgreSQL (asyncpg) for scale.
"""
