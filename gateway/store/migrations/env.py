"""Alembic environment for the gateway's store.

Run programmatically through `gateway.store.db` (`migrate`, `migrate_async`, `new_revision`),
which hands a connection in `config.attributes["connection"]`; there is no alembic.ini. Given only
a URL (`sqlalchemy.url`), this builds an engine with `gateway.store.db.make_engine`.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection

from gateway.store.db import make_engine
from gateway.store.models import Base, compared

config = context.config
target_metadata = Base.metadata


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite can't ALTER most things; batch mode copies the table
        compare_type=True,
        include_object=compared,
        **kwargs,
    )


def _run(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_url(url: str) -> None:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(_run)
            await conn.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    _configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True,
               dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()
elif (connection := config.attributes.get("connection")) is not None:
    _run(connection)
else:
    asyncio.run(_run_with_url(config.get_main_option("sqlalchemy.url")))
