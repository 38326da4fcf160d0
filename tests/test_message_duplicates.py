"""A message repeated by a partner is recognised by its meaning, not its bytes.

Real gateway on loopback, real HTTP, SQLite and PostgreSQL: a copy that differs only in
indentation gets the stored confirmation and changes nothing; a message with the same header
timestamp but another value is a message of its own (docs/message-order-and-duplicates.md).
"""

from __future__ import annotations

from datetime import datetime, timezone

from alembic import command
from lxml import etree
from sqlalchemy import func, insert, select

from gateway.core import RequestDetails
from gateway.messages import Version, decode, encode, model
from gateway.messages.codes import Action, ReasonForMessage, ServiceType, Status
from gateway.messages.identity import content_sha256
from gateway.store import db
from gateway.store.models import borrowing_requests_t, general_messages_t, history_t, raw_messages_t

from support.gateway_helpers import OURS, start_gateway

LENDER = "ISIL:DK-DUP"
BORROWER = "ISIL:DK-DUPB"
XML = {"Content-Type": "application/xml"}
T = datetime(2026, 11, 28, 10, 0, tzinfo=timezone.utc)
PARTNERS = [{"agency": LENDER, "url": "http://127.0.0.1:9/lender"},
            {"agency": BORROWER, "url": "http://127.0.0.1:9/borrower"}]


def notification(ref: str, note: str) -> bytes:
    return encode(model.SupplyingAgencyMessage(
        header=model.SupplyingAgencyMessageHeader(
            supplying_agency_id=model.AgencyId.parse(LENDER), requesting_agency_id=model.AgencyId.parse(OURS),
            timestamp=T, requesting_agency_request_id=ref),
        message_info=model.MessageInfo(reason_for_message=ReasonForMessage.Notification, note=note),
        status_info=model.StatusInfo(status=Status.ExpectToSupply, last_change=T)), Version.V2017)


def reindented(data: bytes) -> bytes:
    """The same message as another serialiser might write it: indented, declaration, other quotes."""
    root = etree.fromstring(data, etree.XMLParser(remove_blank_text=True))
    pretty = etree.tostring(root, pretty_print=True, xml_declaration=True, encoding="UTF-8")
    assert pretty != data
    return pretty.replace(b"<?xml version='1.0' encoding='UTF-8'?>", b'<?xml version="1.0" encoding="UTF-8"?>')


async def post(client, data: bytes) -> bytes:
    response = await client.post("/iso18626", data=data, headers=XML)
    assert response.status == 200
    body = await response.read()
    assert decode(body).message.confirmation_header.message_status.value == "OK"
    return body


async def count(gateway, table) -> int:
    async with gateway.engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(table))).scalar_one()


async def borrowing_ref(gateway) -> str:
    created = await gateway.borrowing.create(RequestDetails(requester="p", pickup_location="Main", title="T"), (LENDER,))
    await gateway.borrowing.request_confirmed(created.request_id, LENDER)
    async with gateway.engine.connect() as conn:
        return (await conn.execute(select(borrowing_requests_t.c.external_id)
                                   .where(borrowing_requests_t.c.id == created.request_id))).scalar_one()


async def test_a_reindented_copy_of_a_notification_is_a_duplicate(aiohttp_client, db_url):
    client, gateway = await start_gateway(aiohttp_client, db_url, PARTNERS)
    ref = await borrowing_ref(gateway)
    first = notification(ref, "The item is at the bindery")
    confirmation = await post(client, first)
    before = [await count(gateway, t) for t in (raw_messages_t, history_t, general_messages_t)]
    again = await post(client, reindented(first))
    assert again == confirmation  # the stored confirmation, as for a byte-identical copy
    assert [await count(gateway, t) for t in (raw_messages_t, history_t, general_messages_t)] == before


async def test_same_timestamp_but_another_note_is_another_message(aiohttp_client, db_url):
    client, gateway = await start_gateway(aiohttp_client, db_url, PARTNERS)
    ref = await borrowing_ref(gateway)
    await post(client, notification(ref, "The item is at the bindery"))
    await post(client, reindented(notification(ref, "The item is at the bindery.")))
    assert await count(gateway, raw_messages_t) == 2
    async with gateway.engine.connect() as conn:
        notes = (await conn.execute(select(general_messages_t.c.text).order_by(general_messages_t.c.id))).scalars().all()
    assert notes == ["The item is at the bindery", "The item is at the bindery."]


def borrower_note(ref: str, note: str) -> bytes:
    return encode(model.RequestingAgencyMessage(
        header=model.RequestingAgencyMessageHeader(
            supplying_agency_id=model.AgencyId.parse(OURS), requesting_agency_id=model.AgencyId.parse(BORROWER),
            timestamp=T, requesting_agency_request_id=ref),
        action=Action.Notification, note=note), Version.V2017)


async def test_the_lending_side_recognises_a_reindented_copy_too(aiohttp_client, db_url):
    client, gateway = await start_gateway(aiohttp_client, db_url, PARTNERS)
    await post(client, encode(model.Request(
        header=model.RequestHeader(
            supplying_agency_id=model.AgencyId.parse(OURS), requesting_agency_id=model.AgencyId.parse(BORROWER),
            timestamp=T, requesting_agency_request_id="R-1"),
        bibliographic_info=model.BibliographicInfo(title="Moby Dick"),
        service_info=model.ServiceInfo(service_type=ServiceType.Loan)), Version.V2017))
    first = borrower_note("R-1", "Please hurry")
    confirmation = await post(client, first)
    before = [await count(gateway, t) for t in (raw_messages_t, history_t, general_messages_t)]
    assert await post(client, reindented(first)) == confirmation
    assert [await count(gateway, t) for t in (raw_messages_t, history_t, general_messages_t)] == before
    await post(client, borrower_note("R-1", "Please  hurry"))  # one more space inside the text: another message
    assert await count(gateway, raw_messages_t) == before[0] + 1


# --- the migration that introduced the key ------------------------------------------------------


async def test_migration_fills_the_content_key_and_keeps_earlier_duplicates(engine):
    await db._run_alembic_async(engine, lambda cfg: command.downgrade(cfg, "0004"))
    body = notification("BR-1", "hello")
    copy = reindented(body)
    common = {"direction": "in", "partner_agency": LENDER, "kind": "supplyingAgencyMessage",
              "requesting_agency": OURS, "requesting_agency_request_id": "BR-1",
              "message_timestamp": "2026-11-28T10:00:00Z", "received_at": T}
    old = set(raw_messages_t.c.keys()) - {"content_sha256"}
    async with engine.begin() as conn:  # stored twice under the byte key, before the fix
        for data, digest in ((body, "a" * 64), (copy, "b" * 64), (b"not xml", "c" * 64)):
            await conn.execute(insert(raw_messages_t).values(
                {k: v for k, v in {**common, "body": data, "body_sha256": digest}.items() if k in old}))
    await db.migrate_async(engine)
    async with engine.connect() as conn:
        rows = (await conn.execute(select(raw_messages_t.c.body_sha256, raw_messages_t.c.content_sha256)
                                   .order_by(raw_messages_t.c.id))).all()
    assert rows[0].content_sha256 == content_sha256(decode(body).root)
    assert len({r.content_sha256 for r in rows}) == 3  # both copies stay, each with a key of its own
    assert rows[2].content_sha256 == "c" * 64  # unparseable: its byte digest
