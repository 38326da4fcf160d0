"""Borrowing service on a real database (SQLite and PostgreSQL): steps are atomic and stored."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from gateway.config import Partner
from gateway.core import (
    BorrowingPolicy, BorrowingStatus as S, CancelRequest, IllegalTransition, LoanToPatron, Receive,
    RequestDetails, ReturnByPatron, ReturnToPartner,
)
from gateway.messages import Version, decode, encode, model
from gateway.messages.codes import Action, ReasonForMessage, Status, YesNo
from gateway.service.borrowing import BorrowingService, NotFound
from gateway.service.context import ServiceContext
from gateway.service.writer import Writer
from gateway.store.models import (
    borrowing_requests_t, history_t, outbox_t, raw_messages_t, received_items_t, rota_entries_t,
)

OURS = "ISIL:US-NjP"
P1, P2, P3 = "ISIL:DK-1", "ISIL:DK-2", "ISIL:DK-3"


class Clock:
    def __init__(self):
        self.now = datetime(2026, 11, 28, 9, 0, tzinfo=timezone.utc)

    def __call__(self):
        return self.now

    def advance(self, **kw):
        self.now += timedelta(**kw)


def make_ctx(**policy) -> ServiceContext:
    partners = {
        a: Partner(agency=a, name=a, url=f"http://127.0.0.1:9/{a}", version=v)
        for a, v in ((P1, Version.V2017), (P2, Version.V2021), (P3, Version.V2017))
    }
    return ServiceContext(OURS, partners, BorrowingPolicy(**policy), ({"name": "default", "partners": [P1, P2]},))


@pytest.fixture
async def service(engine):
    writer = Writer(engine)
    await writer.start()
    clock = Clock()
    svc = BorrowingService(writer, make_ctx(), clock)
    svc.clock_ = clock
    yield svc
    await writer.close()


def details(**kw) -> RequestDetails:
    return RequestDetails(requester="patron-42", pickup_location="Main desk", title="The Name of the Rose",
                          author="Eco, Umberto", isbn="9780151446476", **kw)


def supplier_message(request_ref: str, status: Status, *, partner=P1, reason=ReasonForMessage.StatusChange,
                     answer=None, version=Version.V2017, when=None, note=None, **status_info) -> bytes:
    when = when or datetime(2026, 11, 28, 10, 0, tzinfo=timezone.utc)
    message = model.SupplyingAgencyMessage(
        header=model.SupplyingAgencyMessageHeader(
            supplying_agency_id=model.AgencyId.parse(partner), requesting_agency_id=model.AgencyId.parse(OURS),
            timestamp=when, requesting_agency_request_id=request_ref, supplying_agency_request_id="L-1",
        ),
        message_info=model.MessageInfo(reason_for_message=reason, answer_yes_no=answer, note=note),
        status_info=model.StatusInfo(status=status, last_change=when, **status_info),
    )
    return encode(message, version)


async def rows(engine, table, **where):
    async with engine.connect() as conn:
        stmt = select(table)
        for k, v in where.items():
            stmt = stmt.where(table.c[k] == v)
        return [dict(r._mapping) for r in await conn.execute(stmt.order_by(table.c.id))]


async def deliver(service, data: bytes):
    return decode(await service.receive_supplier_message(decode(data), data)).message


async def test_create_sends_request_to_first_partner_of_the_default_rota(service, engine):
    result = await service.create(details())
    assert result.state.status is S.CREATED
    request = (await rows(engine, borrowing_requests_t))[0]
    assert request["requester"] == "patron-42" and request["active_partner"] == P1
    assert request["format"] == "Physical" and request["delivery_location"] == "library"
    rota = await rows(engine, rota_entries_t)
    assert [(r["agency"], r["state"]) for r in rota] == [(P1, "active"), (P2, "pending")]
    outbox = await rows(engine, outbox_t)
    assert len(outbox) == 1 and outbox[0]["partner_agency"] == P1 and outbox[0]["kind"] == "request"
    sent = decode(outbox[0]["body"])
    assert sent.kind == "request" and sent.version is Version.V2017
    assert sent.message.header.requesting_agency_request_id == request["external_id"]
    assert sent.message.bibliographic_info.title == "The Name of the Rose"
    history = await rows(engine, history_t)
    assert history[0]["event"] == "create" and history[0]["to_status"] == "CREATED"


async def test_full_lifecycle_is_stored_with_its_history(service, engine):
    created = await service.create(details(), partners=(P1,))
    rid = created.request_id
    ref = (await rows(engine, borrowing_requests_t))[0]["external_id"]
    await service.request_confirmed(rid, P1)
    reply = await deliver(service, supplier_message(ref, Status.WillSupply, reason=ReasonForMessage.RequestResponse))
    assert reply.confirmation_header.message_status.value == "OK"
    due = datetime(2026, 12, 28, tzinfo=timezone.utc)
    await deliver(service, supplier_message(ref, Status.Loaned, due_date=due,
                                            when=datetime(2026, 11, 29, tzinfo=timezone.utc)))
    now = service.clock
    await service.apply(rid, Receive(at=now(), by="staff:ann", items=("39015012345678",)))
    await service.apply(rid, LoanToPatron(at=now(), by="staff:ann"))
    await service.apply(rid, ReturnByPatron(at=now(), by="staff:ann"))
    await service.apply(rid, ReturnToPartner(at=now(), by="staff:ann"))
    await deliver(service, supplier_message(ref, Status.LoanCompleted, when=datetime(2026, 12, 20, tzinfo=timezone.utc)))
    request = (await rows(engine, borrowing_requests_t))[0]
    assert request["status"] == "COMPLETED"
    history = await rows(engine, history_t, request_id=rid)
    path = [(h["from_status"], h["to_status"]) for h in history if h["from_status"] != h["to_status"]]
    assert path == [
        (None, "CREATED"), ("CREATED", "REQUEST_SENT"), ("REQUEST_SENT", "WILL_SUPPLY"),
        ("WILL_SUPPLY", "SHIPPED_PHYSICALLY"),
        ("SHIPPED_PHYSICALLY", "RECEIVED_PHYSICALLY"), ("RECEIVED_PHYSICALLY", "LOANED_TO_PATRON"),
        ("LOANED_TO_PATRON", "RETURNED_BY_PATRON"), ("RETURNED_BY_PATRON", "RETURNED_TO_PARTNER"),
        ("RETURNED_TO_PARTNER", "COMPLETED"),
    ]
    assert {h["actor"] for h in history} >= {"staff:ann", P1}
    assert all(h["raw_message_id"] for h in history if h["actor"] == P1 and h["event"] != "request_confirmed")
    assert request["due_date"] == due
    items = await rows(engine, received_items_t)
    assert [i["barcode"] for i in items] == ["39015012345678"]
    sent = [decode(o["body"]).message for o in await rows(engine, outbox_t)]
    assert [getattr(m, "action", None) for m in sent] == [None, Action.Received, Action.ShippedReturn]


async def test_duplicate_message_gets_the_stored_confirmation_and_changes_nothing(service, engine):
    rid = (await service.create(details(), partners=(P1,))).request_id
    ref = (await rows(engine, borrowing_requests_t))[0]["external_id"]
    await service.request_confirmed(rid, P1)
    data = supplier_message(ref, Status.WillSupply)
    first = await service.receive_supplier_message(decode(data), data)
    second = await service.receive_supplier_message(decode(data), data)
    assert first == second
    assert len(await rows(engine, raw_messages_t)) == 1
    will = [h for h in await rows(engine, history_t) if h["to_status"] == "WILL_SUPPLY" and h["from_status"] != "WILL_SUPPLY"]
    assert len(will) == 1


async def test_unknown_request_and_foreign_agency_and_illegal_transition_are_refused(service, engine):
    rid = (await service.create(details(), partners=(P1,))).request_id
    ref = (await rows(engine, borrowing_requests_t))[0]["external_id"]
    before = (await rows(engine, borrowing_requests_t))[0]
    unknown = await deliver(service, supplier_message("BR-NOPE", Status.Loaned))
    assert unknown.error_data[0].error_type.value == "UnrecognisedDataValue"
    assert "BR-NOPE" in unknown.error_data[0].error_value
    stranger = await deliver(service, supplier_message(ref, Status.Loaned, partner=P3))
    assert "not in the rota" in stranger.error_data[0].error_value
    await service.request_confirmed(rid, P1)
    overdue = await deliver(service, supplier_message(ref, Status.Overdue))
    assert overdue.confirmation_header.message_status.value == "ERROR"
    assert "refused in status REQUEST_SENT" in overdue.error_data[0].error_value
    after = (await rows(engine, borrowing_requests_t))[0]
    assert after["status"] == "REQUEST_SENT" and after["version"] == before["version"] + 1  # only the confirmation


async def test_staff_illegal_action_raises_and_changes_nothing(service, engine):
    rid = (await service.create(details(), partners=(P1,))).request_id
    before = (await rows(engine, borrowing_requests_t))[0]
    with pytest.raises(IllegalTransition):
        await service.apply(rid, ReturnToPartner(at=service.clock(), by="staff"))
    with pytest.raises(NotFound):
        await service.apply(rid + 100, ReturnToPartner(at=service.clock(), by="staff"))
    assert (await rows(engine, borrowing_requests_t))[0]["version"] == before["version"]
    assert len(await rows(engine, outbox_t)) == 1


async def test_unfilled_three_times_expires(engine):
    writer = Writer(engine)
    svc = BorrowingService(writer, make_ctx(end_of_rota="expire"))
    rid = (await svc.create(details(), partners=(P1, P2, P3))).request_id
    ref = (await rows(engine, borrowing_requests_t))[0]["external_id"]
    for partner, version in ((P1, Version.V2017), (P2, Version.V2021), (P3, Version.V2017)):
        await svc.request_confirmed(rid, partner)
        reply = await deliver(svc, supplier_message(ref, Status.Unfilled, partner=partner, version=version,
                                                    reason=ReasonForMessage.RequestResponse))
        assert reply.confirmation_header.message_status.value == "OK"
    request = (await rows(engine, borrowing_requests_t))[0]
    assert request["status"] == "EXPIRED"
    outbox = await rows(engine, outbox_t)
    assert [(o["partner_agency"], decode(o["body"]).version) for o in outbox] == [
        (P1, Version.V2017), (P2, Version.V2021), (P3, Version.V2017)]
    await writer.close()


async def test_cancel_with_active_partner_waits_for_response(service, engine):
    rid = (await service.create(details(), partners=(P1,))).request_id
    ref = (await rows(engine, borrowing_requests_t))[0]["external_id"]
    await service.request_confirmed(rid, P1)
    await deliver(service, supplier_message(ref, Status.WillSupply))
    result = await service.apply(rid, CancelRequest(at=service.clock(), by="staff:bo", reason="patron left",
                                                     note="no longer needed", notify_patron=True))
    assert result.state.status is S.WAITING_FOR_CANCEL_RESPONSE
    await deliver(service, supplier_message(ref, Status.WillSupply, reason=ReasonForMessage.CancelResponse, answer=YesNo.N))
    assert (await rows(engine, borrowing_requests_t))[0]["status"] == "WILL_SUPPLY"


async def test_deadline_sends_status_request_then_moves_on(engine):
    writer = Writer(engine)
    clock = Clock()
    svc = BorrowingService(writer, make_ctx(deadline=timedelta(days=2), grace=timedelta(days=1)), clock)
    rid = (await svc.create(details(), partners=(P1, P2))).request_id
    await svc.request_confirmed(rid, P1)
    assert await svc.tick() == []
    clock.advance(days=2, minutes=1)
    assert await svc.tick() == [rid]
    actions = [getattr(decode(o["body"]).message, "action", None) for o in await rows(engine, outbox_t)]
    assert actions == [None, Action.StatusRequest]
    clock.advance(days=1, minutes=1)
    assert await svc.tick() == [rid]
    outbox = await rows(engine, outbox_t)
    assert [(o["partner_agency"], getattr(decode(o["body"]).message, "action", None)) for o in outbox][-2:] == [
        (P1, Action.Cancel), (P2, None)]
    rota = await rows(engine, rota_entries_t)
    assert [(r["agency"], r["state"]) for r in rota] == [(P1, "cancelled"), (P2, "active")]
    await writer.close()


async def test_concurrent_messages_for_one_request_lose_no_update(engine):
    """Many steps at once for one request: each applies on top of the previous one."""
    writer = Writer(engine, max_batch=8)
    svc = BorrowingService(writer, make_ctx())
    rid = (await svc.create(details(), partners=(P1,))).request_id
    await svc.request_confirmed(rid, P1)
    ref = (await rows(engine, borrowing_requests_t))[0]["external_id"]
    from gateway.core import AddNote, SendMessage
    notes = [svc.apply(rid, AddNote(at=svc.clock(), by=f"staff:{i}", text=f"note {i}")) for i in range(20)]
    msgs = [svc.apply(rid, SendMessage(at=svc.clock(), by=f"staff:{i}", note=f"msg {i}")) for i in range(10)]
    partner = [deliver(svc, supplier_message(ref, Status.WillSupply, reason=ReasonForMessage.Notification,
                                             note=f"partner says {i}", when=datetime(2026, 11, 28, 10, i, tzinfo=timezone.utc))) for i in range(10)]
    await asyncio.gather(*notes, *msgs, *partner)
    request = (await rows(engine, borrowing_requests_t))[0]
    async with engine.connect() as conn:
        from gateway.store.models import general_messages_t, notes_t
        n_notes = (await conn.execute(select(func.count()).select_from(notes_t))).scalar()
        n_msgs = (await conn.execute(select(func.count()).select_from(general_messages_t))).scalar()
    assert n_notes == 20 and n_msgs == 20
    assert request["version"] == 1 + 1 + 20 + 10 + 10
    assert writer.batches < writer.steps  # grouped
    await writer.close()


async def test_two_writers_on_one_database_lose_no_update(engine, db_url):
    """Two writers (as two gateway processes would have) update one request at the same moment."""
    from gateway.core import AddNote
    from gateway.store.db import make_engine

    other_engine = make_engine(db_url)
    first, second = Writer(engine, max_batch=4), Writer(other_engine, max_batch=4)
    svc1, svc2 = BorrowingService(first, make_ctx()), BorrowingService(second, make_ctx())
    rid = (await svc1.create(details(), partners=(P1,))).request_id
    jobs = []
    for i in range(15):
        jobs.append(svc1.apply(rid, AddNote(at=svc1.clock(), by="staff:a", text=f"a{i}")))
        jobs.append(svc2.apply(rid, AddNote(at=svc2.clock(), by="staff:b", text=f"b{i}")))
    await asyncio.gather(*jobs)
    request = (await rows(engine, borrowing_requests_t))[0]
    assert request["version"] == 1 + 30
    from gateway.store.models import notes_t
    assert len(await rows(engine, notes_t)) == 30
    await first.close()
    await second.close()
    await other_engine.dispose()
