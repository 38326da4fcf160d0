"""Several gateway processes on one PostgreSQL database (docs/multi-process.md): real `gateway
serve` subprocesses, each on its own port (so a test can choose which one gets a message) or
`gateway serve --workers 3` on one port, against a fresh schema of the run's database, with a
recording partner (the outbox tests' PartnerServer) in the test process.

- a burst of supplier messages, with exact duplicates and out-of-order statuses, sent to three
  processes at random: each message applied once, no status goes back, the history complete;
- kill -9 of a worker in the middle of a burst and of outbox delivery: the supervisor restarts
  it, every accepted message is there once, every outbox row reached the partner once (the
  recorded retry after an unknown outcome excepted), the timers fire once;
- a signed message replayed to a second process is refused;
- the same staff action posted to two processes at once: one wins, the other gets a 409;
- three migrations at once on a fresh schema, and `--workers` refused on SQLite.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select, text
from test_outbox import PartnerServer, details
from test_timer_leader import make_due, status_of, unfilled_messages

from gateway.config import parse_config
from gateway.core.borrowing.statuses import BorrowingStatus as S
from gateway.messages import Version, decode, encode, model
from gateway.messages.codes import ReasonForMessage, RequestType, ServiceType, Status
from gateway.runtime import Gateway
from gateway.store.db import current_revision, head_revision, make_engine, migrate_async
from gateway.store.models import (
    borrowing_requests_t, history_t, outbox_t, raw_messages_t, received_items_t, staff_accounts_t,
)
from gateway.transport.auth import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature
from gateway.workers import Supervisor, worker_command

ON_POSTGRESQL = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)

OURS, LENDER, SIGNER, BORROWER = "ISIL:US-MULTI", "ISIL:DK-MULTI", "ISIL:DK-SIGNED", "ISIL:US-BORROWS"
SECRET = "multi-process-secret"
STAFF_KEY = "staff-key-multi-0001"
XML = {"Content-Type": "application/xml"}
ROOT = Path(__file__).resolve().parents[1]
# The order of the statuses the burst moves a request through: none may follow a later one.
PHASES = [S.REQUEST_SENT, S.EXPECTED_TO_SUPPLY, S.WILL_SUPPLY, S.SHIPPED_PHYSICALLY]
BURST = [Status.ExpectToSupply, Status.WillSupply, Status.Loaned]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config_text(db_url: str, port: int, partner_url: str) -> str:
    return f'''
[gateway]
agency = "{OURS}"
listen = "127.0.0.1:{port}"
database = "{db_url}"
public_url = "http://127.0.0.1:{port}/iso18626"
tick_seconds = 0.2
leader_retry_seconds = 0.5
outbox_base_delay_seconds = 0.1
outbox_max_delay_seconds = 0.5
outbox_lease_margin_seconds = 1

[web]
session_secret = "{'s' * 40}"
demo_password = "demo-password-multi"

[[partners]]
agency = "{LENDER}"
name = "Lender"
url = "{partner_url}"
version = "2017"
timeout_seconds = 2

[[partners]]
agency = "{SIGNER}"
name = "Signing lender"
url = "{partner_url}"
version = "2017"
credentials = {{ inbound = {{ hmac_secret = "{SECRET}" }} }}

[[partners]]
agency = "{BORROWER}"
name = "Borrower"
url = "{partner_url}"
version = "2017"

[[rota_templates]]
name = "default"
partners = ["{LENDER}"]

[[api_keys]]
key = "{STAFF_KEY}"
role = "staff"
name = "ann"
'''


@dataclass
class Process:
    """A `gateway serve` subprocess (one process, or a supervisor with `--workers`), its log a file."""

    directory: Path
    port: int
    workers: int = 0
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config(self) -> Path:
        return self.directory / "gateway.toml"

    def log(self) -> str:
        path = self.directory / "gateway.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self, db_url: str, partner_url: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config.write_text(config_text(db_url, self.port, partner_url), encoding="utf-8")
        command = [sys.executable, "-m", "gateway.cli", "serve", "--config", str(self.config)]
        if self.workers:
            command += ["--workers", str(self.workers)]
        with (self.directory / "gateway.log").open("ab") as log:  # a file: a pipe nobody reads would fill
            self.proc = subprocess.Popen(command, stdout=log, stderr=log, cwd=self.directory)

    async def wait_ready(self) -> None:
        async with aiohttp.ClientSession() as session:
            for _ in range(600):
                assert self.proc is not None and self.proc.poll() is None, self.log()[-3000:]
                try:
                    async with session.get(self.url + "/readyz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError(f"gateway did not come up: {self.log()[-3000:]}")

    def stop(self, sig: int = signal.SIGKILL) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)


@dataclass
class Cluster:
    db_url: str
    partner: PartnerServer
    processes: list[Process] = field(default_factory=list)
    engine: object = None

    async def start(self, tmp_path: Path, count: int, workers: int = 0) -> list[Process]:
        made = [Process(tmp_path / f"p{i}", free_port(), workers) for i in range(count)]
        self.processes += made
        for process in made:
            process.start(self.db_url, self.partner.url)
        await asyncio.gather(*(p.wait_ready() for p in made))
        return made


@pytest.fixture
async def cluster(db_url, tmp_path):
    partner = await PartnerServer().start()
    made = Cluster(db_url, partner)
    made.engine = make_engine(db_url)
    try:
        yield made
    finally:
        for process in made.processes:
            process.stop()
        await partner.stop()
        await made.engine.dispose()


def local_gateway(db_url: str, partner_url: str) -> Gateway:
    """The test's own gateway parts on the database (its services only: nothing runs in the
    background), to create requests as staff would."""
    raw = tomllib.loads(config_text(db_url, 9, partner_url))  # the processes' own configuration
    return Gateway.create(parse_config(raw, env={}))


async def create_requests(cluster: Cluster, count: int) -> dict[str, int]:
    """`count` borrowing requests to LENDER, created here; the processes' outboxes send them.
    {external id: request id}, once every request went out."""
    gateway = local_gateway(cluster.db_url, cluster.partner.url)
    try:
        ids = [(await gateway.borrowing.create(details(f"Title {i}"), partners=(LENDER,))).request_id
               for i in range(count)]
    finally:
        await gateway.writer.close()
        await gateway.engine.dispose()

    async def all_sent() -> bool:
        return await statuses(cluster.engine) == {S.REQUEST_SENT: count}
    await eventually(all_sent, 20)
    async with cluster.engine.connect() as conn:
        rows = (await conn.execute(select(borrowing_requests_t.c.external_id, borrowing_requests_t.c.id)
                                   .where(borrowing_requests_t.c.id.in_(ids)))).all()
    return {ref: request_id for ref, request_id in rows}


async def statuses(engine) -> Counter:
    async with engine.connect() as conn:
        return Counter((await conn.execute(select(borrowing_requests_t.c.status))).scalars().all())


async def eventually(check, timeout: float = 20.0) -> float:
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < timeout, "not reached in time"
        await asyncio.sleep(0.1)
    return time.monotonic() - started


def supplier_message(ref: str, status: Status, when: datetime, sender: str = LENDER) -> bytes:
    return encode(model.SupplyingAgencyMessage(
        header=model.SupplyingAgencyMessageHeader(
            supplying_agency_id=model.AgencyId.parse(sender), requesting_agency_id=model.AgencyId.parse(OURS),
            timestamp=when, requesting_agency_request_id=ref, supplying_agency_request_id=f"L-{ref}"),
        message_info=model.MessageInfo(reason_for_message=ReasonForMessage.StatusChange),
        status_info=model.StatusInfo(status=status, last_change=when)), Version.V2017)


def burst(refs: list[str], copies: int, seed: int) -> list[bytes]:
    """Each request's three status messages (header timestamps one second apart), each `copies`
    times, all shuffled: duplicates, and later statuses before earlier ones."""
    base = datetime.now(timezone.utc).replace(microsecond=0)
    messages = [supplier_message(ref, status, base + timedelta(seconds=i))
                for ref in refs for i, status in enumerate(BURST)] * copies
    random.Random(seed).shuffle(messages)
    return messages


async def post(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict | None = None) -> tuple[int, bytes]:
    async with session.post(url + "/iso18626", data=body, headers={**XML, **(headers or {})}) as response:
        return response.status, await response.read()


def confirmed_ok(reply: bytes) -> bool:
    return decode(reply).message.confirmation_header.message_status.value == "OK"


async def send_at_random(urls: list[str], messages: list[bytes], seed: int,
                         accept_failures: bool = False) -> list[bytes]:
    """Each message to one of `urls` at random, eight at a time, each on a new connection;
    the messages confirmed OK. Without `accept_failures` every one must be."""
    chooser, gate = random.Random(seed), asyncio.Semaphore(8)
    confirmed: list[bytes] = []

    async def one(session: aiohttp.ClientSession, body: bytes, url: str) -> None:
        async with gate:
            try:
                status, reply = await post(session, url, body)
            except aiohttp.ClientError:
                assert accept_failures, "a gateway process did not answer"
                return
        if status == 200 and confirmed_ok(reply):
            confirmed.append(body)
        else:
            assert accept_failures, (status, reply[:500])

    connector = aiohttp.TCPConnector(force_close=True)  # a connection per message, as partners do
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(one(session, body, chooser.choice(urls)) for body in messages))
    return confirmed


async def history_of(engine, request_id: int) -> list[dict]:
    async with engine.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(
            select(history_t).where(history_t.c.request_id == request_id).order_by(history_t.c.id))]


async def inbound_raw(engine, ref: str) -> list[dict]:
    async with engine.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(
            select(raw_messages_t.c.id, raw_messages_t.c.body).where(
                raw_messages_t.c.requesting_agency_request_id == ref, raw_messages_t.c.direction == "in"))]


async def assert_each_message_applied_once(engine, refs: dict[str, int], sent: set[bytes]) -> None:
    """Per request: every distinct message is stored once and has one history entry; the
    statuses only moved forward and ended at the latest one."""
    for ref, request_id in refs.items():
        mine = {body for body in sent if f"<ill:requestingAgencyRequestId>{ref}<".encode() in body}
        raw = await inbound_raw(engine, ref)
        assert sorted(r["body"] for r in raw) == sorted(mine), ref  # each once, none missing
        history = await history_of(engine, request_id)
        linked = Counter(h["raw_message_id"] for h in history if h["raw_message_id"] in {r["id"] for r in raw})
        assert set(linked) == {r["id"] for r in raw} and set(linked.values()) == {1}, (ref, history)
        moves = [h["to_status"] for h in history if h["from_status"] != h["to_status"] and h["to_status"]]
        order = [PHASES.index(S(status)) for status in moves if S(status) in PHASES]
        assert order == sorted(order) and len(set(order)) == len(order), (ref, moves)  # never back
        assert moves[-1] == S.SHIPPED_PHYSICALLY


# --- the tests ------------------------------------------------------------------------------------


@ON_POSTGRESQL
async def test_a_burst_to_three_processes_applies_each_message_once_in_order(cluster, tmp_path):
    processes = await cluster.start(tmp_path, 3)  # three start at once on a fresh schema: one migrates
    async with cluster.engine.connect() as conn:
        demo = (await conn.execute(select(func.count()).select_from(staff_accounts_t)
                                   .where(staff_accounts_t.c.username == "demo"))).scalar_one()
    assert demo == 1  # made once by whichever process came first, found by the others
    refs = await create_requests(cluster, 6)
    messages = burst(list(refs), copies=3, seed=1)
    confirmed = await send_at_random([p.url for p in processes], messages, seed=2)
    assert len(confirmed) == len(messages)  # duplicates and stale ones are confirmed OK too
    assert await statuses(cluster.engine) == {S.SHIPPED_PHYSICALLY: len(refs)}
    await assert_each_message_applied_once(cluster.engine, refs, set(messages))
    for process in processes:
        assert "Traceback" not in process.log(), process.log()[-3000:]


@ON_POSTGRESQL
async def test_kill_9_of_a_worker_during_a_burst_and_deliveries_loses_and_doubles_nothing(cluster, tmp_path):
    [supervisor] = await cluster.start(tmp_path, 1, workers=3)
    assert len(worker_pids(supervisor.log())) == 3
    refs = await create_requests(cluster, 6)
    cluster.partner.delays.extend([0.3] * 40)  # deliveries are in flight when the worker dies
    # Staff actions that queue outbox rows: a note to the partner on each request, through the API.
    notes = asyncio.gather(*(api(supervisor.url, "POST", f"/api/v1/borrowing-requests/{request_id}/messages",
                                 {"note": f"note {request_id}"}) for request_id in refs.values()))
    messages = burst(list(refs), copies=2, seed=3)
    sending = asyncio.ensure_future(send_at_random([supervisor.url], messages, seed=4, accept_failures=True))
    await asyncio.sleep(0.3)
    victim = worker_pids(supervisor.log())[2]
    os.kill(victim, signal.SIGKILL)
    confirmed = await sending
    note_replies = await notes
    # What was cut off with the dead worker is sent again, as a partner retries an unconfirmed message.
    missing = [body for body in messages if body not in set(confirmed)]
    assert await send_at_random([supervisor.url], missing, seed=5) == missing

    assert await statuses(cluster.engine) == {S.SHIPPED_PHYSICALLY: len(refs)}
    await assert_each_message_applied_once(cluster.engine, refs, set(messages))

    async def outbox_done() -> bool:
        async with cluster.engine.connect() as conn:
            states = Counter((await conn.execute(select(outbox_t.c.state))).scalars().all())
        return set(states) == {"delivered"}
    await eventually(outbox_done, 30)
    async with cluster.engine.connect() as conn:
        outbox = [dict(r._mapping) for r in await conn.execute(select(outbox_t))]
    # A note whose worker died before answering may still have committed: count from the database.
    noted = sum(1 for status, _ in note_replies if status in (200, 201))
    assert len(refs) + noted <= len(outbox) <= 2 * len(refs)
    received = Counter(g.body for g in cluster.partner.received)
    assert set(received) == {row["body"] for row in outbox}
    for row in outbox:
        # Once each; a second time only for a row a worker died sending (its outcome unknown, so
        # sent again once its lease ended: the partner's duplicate check absorbs it).
        assert 1 <= received[row["body"]] <= 1 + row["unknown_outcomes"], row

    # The supervisor said which worker died and started it again; the timers still fire once.
    async def reported() -> bool:
        return f"(pid {victim}) died: killed by SIGKILL" in supervisor.log()
    try:
        await eventually(reported)
    except AssertionError:
        raise AssertionError("\n".join(line for line in supervisor.log().splitlines()
                                        if "died" in line or "Error" in line or "started" in line)) from None

    async def restarted() -> bool:
        return len(worker_pids(supervisor.log())) == 4
    await eventually(restarted)
    await timers_fire_once(cluster, supervisor)
    assert supervisor.stop(signal.SIGTERM) == 0
    assert "all workers stopped" in supervisor.log()


def worker_pids(log: str) -> list[int]:
    """The pids of the workers in the order the supervisor started them."""
    import re

    return [int(pid) for pid in re.findall(r"worker \d+ started \(pid (\d+)\)", log)]


async def api(url: str, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        try:
            async with session.request(method, url + path, json=body,
                                       headers={"Authorization": f"Bearer {STAFF_KEY}"}) as response:
                return response.status, await response.json()
        except aiohttp.ClientError:  # the process answering it was killed
            return 0, {}


async def timers_fire_once(cluster: Cluster, target: Process) -> None:
    """An incoming request that falls due is expired once, by whichever process leads."""
    request = encode(model.Request(
        header=model.RequestHeader(supplying_agency_id=model.AgencyId.parse(OURS),
                                   requesting_agency_id=model.AgencyId.parse(BORROWER),
                                   timestamp=datetime.now(timezone.utc), requesting_agency_request_id="DUE-1"),
        bibliographic_info=model.BibliographicInfo(title="Falls due"),
        service_info=model.ServiceInfo(request_type=RequestType.New, service_type=ServiceType.Loan),
    ), Version.V2017)
    async with aiohttp.ClientSession() as session:
        status, reply = await post(session, target.url, request)
    assert status == 200 and confirmed_ok(reply)
    await make_due(cluster.engine, "DUE-1")

    async def expired() -> bool:
        return await status_of(cluster.engine, "DUE-1") == "UNFILLED"
    await eventually(expired)
    await asyncio.sleep(1.0)  # several more timer rounds: nothing expires twice
    assert (await unfilled_messages(cluster.engine))["DUE-1"] == 1


@ON_POSTGRESQL
async def test_a_signed_message_replayed_to_another_process_is_refused(cluster, tmp_path):
    first, second = await cluster.start(tmp_path, 2)
    body = supplier_message("NO-SUCH-REQUEST", Status.WillSupply, datetime.now(timezone.utc), sender=SIGNER)
    stamp = str(int(time.time()))
    headers = {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: signature(SECRET, stamp, body)}
    async with aiohttp.ClientSession() as session:
        status, reply = await post(session, first.url, body, headers)
        assert status == 200 and decode(reply).message.confirmation_header  # answered (an unknown request)
        status, reply = await post(session, second.url, body, headers)
        assert status == 401 and b"replayed HMAC signature" in reply
        status, _ = await post(session, first.url, body, headers)
        assert status == 401
    async with cluster.engine.connect() as conn:
        audited = (await conn.execute(select(history_t.c.detail).where(history_t.c.event == "auth_failed"))).scalars().all()
    assert len(audited) == 2 and all("replayed HMAC signature" in d["text"] for d in audited)


@ON_POSTGRESQL
async def test_the_same_staff_action_on_two_processes_one_wins_the_other_gets_409(cluster, tmp_path):
    first, second = await cluster.start(tmp_path, 2)
    refs = await create_requests(cluster, 3)
    when = datetime.now(timezone.utc)
    for ref in refs:
        confirmed = await send_at_random([first.url], [supplier_message(ref, Status.Loaned, when)], seed=6)
        assert len(confirmed) == 1
    for request_id in refs.values():
        path = f"/api/v1/borrowing-requests/{request_id}/actions/receive"
        body = {"items": [f"BC-{request_id}"]}
        replies = await asyncio.gather(api(first.url, "POST", path, body), api(second.url, "POST", path, body))
        codes = sorted(status for status, _ in replies)
        assert codes == [200, 409], replies
        refused = next(body for status, body in replies if status == 409)
        assert refused["error"]["code"] in ("illegal_transition", "conflict"), refused
        async with cluster.engine.connect() as conn:
            received = (await conn.execute(select(func.count()).select_from(received_items_t)
                                           .where(received_items_t.c.request_id == request_id))).scalar_one()
            status = (await conn.execute(select(borrowing_requests_t.c.status)
                                         .where(borrowing_requests_t.c.id == request_id))).scalar_one()
        history = await history_of(cluster.engine, request_id)
        assert status == S.RECEIVED_PHYSICALLY and received == 1
        moves = [h["event"] for h in history if h["to_status"] == S.RECEIVED_PHYSICALLY != h["from_status"]]
        assert len(moves) == 1, history  # received once


@ON_POSTGRESQL
async def test_three_migrations_at_once_on_a_fresh_schema_migrate_once(db_url):
    engines = [make_engine(db_url) for _ in range(3)]
    try:
        # Without the migration lock they block each other on the fresh schema: fail, do not hang.
        await asyncio.wait_for(asyncio.gather(*(migrate_async(engine) for engine in engines)), 60)
        assert await current_revision(engines[0]) == head_revision()
        async with engines[0].connect() as conn:
            versions = (await conn.execute(text("SELECT count(*) FROM alembic_version"))).scalar_one()
        assert versions == 1
    finally:
        for engine in engines:
            await engine.dispose()


def test_workers_on_sqlite_are_refused_with_exit_code_2(tmp_path):
    config = tmp_path / "gateway.toml"
    config.write_text(f'[gateway]\ndatabase = "sqlite+aiosqlite:///{tmp_path / "g.sqlite3"}"\n', encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "gateway.cli", "serve", "--config", str(config), "--workers", "3"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2
    assert "--workers above 1 needs PostgreSQL" in done.stderr
    assert not (tmp_path / "g.sqlite3").exists()  # refused before anything started


def test_each_worker_is_a_gateway_serve_process_of_the_same_configuration():
    assert worker_command("gw.toml", 2)[1:] == ["-m", "gateway.cli", "serve", "--worker", "2", "--config", "gw.toml"]
    assert "--config" not in worker_command(None, 1)


def test_processes_creating_the_session_secret_file_at_once_all_read_the_same_one(tmp_path):
    """Workers of one host share `[web] session_secret_file`: of several creating it at once, one
    publishes it whole and every one reads that secret, never a file still being written."""
    from concurrent.futures import ThreadPoolExecutor

    from gateway.web.session import _secret_from_file

    path = tmp_path / "var" / "session-secret"
    with ThreadPoolExecutor(8) as pool:
        secrets = set(pool.map(lambda _: _secret_from_file(path), range(32)))
    assert len(secrets) == 1 and len(secrets.pop()) >= 32
    assert [p.name for p in path.parent.iterdir()] == ["session-secret"]  # no draft left behind


def test_a_worker_that_keeps_dying_is_restarted_later_each_time_and_sigterm_stops_the_rest(caplog):
    """The supervisor alone, with stand-in workers: number 1 runs until stopped, number 2 exits at once."""
    import threading

    def command(number: int) -> list[str]:
        code = "import time; time.sleep(60)" if number == 1 else "raise SystemExit(3)"
        return [sys.executable, "-c", code]

    supervisor = Supervisor(command, 2, restart_delay=0.2, stop_grace=5)
    threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
    started = time.monotonic()
    assert supervisor.run() == 0
    assert time.monotonic() - started < 10
    one, two = supervisor.slots
    assert one.process.returncode == -signal.SIGTERM  # stopped by the supervisor
    assert two.process.returncode in (3, -signal.SIGTERM)  # died again, or was stopped while starting
    waits = [float(r.getMessage().rsplit(" in ", 1)[1].split()[0]) for r in caplog.records
             if r.getMessage().startswith("worker 2 (pid ")]
    assert len(waits) >= 2 and waits == [0.2 * 2 ** i for i in range(len(waits))]  # doubled each time
    assert all("died: exit code 3" in r.getMessage() for r in caplog.records if r.getMessage().startswith("worker 2 (pid"))
