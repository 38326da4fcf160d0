"""End to end: two real gateways (and the mock partner) talking ISO 18626 over loopback HTTP.

A is the borrowing gateway, B a lending gateway, C the mock partner (a third lending agency whose
behaviour each request picks with `MOCK:<SYMBOL>:<SCENARIO>` in its note). Each gateway has its own
SQLite file, its own outbox worker and scheduler. Staff steps go through the services
(`gateway.borrowing.apply`, `gateway.lending.apply`), exactly what the staff API calls; everything
between the two gateways travels as XML over HTTP. After each lifecycle every stored message (both
directions, and the confirmation that answered it) must validate against the REFERENCE XSD of its
version, and both sides' histories must show the expected status path.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal
from datetime import timedelta
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import select

from gateway.runtime import Gateway
from gateway.core import (
    AcceptConditions, CancelRequest, Close, LoanToPatron, Receive, RejectConditions, Renew, RequestDetails,
    RetryRequest, ReturnByPatron, ReturnToPartner,
)
from gateway.core.lending import (
    AnswerCancel, AnswerRenew, CheckIn, CompleteCopy, MarkOverdue, MarkUnfilled, OfferConditions, OfferRetry,
    Recall, Ship, WillSupply,
)
from gateway.demo import (
    Loopback, Node, borrowing_row, history_rows, lending_row, raw_messages, status_path, wait_for, wait_lending,
    wait_status,
)
from gateway.messages import MessageError, Version, decode
from gateway.messages.codes import YesNo
from gateway.store.models import history_t, rota_entries_t

from support.messages_helpers import REFERENCE, reference_valid

NS = "http://illtransactions.org/2013/iso18626"
A, B, C = "ISIL:XX-A", "ISIL:XX-B", "ISIL:XX-C"
VERSIONS = {"2017": Version.V2017, "2021": Version.V2021}
TIMEOUT = 10.0

HAVE_REFERENCE = all(p.is_file() for p in REFERENCE.values())
NO_REFERENCE = ("../shared/iso18626-reference is not beside the project: the lifecycle passed and its messages "
                "validate against our own schemas, but the reference XSDs could not be checked")


@dataclass
class Net:
    """A (borrower), B (lender), C (mock) on loopback, and the versions each side speaks to the other."""

    loop: Loopback
    a: Gateway
    b: Gateway
    c: Node
    versions: dict[tuple[str, str], str] = field(default_factory=dict)  # (node, partner agency) -> "2017"|"2021"

    # --- staff steps --------------------------------------------------------------------------

    async def create(self, title: str, partners: tuple[str, ...] = (B,), note: str | None = None,
                     **details: Any) -> Request:
        d = RequestDetails(requester="patron-7", pickup_location="Main desk", title=title, author="Eco, Umberto",
                           request_note=note, **details)
        result = await self.a.borrowing.create(d, partners, actor="staff:a")
        row = await borrowing_row(self.a, result.request_id)
        return Request(self, result.request_id, row["external_id"])

    # --- checks -------------------------------------------------------------------------------

    async def check_messages(self) -> int:
        """Every raw message and confirmation in both databases is written in the version configured
        for its partner and validates against our schema and the REFERENCE XSD of that version; every
        confirmation is OK; no history records a refused message, a conformance warning or an auth
        failure. Returns how many documents were checked (skips, after checking the rest, when the
        reference XSDs are absent)."""
        checked = 0
        problems = []
        for node, gateway in (("A", self.a), ("B", self.b)):
            rows = await raw_messages(gateway)
            assert rows, f"{node} stored no messages"
            for row in rows:
                version = VERSIONS[self.versions[(node, row["partner_agency"])]]
                for part in ("body", "confirmation"):
                    data = row[part]
                    assert data is not None, f"{node} raw message {row['id']} ({row['kind']}) has no {part}"
                    checked += 1
                    written = etree.fromstring(data).get(f"{{{NS}}}version")
                    if written != version.value:
                        problems.append(f"{node} raw {row['id']} {row['direction']} {row['kind']} {part}: "
                                        f"ill:version {written!r}, expected {version.value!r}")
                    try:
                        inbound = decode(data, version=version)  # our own schema
                    except MessageError as exc:
                        problems.append(f"{node} raw {row['id']} {row['direction']} {row['kind']} {part} "
                                        f"({version.label}, our schema): {exc}: {data[:300]!r}")
                        continue
                    if HAVE_REFERENCE and not reference_valid(data, version):
                        problems.append(f"{node} raw {row['id']} {row['direction']} {row['kind']} {part} "
                                        f"({version.label}, reference schema): {data[:300]!r}")
                    if part == "confirmation":
                        status = inbound.message.confirmation_header.message_status.value
                        if status != "OK":
                            problems.append(f"{node} raw {row['id']} {row['direction']} {row['kind']} was "
                                            f"confirmed {status}: {data[:600]!r}")
        for node, gateway in (("A", self.a), ("B", self.b)):
            async with gateway.engine.connect() as conn:
                odd = (await conn.execute(select(history_t.c.event, history_t.c.detail).where(
                    history_t.c.event.in_(("message_refused", "conformance_warning", "unknown_partner",
                                           "auth_failed"))))).all()
            problems += [f"{node} history: {event} {detail}" for event, detail in odd]
        assert not problems, "\n".join(problems)
        if not HAVE_REFERENCE:
            pytest.skip(NO_REFERENCE)
        return checked


@dataclass
class Request:
    net: Net
    id: int  # A's borrowing request id
    ref: str  # A's requestingAgencyRequestId

    async def staff(self, event_type: type, **kw: Any) -> None:
        await self.net.a.borrowing.apply(self.id, event_type(at=self.net.a.clock(), by="staff:a", **kw))

    async def lender(self, event_type: type, **kw: Any) -> None:
        row = await self.lending_row()
        await self.net.b.lending.apply(row["id"], event_type(at=self.net.b.clock(), by="staff:b", **kw))

    async def lending_row(self) -> dict[str, Any]:
        row = await lending_row(self.net.b, A, self.ref)
        assert row is not None, f"B has no lending request for {self.ref}"
        return row

    async def a_is(self, status: str) -> dict[str, Any]:
        return await wait_status(self.net.a, self.id, status, TIMEOUT)

    async def a_leaves(self, status: str) -> dict[str, Any]:
        async def check():
            row = await borrowing_row(self.net.a, self.id)
            return row if row["status"] != status else None

        return await wait_for(check, f"A's request to leave {status}", TIMEOUT)

    async def b_is(self, status: str) -> dict[str, Any]:
        return await wait_lending(self.net.b, A, self.ref, status, TIMEOUT)

    async def b_pending(self, what: str) -> None:
        async def check() -> bool:
            row = await lending_row(self.net.b, A, self.ref)
            return bool(row and row["extra"]["state"].get("pending") == what)

        await wait_for(check, f"B to see the borrower's {what}", TIMEOUT)

    async def a_path(self) -> list[str]:
        return await status_path(self.net.a, request_id=self.id)

    async def b_path(self) -> list[str]:
        return await status_path(self.net.b, lending_id=(await self.lending_row())["id"])

    async def rota(self) -> list[tuple[str, str]]:
        async with self.net.a.engine.connect() as conn:
            rows = (await conn.execute(
                select(rota_entries_t.c.agency, rota_entries_t.c.state)
                .where(rota_entries_t.c.request_id == self.id).order_by(rota_entries_t.c.position))).all()
        return [(agency, state) for agency, state in rows]

    async def ship(self, days: int = 28) -> None:
        await self.lender(Ship, due_date=self.net.b.clock() + timedelta(days=days), item_ids=("B-ITEM-1",))
        await self.a_is("SHIPPED_PHYSICALLY")
        await self.b_is("LOANED")

    async def give_back(self) -> None:
        """The patron brings the item back, A returns it to B, B checks it in: COMPLETED on A,
        LOAN_COMPLETED on B."""
        await self.staff(ReturnByPatron)
        await self.staff(ReturnToPartner, note="returned by mail")
        await self.b_is("RETURN_SHIPPED")
        await self.lender(CheckIn)
        await self.a_is("COMPLETED")
        await self.b_is("LOAN_COMPLETED")


@pytest.fixture
async def start(tmp_path):
    """start(version=..., **options) -> Net. `version`: what A and B speak to each other."""
    loops: list[Loopback] = []

    async def _start(version: str = "2017", *, c_deadline_hours: float | None = None,
                     b_deadline_hours: float | None = None, policy: dict[str, Any] | None = None,
                     c_delay: float = 0.02) -> Net:
        loop = Loopback(tmp_path)
        loops.append(loop)
        a_url, b_url, c_url = loop.reserve("A"), loop.reserve("B"), loop.reserve("C")
        c = await loop.start_mock("C", [C], {A: a_url}, delay=c_delay)
        b_partner = {"agency": B, "url": b_url, "version": version}
        if b_deadline_hours is not None:
            b_partner["response_deadline_hours"] = b_deadline_hours
        c_partner = {"agency": C, "url": c_url, "version": "2017"}
        if c_deadline_hours is not None:
            c_partner["response_deadline_hours"] = c_deadline_hours
        b = await loop.start_gateway("B", B, [{"agency": A, "url": a_url, "version": version}])
        a = await loop.start_gateway("A", A, [b_partner, c_partner], policy=policy)
        versions = {("A", B): version, ("A", C): "2017", ("B", A): version}
        return Net(loop, a.gateway, b.gateway, c, versions)  # type: ignore[arg-type]

    yield _start
    for loop in loops:
        await loop.close()


LOAN_PATH_A = ["CREATED", "REQUEST_SENT", "WILL_SUPPLY", "SHIPPED_PHYSICALLY", "RECEIVED_PHYSICALLY",
               "LOANED_TO_PATRON", "RETURNED_BY_PATRON", "RETURNED_TO_PARTNER", "COMPLETED"]
LOAN_PATH_B = ["NEW", "WILL_SUPPLY", "LOANED", "RETURN_SHIPPED", "LOAN_COMPLETED"]


async def loaned_to_patron(net: Net, title: str) -> Request:
    req = await net.create(title)
    await req.b_is("NEW")
    await req.a_is("REQUEST_SENT")
    await req.lender(WillSupply)
    await req.a_is("WILL_SUPPLY")
    await req.ship()
    await req.staff(Receive, items=("B-ITEM-1",))
    await req.staff(LoanToPatron)
    return req


# --- lifecycles -------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2017", "2021"])
async def test_loan(start, version):
    net = await start(version)
    req = await loaned_to_patron(net, "The Name of the Rose")
    row = await borrowing_row(net.a, req.id)
    assert row["due_date"] is not None and row["active_partner"] == B
    await req.give_back()
    assert await req.a_path() == LOAN_PATH_A
    assert await req.b_path() == LOAN_PATH_B
    assert await req.rota() == [(B, "supplied")]
    assert await net.check_messages() > 10


@pytest.mark.parametrize("version", ["2017", "2021"])
async def test_copy(start, version):
    net = await start(version)
    req = await net.create("On Literature, ch. 3", format="Digital", pages="12-30", agree_to_copyright_terms=True)
    assert (await borrowing_row(net.a, req.id))["service_type"] == "Copy"
    await req.b_is("NEW")
    assert (await req.lending_row())["service_type"] == "Copy"
    await req.a_is("REQUEST_SENT")
    await req.lender(CompleteCopy, url="https://b.example.org/copies/1.pdf", note="Copy attached")
    await req.a_is("SHIPPED_DIGITALLY")
    await req.b_is("COPY_COMPLETED")
    await req.staff(Close, note="patron got the PDF")
    await req.a_is("COMPLETED")
    assert await req.a_path() == ["CREATED", "REQUEST_SENT", "SHIPPED_DIGITALLY", "COMPLETED"]
    assert await req.b_path() == ["NEW", "COPY_COMPLETED"]
    await net.check_messages()


@pytest.mark.parametrize("version", ["2017", "2021"])
async def test_renew_granted(start, version):
    net = await start(version)
    req = await loaned_to_patron(net, "Baudolino")
    old_due = (await borrowing_row(net.a, req.id))["due_date"]
    await req.staff(Renew, note="patron needs two more weeks")
    await req.a_is("RENEW_REQUESTED")
    await req.b_pending("renew")
    new_due = net.b.clock() + timedelta(days=42)
    await req.lender(AnswerRenew, answer=YesNo.Y, due_date=new_due)
    row = await req.a_is("RENEWED_BY_PARTNER")
    assert row["due_date"] > old_due
    assert abs((row["due_date"].replace(tzinfo=None) - new_due.replace(tzinfo=None)).total_seconds()) < 2
    await req.give_back()
    assert await req.a_path() == [*LOAN_PATH_A[:6], "RENEW_REQUESTED", "RENEWED_BY_PARTNER", *LOAN_PATH_A[6:]]
    assert await req.b_path() == LOAN_PATH_B
    await net.check_messages()


async def test_renew_refused(start):
    net = await start()
    req = await loaned_to_patron(net, "Baudolino")
    old_due = (await borrowing_row(net.a, req.id))["due_date"]
    await req.staff(Renew)
    await req.b_pending("renew")
    await req.lender(AnswerRenew, answer=YesNo.N, note="another reader is waiting")
    row = await req.a_is("RENEW_NOT_ACCEPTED")
    assert row["due_date"] == old_due
    await req.give_back()
    assert await req.a_path() == [*LOAN_PATH_A[:6], "RENEW_REQUESTED", "RENEW_NOT_ACCEPTED", *LOAN_PATH_A[6:]]
    assert await req.b_path() == LOAN_PATH_B
    await net.check_messages()


async def test_overdue(start):
    net = await start("2021")
    req = await loaned_to_patron(net, "The Prague Cemetery")
    await req.lender(MarkOverdue, note="please return")
    await req.a_is("OVERDUE")
    await req.b_is("OVERDUE")
    await req.give_back()
    assert await req.a_path() == [*LOAN_PATH_A[:6], "OVERDUE", *LOAN_PATH_A[6:]]
    assert await req.b_path() == ["NEW", "WILL_SUPPLY", "LOANED", "OVERDUE", "RETURN_SHIPPED", "LOAN_COMPLETED"]
    await net.check_messages()


async def test_recall(start):
    net = await start()
    req = await loaned_to_patron(net, "Numero Zero")
    await req.lender(Recall, due_date=net.b.clock() + timedelta(days=3), note="needed back")
    row = await req.a_is("RECALLED")
    assert row["due_date"] < net.a.clock() + timedelta(days=4)
    await req.b_is("RECALLED")
    await req.give_back()
    assert await req.a_path() == [*LOAN_PATH_A[:6], "RECALLED", *LOAN_PATH_A[6:]]
    assert await req.b_path() == ["NEW", "WILL_SUPPLY", "LOANED", "RECALLED", "RETURN_SHIPPED", "LOAN_COMPLETED"]
    await net.check_messages()


@pytest.mark.parametrize("version", ["2017", "2021"])
async def test_cancel_accepted(start, version):
    net = await start(version)
    req = await net.create("The Island of the Day Before")
    await req.b_is("NEW")
    await req.a_is("REQUEST_SENT")
    await req.staff(CancelRequest, reason="no longer needed", notify_patron=True)
    await req.a_is("WAITING_FOR_CANCEL_RESPONSE")
    await req.b_pending("cancel")
    await req.lender(AnswerCancel, answer=YesNo.Y)
    await req.a_is("CANCELED_BY_STAFF")
    await req.b_is("CANCELLED")
    assert await req.a_path() == ["CREATED", "REQUEST_SENT", "WAITING_FOR_CANCEL_RESPONSE", "CANCELED_BY_STAFF"]
    assert await req.b_path() == ["NEW", "CANCELLED"]
    assert await req.rota() == [(B, "cancelled")]
    await net.check_messages()


async def test_cancel_refused(start):
    net = await start()
    req = await net.create("The Island of the Day Before")
    await req.b_is("NEW")
    await req.lender(WillSupply)
    await req.a_is("WILL_SUPPLY")
    await req.staff(CancelRequest, reason="no longer needed")
    await req.a_is("WAITING_FOR_CANCEL_RESPONSE")
    await req.b_pending("cancel")
    await req.lender(AnswerCancel, answer=YesNo.N, note="already packed")
    await req.a_is("WILL_SUPPLY")  # the previous status is restored
    await req.b_is("WILL_SUPPLY")
    await req.ship()
    assert await req.a_path() == ["CREATED", "REQUEST_SENT", "WILL_SUPPLY", "WAITING_FOR_CANCEL_RESPONSE",
                                  "WILL_SUPPLY", "SHIPPED_PHYSICALLY"]
    assert await req.b_path() == ["NEW", "WILL_SUPPLY", "LOANED"]
    await net.check_messages()


OFFERS = {
    "conditions": {"loan_conditions": ("LibraryUseOnly",)},
    "costs": {"offered_costs": ((Decimal("12.50"), "USD"),)},
    "both": {"loan_conditions": ("LibraryUseOnly",), "offered_costs": ((Decimal("12.50"), "USD"),)},
}


# In 2017 an offer's loan conditions travel in the note (loanCondition lives in deliveryInfo only);
# the borrowing side reads them from there.


@pytest.mark.parametrize("version,offer", [
    ("2017", "costs"), ("2021", "conditions"), ("2021", "costs"), ("2021", "both"),
    ("2017", "conditions"), ("2017", "both"),
])
async def test_conditions_accepted(start, version, offer):
    net = await start(version)
    req = await net.create("Kant and the Platypus")
    await req.b_is("NEW")
    await req.a_is("REQUEST_SENT")
    await req.lender(OfferConditions, note="reading room only", **OFFERS[offer])
    row = await req.a_leaves("REQUEST_SENT")
    assert row["status"] == "CONDITIONAL"
    assert row["needs_attention"]
    entry = row["extra"]["state"]["rota"][0]
    if "loan_conditions" in OFFERS[offer]:
        assert entry["loan_conditions"] == ["LibraryUseOnly"]
    if "offered_costs" in OFFERS[offer]:
        assert entry["offered_costs"], entry
    await req.b_is("CONDITIONAL")
    await req.staff(AcceptConditions, note="fine for us")
    await req.a_is("WILL_SUPPLY")
    await req.b_is("WILL_SUPPLY")  # the Notification ACCEPT arrived
    await req.ship()
    assert await req.a_path() == ["CREATED", "REQUEST_SENT", "CONDITIONAL", "WILL_SUPPLY", "SHIPPED_PHYSICALLY"]
    assert await req.b_path() == ["NEW", "CONDITIONAL", "WILL_SUPPLY", "LOANED"]
    await net.check_messages()


async def test_conditions_rejected_moves_to_the_next_partner(start):
    net = await start()
    req = await net.create("Kant and the Platypus", (B, C), note="MOCK:XX-C:LOANED")
    await req.b_is("NEW")
    await req.a_is("REQUEST_SENT")
    await req.lender(OfferConditions, offered_costs=((Decimal("15.00"), "EUR"),))
    row = await req.a_is("CONDITIONAL")
    assert row["extra"]["state"]["rota"][0]["offered_costs"]
    await req.staff(RejectConditions, note="too expensive")
    await req.b_is("CANCELLED")  # our Cancel answered its offer
    await req.a_is("SHIPPED_PHYSICALLY")  # C (the mock, LOANED) supplied it
    assert await req.rota() == [(B, "rejected"), (C, "supplied")]
    assert await req.a_path() == ["CREATED", "REQUEST_SENT", "CONDITIONAL", "REJECTED_BY_PARTNER", "REQUEST_SENT",
                                  "SHIPPED_PHYSICALLY"]
    assert await req.b_path() == ["NEW", "CONDITIONAL", "CANCELLED"]
    await net.check_messages()


@pytest.mark.parametrize("version", ["2017", "2021"])
async def test_retry(start, version):
    net = await start(version)
    req = await net.create("The Name of the Rose", edition="1st ed.")
    await req.b_is("NEW")
    await req.a_is("REQUEST_SENT")
    await req.lender(OfferRetry, reason_retry="NotFoundAsCited", note="which edition?")
    await req.a_is("RETRY_POSSIBLE")
    await req.b_is("RETRY_POSSIBLE")
    await req.staff(RetryRequest, changes={"edition": "2nd ed."}, note="second edition is fine")
    await req.b_is("NEW")
    assert (await req.lending_row())["extra"]["state"]["details"]["edition"] == "2nd ed."
    await req.a_is("REQUEST_SENT")
    await req.lender(WillSupply)
    await req.a_is("WILL_SUPPLY")
    await req.ship()
    assert await req.a_path() == ["CREATED", "REQUEST_SENT", "RETRY_POSSIBLE", "READY_TO_SEND", "REQUEST_SENT",
                                  "WILL_SUPPLY", "SHIPPED_PHYSICALLY"]
    assert await req.b_path() == ["NEW", "RETRY_POSSIBLE", "NEW", "WILL_SUPPLY", "LOANED"]
    await net.check_messages()


async def test_unfilled_advances_the_rota(start):
    net = await start("2021")
    req = await net.create("Foucault's Pendulum", (B, C), note="MOCK:XX-C:LOANED")
    await req.b_is("NEW")
    await req.lender(MarkUnfilled, reason_unfilled="NotOnShelf")
    await req.b_is("UNFILLED")
    await req.a_is("SHIPPED_PHYSICALLY")  # C loaned it
    assert await req.rota() == [(B, "rejected"), (C, "supplied")]
    assert await req.a_path() == ["CREATED", "REQUEST_SENT", "REJECTED_BY_PARTNER", "REQUEST_SENT",
                                  "SHIPPED_PHYSICALLY"]
    assert await req.b_path() == ["NEW", "UNFILLED"]
    await net.check_messages()


async def test_the_next_partner_gets_the_request_at_once(start):
    net = await start()
    req = await net.create("Foucault's Pendulum", (B, C), note="MOCK:XX-C:LOANED")
    await req.b_is("NEW")
    await req.lender(MarkUnfilled, reason_unfilled="NotHeld")
    await req.a_is("SHIPPED_PHYSICALLY")
    rows = await history_rows(net.a, request_id=req.id)
    moved = next(h["at"] for h in rows if h["event"] == "next_partner")
    sent = next(h["at"] for h in rows if h["event"] == "message_sent" and h["at"] >= moved)
    assert (sent - moved).total_seconds() < 0.4, f"the request to C left {(sent - moved).total_seconds():.2f} s later"


async def test_silent_partner_gets_a_status_request_then_the_rota_moves_on(start):
    """C confirms the request and never says anything more. After its deadline A asks for its status;
    after the grace period A cancels it and sends the request to B, which loans it."""
    net = await start(c_deadline_hours=0.0002, policy={"grace_hours": 0.0002}, c_delay=0.01)
    req = await net.create("Serendipities", (C, B), note="MOCK:XX-C:SILENT")
    await req.a_is("REQUEST_SENT")
    for _ in range(3):  # the scheduler ticks too; a direct tick must be harmless
        await net.a.borrowing.tick()
    await req.b_is("NEW")  # ~0.7 s deadline + ~0.7 s grace
    txns = net.c.mock.partner.txns  # type: ignore[union-attr]
    mock_in = [m.get("action") for t in txns for m in t.messages if m["direction"] == "in"]
    assert mock_in == [None, "StatusRequest", "Cancel"]
    await req.lender(WillSupply)
    await req.ship()
    assert await req.rota() == [(C, "cancelled"), (B, "supplied")]
    assert await req.a_path() == ["CREATED", "REQUEST_SENT", "REJECTED_BY_PARTNER", "REQUEST_SENT", "WILL_SUPPLY",
                                  "SHIPPED_PHYSICALLY"]
    assert await req.b_path() == ["NEW", "WILL_SUPPLY", "LOANED"]
    await net.check_messages()


async def test_unanswered_gateway_answers_the_status_request_and_keeps_the_request(start):
    """B's staff never act, but B's gateway answers A's StatusRequest by itself (RequestReceived): that
    is an answer, so A keeps the request with B (EXPECTED_TO_SUPPLY) rather than moving on."""
    net = await start(b_deadline_hours=0.0002, policy={"grace_hours": 0.0002})
    req = await net.create("Serendipities", (B, C), note="MOCK:XX-C:LOANED")
    await req.b_is("NEW")
    await req.a_is("EXPECTED_TO_SUPPLY")  # only after the deadline: B said nothing until asked
    b_events = [h["event"] for h in await history_rows(net.b, lending_id=(await req.lending_row())["id"])]
    assert "StatusRequest" in b_events
    await asyncio.sleep(1.0)  # well past the grace period
    for _ in range(3):
        await net.a.borrowing.tick()
    await req.a_is("EXPECTED_TO_SUPPLY")
    assert await req.rota() == [(B, "active"), (C, "pending")]
    assert not net.c.mock.partner.txns  # type: ignore[union-attr]
    assert await req.a_path() == ["CREATED", "REQUEST_SENT", "EXPECTED_TO_SUPPLY"]
    assert await req.b_path() == ["NEW"]
    await net.check_messages()
