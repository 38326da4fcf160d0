"""Shared fixtures. Database fixtures: `db_url` and `engine`, each test run on SQLite and PostgreSQL.

- SQLite: a fresh file in the test's tmp_path.
- PostgreSQL: the server at `postgresql+asyncpg://postgres@127.0.0.1:5432/postgres` (override with
  GATEWAY_TEST_POSTGRES_SERVER). Each test run creates its own database there
  (`gwtest_run_<pid>_<random>`) and drops it at the end, so two runs on one machine never meet;
  `POSTGRES_URL` names that database once `pytest_configure` has run. Each test gets its own
  schema in it (`?search_path=gwtest_...` in the URL, which `gateway.store.db.make_engine`
  understands), dropped afterwards. Skipped when the server is not reachable.

`engine` is an AsyncEngine on a database migrated to head; `db_url` is the URL alone (not migrated),
for code that opens its own engine (`make_engine(db_url)`).

Leaks: a test fails if, after its own teardown, asyncio tasks of its event loop are still running
or threads it started are still alive (`_no_leaked_tasks`, `_no_leaked_threads`): such leftovers
run on into the next test (one deadlocked a run on PostgreSQL). The error names each of them.

Hangs: shortly before pytest-timeout would stop a test, the stacks of every unfinished asyncio
task are written to the test's captured stderr (`pytest_runtest_call`, `_dump_tasks`), since the
timeout's own report shows only threads, and an async test waits in the event loop's select.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import os
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store.db import make_engine, migrate_async

POSTGRES_SERVER = os.environ.get(
    "GATEWAY_TEST_POSTGRES_SERVER", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
# The run's own database; set by pytest_configure (test modules import it after that).
POSTGRES_URL = POSTGRES_SERVER
_RUN_DATABASE: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    global POSTGRES_URL, _RUN_DATABASE
    name = f"gwtest_run_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        asyncio.run(_server_statements(_drop_abandoned_runs, f'CREATE DATABASE "{name}"'))
    except Exception:  # noqa: BLE001 - not reachable: the PostgreSQL cases skip with the reason
        return
    _RUN_DATABASE = name
    POSTGRES_URL = make_url(POSTGRES_SERVER).set(database=name).render_as_string(hide_password=False)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _RUN_DATABASE is not None:
        # FORCE ends connections a crashed test may have left open.
        asyncio.run(_server_statements(f'DROP DATABASE IF EXISTS "{_RUN_DATABASE}" WITH (FORCE)'))


async def _server_statements(*steps) -> None:
    """Run statements (or async callables taking a connection) on the server's maintenance database,
    outside a transaction as CREATE/DROP DATABASE require."""
    admin = make_engine(POSTGRES_SERVER, connect_args={"timeout": 5}, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            for step in steps:
                if isinstance(step, str):
                    await conn.exec_driver_sql(step)
                else:
                    await step(conn)
    finally:
        await admin.dispose()


async def _drop_abandoned_runs(conn) -> None:
    """Drop databases of earlier runs whose process is gone from this machine (a run killed before
    its unconfigure could drop its own). A live run's database is never touched."""
    rows = await conn.exec_driver_sql("SELECT datname FROM pg_database WHERE datname LIKE 'gwtest_run_%'")
    for (name,) in rows.fetchall():
        parts = name.split("_")
        if len(parts) != 4 or not parts[2].isascii() or not parts[2].isdigit():
            continue
        if not _process_alive(int(parts[2])):
            await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'gateway.sqlite3'}"
        return
    schema = f"gwtest_{uuid.uuid4().hex[:16]}"
    admin = make_engine(POSTGRES_URL, connect_args={"timeout": 5})
    try:
        async with admin.begin() as conn:
            await conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    except Exception as exc:  # noqa: BLE001 - any failure to connect means "not reachable"
        await admin.dispose()
        u = make_url(POSTGRES_URL)
        pytest.skip(f"PostgreSQL not reachable at {u.host}:{u.port or 5432}: {exc}")
    try:
        url = make_url(POSTGRES_URL).update_query_dict({"search_path": schema})
        yield url.render_as_string(hide_password=False)
    finally:
        async with admin.begin() as conn:
            await conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.dispose()


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(db_url)
    await migrate_async(eng)
    try:
        yield eng
    finally:
        await eng.dispose()


# --- leaks: no task or thread of a test outlives it ---------------------------------------------

LEAK_GRACE = 0.5  # seconds a task or thread cancelled by a teardown gets to finish
# Threads the event loop owns (its default executor), shut down when the loop closes after us.
_LOOP_OWNED_THREADS = ("asyncio_",)


@pytest.fixture
async def _no_leaked_tasks() -> AsyncIterator[None]:
    yield
    loop = asyncio.get_running_loop()
    me = asyncio.current_task()
    deadline = loop.time() + LEAK_GRACE
    while leaked := [t for t in asyncio.all_tasks() if t is not me and not t.done()]:
        if loop.time() >= deadline:
            for task in leaked:
                task.cancel()
            await asyncio.gather(*leaked, return_exceptions=True)
            pytest.fail("asyncio tasks still running after the test's teardown: "
                        + "; ".join(f"{t.get_name()} ({t.get_coro()!r})" for t in leaked), pytrace=False)
        await asyncio.sleep(0.01)


@pytest.fixture(autouse=True)
def _no_leaked_threads(request: pytest.FixtureRequest) -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    if _uses_a_shared_fixture_of_ours(request):
        return  # a module-scoped server may open pool threads during the test; they end with it
    started = [t for t in threading.enumerate()
               if t not in before and t.is_alive() and not t.name.startswith(_LOOP_OWNED_THREADS)]
    for thread in started:
        thread.join(LEAK_GRACE / max(1, len(started)))
    alive = [t.name for t in started if t.is_alive()]
    if alive:
        pytest.fail(f"threads started by the test still alive after its teardown: {', '.join(alive)}",
                    pytrace=False)


def _uses_a_shared_fixture_of_ours(request: pytest.FixtureRequest) -> bool:
    """Whether the test uses a module- or session-scoped fixture defined in tests/ (such as a live
    gateway shared by a module's tests), whose threads legitimately outlive one test."""
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    for defs in request.node._fixtureinfo.name2fixturedefs.values():
        for fixturedef in defs:
            if fixturedef.scope != "function" and os.path.abspath(
                    inspect.getfile(fixturedef.func)).startswith(tests_dir):
                return True
    return False


# Fixtures that start servers whose background tasks (timer, outbox, writer) use the database.
_SERVER_FIXTURES = ("aiohttp_client", "aiohttp_server", "aiohttp_raw_server")
_DATABASE_FIXTURES = ("db_url", "engine")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Order of fixture set-up, whose reverse is the order of teardown:
    - coroutine tests get the task check first among their fixtures, so that it is torn down last
      (after the fixtures that stop servers, writers and workers);
    - the database is set up before any server, so that it is torn down after them: a test written
      `(aiohttp_client, db_url)` would otherwise drop its PostgreSQL schema while the gateway's
      timer and outbox still query it, which PostgreSQL can end with 'deadlock detected' in the DROP."""
    for item in items:
        if inspect.iscoroutinefunction(getattr(item, "function", None)):
            item.fixturenames.insert(0, "_no_leaked_tasks")
        names = getattr(item, "fixturenames", None)
        if not names or "db_url" not in names:
            continue
        servers = [names.index(n) for n in _SERVER_FIXTURES if n in names]
        if not servers:
            continue
        first_server = min(servers)
        late = [n for n in _DATABASE_FIXTURES if n in names and names.index(n) > first_server]
        for name in late:
            names.remove(name)
        names[first_server:first_server] = late


# --- what an async test was waiting for when it ran out of time -----------------------------------


def _timeout_of(item: pytest.Item) -> float:
    marker = item.get_closest_marker("timeout")
    if marker is not None and marker.args:
        return float(marker.args[0])
    return float(item.config.getini("timeout") or 0)


def _dump_tasks(nodeid: str) -> None:
    tasks = [o for o in gc.get_objects() if isinstance(o, asyncio.Task) and not o.done()]
    lines = [f"--- {nodeid}: about to time out; {len(tasks)} unfinished asyncio task(s) ---"]
    for task in tasks:
        lines.append(f"* {task.get_name()}:")
        lines.extend(f"    {where}" for where in _await_chain(task.get_coro()))
    print("\n".join(lines), file=sys.stderr, flush=True)


def _await_chain(awaitable: object) -> list[str]:
    """Where a suspended coroutine waits, outermost first, following what each frame awaits."""
    chain: list[str] = []
    while awaitable is not None and len(chain) < 40:
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "gi_frame", None) \
            or getattr(awaitable, "ag_frame", None)
        if frame is None:
            chain.append(f"awaits {awaitable!r}"[:300])
            break
        chain.append(f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}")
        awaitable = getattr(awaitable, "cr_await", None) or getattr(awaitable, "gi_yieldfrom", None) \
            or getattr(awaitable, "ag_await", None)
    return chain


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item):
    limit = _timeout_of(item)
    if limit <= 0 or not inspect.iscoroutinefunction(getattr(item, "obj", None)):
        yield
        return
    watchdog = threading.Timer(max(limit - 10, limit * 0.9), _dump_tasks, args=(item.nodeid,))
    watchdog.name = "gwtest-watchdog"
    watchdog.daemon = True
    watchdog.start()
    try:
        yield
    finally:
        watchdog.cancel()
        watchdog.join()
