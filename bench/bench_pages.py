#!/usr/bin/env python3
"""Benchmark of the staff pages with 100,000 borrowing requests in the database: server time of
the borrowing list (with its facets) and of a request page, on SQLite (default) or PostgreSQL.

    .venv/bin/python bench/bench_pages.py [--rows 100000] [--runs 40] [--postgresql] [--strict]

The database is populated as bench_api_listing.py does (the same realistic spread of statuses,
partners, requesters and dates, through Core bulk inserts), then the real gateway app (the same
handlers, templates, session cookie and CSRF) is started on loopback, a staff member signs in
through /login, and each page is fetched `--runs` times after 3 warm-ups. Reported: p50 / p95 /
max in milliseconds, and the floor measured in the same run: for a list, count(*) of the same
filters on the database; for a request page, reading its row by id. Targets: p95 under 100 ms
for a list, under 50 ms for a request page.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from aiohttp import ClientSession, CookieJar, web  # noqa: E402
from sqlalchemy import select  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

import bench_api_listing as listing  # noqa: E402
from gateway.app import build_app  # noqa: E402
from gateway.runtime import Gateway  # noqa: E402
from gateway.store.db import make_engine  # noqa: E402
from gateway.store.models import borrowing_requests_t  # noqa: E402

PASSWORD = "bench-password-0123"
LISTS = [
    ("list: first page, no filter", "/borrowing", "", 100.0),
    ("list: needs attention", "/borrowing?needs_attention=true", "needs_attention=true", 100.0),
    ("list: status REQUEST_SENT", "/borrowing?status=REQUEST_SENT", "status=REQUEST_SENT", 100.0),
    ("list: free text q=river", "/borrowing?q=river", "q=river", 100.0),
    ("list: one active partner, by title", f"/borrowing?active_partner={listing.PARTNERS[3]}&sort=title&order=asc",
     f"active_partner={listing.PARTNERS[3]}", 100.0),
    ("list: all, by title", "/borrowing?sort=title&order=asc", "", 100.0),
]
TABS = ["", "/history", "/rota", "/messages"]


def config(db_url: str, secret_dir: str):
    cfg = listing.config(db_url)
    from dataclasses import replace
    return replace(cfg, web=replace(cfg.web, session_secret_file=str(Path(secret_dir) / "session-secret")))


async def sign_in(session: ClientSession, base: str) -> None:
    async with session.get(f"{base}/login") as r:
        token = re.search(r'name="csrf_token" value="([^"]+)"', await r.text()).group(1)  # type: ignore[union-attr]
    async with session.post(f"{base}/login", data={"csrf_token": token, "username": "bench",
                                                   "password": PASSWORD, "next": "/borrowing"},
                            allow_redirects=False) as r:
        assert r.status == 303, await r.text()


async def timed(session: ClientSession, url: str, runs: int) -> list[float]:
    times = []
    for i in range(runs + 3):
        t = time.perf_counter()
        async with session.get(url, allow_redirects=False) as r:
            await r.read()
            assert r.status == 200, (url, r.status)
        if i >= 3:
            times.append((time.perf_counter() - t) * 1000)
    return times


async def row_floor_ms(url: str, ids: list[int]) -> float:
    engine = make_engine(url)
    times = []
    async with engine.connect() as conn:
        for i, rid in enumerate(ids):
            t = time.perf_counter()
            (await conn.execute(select(borrowing_requests_t).where(borrowing_requests_t.c.id == rid))).first()
            if i >= 3:
                times.append((time.perf_counter() - t) * 1000)
    await engine.dispose()
    return statistics.median(times)


def _p95(times: list[float]) -> float:
    times = sorted(times)
    return times[max(0, int(len(times) * 0.95) - 1)]


async def measure(url: str, rows: int, runs: int, secret_dir: str) -> int:
    gateway = Gateway.create(config(url, secret_dir))
    app = build_app(gateway)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base = f"http://127.0.0.1:{port}"
    missed = 0
    backend = make_url(url).get_backend_name()
    try:
        assert gateway.accounts is not None
        await gateway.accounts.add("bench", PASSWORD, "staff")
        print(f"\nstaff pages with {rows:,} borrowing requests, {runs} runs each, {backend}, "
              f"{os.cpu_count()} cores; times in ms\n")
        print(f"| {'page':<34} | {'p50':>6} | {'p95':>6} | {'max':>6} | {'floor':>6} | {'p95/target':>10} |")
        print(f"|{'-' * 36}|{'-' * 8}|{'-' * 8}|{'-' * 8}|{'-' * 8}|{'-' * 12}|")
        # unsafe: keep the session cookie of a server addressed by IP (127.0.0.1)
        async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as session:
            await sign_in(session, base)
            for label, path, query, target in LISTS:
                times = await timed(session, base + path, runs)
                floor = await listing.floor_ms(url, query, 10)
                missed += _report(label, times, floor, target)
            rnd = random.Random(7)
            for tab in TABS:
                ids = [rnd.randrange(1, rows + 1) for _ in range(runs + 3)]
                times = []
                for i, rid in enumerate(ids):
                    t = time.perf_counter()
                    async with session.get(f"{base}/borrowing/{rid}{tab}", allow_redirects=False) as r:
                        await r.read()
                        assert r.status == 200, (rid, tab, r.status)
                    if i >= 3:
                        times.append((time.perf_counter() - t) * 1000)
                floor = await row_floor_ms(url, ids)
                missed += _report(f"request page{(' ' + tab) if tab else ''}", times, floor, 50.0)
    finally:
        await runner.cleanup()
    print(f"\ntargets (list p95 < 100 ms, request page p95 < 50 ms): "
          f"{'met' if not missed else f'missed by {missed} rows'}")
    return missed


def _report(label: str, times: list[float], floor: float, target: float) -> int:
    p95 = _p95(times)
    print(f"| {label:<34} | {statistics.median(times):>6.1f} | {p95:>6.1f} | {max(times):>6.1f} | "
          f"{floor:>6.1f} | {p95 / target:>10.2f} |")
    return int(p95 >= target)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--postgresql", action="store_true", help="a fresh schema on GATEWAY_BENCH_POSTGRES_URL")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a p95 misses its target")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-pages-")
    schema = None
    if args.postgresql:
        schema = f"bench_pages_{random.randrange(10**9)}"
        asyncio.run(listing._on_server(f"CREATE SCHEMA {schema}"))
        url = make_url(listing.PG_URL).update_query_dict({"search_path": schema}).render_as_string(
            hide_password=False)
    else:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'pages.sqlite3'}"
    try:
        asyncio.run(listing.populate(url, args.rows))
        missed = asyncio.run(measure(url, args.rows, args.runs, tmp))
        return 1 if (missed and args.strict) else 0
    finally:
        if schema:
            asyncio.run(listing._on_server(f"DROP SCHEMA {schema} CASCADE"))
        for f in Path(tmp).iterdir():
            f.unlink()
        os.rmdir(tmp)


if __name__ == "__main__":
    sys.exit(main())
