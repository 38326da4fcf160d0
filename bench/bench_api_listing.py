#!/usr/bin/env python3
"""Benchmark of the staff API's listing with facets on 100,000 borrowing requests (SQLite, or
PostgreSQL with --postgresql).

    .venv/bin/python bench/bench_api_listing.py [--rows 100000] [--runs 30] [--db PATH] [--keep]
                                                [--target-ms 100] [--strict] [--postgresql]

1. Populates a database (migrated to head, so with the migrations' indexes) with
   `--rows` borrowing requests through SQLAlchemy Core bulk inserts: a realistic spread of
   statuses (most requests finished, a few hundred needing attention), 12 partners with rotas of
   1-4 entries, ~8,000 requesters (a few heavy users), two years of creation dates, needed-by
   dates on a third, and each row's core state JSON at its real size (the state of a real request).
   With `--db` an existing populated SQLite file is reused (`--keep` keeps the temporary one).
   With `--postgresql` the database is a fresh schema on GATEWAY_BENCH_POSTGRES_URL (default
   postgresql+asyncpg://postgres@127.0.0.1:5432/postgres), dropped afterwards unless `--keep`.
2. Starts the real gateway app (aiohttp, the same handlers) on loopback and times
   `GET /api/v1/borrowing-requests` with facets, for typical filter combinations, over HTTP:
   `--runs` requests each after 3 warm-ups; p50 / p95 / max in milliseconds.

The floor, in the same run: `SELECT count(*)` of the same filters straight on the database
(what any listing must at least pay to know its total). The target: p95 under 100 ms for every row.
Exit status 0 unless --strict and a row misses the target.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from aiohttp import ClientSession, web  # noqa: E402
from sqlalchemy import insert  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from gateway.app import build_app  # noqa: E402
from gateway.runtime import Gateway  # noqa: E402
from gateway.config import parse_config  # noqa: E402
from gateway.core import Create, RequestDetails, decide  # noqa: E402
from gateway.service.borrowing_rows import request_columns, rota_rows  # noqa: E402
from gateway.service.context import ServiceContext  # noqa: E402
from gateway.store.db import make_engine, migrate_async  # noqa: E402
from gateway.store.models import borrowing_requests_t, rota_entries_t  # noqa: E402

KEY = "bench-key-0123456789"
PARTNERS = [f"ISIL:XX-P{i:02d}" for i in range(12)]
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)
PG_URL = os.environ.get("GATEWAY_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
STATUS_WEIGHTS = {
    "COMPLETED": 52, "CANCELED_BY_STAFF": 4, "CANCELED_BY_PATRON": 3, "CANCELED_BY_PARTNER": 1, "EXPIRED": 4,
    "REQUEST_SENT": 6, "EXPECTED_TO_SUPPLY": 3, "WILL_SUPPLY": 4, "SHIPPED_PHYSICALLY": 3, "SHIPPED_DIGITALLY": 1,
    "RECEIVED_PHYSICALLY": 3, "LOANED_TO_PATRON": 8, "RETURNED_BY_PATRON": 2, "RETURNED_TO_PARTNER": 3,
    "RENEW_REQUESTED": 0.3, "RENEWED_BY_PARTNER": 0.5, "OVERDUE": 0.6, "RECALLED": 0.2, "CREATED": 0.3,
    "CONDITIONAL": 0.2, "RETRY_POSSIBLE": 0.2, "LOCATE_FAILED": 0.1, "READY_TO_SEND": 0.1,
    "WAITING_FOR_CANCEL_RESPONSE": 0.1, "REJECTED_BY_PARTNER": 0.2,
}
ATTENTION = {"CONDITIONAL", "RETRY_POSSIBLE", "LOCATE_FAILED", "READY_TO_SEND"}
ACTIVE = {"REQUEST_SENT", "EXPECTED_TO_SUPPLY", "WILL_SUPPLY", "CONDITIONAL", "RETRY_POSSIBLE",
          "WAITING_FOR_CANCEL_RESPONSE", "READY_TO_SEND"}
SUPPLIED = {"SHIPPED_PHYSICALLY", "SHIPPED_DIGITALLY", "RECEIVED_PHYSICALLY", "LOANED_TO_PATRON",
            "RETURNED_BY_PATRON", "RETURNED_TO_PARTNER", "RENEW_REQUESTED", "RENEWED_BY_PARTNER", "OVERDUE",
            "RECALLED", "COMPLETED"}
WORDS = ("history science river garden night light war peace music city ocean stone mind language world "
         "theory practice modern ancient nordic danish library medicine physics economics art poetry "
         "children law ethics data network systems climate energy health food travel").split()
SURNAMES = ("Smith Jensen Nielsen Hansen Eco Garcia Müller Rossi Novak Dubois Kowalski Andersen Larsen "
            "Berg Lindqvist Okafor Tanaka Silva Costa Murphy").split()

# (label, query) — what a resource-sharing desk asks for all day.
QUERIES = [
    ("first page, no filter", ""),
    ("open requests needing attention", "needs_attention=true"),
    ("status in 3 active statuses", "status=REQUEST_SENT&status=WILL_SUPPLY&status=EXPECTED_TO_SUPPLY"),
    ("one partner anywhere in rota", f"partner={PARTNERS[3]}"),
    ("active partner + status", f"active_partner={PARTNERS[1]}&status=REQUEST_SENT"),
    ("one requester", "requester=patron-00007"),
    ("created in one month, by updated", "created_from=2026-03-01&created_to=2026-03-31&sort=-updated_at"),
    ("needed by next 30 days", "needed_by_from=2026-11-28&needed_by_to=2026-12-28&sort=needed_by"),
    ("free text q=river", "q=river"),
    ("q + status + sort title", "q=garden&status=COMPLETED&sort=title"),
    ("deep page offset 50000", "offset=50000&sort=created_at"),
    ("pickup location (staff list facet)", "pickup_location=Law%20library"),
    ("unread partner messages", "unread_messages=true"),
    ("with costs", "has_costs=true"),
    ("sorted by due date", "sort=-due_date"),
]


def config(db_url: str):
    return parse_config({
        "gateway": {"agency": "ISIL:XX-BENCH", "listen": "127.0.0.1:0", "database": db_url},
        "partners": [{"agency": a, "url": "http://127.0.0.1:9/iso18626"} for a in PARTNERS],
        "rota_templates": [{"name": "default", "partners": PARTNERS[:3]}],
        "api_keys": [{"key": KEY, "role": "read-only", "name": "bench"}],
    }, env={})


def _state_json(ctx: ServiceContext) -> dict:
    """A real request's core state, serialised as the store keeps it (its size is what matters)."""
    details = RequestDetails(requester="patron-00001", pickup_location="Main desk", title="The Name of the Rose",
                             author="Eco, Umberto", isbn="9780151446476", request_note="Needed for a seminar")
    decision = decide(None, Create(at=NOW, by="staff:bench", details=details, partners=tuple(PARTNERS[:3])),
                      ctx.policy)
    return request_columns(decision.state, {})["extra"]


async def populate(url: str, rows: int, seed: int = 18626) -> None:
    engine = make_engine(url)
    await migrate_async(engine)
    cfg = config(url)
    ctx = ServiceContext.from_config(cfg)
    extra = _state_json(ctx)
    template_rota = rota_rows(decide(None, Create(at=NOW, by="x", details=RequestDetails(
        requester="p", pickup_location="m"), partners=(PARTNERS[0],)), ctx.policy).state, ctx.policy)[0]
    rnd = random.Random(seed)
    statuses, weights = zip(*STATUS_WEIGHTS.items())
    heavy = [f"patron-{i:05d}" for i in range(40)]
    t0 = time.perf_counter()
    batch_size = 5000
    next_id = 1
    async with engine.begin() as conn:
        for start in range(0, rows, batch_size):
            requests, rota = [], []
            for _ in range(min(batch_size, rows - start)):
                rid = next_id
                next_id += 1
                status = rnd.choices(statuses, weights)[0]
                created = NOW - timedelta(days=rnd.random() ** 0.7 * 730, seconds=rnd.randrange(86400))
                updated = min(NOW, created + timedelta(days=rnd.random() * (30 if status in ACTIVE else 60)))
                n_partners = rnd.choice((1, 2, 2, 3, 3, 4))
                partners = rnd.sample(PARTNERS, n_partners)
                if status in ACTIVE or status in SUPPLIED:
                    current = rnd.randrange(n_partners)
                else:
                    current = None
                requester = rnd.choice(heavy) if rnd.random() < 0.15 else f"patron-{rnd.randrange(8000):05d}"
                digital = rnd.random() < 0.3
                title = " ".join(rnd.sample(WORDS, rnd.randint(2, 5))).capitalize()
                requests.append({
                    "id": rid, "external_id": f"BR-{rid:012X}", "status": status,
                    "needs_attention": status in ATTENTION or rnd.random() < 0.001,
                    "attention_reason": "send_failed" if status == "READY_TO_SEND" else None,
                    "active_partner": partners[current] if current is not None else None,
                    "title": title, "author": f"{rnd.choice(SURNAMES)}, {rnd.choice('ABCDEFGHJKLMNOPRST')}.",
                    "title_of_component": f"Chapter {rnd.randint(1, 30)}" if digital else None,
                    "isbn": f"978{rnd.randrange(10**9, 10**10)}" if not digital or rnd.random() < 0.5 else None,
                    "issn": f"{rnd.randrange(1000, 9999)}-{rnd.randrange(1000, 9999)}" if digital else None,
                    "oclc_number": str(rnd.randrange(10**6, 10**9)) if rnd.random() < 0.6 else None,
                    "requester": requester, "requester_name": f"{rnd.choice(SURNAMES)} {requester[-3:]}",
                    "service_type": "Copy" if digital else "Loan", "format": "Digital" if digital else "Physical",
                    "needed_by": (created + timedelta(days=rnd.randint(7, 90))).date() if rnd.random() < 0.33 else None,
                    "pickup_location": rnd.choice(("Main desk", "Science library", "Law library")),
                    "delivery_location": "library", "allow_other_format": False, "reading_room_only": False,
                    "willing_to_pay": False, "needs_patron_information": False, "agree_to_copyright_terms": digital,
                    "extra": extra, "created_at": created, "updated_at": updated, "version": 1,
                })
                for pos, agency in enumerate(partners, start=1):
                    idx = pos - 1
                    state = ("active" if status in ACTIVE else "supplied") if idx == current else (
                        "rejected" if current is not None and idx < current else "pending")
                    rota.append({**template_rota, "request_id": rid, "position": pos, "agency": agency,
                                 "state": state, "sent_at": created if state != "pending" else None,
                                 "deadline_at": None})
            await conn.execute(insert(borrowing_requests_t), requests)
            await conn.execute(insert(rota_entries_t), rota)
        if conn.dialect.name == "postgresql":  # ids were given: move the sequence past them
            await conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('borrowing_requests', 'id'), "
                                       "(SELECT max(id) FROM borrowing_requests))")
    if engine.dialect.name == "postgresql":
        # What autovacuum does soon after a bulk load (statistics, and the visibility map that
        # index-only scans need); SQLite has no such daemon and the gateway runs no ANALYZE, so
        # there the bench does not either.
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.exec_driver_sql("VACUUM ANALYZE borrowing_requests")
            await conn.exec_driver_sql("VACUUM ANALYZE rota_entries")
    await engine.dispose()
    print(f"populated {rows:,} requests in {time.perf_counter() - t0:.1f} s", flush=True)


async def floor_ms(url: str, query: str, runs: int) -> float:
    """count(*) under the same filters, straight on the database (no API, no facets)."""
    import urllib.parse

    from gateway.api import queries as q
    from gateway.api.borrowing import parse_filters
    from sqlalchemy import func, select

    params: dict[str, list[str]] = {}
    for k, v in urllib.parse.parse_qsl(query):
        params.setdefault(k, []).append(v)
    params = {k: v for k, v in params.items() if k not in ("sort", "offset", "limit")}
    filters = parse_filters(params)
    engine = make_engine(url)
    stmt = select(func.count()).select_from(q.br).where(*filters.clauses())
    times = []
    async with engine.connect() as conn:
        for i in range(runs + 3):
            t = time.perf_counter()
            (await conn.execute(stmt)).scalar_one()
            if i >= 3:
                times.append((time.perf_counter() - t) * 1000)
    await engine.dispose()
    return statistics.median(times)


async def measure(url: str, runs: int) -> list[tuple[str, str, int, list[float]]]:
    gateway = Gateway.create(config(url))
    app = build_app(gateway)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base = f"http://127.0.0.1:{port}/api/v1/borrowing-requests"
    out = []
    try:
        async with ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as session:
            for label, query in QUERIES:
                times: list[float] = []
                total = 0
                for i in range(runs + 3):
                    t = time.perf_counter()
                    async with session.get(f"{base}?{query}") as response:
                        body = await response.json()
                        assert response.status == 200, body
                    if i >= 3:
                        times.append((time.perf_counter() - t) * 1000)
                    total = body["total"]
                out.append((label, query, total, times))
    finally:
        await runner.cleanup()
    return out


async def _on_server(sql: str) -> None:
    """One statement on GATEWAY_BENCH_POSTGRES_URL itself (outside the bench's schema)."""
    engine = make_engine(PG_URL)
    try:
        async with engine.begin() as conn:
            await conn.exec_driver_sql(sql)
    finally:
        await engine.dispose()


async def report(url: str, runs: int, target_ms: float) -> int:
    """Measure and print the table; the number of rows over the target."""
    results = await measure(url, runs)
    backend = make_url(url).get_backend_name()
    print(f"\nGET /api/v1/borrowing-requests (limit 25, all facets), {runs} runs each, "
          f"{backend}, {os.cpu_count()} cores; floor = count(*) of the same filters on the database\n")
    print(f"| {'query':<36} | {'total':>7} | {'p50 ms':>7} | {'p95 ms':>7} | {'max ms':>7} | {'floor ms':>8} |")
    print(f"|{'-' * 38}|{'-' * 9}|{'-' * 9}|{'-' * 9}|{'-' * 9}|{'-' * 10}|")
    missed = 0
    for label, query, total, times in results:
        times.sort()
        p50, p95 = statistics.median(times), times[max(0, int(len(times) * 0.95) - 1)]
        floor = await floor_ms(url, query, 10)
        mark = "" if p95 < target_ms else "  <-- over target"
        missed += p95 >= target_ms
        print(f"| {label:<36} | {total:>7,} | {p50:>7.1f} | {p95:>7.1f} | {times[-1]:>7.1f} | {floor:>8.1f} |{mark}")
    print(f"\ntarget: p95 < {target_ms:.0f} ms: {'met' if not missed else f'missed by {missed} rows'}")
    return missed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--db", type=Path, help="reuse (or create) this SQLite file")
    parser.add_argument("--postgresql", action="store_true", help="a fresh schema on GATEWAY_BENCH_POSTGRES_URL")
    parser.add_argument("--keep", action="store_true", help="keep the temporary database")
    parser.add_argument("--target-ms", type=float, default=100.0)
    parser.add_argument("--strict", action="store_true", help="exit 1 if a p95 misses the target")
    args = parser.parse_args()

    tmp = schema = None
    if args.postgresql:
        schema = f"bench_listing_{random.randrange(10**9)}"
        asyncio.run(_on_server(f"CREATE SCHEMA {schema}"))
        url = make_url(PG_URL).update_query_dict({"search_path": schema}).render_as_string(hide_password=False)
        asyncio.run(populate(url, args.rows))
    elif args.db:
        path = args.db.resolve()
        url = f"sqlite+aiosqlite:///{path}"
        if not path.exists():
            asyncio.run(populate(url, args.rows))
    else:
        tmp = tempfile.mkdtemp(prefix="bench-api-")
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'listing.sqlite3'}"
        asyncio.run(populate(url, args.rows))
    try:
        missed = asyncio.run(report(url, args.runs, args.target_ms))
        return 1 if (missed and args.strict) else 0
    finally:
        if args.keep:
            print(f"kept {url}")
        elif schema:
            asyncio.run(_on_server(f"DROP SCHEMA {schema} CASCADE"))
        elif tmp:
            for f in Path(tmp).iterdir():
                f.unlink()
            os.rmdir(tmp)


if __name__ == "__main__":
    sys.exit(main())
