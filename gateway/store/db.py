"""Engines and migrations.

- `make_engine(url)` gives the AsyncEngine everything else uses: SQLite through aiosqlite (the
  default), PostgreSQL through asyncpg. `make_sync_engine(url)` gives a plain SQLite engine for a
  writer thread (the group-commit writer, docs/architecture.md).
- `migrate(url)` / `await migrate_async(url_or_engine)` run `alembic upgrade head` with the
  migrations shipped in this package; no alembic.ini is needed. The app migrates itself at start-up.
  On PostgreSQL a migration holds an advisory lock, so processes starting at once never race.

SQLite settings, on every new connection: WAL journal, synchronous=NORMAL, foreign keys on, a busy
timeout. The pysqlite driver's own transaction handling is switched off and SQLAlchemy emits BEGIN
itself, so that a transaction covers its reads and SAVEPOINTs work (SQLAlchemy's documented
recipe). Transactions are `BEGIN DEFERRED`, right for readers. A transaction that reads and then
writes must take the write lock up front: `begin_write(engine)`, or an ORM session bound to
`write_engine(engine)` (`BEGIN IMMEDIATE`, which waits on `busy_timeout`). Otherwise, if another
writer commits between its first read and its first write, SQLite refuses the write at once with
"database is locked" (SQLITE_BUSY_SNAPSHOT) instead of waiting.

PostgreSQL: a `search_path` query parameter in the URL
(`postgresql+asyncpg://u@h/db?search_path=gw`) is passed to the server as a setting, as asyncpg's
own DSN parser does; tests use it to give each test its own schema.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from pathlib import Path
from typing import Any, overload

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

__all__ = [
    "DEFAULT_SQLITE_URL",
    "MIGRATIONS_DIR",
    "alembic_config",
    "begin_write",
    "current_revision",
    "default_sqlite_url",
    "is_sqlite",
    "make_engine",
    "make_sync_engine",
    "migrate",
    "migrate_async",
    "new_revision",
    "write_engine",
]

MIGRATIONS_DIR = Path(__file__).resolve().with_name("migrations")

DEFAULT_SQLITE_PATH = Path("var") / "gateway.sqlite3"
# Relative to the working directory: `gateway serve` with no config keeps its data in ./var/.
DEFAULT_SQLITE_URL = f"sqlite+aiosqlite:///{DEFAULT_SQLITE_PATH.as_posix()}"

_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}


def default_sqlite_url(root: str | Path = ".") -> str:
    """The default SQLite database, `<root>/var/gateway.sqlite3`, as an absolute async URL."""
    path = (Path(root) / DEFAULT_SQLITE_PATH).resolve()
    return f"sqlite+aiosqlite:///{path.as_posix()}"


def is_sqlite(engine_or_url: AsyncEngine | Engine | str | URL) -> bool:
    if isinstance(engine_or_url, (AsyncEngine, Engine)):
        return engine_or_url.dialect.name == "sqlite"
    return make_url(engine_or_url).get_backend_name() == "sqlite"


def _async_url(url: str | URL) -> URL:
    u = make_url(url)
    backend = u.get_backend_name()
    if backend not in _ASYNC_DRIVERS:
        raise ValueError(f"unsupported database {u.render_as_string(hide_password=True)!r}: "
                         "use sqlite+aiosqlite:///... or postgresql+asyncpg://...")
    if u.drivername != _ASYNC_DRIVERS[backend]:
        u = u.set(drivername=_ASYNC_DRIVERS[backend])
    return u


def _ensure_sqlite_dir(u: URL) -> None:
    db = u.database
    if db and db != ":memory:" and not db.startswith("file:"):
        Path(db).parent.mkdir(parents=True, exist_ok=True)


def _install_sqlite_events(sync_engine: Engine, *, busy_timeout_ms: int) -> None:
    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when a transaction begins (see `_on_begin`).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        finally:
            cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        if mode not in ("DEFERRED", "IMMEDIATE", "EXCLUSIVE"):
            raise ValueError(f"sqlite_begin must be DEFERRED, IMMEDIATE or EXCLUSIVE, not {mode!r}")
        conn.exec_driver_sql(f"BEGIN {mode}")


def make_engine(url: str | URL | None = None, *, busy_timeout_ms: int = 5000,
                **engine_kwargs: Any) -> AsyncEngine:
    """An AsyncEngine for `url` (default: `DEFAULT_SQLITE_URL`).

    `sqlite://` and `postgresql://` URLs get the async driver. Extra keyword arguments go to
    `create_async_engine` (pool size, echo, ...).
    """
    u = _async_url(url if url is not None else DEFAULT_SQLITE_URL)
    if u.get_backend_name() == "sqlite":
        _ensure_sqlite_dir(u)
        engine = create_async_engine(u, **engine_kwargs)
        _install_sqlite_events(engine.sync_engine, busy_timeout_ms=busy_timeout_ms)
        return engine
    search_path = u.query.get("search_path")
    if search_path is not None:
        if not isinstance(search_path, str):
            raise ValueError("search_path may be given once in the database URL")
        u = u.difference_update_query(["search_path"])
        connect_args = dict(engine_kwargs.pop("connect_args", {}))
        server_settings = dict(connect_args.get("server_settings", {}))
        server_settings["search_path"] = search_path
        connect_args["server_settings"] = server_settings
        engine_kwargs["connect_args"] = connect_args
    return create_async_engine(u, **engine_kwargs)


def make_sync_engine(url: str | URL | None = None, *, busy_timeout_ms: int = 5000,
                     **engine_kwargs: Any) -> Engine:
    """A synchronous SQLite engine (stdlib sqlite3) with the same settings as `make_engine`, for a
    single writer thread. SQLite only: on PostgreSQL, use the async engine with several writers."""
    u = make_url(url if url is not None else DEFAULT_SQLITE_URL)
    if u.get_backend_name() != "sqlite":
        raise ValueError("make_sync_engine is for SQLite; use make_engine for PostgreSQL")
    u = u.set(drivername="sqlite+pysqlite")
    _ensure_sqlite_dir(u)
    engine = create_engine(u, **engine_kwargs)
    _install_sqlite_events(engine, busy_timeout_ms=busy_timeout_ms)
    return engine


@overload
def write_engine(engine: AsyncEngine) -> AsyncEngine: ...
@overload
def write_engine(engine: Engine) -> Engine: ...
def write_engine(engine: AsyncEngine | Engine) -> AsyncEngine | Engine:
    """The same engine (same pool) whose transactions take SQLite's write lock at BEGIN
    (`BEGIN IMMEDIATE`). On PostgreSQL, `engine` itself. Bind writing ORM sessions to it."""
    if engine.dialect.name == "sqlite":
        return engine.execution_options(sqlite_begin="IMMEDIATE")
    return engine


@overload
def begin_write(engine: AsyncEngine) -> AbstractAsyncContextManager[AsyncConnection]: ...
@overload
def begin_write(engine: Engine) -> AbstractContextManager[Connection]: ...
def begin_write(engine: AsyncEngine | Engine) -> Any:
    """`engine.begin()` for a transaction that will write (see `write_engine`).

        async with begin_write(engine) as conn: ...
    """
    return write_engine(engine).begin()


# --- migrations --------------------------------------------------------------------------------


def alembic_config(url: str | URL | None = None) -> Any:
    """An alembic `Config` for this package's migrations, without an ini file."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        rendered = make_url(url).render_as_string(hide_password=False)
        cfg.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return cfg


def _run_alembic(sync_conn: Connection, fn: Callable[[Any], None]) -> None:
    """Run an alembic command on `sync_conn` (passed to env.py through `config.attributes`).

    On SQLite, foreign keys are off while migrating (a batch migration copies and drops tables,
    and a DROP with ON DELETE CASCADE would empty the children), and checked afterwards.
    PRAGMA foreign_keys only works outside a transaction, hence the raw driver cursor.
    """
    sqlite = sync_conn.dialect.name == "sqlite"
    if sqlite:
        _raw_pragma(sync_conn, "PRAGMA foreign_keys=OFF")
    try:
        with sync_conn.begin():
            if sync_conn.dialect.name == "postgresql":
                # Several processes (or hosts) starting at once migrate one after another: the
                # first upgrades, the others then find the database at head and do nothing.
                sync_conn.execute(_MIGRATION_LOCK, {"cls": MIGRATION_LOCK_CLASS})
            cfg = alembic_config()
            cfg.attributes["connection"] = sync_conn
            fn(cfg)
            if sqlite:
                bad = sync_conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if bad:
                    raise RuntimeError(f"migration left foreign key violations: {bad[:10]}")
    finally:
        if sqlite:
            _raw_pragma(sync_conn, "PRAGMA foreign_keys=ON")


# A transaction advisory lock (freed at commit or rollback, also when the process dies), one per
# database: CREATE EXTENSION in a migration is database-wide, so schemas of one database queue too.
MIGRATION_LOCK_CLASS = 18627
_MIGRATION_LOCK = text("SELECT pg_advisory_xact_lock(:cls, 0)")


def _raw_pragma(sync_conn: Connection, sql: str) -> None:
    cursor = sync_conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql)
    finally:
        cursor.close()


async def _run_alembic_async(target: str | URL | AsyncEngine, fn: Callable[[Any], None]) -> None:
    engine = target if isinstance(target, AsyncEngine) else make_engine(target)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(_run_alembic, fn)
    finally:
        if engine is not target:
            await engine.dispose()


async def migrate_async(target: str | URL | AsyncEngine | None = None, revision: str = "head") -> None:
    """`alembic upgrade <revision>` on a URL (default `DEFAULT_SQLITE_URL`) or an AsyncEngine."""
    from alembic import command

    await _run_alembic_async(target if target is not None else DEFAULT_SQLITE_URL,
                             lambda cfg: command.upgrade(cfg, revision))


def migrate(target: str | URL | AsyncEngine | None = None, revision: str = "head") -> None:
    """Synchronous `migrate_async`, for start-up code and the CLI (outside an event loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(migrate_async(target, revision))
        return
    raise RuntimeError("migrate() called inside a running event loop: use `await migrate_async(...)`")


@functools.cache
def head_revision() -> str:
    """The newest revision of the migrations shipped with this code (read once per process)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def current_revision(target: str | URL | AsyncEngine) -> str | None:
    """The revision the database is at (None: not migrated)."""
    from alembic.runtime.migration import MigrationContext

    engine = target if isinstance(target, AsyncEngine) else make_engine(target)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda c: MigrationContext.configure(c).get_current_revision()
            )
    finally:
        if engine is not target:
            await engine.dispose()


def new_revision(message: str, *, rev_id: str | None = None, autogenerate: bool = True,
                 url: str | URL | None = None) -> None:
    """For developers: write a new revision into `migrations/versions/`, autogenerated against a
    database at head (default: a scratch SQLite file). Read and tidy what it writes."""
    import tempfile

    from alembic import command

    with tempfile.TemporaryDirectory() as tmp:
        target = url if url is not None else f"sqlite+aiosqlite:///{Path(tmp) / 'scratch.sqlite3'}"

        async def run() -> None:
            await migrate_async(target)
            await _run_alembic_async(
                target,
                lambda cfg: command.revision(cfg, message=message, autogenerate=autogenerate,
                                             rev_id=rev_id),
            )

        asyncio.run(run())
