"""Lending service on a real database: incoming requests, staff answers, borrower messages."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from gateway.config import Partner
from gateway.core import BorrowingPolicy
from gateway.core.lending import (
    AnswerRenew, CheckIn, LendingPolicy, LendingStatus as L, MarkUnfilled, OfferConditions, Ship, WillSupply,
)
from gateway.messages import Version, decode, encode, model
from gateway.messages.codes import Action, ReasonForMessage, RequestType, ServiceType, Status, YesNo
from gateway.service.context import ServiceContext
from gateway.service.lending import LendingService
from gateway.service.writer import Writer
from gateway.store.models import history_t, lending_requests_t, outbox_t

OURS, BORROWER = "ISIL:DK-LEND", "ISIL:US-BORROW"
T0 = datetime(2026, 11, 27, 9, 0, tzinfo=timezone.utc)  # a Friday


class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self):
        return self.now


def request(ref="R-1", version=Version.V2017, request_type=RequestType.New, title="Middlemarch",
            service_type=ServiceType.Loan) -> bytes:
    return encode(model.Request(
        header=model.RequestHeader(supplying_agency_id=model.AgencyId.parse(OURS),
                                   requesting_agency_id=model.AgencyId.parse(BORROWER), timestamp=T0,
                                   requesting_agency_request_id=ref),
        bibliographic_info=model.BibliographicInfo(title=title, author="Eliot, George"),
        service_info=model.ServiceInfo(request_type=request_type, service_type=service_type),
    ), version)


def requester_message(action: Action, ref="R-1", note=None, minute=1) -> bytes:
    return encode(model.RequestingAgencyMessage(
        header=model.RequestingAgencyMessageHeader(
            supplying_agency_id=model.AgencyId.parse(OURS), requesting_agency_id=model.AgencyId.parse(BORROWER),
            timestamp=T0 + timedelta(minutes=minute), requesting_agency_request_id=ref),
        action=action, note=note), Version.V2017)


@pytest.fixture
async def lending(engine):
    ctx = ServiceContext(OURS, {BORROWER: Partner(BORROWER, "Borrower", "http://127.0.0.1:9/b")}, BorrowingPolicy())
    writer = Writer(engine)
    clock = Clock()
    service = LendingService(writer, ctx, LendingPolicy(expire_after_days=2, exclude_weekends=True), clock)
    yield service
    await writer.close()


async def receive(service, data: bytes):
    return decode(await service.receive(decode(data), data)).message


async def table(engine, t):
    async with engine.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(select(t).order_by(t.c.id))]


async def sent(engine):
    return [decode(o["body"]).message for o in await table(engine, outbox_t)]


async def test_incoming_request_becomes_a_new_lending_request(lending, engine):
    reply = await receive(lending, request())
    assert reply.confirmation_header.message_status.value == "OK"
    row = (await table(engine, lending_requests_t))[0]
    assert (row["status"], row["requesting_agency"], row["requesting_agency_request_id"]) == ("NEW", BORROWER, "R-1")
    assert row["title"] == "Middlemarch" and row["raw_request_id"]
    again = await lending.receive(decode(request()), request())
    assert decode(again).message.confirmation_header.message_status.value == "OK"
    assert len(await table(engine, lending_requests_t)) == 1
    reused = await receive(lending, request(title="Another book"))
    assert "already in use" in reused.error_data[0].error_value


async def test_loan_lifecycle_sends_valid_messages(lending, engine):
    await receive(lending, request(version=Version.V2021))
    lid = (await table(engine, lending_requests_t))[0]["id"]
    await lending.apply(lid, WillSupply(at=T0, by="staff:eve"))
    due = T0 + timedelta(days=28)
    await lending.apply(lid, Ship(at=T0, by="staff:eve", due_date=due, item_ids=("3901",)))
    assert (await receive(lending, requester_message(Action.Received))).confirmation_header.message_status.value == "OK"
    await receive(lending, requester_message(Action.Renew, minute=2))
    await lending.apply(lid, AnswerRenew(at=T0, by="staff:eve", answer=YesNo.Y, due_date=due + timedelta(days=14)))
    await receive(lending, requester_message(Action.ShippedReturn, minute=3))
    await lending.apply(lid, CheckIn(at=T0, by="staff:eve"))
    row = (await table(engine, lending_requests_t))[0]
    assert row["status"] == L.LOAN_COMPLETED.value
    messages = await sent(engine)
    assert [(m.status_info.status, m.message_info.reason_for_message) for m in messages] == [
        (Status.WillSupply, ReasonForMessage.RequestResponse),
        (Status.Loaned, ReasonForMessage.StatusChange),
        (Status.Loaned, ReasonForMessage.RenewResponse),
        (Status.LoanCompleted, ReasonForMessage.StatusChange),
    ]
    assert messages[1].delivery_info.item_id == ["3901"] and messages[1].status_info.due_date == due
    assert messages[2].message_info.answer_yes_no is YesNo.Y
    assert all(m.header.requesting_agency_request_id == "R-1" for m in messages)
    history = await table(engine, history_t)
    assert {h["actor"] for h in history} >= {"staff:eve", BORROWER}


async def test_status_request_is_answered_with_the_current_status(lending, engine):
    await receive(lending, request())
    lid = (await table(engine, lending_requests_t))[0]["id"]
    await lending.apply(lid, WillSupply(at=T0, by="staff"))
    await receive(lending, requester_message(Action.StatusRequest))
    last = (await sent(engine))[-1]
    assert last.message_info.reason_for_message is ReasonForMessage.StatusRequestResponse
    assert last.status_info.status is Status.WillSupply


async def test_conditions_in_2017_keep_costs_and_conditions(lending, engine):
    await receive(lending, request())
    lid = (await table(engine, lending_requests_t))[0]["id"]
    from decimal import Decimal
    await lending.apply(lid, OfferConditions(at=T0, by="staff", loan_conditions=("LibraryUseOnly",),
                                             offered_costs=((Decimal("12.50"), "EUR"),)))
    message = (await sent(engine))[-1]
    assert message.message_info.offered_costs.monetary_value == Decimal("12.50")
    assert "Condition: LibraryUseOnly" in message.message_info.note


async def test_unknown_request_is_refused_and_late_message_after_the_end_changes_nothing(lending, engine):
    reply = await receive(lending, requester_message(Action.Received, ref="R-404"))
    assert "no lending request 'R-404'" in reply.error_data[0].error_value
    await receive(lending, request())
    lid = (await table(engine, lending_requests_t))[0]["id"]
    await lending.apply(lid, MarkUnfilled(at=T0, by="staff", reason_unfilled="NotHeld"))
    before = (await table(engine, lending_requests_t))[0]
    late = await receive(lending, requester_message(Action.ShippedReturn))
    after = (await table(engine, lending_requests_t))[0]
    assert late.confirmation_header.message_status.value == "OK"  # crossed our Unfilled: recorded only
    assert after["status"] == before["status"] == "UNFILLED"
    events = [h["event"] for h in await table(engine, history_t) if h["lending_id"] == lid]
    assert events[-1] != "unfilled"  # the late message is on the record


async def test_unanswered_request_expires_after_two_weekdays(lending, engine):
    await receive(lending, request())
    lending.clock.now = T0 + timedelta(days=3)  # Monday: one weekday passed
    assert await lending.tick() == []
    lending.clock.now = T0 + timedelta(days=4, hours=1)  # Tuesday after 09:00
    assert len(await lending.tick()) == 1
    row = (await table(engine, lending_requests_t))[0]
    assert row["status"] == "UNFILLED"
    assert (await sent(engine))[-1].status_info.status is Status.Unfilled
