"""`gateway demo`: a borrowing gateway, a lending gateway and the mock partner talking on loopback.

Everything runs in this process: three aiohttp applications on free loopback ports, each gateway
with its own SQLite file in a temporary directory. The demo plays four lifecycles through the
same service calls staff would make (`gateway.borrowing.apply`, `gateway.lending.apply`), waits
for the messages to travel, prints every request's status history as a table and exits 0 only if
each lifecycle ended as scripted (1 with what went wrong otherwise).

1. loan      the lending gateway answers WillSupply, ships; the borrower receives, lends to the
             patron, returns; the lender checks the item in: COMPLETED on both sides.
2. rota      two mock agencies answer Unfilled (`MOCK:<SYMBOL>:UNFILLED`), the third partner, the
             lending gateway, loans it.
3. condition the mock offers the loan on conditions (WillSupply + offered costs / loanCondition);
             staff accept (Notification "ACCEPT"); the mock ships (Loaned).
4. cancel    staff cancel before anything shipped; the lending gateway agrees (CancelResponse Y).

The loopback helpers (`Loopback`, `wait_for`, `status_path`, `history_rows`) are public: the
end-to-end tests start their gateways with them.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TextIO

from aiohttp import web
from sqlalchemy import select

from .app import build_app
from .config import parse_config
from .core import (
    AcceptConditions, CancelRequest, LoanToPatron, Receive, RequestDetails, ReturnByPatron, ReturnToPartner,
)
from .core.lending import AnswerCancel, CheckIn, Ship, WillSupply
from .messages import model
from .messages.codes import YesNo
from .mock.partner import MockConfig
from .mock.server import MockServer, make_app as make_mock_app, mock_of
from .runtime import Gateway
from .store.models import (
    borrowing_requests_t, history_t, lending_requests_t, raw_messages_t, rota_entries_t,
)

BORROWER = "ISIL:XX-DEMOBORROW"
LENDER = "ISIL:XX-DEMOLEND"
MOCK_A = "ISIL:XX-MOCKA"
MOCK_B = "ISIL:XX-MOCKB"


class DemoFailure(AssertionError):
    """A lifecycle did not go as scripted."""


# --- loopback helpers (also used by tests/test_e2e_two_gateways.py) ---------------------------------


def bind_loopback() -> socket.socket:
    """A socket bound to a free loopback port; serve on it with `web.SockSite` (no port race)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{host}:{port}/iso18626"


@dataclass
class Node:
    """One running application on loopback: a gateway (`gateway` set) or the mock (`mock` set)."""

    name: str
    agency: str
    url: str
    runner: web.AppRunner
    gateway: Gateway | None = None
    mock: MockServer | None = None

    async def close(self) -> None:
        await self.runner.cleanup()


@dataclass
class Loopback:
    """Start gateways and mock partners on loopback; `close()` stops them in reverse order.

    Reserve a socket per node first (`reserve`), so every configuration can name every URL, then
    `start_gateway` / `start_mock` on them."""

    folder: Path
    sockets: dict[str, socket.socket] = field(default_factory=dict)
    nodes: dict[str, Node] = field(default_factory=dict)

    def reserve(self, name: str) -> str:
        sock = self.sockets[name] = bind_loopback()
        return url_of(sock)

    def url(self, name: str) -> str:
        return url_of(self.sockets[name])

    async def _serve(self, name: str, app: web.Application) -> web.AppRunner:
        runner = web.AppRunner(app, shutdown_timeout=0.5, handle_signals=False)
        await runner.setup()
        await web.SockSite(runner, self.sockets[name]).start()
        return runner

    async def start_gateway(self, name: str, agency: str, partners: list[dict[str, Any]], *,
                            policy: dict[str, Any] | None = None, lending: dict[str, Any] | None = None,
                            tick_seconds: float = 0.05, outbox_base_delay: float = 0.01,
                            rota: list[str] | None = None, sections: dict[str, dict[str, Any]] | None = None) -> Node:
        """A gateway with its own SQLite file (and session secret file); `partners` are [[partners]]
        tables of the config, `sections` further sections (`{"web": {...}}`)."""
        if name not in self.sockets:
            self.reserve(name)
        db = self.folder / f"{name}.sqlite3"
        raw: dict[str, Any] = {
            "gateway": {
                "agency": agency, "listen": "127.0.0.1:0", "database": f"sqlite+aiosqlite:///{db}",
                "public_url": self.url(name), "tick_seconds": tick_seconds,
                "outbox_base_delay_seconds": outbox_base_delay, "outbox_max_delay_seconds": 0.5,
            },
            "policy": dict(policy or {}),
            "lending": dict(lending or {}),
            "partners": partners,
            "rota_templates": [{"name": "default", "partners": rota or [p["agency"] for p in partners]}],
            "web": {"session_secret_file": str(self.folder / f"{name}-session-secret")},
        }
        for section, values in (sections or {}).items():
            raw[section] = {**raw.get(section, {}), **values}
        gateway = Gateway.create(parse_config(raw, env={}))
        runner = await self._serve(name, build_app(gateway))
        node = self.nodes[name] = Node(name, agency, self.url(name), runner, gateway=gateway)
        return node

    async def start_mock(self, name: str, agencies: list[str], peers: dict[str, str], *,
                         delay: float = 0.02) -> Node:
        """The mock partner playing `agencies`, answering each requester at its `peers` URL."""
        if name not in self.sockets:
            self.reserve(name)
        config = MockConfig(agencies=[model.AgencyId.parse(a) for a in agencies], peers=dict(peers), delay=delay)
        app = make_mock_app(config)
        runner = await self._serve(name, app)
        node = self.nodes[name] = Node(name, agencies[0], self.url(name), runner, mock=mock_of(app))
        return node

    async def close(self) -> None:
        for node in reversed(list(self.nodes.values())):
            await node.close()
        self.nodes.clear()
        for sock in self.sockets.values():
            sock.close()
        self.sockets.clear()


async def wait_for(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 10.0,
                   interval: float = 0.02) -> Any:
    """Poll `check` until it returns something truthy (returned); DemoFailure after `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    while True:
        last = await check()
        if last:
            return last
        if loop.time() >= deadline:
            raise DemoFailure(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(interval)


async def _read(gateway: Gateway, stmt) -> list[dict[str, Any]]:
    async with gateway.engine.connect() as conn:
        return [dict(r._mapping) for r in (await conn.execute(stmt)).all()]


async def borrowing_row(gateway: Gateway, request_id: int) -> dict[str, Any]:
    rows = await _read(gateway, select(borrowing_requests_t).where(borrowing_requests_t.c.id == request_id))
    if not rows:
        raise DemoFailure(f"no borrowing request {request_id}")
    return rows[0]


async def lending_row(gateway: Gateway, requesting_agency: str, their_id: str) -> dict[str, Any] | None:
    rows = await _read(gateway, select(lending_requests_t).where(
        lending_requests_t.c.requesting_agency == requesting_agency,
        lending_requests_t.c.requesting_agency_request_id == their_id,
    ))
    return rows[0] if rows else None


async def history_rows(gateway: Gateway, *, request_id: int | None = None,
                       lending_id: int | None = None) -> list[dict[str, Any]]:
    t = history_t
    where = t.c.request_id == request_id if request_id is not None else t.c.lending_id == lending_id
    return await _read(gateway, select(t).where(where).order_by(t.c.id))


def path_of(rows: list[dict[str, Any]]) -> list[str]:
    """The statuses a request went through, in order (history rows that changed the status)."""
    path: list[str] = []
    for row in rows:
        to = row["to_status"]
        if to and to != row["from_status"] and (not path or path[-1] != to):
            path.append(to)
    return path


async def status_path(gateway: Gateway, *, request_id: int | None = None, lending_id: int | None = None) -> list[str]:
    return path_of(await history_rows(gateway, request_id=request_id, lending_id=lending_id))


async def raw_messages(gateway: Gateway) -> list[dict[str, Any]]:
    return await _read(gateway, select(raw_messages_t).order_by(raw_messages_t.c.id))


async def wait_status(gateway: Gateway, request_id: int, status: str, timeout: float = 10.0) -> dict[str, Any]:
    async def check():
        row = await borrowing_row(gateway, request_id)
        return row if row["status"] == status else None

    try:
        return await wait_for(check, f"borrowing request {request_id} to reach {status}", timeout)
    except DemoFailure as exc:
        row = await borrowing_row(gateway, request_id)
        raise DemoFailure(f"{exc}; it is {row['status']}, path "
                          f"{' → '.join(await status_path(gateway, request_id=request_id))}") from None


async def wait_lending(gateway: Gateway, requesting_agency: str, their_id: str, status: str,
                       timeout: float = 10.0) -> dict[str, Any]:
    async def check():
        row = await lending_row(gateway, requesting_agency, their_id)
        return row if row is not None and row["status"] == status else None

    try:
        return await wait_for(check, f"lending request for {their_id} to reach {status}", timeout)
    except DemoFailure as exc:
        row = await lending_row(gateway, requesting_agency, their_id)
        if row is None:
            raise DemoFailure(f"{exc}; the lender never received {their_id}") from None
        raise DemoFailure(f"{exc}; it is {row['status']}, path "
                          f"{' → '.join(await status_path(gateway, lending_id=row['id']))}") from None


# --- the demo ----------------------------------------------------------------------------------------


def _details(title: str, note: str | None = None, **kw: Any) -> RequestDetails:
    return RequestDetails(requester="patron-0042", requester_name="Ada Reader", pickup_location="Main desk",
                          title=title, author=kw.pop("author", "Eco, Umberto"), request_note=note, **kw)


@dataclass
class Lifecycle:
    name: str
    title: str
    request_id: int = 0
    external_id: str = ""
    expected_path: list[str] = field(default_factory=list)
    ok: bool = False
    error: str | None = None
    lender_path: list[str] = field(default_factory=list)


class Demo:
    def __init__(self, folder: Path, out: TextIO, timeout: float = 15.0):
        self.net = Loopback(folder)
        self.out = out
        self.timeout = timeout
        self.borrower: Gateway
        self.lender: Gateway
        self.mock: MockServer

    async def start(self) -> None:
        net = self.net
        borrower_url, lender_url, mock_url = net.reserve("borrower"), net.reserve("lender"), net.reserve("mock")
        mock = await net.start_mock("mock", [MOCK_A, MOCK_B], {BORROWER: borrower_url})
        self.mock = mock.mock  # type: ignore[assignment]
        self.lender = (await net.start_gateway("lender", LENDER, [
            {"agency": BORROWER, "name": "Demo borrowing library", "url": borrower_url, "version": "2017"},
        ])).gateway  # type: ignore[assignment]
        self.borrower = (await net.start_gateway("borrower", BORROWER, [
            {"agency": LENDER, "name": "Demo lending library (gateway)", "url": lender_url, "version": "2017"},
            {"agency": MOCK_A, "name": "Mock library A", "url": mock_url, "version": "2017"},
            {"agency": MOCK_B, "name": "Mock library B", "url": mock_url, "version": "2017"},
        ], rota=[LENDER])).gateway  # type: ignore[assignment]

    async def close(self) -> None:
        await self.net.close()

    # --- steps --------------------------------------------------------------------------------

    async def _create(self, life: Lifecycle, partners: tuple[str, ...], note: str | None = None) -> None:
        result = await self.borrower.borrowing.create(_details(life.title, note), partners, actor="staff:demo")
        life.request_id = result.request_id
        life.external_id = (await borrowing_row(self.borrower, result.request_id))["external_id"]

    async def _staff(self, life: Lifecycle, event_type: type, **kw: Any) -> None:
        event = event_type(at=self.borrower.clock(), by="staff:demo", **kw)
        await self.borrower.borrowing.apply(life.request_id, event)

    async def _lender_staff(self, life: Lifecycle, event_type: type, **kw: Any) -> None:
        row = await lending_row(self.lender, BORROWER, life.external_id)
        assert row is not None
        await self.lender.lending.apply(row["id"], event_type(at=self.lender.clock(), by="staff:lender", **kw))

    async def _borrower_is(self, life: Lifecycle, status: str) -> None:
        await wait_status(self.borrower, life.request_id, status, self.timeout)

    async def _lender_is(self, life: Lifecycle, status: str) -> None:
        await wait_lending(self.lender, BORROWER, life.external_id, status, self.timeout)

    async def loan(self, life: Lifecycle) -> None:
        await self._create(life, (LENDER,))
        await self._lender_is(life, "NEW")
        await self._lender_staff(life, WillSupply, note="On the shelf")
        await self._borrower_is(life, "WILL_SUPPLY")
        await self._lender_staff(life, Ship, due_date=self.lender.clock() + timedelta(days=28),
                                 item_ids=("39001-0042",))
        await self._borrower_is(life, "SHIPPED_PHYSICALLY")
        await self._lender_is(life, "LOANED")
        await self._staff(life, Receive, items=("39001-0042",))
        await self._staff(life, LoanToPatron)
        await self._staff(life, ReturnByPatron)
        await self._staff(life, ReturnToPartner, note="Sent back by mail")
        await self._lender_is(life, "RETURN_SHIPPED")
        await self._lender_staff(life, CheckIn)
        await self._borrower_is(life, "COMPLETED")
        await self._lender_is(life, "LOAN_COMPLETED")
        life.expected_path = ["CREATED", "REQUEST_SENT", "WILL_SUPPLY", "SHIPPED_PHYSICALLY", "RECEIVED_PHYSICALLY",
                              "LOANED_TO_PATRON", "RETURNED_BY_PATRON", "RETURNED_TO_PARTNER", "COMPLETED"]
        life.lender_path = ["NEW", "WILL_SUPPLY", "LOANED", "RETURN_SHIPPED", "LOAN_COMPLETED"]

    async def rota(self, life: Lifecycle) -> None:
        symbol_a, symbol_b = MOCK_A.split(":")[1], MOCK_B.split(":")[1]
        note = f"Demo rota: MOCK:{symbol_a}:UNFILLED MOCK:{symbol_b}:UNFILLED"
        await self._create(life, (MOCK_A, MOCK_B, LENDER), note)
        await self._lender_is(life, "NEW")  # after two Unfilled answers the request reached the lender
        await self._lender_staff(life, Ship, due_date=self.lender.clock() + timedelta(days=21))
        await self._borrower_is(life, "SHIPPED_PHYSICALLY")
        rota = await self._rota(life)
        expected = [(MOCK_A, "rejected"), (MOCK_B, "rejected"), (LENDER, "supplied")]
        if rota != expected:
            raise DemoFailure(f"rota ended as {rota}, expected {expected}")
        life.expected_path = ["CREATED", "REQUEST_SENT", "REJECTED_BY_PARTNER", "REQUEST_SENT",
                              "REJECTED_BY_PARTNER", "REQUEST_SENT", "SHIPPED_PHYSICALLY"]
        life.lender_path = ["NEW", "LOANED"]

    async def _rota(self, life: Lifecycle) -> list[tuple[str, str]]:
        rows = await _read(self.borrower, select(rota_entries_t.c.agency, rota_entries_t.c.state)
                           .where(rota_entries_t.c.request_id == life.request_id)
                           .order_by(rota_entries_t.c.position))
        return [(r["agency"], r["state"]) for r in rows]

    async def conditional(self, life: Lifecycle) -> None:
        symbol = MOCK_A.split(":")[1]
        await self._create(life, (MOCK_A,), f"Demo conditions: MOCK:{symbol}:CONDITIONAL")
        await self._borrower_is(life, "CONDITIONAL")
        row = await borrowing_row(self.borrower, life.request_id)
        state = row["extra"]["state"]
        entry = next(e for e in state["rota"] if e["partner"] == MOCK_A)
        if not (entry.get("offered_costs") or entry.get("loan_conditions")):
            raise DemoFailure(f"CONDITIONAL without conditions or costs on the rota entry: {entry}")
        await self._staff(life, AcceptConditions, note="we agree to the costs")
        await self._borrower_is(life, "SHIPPED_PHYSICALLY")
        sent = [m for t in self.mock.partner.txns if t.request_id == life.external_id for m in t.messages]
        statuses = [m["status"] for m in sent if m["direction"] == "out"]
        if statuses != ["WillSupply", "Loaned"]:
            raise DemoFailure(f"the mock sent {statuses}, expected WillSupply (with conditions) then Loaned")
        actions = [m.get("action") for m in sent if m["direction"] == "in" and m["kind"] == "requestingAgencyMessage"]
        if "Notification" not in actions:
            raise DemoFailure(f"the mock never got our acceptance (Notification); it got {actions}")
        life.expected_path = ["CREATED", "REQUEST_SENT", "CONDITIONAL", "WILL_SUPPLY", "SHIPPED_PHYSICALLY"]

    async def cancel(self, life: Lifecycle) -> None:
        await self._create(life, (LENDER,))
        await self._lender_is(life, "NEW")
        await self._borrower_is(life, "REQUEST_SENT")
        await self._staff(life, CancelRequest, reason="Patron no longer needs it", notify_patron=True)
        await self._borrower_is(life, "WAITING_FOR_CANCEL_RESPONSE")
        await wait_for(self._cancel_asked(life), "the lender to see the cancel request", self.timeout)
        await self._lender_staff(life, AnswerCancel, answer=YesNo.Y)
        await self._borrower_is(life, "CANCELED_BY_STAFF")
        await self._lender_is(life, "CANCELLED")
        life.expected_path = ["CREATED", "REQUEST_SENT", "WAITING_FOR_CANCEL_RESPONSE", "CANCELED_BY_STAFF"]
        life.lender_path = ["NEW", "CANCELLED"]

    def _cancel_asked(self, life: Lifecycle) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            row = await lending_row(self.lender, BORROWER, life.external_id)
            return bool(row and row["extra"]["state"].get("pending") == "cancel")

        return check

    # --- run and report -----------------------------------------------------------------------------

    async def run(self) -> list[Lifecycle]:
        lives = [
            Lifecycle("loan", "The Name of the Rose"),
            Lifecycle("rota", "Foucault's Pendulum"),
            Lifecycle("conditional", "Baudolino"),
            Lifecycle("cancel", "The Island of the Day Before"),
        ]
        steps = {"loan": self.loan, "rota": self.rota, "conditional": self.conditional, "cancel": self.cancel}

        async def play(life: Lifecycle) -> None:
            try:
                await steps[life.name](life)
                await self._check_paths(life)
                life.ok = True
            except Exception as exc:  # noqa: BLE001 - reported per lifecycle
                life.error = f"{type(exc).__name__}: {exc}" if not isinstance(exc, DemoFailure) else str(exc)

        await asyncio.gather(*(play(life) for life in lives))
        return lives

    async def _check_paths(self, life: Lifecycle) -> None:
        path = await status_path(self.borrower, request_id=life.request_id)
        if path != life.expected_path:
            raise DemoFailure(f"borrower path {' → '.join(path)}; expected {' → '.join(life.expected_path)}")
        if life.lender_path:
            row = await lending_row(self.lender, BORROWER, life.external_id)
            got = await status_path(self.lender, lending_id=row["id"]) if row else []
            if got != life.lender_path:
                raise DemoFailure(f"lender path {' → '.join(got)}; expected {' → '.join(life.lender_path)}")

    async def report(self, lives: list[Lifecycle]) -> None:
        for life in lives:
            self.out.write(f"\n== {life.name}: {life.title!r} — borrowing request {life.external_id or '(none)'} "
                           f"at {BORROWER} ==\n")
            if life.request_id:
                self.out.write(format_table(await history_rows(self.borrower, request_id=life.request_id)))
            row = await lending_row(self.lender, BORROWER, life.external_id) if life.external_id else None
            if row is not None:
                self.out.write(f"-- lending request LR-{row['id']} at {LENDER} --\n")
                self.out.write(format_table(await history_rows(self.lender, lending_id=row["id"])))
        self.out.write("\n")
        for life in lives:
            verdict = "OK" if life.ok else f"FAILED: {life.error}"
            self.out.write(f"{life.name:<12} {verdict}\n")


def format_table(rows: list[dict[str, Any]]) -> str:
    """History rows as an aligned text table: time, actor, event, from → to."""
    header = ("time", "actor", "event", "from → to")
    lines = [header]
    for row in rows:
        at: datetime = row["at"]
        when = (at.astimezone(timezone.utc) if at.tzinfo else at).strftime("%H:%M:%S.%f")[:-3]
        before, after = row["from_status"] or "", row["to_status"] or ""
        change = f"{before or '(new)'} → {after}" if before != after else (after or "")
        lines.append((when, row["actor"], row["event"], change))
    widths = [max(len(line[i]) for line in lines) for i in range(3)]
    out = []
    for i, line in enumerate(lines):
        out.append("  ".join(cell.ljust(widths[j]) for j, cell in enumerate(line[:3])) + "  " + line[3])
        if i == 0:
            out.append("  ".join("-" * w for w in widths) + "  " + "-" * max(len(line[3]) for line in lines))
    return "\n".join(s.rstrip() for s in out) + "\n"


async def run_demo(out: TextIO = sys.stdout, folder: str | Path | None = None, timeout: float = 15.0) -> int:
    """Play every lifecycle; print the tables; 0 if all ended as scripted, else 1."""
    started = time.monotonic()
    lives: list[Lifecycle] = []
    with tempfile.TemporaryDirectory(prefix="gateway-demo-") as tmp:
        demo = Demo(Path(folder or tmp), out, timeout)
        try:
            await demo.start()
            out.write(f"borrowing gateway {BORROWER} at {demo.net.url('borrower')}\n"
                      f"lending gateway   {LENDER} at {demo.net.url('lender')}\n"
                      f"mock partner      {MOCK_A}, {MOCK_B} at {demo.net.url('mock')}\n")
            lives = await demo.run()
            await demo.report(lives)
        except Exception as exc:  # noqa: BLE001 - the demo reports, it does not crash
            out.write(f"demo failed: {type(exc).__name__}: {exc}\n")
            out.flush()
            return 1
        finally:
            await demo.close()
    failed = [life for life in lives if not life.ok]
    out.write(f"{len(lives) - len(failed)} of {len(lives)} lifecycles ended as scripted "
              f"in {time.monotonic() - started:.1f} s\n")
    out.flush()
    return 1 if failed else 0


def cmd_demo(args: argparse.Namespace) -> int:
    return asyncio.run(run_demo(timeout=args.timeout))


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "demo", help="play four lifecycles between a borrowing gateway, a lending gateway and the mock partner",
        description="Starts a borrowing gateway, a lending gateway and the mock partner on loopback (each gateway "
                    "with its own SQLite file in a temporary folder), plays a loan, a rota that is unfilled twice "
                    "then loaned, a conditional loan whose conditions are accepted and a cancelled request, prints "
                    "each request's status history and exits 0 only if every lifecycle ended as scripted.",
    )
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for any one step (15)")
    parser.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (python -m gateway.demo) until gateway/cli.py registers `demo`."""
    parser = argparse.ArgumentParser(prog="gateway")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["demo", *(argv if argv is not None else sys.argv[1:])])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
