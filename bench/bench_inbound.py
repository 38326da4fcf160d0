"""Inbound supplyingAgencyMessage throughput and latency, end to end over loopback.

Two servers, measured in the same run with the same load generator:
  floor    an aiohttp handler that parses + validates the bytes and returns a fixed confirmation;
  gateway  the real gateway: parse, validate, apply to a borrowing request (state, raw message,
           history, general message), commit, then confirm.
Both servers run on the gateway's event loop (uvloop where installed, gateway/transport/event_loop.py)
with its garbage-collector settings (gateway/transport/collector.py), so the floor is the same
stack minus the gateway's work. Each server runs in its own process, or in N processes sharing
its port (`--workers 1,2` on PostgreSQL: a floor and a gateway for each N, the gateways on one database); this process
generates the load with CONCURRENCY clients (`--pin-load CPU` pins it to one CPU, to see how the
servers grow with workers when the load generator cannot take the other core). All servers are
up at once and take turns (ROUNDS alternating rounds), so that the ratios are not skewed by a
shared machine getting faster or slower between two long runs. Each server process's CPU time
over its rounds is reported per message (and, on PostgreSQL, that of the database's server
processes), from /proc/<pid>/stat.

The traffic is a partner working through its requests: for each borrowing request (preloaded in
REQUEST_SENT, its `request` confirmed by the partner) one message of each kind in MIX, in order,
so two of three messages are real status changes. Requests are taken in waves of WAVE, so the
messages of one request are never in flight at the same time. Every body is sent once: when they
run out before the time is up, the run ends there (the table says so).

After the gateway has stopped, the database is checked against what the clients saw confirmed:
one raw message, one history entry per confirmed message, one general message per confirmed
Notification, and the requests' statuses (durability: nothing confirmed is missing).

    python bench/bench_inbound.py [--seconds 8] [--rounds 4] [--concurrency 16] [--db sqlite|postgresql|both]
                                  [--workers 1,2] [--pin-load 0] [--max-rate 6000]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.messages import Version, encode, model  # noqa: E402
from gateway.messages.codes import ReasonForMessage, Status  # noqa: E402
from gateway.transport import event_loop  # noqa: E402

OURS, PARTNER = "ISIL:US-BENCH", "ISIL:DK-BENCH"
# The server; the bench creates a database of its own there (a unique name) and drops it at the end.
PG_URL = os.environ.get("GATEWAY_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
WAVE = 256  # requests per wave: far more than the clients, so one request's messages never overlap
DUE = datetime(2026, 3, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Kind:
    name: str
    reason: ReasonForMessage
    status: Status
    to_status: str  # the request's status once this message has applied
    note: bool = False
    due: bool = False


MIX = (
    Kind("WillSupply", ReasonForMessage.RequestResponse, Status.WillSupply, "WILL_SUPPLY"),
    Kind("Notification", ReasonForMessage.Notification, Status.WillSupply, "WILL_SUPPLY", note=True),
    Kind("Loaned", ReasonForMessage.StatusChange, Status.Loaned, "SHIPPED_PHYSICALLY", due=True),
)
MIX_TEXT = ("per request, in order: WillSupply (RequestResponse, REQUEST_SENT -> WILL_SUPPLY), "
            "Notification with a note (no status change, a general message), "
            "Loaned (StatusChange with dueDate, WILL_SUPPLY -> SHIPPED_PHYSICALLY)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def message(kind: Kind, ref: str, n: int) -> bytes:
    when = datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=n)
    return encode(model.SupplyingAgencyMessage(
        header=model.SupplyingAgencyMessageHeader(
            supplying_agency_id=model.AgencyId.parse(PARTNER), requesting_agency_id=model.AgencyId.parse(OURS),
            timestamp=when, requesting_agency_request_id=ref, supplying_agency_request_id="L-" + ref),
        message_info=model.MessageInfo(
            reason_for_message=kind.reason,
            note=f"Shelf check done, item {n} is being prepared for shipping." if kind.note else None),
        status_info=model.StatusInfo(status=kind.status, last_change=when, due_date=DUE if kind.due else None),
    ), Version.V2017)


def traffic(refs: list[str]) -> list[tuple[Kind, bytes]]:
    """Every message for every request: wave by wave, each kind of MIX for the whole wave."""
    bodies, n = [], 0
    for start in range(0, len(refs), WAVE):
        for kind in MIX:
            for ref in refs[start:start + WAVE]:
                n += 1
                bodies.append((kind, message(kind, ref, n)))
    return bodies


# --- servers (run in child processes) ---------------------------------------------------------------
# N processes of one server share its port (SO_REUSEPORT: the kernel spreads the connections),
# as `gateway serve --workers N` would run them; kept here so the bench needs nothing else.

async def _tune_collector() -> None:
    """Both servers set up their process as `gateway serve` does (gateway/transport/collector.py)."""
    from gateway.transport import collector

    collector.tune()


def serve_floor(port: int) -> None:
    from aiohttp import web
    from lxml import etree

    from gateway.messages.inbound import _PARSER
    from gateway.messages.schemas import schema_for

    schema = schema_for(Version.V2017)
    fixed = b"<ok/>"

    async def handle(request: web.Request) -> web.Response:
        root = etree.fromstring(await request.read(), _PARSER)
        schema.validate(root)
        return web.Response(body=fixed, content_type="application/xml")

    app = web.Application()
    app.router.add_post("/iso18626", handle)
    app.on_startup.append(lambda app: _tune_collector())
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, reuse_port=True,
                loop=event_loop.new_event_loop())


def gateway_config(db: str):
    from gateway.config import parse_config

    return parse_config({
        "gateway": {"agency": OURS, "database": db, "tick_seconds": 3600},
        "partners": [{"agency": PARTNER, "url": "http://127.0.0.1:9/none"}],
    }, env={})


async def preload(db: str, requests: int, refs_file: str) -> None:
    """Borrowing requests in REQUEST_SENT whose `request` the partner has confirmed, written
    through the service (many at a time, so the writer groups them) before the servers start."""
    from sqlalchemy import select, update

    from gateway.runtime import Gateway
    from gateway.core import RequestDetails
    from gateway.store.models import borrowing_requests_t as req
    from gateway.store.models import outbox_t as out

    gateway = Gateway.create(gateway_config(db))
    gateway.background = []  # no outbox worker or timers while loading
    await gateway.start()

    async def one(i: int) -> int:
        result = await gateway.borrowing.create(
            RequestDetails(requester=f"patron-{i}", pickup_location="Main", title=f"Book {i}"), (PARTNER,))
        await gateway.borrowing.request_confirmed(result.request_id, PARTNER)
        return result.request_id

    started = time.perf_counter()
    for chunk in range(0, requests, 512):
        await asyncio.gather(*(one(i) for i in range(chunk, min(requests, chunk + 512))))
    # The partner confirmed those `request`s: their outbox rows are delivered.
    now = datetime.now(timezone.utc)
    await gateway.writer.run(lambda conn: conn.execute(
        update(out).where(out.c.state == "pending").values(state="delivered", delivered_at=now)))
    async with gateway.engine.connect() as conn:
        refs = list((await conn.execute(select(req.c.external_id).order_by(req.c.id))).scalars())
    await gateway.close()
    print(f"  preloaded {len(refs)} requests in {time.perf_counter() - started:.1f} s", flush=True)
    Path(refs_file + ".tmp").write_text("\n".join(refs))
    os.replace(refs_file + ".tmp", refs_file)


def serve_gateway(port: int, db: str) -> None:
    import logging

    from aiohttp import web
    from sqlalchemy.engine import make_url

    from gateway.app import build_app
    from gateway.runtime import Gateway

    logging.getLogger("aiohttp.access").disabled = True
    gateway = Gateway.create(gateway_config(db))
    app = build_app(gateway)

    async def report(app: web.Application) -> None:
        writer = gateway.writer
        cache = getattr(getattr(gateway.borrowing, "supplier_messages", None), "cache", None)
        hits = f"; decoded-state cache {cache.hits} hits, {cache.misses} misses" if cache else ""
        print(f"  gateway pid {os.getpid()} ({make_url(db).get_backend_name()}): {writer.steps} steps in "
              f"{writer.batches} transactions ({writer.steps / max(writer.batches, 1):.1f} per transaction, "
              f"{getattr(writer, 'conflicts', 0)} conflicts){hits}", flush=True)

    app.on_cleanup.append(report)
    app.on_startup.append(lambda app: _tune_collector())
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, reuse_port=True,
                loop=event_loop.new_event_loop())


# --- CPU time -------------------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """user + system CPU time of a process so far (/proc/<pid>/stat fields 14 and 15)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # gone
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def backend_pids(database: str | None) -> list[int]:
    """The PostgreSQL server processes serving `database` (same machine: /proc can read them)."""
    if database is None:
        return []
    out = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-Atqc",
                          f"SELECT pid FROM pg_stat_activity WHERE datname = '{database}'"],
                         capture_output=True, text=True, check=False).stdout
    return [int(line) for line in out.split()]


class CpuMeter:
    """CPU seconds of some processes over the rounds a server group is loaded."""

    def __init__(self, pids: list[int]):
        self.pids = pids
        self.used = [0.0] * len(pids)
        self._start: list[float] = []

    def start(self) -> None:
        self._start = [cpu_seconds(pid) for pid in self.pids]

    def stop(self) -> None:
        self.used = [used + cpu_seconds(pid) - before for used, pid, before in zip(self.used, self.pids, self._start)]


class BackendMeter:
    """CPU seconds of the database's server processes while one group is loaded (the others idle)."""

    def __init__(self, database: str | None):
        self.database, self.used, self._start = database, 0.0, {}

    def start(self) -> None:
        self._start = {pid: cpu_seconds(pid) for pid in backend_pids(self.database)}

    def stop(self) -> None:
        self.used += sum(cpu_seconds(pid) - self._start.get(pid, 0.0) for pid in backend_pids(self.database))


# --- load ------------------------------------------------------------------------------------------

async def wait_ready(url: str, procs: list[subprocess.Popen]) -> None:
    import aiohttp

    deadline = time.time() + 600
    async with aiohttp.ClientSession() as session:
        while time.time() < deadline:
            for proc in procs:
                if proc.poll() is not None:
                    raise SystemExit(f"server exited with {proc.returncode}")
            try:
                async with session.get(url.replace("/iso18626", "/healthz")):
                    return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise SystemExit("server did not start")


class Load:
    """Sends each body once, from CONCURRENCY clients, until the time is up or the bodies run out."""

    def __init__(self, url: str, bodies: list[tuple[Kind, bytes]], concurrency: int, check_ok: bool):
        self.url, self.bodies, self.concurrency, self.check_ok = url, bodies, concurrency, check_ok
        self.next = 0
        self.confirmed: Counter[str] = Counter()  # by kind, over all phases

    async def run(self, seconds: float) -> tuple[int, list[float], float, bool]:
        """(messages, latencies, elapsed seconds, ran out of bodies)."""
        import aiohttp

        latencies: list[float] = []
        started = time.perf_counter()
        stop = started + seconds
        # A connection per client, closed after the round: with N processes on one port, each
        # round's connections are spread over them afresh.
        connector = aiohttp.TCPConnector(limit=self.concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            async def client() -> None:
                while time.perf_counter() < stop and self.next < len(self.bodies):
                    kind, body = self.bodies[self.next]
                    self.next += 1
                    sent = time.perf_counter()
                    async with session.post(self.url, data=body, headers={"Content-Type": "application/xml"}) as r:
                        reply = await r.read()
                    if r.status != 200 or (self.check_ok and b"messageStatus>OK<" not in reply):
                        raise SystemExit(f"bad reply to {kind.name}: {r.status} {reply[:400]!r}")
                    latencies.append(time.perf_counter() - sent)
                    self.confirmed[kind.name] += 1

            await asyncio.gather(*(client() for _ in range(self.concurrency)))
        elapsed = time.perf_counter() - started
        return len(latencies), latencies, elapsed, self.next >= len(self.bodies)


def run_server(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, *args], cwd=ROOT)


@dataclass
class Tally:
    name: str
    workers: int
    count: int = 0
    elapsed: float = 0.0
    ran_out: bool = False
    latencies: list[float] | None = None
    cpu: CpuMeter | None = None
    backends: BackendMeter | None = None

    def add(self, count: int, latencies: list[float], elapsed: float, ran_out: bool) -> None:
        self.count += count
        self.elapsed += elapsed
        self.ran_out |= ran_out
        self.latencies = (self.latencies or []) + latencies

    def row(self) -> dict:
        latencies = sorted(self.latencies or [0.0])
        per_message = [used / max(self.count, 1) * 1e6 for used in (self.cpu.used if self.cpu else [])]
        return {
            "name": self.name + (" (ran out of messages)" if self.ran_out else ""),
            "workers": self.workers,
            "throughput": self.count / self.elapsed,
            "p50": statistics.median(latencies) * 1000,
            "p99": latencies[int(len(latencies) * 0.99)] * 1000,
            "count": self.count,
            "cpu": " + ".join(f"{us:.0f}" for us in per_message),
            "cpu_total": sum(per_message),
            "backends": self.backends.used / max(self.count, 1) * 1e6 if self.backends else None,
        }


@dataclass
class Group:
    """One server, its N processes and its load."""

    tally: Tally
    procs: list[subprocess.Popen]
    url: str
    load: Load | None = None

    async def round(self, seconds: float) -> None:
        assert self.load is not None and self.tally.cpu is not None
        self.tally.cpu.start()
        if self.tally.backends:
            self.tally.backends.start()
        result = await self.load.run(seconds)
        self.tally.cpu.stop()
        if self.tally.backends:
            self.tally.backends.stop()
        self.tally.add(*result)


def start_group(name: str, workers: int, args: list[str]) -> Group:
    port = free_port()
    procs = [run_server([*args, "--port", str(port)]) for _ in range(workers)]
    return Group(Tally(name, workers), procs, f"http://127.0.0.1:{port}/iso18626")


def measure(db: str, url: str, database: str | None, workers: list[int], refs: list[str], floor_bodies,
            seconds: float, rounds: int, concurrency: int, pin: int | None) -> tuple[list[tuple[dict, dict]], Counter]:
    """For each worker count, a floor and a gateway with that many processes; all are up at
    once and loaded in turn (floor 1, gateway 1, floor 2, gateway 2, ...) for `rounds` rounds of
    seconds/rounds each, so that all see the machine in the same state (a shared machine's
    speed drifts by a factor of two within minutes; one long run of each measured the drift)."""
    pairs: list[tuple[Group, Group]] = []
    share = len(refs) // len(workers)
    try:
        for i, n in enumerate(workers):
            label = f"{n} process{'es' if n > 1 else ''}"
            floor = start_group(f"floor, {label} (parse + validate + fixed confirmation)", n, ["--serve", "floor"])
            gateway = start_group(f"gateway, {db}, {label} (every change committed before its confirmation)", n,
                                  ["--serve", "gateway", "--database", url])
            floor.load = Load(floor.url, floor_bodies(), concurrency, check_ok=False)
            gateway.load = Load(gateway.url, traffic(refs[i * share:(i + 1) * share]), concurrency, check_ok=True)
            pairs.append((floor, gateway))
        for floor, gateway in pairs:
            asyncio.run(wait_ready(floor.url, floor.procs))
            asyncio.run(wait_ready(gateway.url, gateway.procs))
        if pin is not None:  # after the servers started: they are not pinned, only the load generator
            os.sched_setaffinity(0, {pin})
        for floor, gateway in pairs:
            floor.tally.cpu = CpuMeter([p.pid for p in floor.procs])
            gateway.tally.cpu = CpuMeter([p.pid for p in gateway.procs])
            gateway.tally.backends = BackendMeter(database)
            asyncio.run(floor.load.run(1.0))  # warm up (these messages count for the durability check too)
            asyncio.run(gateway.load.run(1.0))
        for _ in range(rounds):
            for floor, gateway in pairs:
                asyncio.run(floor.round(seconds / rounds))
                asyncio.run(gateway.round(seconds / rounds))
    finally:
        if pin is not None:
            os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
        procs = [proc for pair in pairs for group in pair for proc in group.procs]
        for proc in procs:
            proc.terminate()  # aiohttp's graceful exit: the gateway closes its writer and engine
        for proc in procs:
            proc.wait(timeout=60)
    confirmed: Counter[str] = Counter()
    for _, gateway in pairs:
        assert gateway.load is not None
        confirmed.update(gateway.load.confirmed)
    return [(floor.tally.row(), gateway.tally.row()) for floor, gateway in pairs], confirmed


async def durability(url: str, confirmed: Counter[str]) -> tuple[bool, list[str]]:
    """Compare the database with what the clients saw confirmed."""
    from sqlalchemy import func, select

    from gateway.store.db import make_engine
    from gateway.store.models import borrowing_requests_t as req
    from gateway.store.models import general_messages_t as gm
    from gateway.store.models import history_t as hist
    from gateway.store.models import raw_messages_t as raw

    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            async def count(stmt) -> int:
                return (await conn.execute(stmt)).scalar_one()

            raws = await count(select(func.count()).select_from(raw).where(
                raw.c.direction == "in", raw.c.kind == "supplyingAgencyMessage"))
            history = await count(select(func.count()).select_from(hist).where(hist.c.raw_message_id.is_not(None)))
            notes = await count(select(func.count()).select_from(gm).where(gm.c.direction == "in"))
            statuses = dict((await conn.execute(select(req.c.status, func.count()).group_by(req.c.status))).all())
    finally:
        await engine.dispose()
    total = sum(confirmed.values())
    # Each request has had a prefix of MIX confirmed; its status is that of the last one.
    expected_status: Counter[str] = Counter()
    for before, after in zip(MIX, MIX[1:] + (None,)):
        done = confirmed[before.name] - (confirmed[after.name] if after else 0)
        expected_status[before.to_status] += done
    checks = [
        ("raw messages stored", raws, total),
        ("history entries linked to a message", history, total),
        ("general messages (Notifications)", notes, confirmed["Notification"]),
        *((f"requests in {status}", statuses.get(status, 0), n) for status, n in expected_status.items()),
    ]
    lines = [f"{'ok ' if got == want else 'BAD'} {what}: {got} (confirmed: {want})" for what, got, want in checks]
    return all(got == want for _, got, want in checks), lines


def psql(database: str, sql: str) -> None:
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", database, "-qc", sql], check=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=4, help="alternating floor/gateway rounds per database")
    parser.add_argument("--max-rate", type=float, default=6000.0,
                        help="messages/s the preload provides for, per worker count (more requests take longer)")
    parser.add_argument("--requests", type=int, help="borrowing requests to preload (default: from --max-rate)")
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--workers", default="1",
                        help="PostgreSQL: worker processes per server, e.g. 1,2 (SQLite always runs 1)")
    parser.add_argument("--pin-load", type=int, metavar="CPU",
                        help="pin the load generator (this process) to one CPU, the servers left free")
    parser.add_argument("--serve", choices=["floor", "gateway", "preload"])
    parser.add_argument("--port", type=int)
    parser.add_argument("--database")
    parser.add_argument("--refs")
    args = parser.parse_args()
    if args.serve == "floor":
        return serve_floor(args.port)
    if args.serve == "gateway":
        return serve_gateway(args.port, args.database)
    if args.serve == "preload":
        return asyncio.run(preload(args.database, args.requests, args.refs))

    tmp = Path(tempfile.mkdtemp(prefix="bench-inbound-"))
    requests = args.requests or math.ceil(args.max_rate * (args.seconds + 1) / len(MIX))
    print(f"Traffic: {MIX_TEXT}; {requests} requests, {requests * len(MIX)} messages at most, per gateway.",
          flush=True)

    def floor_bodies() -> list[tuple[Kind, bytes]]:  # needs no preload: plenty for its faster rate
        return traffic([f"BR-FLOOR{i:06d}" for i in range(max(requests, math.ceil(16_000 * (args.seconds + 1) / 3)))])

    results, checks = [], []
    databases = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    for db in databases:
        database = None
        workers = [1] if db == "sqlite" else [int(n) for n in args.workers.split(",")]
        if db == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp / 'bench.sqlite3'}"
        else:  # a database of its own, dropped afterwards
            import asyncpg  # noqa: F401  (fails fast if missing)
            from sqlalchemy.engine import make_url

            database = f"bench_inbound_{os.getpid()}_{random.randrange(10**6)}"
            psql("postgres", f'CREATE DATABASE "{database}"')
            url = make_url(PG_URL).set(database=database).render_as_string(hide_password=False)
        try:
            refs_file = str(tmp / f"refs-{db}.txt")
            loader = run_server(["--serve", "preload", "--database", url, "--refs", refs_file,
                                 "--requests", str(requests * len(workers))])
            if loader.wait() != 0:
                raise SystemExit("preload failed")
            refs = Path(refs_file).read_text().split()
            pairs, confirmed = measure(db, url, database, workers, refs, floor_bodies, args.seconds, args.rounds,
                                       args.concurrency, args.pin_load)
            results.extend(pairs)
            ok, lines = asyncio.run(durability(url, confirmed))
            checks.append((db, ok, dict(confirmed), lines))
        finally:
            if database is not None:
                psql("postgres", f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    pinned = f", load generator pinned to CPU {args.pin_load}" if args.pin_load is not None else ""
    print(f"\nInbound supplyingAgencyMessage, {args.concurrency} concurrent clients, {args.seconds:.0f} s each, "
          f"in {args.rounds} alternating rounds{pinned}; {os.cpu_count()} CPUs")
    print(f"Mix: {MIX_TEXT}.")
    print("CPU µs/msg: each server process's own CPU time over its rounds, per message it answered; "
          "db µs/msg: the PostgreSQL server processes serving the bench database.\n")
    print("| variant | msgs/s | vs floor | p50 ms | p99 ms | CPU µs/msg | db µs/msg |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for floor, r in results:
        for row in (floor, r):
            db_cpu = f"{row['backends']:.0f}" if row["backends"] is not None else ""
            print(f"| {row['name']} | {row['throughput']:,.0f} | {row['throughput'] / floor['throughput']:.2f} "
                  f"| {row['p50']:.1f} | {row['p99']:.1f} | {row['cpu']} | {db_cpu} |")
    for db, ok, confirmed, lines in checks:
        print(f"\nDurability, {db}: {'PASS' if ok else 'FAIL'} (confirmed, warm-up included: {confirmed})")
        for line in lines:
            print("  " + line)
    if not all(ok for _, ok, _, _ in checks):
        sys.exit(1)


if __name__ == "__main__":
    main()
