"""Staff workflow gaps on a real gateway (loopback, SQLite and PostgreSQL): rota moves that
change nothing, staff cancelling the last partner, a Cancel the partner never answers, and
unread incoming general messages."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import update

from gateway.messages.codes import Action, ReasonForMessage, Status
from gateway.store.models import rota_entries_t

from test_api_lending import LR, incoming, requester_message
from support.api_helpers import BR, P1, P2, P3, Clock, action_names, error_code, start_api


@pytest.fixture
async def api(db_url, aiohttp_client):
    return await start_api(aiohttp_client, db_url)


def _moves(data) -> int:
    return [h["event"] for h in data["history"]].count("move_partner")


# --- rota moves that change nothing --------------------------------------------------------------


@pytest.mark.parametrize("body, message", [
    ({"op": "move-up", "agency": P1}, "already first"),
    ({"op": "move-down", "agency": P3}, "already last"),
    ({"op": "move-selected", "agencies": [P2], "position": 2}, "already start at position 2"),
    ({"op": "move-selected", "agencies": [P3, P3], "position": 1}, "selected twice"),
])
async def test_a_rota_move_that_changes_nothing_is_refused_and_not_logged(api, body, message):
    request = await api.create(partners=[P1, P2, P3])
    status, data = await api.post(f"{BR}/{request['id']}/rota", body)
    assert status == 422, data
    assert error_code(data) == "invalid_field" and message in data["error"]["message"]
    assert data["error"]["field"] == ("agencies" if body["op"] == "move-selected" else "agency")
    after = await api.request(request["id"])
    assert after["version"] == request["version"] and _moves(after) == 0
    assert [e["agency"] for e in after["rota"]] == [P1, P2, P3]


# --- staff cancelling the last partner -------------------------------------------------------------


@pytest.mark.parametrize("end_of_rota", ["expire", "review"])
async def test_cancelling_the_only_partner_leaves_the_request_ready_for_another(db_url, aiohttp_client, end_of_rota):
    api = await start_api(aiohttp_client, db_url, policy={"end_of_rota": end_of_rota})
    request = await api.create(partners=[P1])
    await api.confirmed(request["id"])
    status, data = await api.action(request["id"], "cancel-partner", {"note": "found it locally"})
    assert status == 200, data
    assert data["status"] == "REJECTED_BY_PARTNER" and data["needs_attention"]
    assert data["attention"] == ["rota_exhausted"] and data["active_partner"] is None
    assert {"locate", "cancel"} <= set(action_names(data))
    status, data = await api.post(f"{BR}/{request['id']}/rota", {"op": "add", "agency": P2})
    assert status == 200 and data["status"] == "REJECTED_BY_PARTNER"
    status, data = await api.action(request["id"], "locate")
    assert status == 200 and data["status"] == "READY_TO_SEND" and data["active_partner"] == P2
    assert not data["needs_attention"]


# --- a Cancel the partner never answers ---------------------------------------------------------------


async def test_an_unanswered_cancel_needs_attention_and_idle_ticks_write_nothing(db_url, aiohttp_client):
    clock = Clock()
    api = await start_api(aiohttp_client, db_url, clock=clock)  # response deadline: 72 hours
    request = await api.create(partners=[P1])
    rid = request["id"]
    await api.confirmed(rid)
    clock.advance(hours=1)
    status, data = await api.action(rid, "cancel", {"reason": "patron left"})
    assert status == 200 and data["status"] == "WAITING_FOR_CANCEL_RESPONSE" and not data["needs_attention"]
    assert data["rota"][0]["deadline_at"] == (clock.now + timedelta(hours=72)).isoformat()
    status, refused = await api.action(rid, "treat-as-cancelled")
    assert status == 409 and "not overdue" in refused["error"]["message"]

    clock.advance(hours=71, minutes=30)  # past the request's own deadline, not the Cancel's
    assert await api.gateway.borrowing.tick() == []
    idle = await api.request(rid)
    assert (idle["version"], idle["updated_at"], idle["history"]) == (data["version"], data["updated_at"],
                                                                      data["history"])

    clock.advance(hours=1)
    assert await api.gateway.borrowing.tick() == [rid]
    flagged = await api.request(rid)
    assert flagged["status"] == "WAITING_FOR_CANCEL_RESPONSE" and flagged["needs_attention"]
    assert flagged["attention"] == ["cancel_overdue"] and flagged["rota"][0]["deadline_at"] is None
    assert {"treat-as-cancelled", "resume-request"} <= set(action_names(flagged))
    listed = (await api.get(f"{BR}?needs_attention=true"))[1]["items"]
    assert [item["id"] for item in listed] == [rid]

    for _ in range(3):  # nothing is due any more: the row is left alone
        clock.advance(hours=1)
        assert await api.gateway.borrowing.tick() == []
    again = await api.request(rid)
    assert (again["version"], again["updated_at"]) == (flagged["version"], flagged["updated_at"])

    status, done = await api.action(rid, "treat-as-cancelled", {"note": "no answer by phone either"})
    assert status == 200 and done["status"] == "CANCELED_BY_STAFF" and not done["needs_attention"]
    assert done["history"][-1]["actor"] == "staff:ann"


async def test_staff_resume_a_request_whose_cancel_was_never_answered(db_url, aiohttp_client):
    clock = Clock()
    api = await start_api(aiohttp_client, db_url, clock=clock)
    request = await api.create(partners=[P1])
    await api.confirmed(request["id"])
    await api.action(request["id"], "cancel")
    clock.advance(hours=73)
    await api.gateway.borrowing.tick()
    status, data = await api.action(request["id"], "resume-request")
    assert status == 200 and data["status"] == "REQUEST_SENT" and not data["needs_attention"]
    assert data["cancel"] is None and data["active_partner"] == P1
    status, data = await api.action(request["id"], "resume-request")
    assert status == 409


async def test_a_tick_that_changes_nothing_writes_nothing_and_repairs_a_stale_deadline(db_url, aiohttp_client):
    clock = Clock()
    api = await start_api(aiohttp_client, db_url, clock=clock)
    request = await api.create(partners=[P1])
    await api.confirmed(request["id"])
    await api.supplier(request, Status.ExpectToSupply, reason=ReasonForMessage.RequestResponse)
    before = await api.request(request["id"])
    assert before["status"] == "EXPECTED_TO_SUPPLY" and before["rota"][0]["deadline_at"] is None
    async with api.gateway.engine.begin() as conn:  # a deadline left behind by an older version
        await conn.execute(update(rota_entries_t).values(deadline_at=clock.now - timedelta(hours=1)))
    clock.advance(hours=1)
    assert await api.gateway.borrowing.tick() == [request["id"]]
    after = await api.request(request["id"])
    assert (after["version"], after["updated_at"], after["history"]) == (
        before["version"], before["updated_at"], before["history"])
    assert after["rota"][0]["deadline_at"] is None
    assert await api.gateway.borrowing.tick() == []  # not visited again


# --- unread incoming general messages -------------------------------------------------------------


async def test_a_partners_general_message_is_unread_until_staff_mark_it_read(api):
    request = await api.create(partners=[P1, P2])
    rid = request["id"]
    await api.confirmed(rid)
    await api.supplier(request, Status.WillSupply, reason=ReasonForMessage.RequestResponse)
    status, sent = await api.post(f"{BR}/{rid}/messages", {"text": "Any news?"})
    assert status == 201 and sent["read_at"] is not None  # our own message is not "unread"
    assert not (await api.request(rid))["needs_attention"]

    await api.supplier(request, Status.WillSupply, reason=ReasonForMessage.Notification,
                       note="Shipping on Monday", seconds=1)
    await api.supplier(request, Status.WillSupply, reason=ReasonForMessage.Notification,
                       note="Sorry, Tuesday", seconds=2)
    data = await api.request(rid)
    assert data["status"] == "WILL_SUPPLY" and data["needs_attention"]
    assert data["attention"] == ["message_unread"] and data["unread_messages"] == 2
    assert [(m["direction"], m["read_at"] is None) for m in data["general_messages"]] == [
        ("out", False), ("in", True), ("in", True)]
    assert "mark-messages-read" in action_names(data) and "acknowledge" not in action_names(data)
    listed = (await api.get(f"{BR}?needs_attention=true"))[1]["items"]
    assert [(i["id"], i["unread_messages"], i["attention_reason"]) for i in listed] == [(rid, 2, "message_unread")]

    status, data = await api.action(rid, "mark-messages-read", {"note": "x"})
    assert status == 422 and data["error"]["field"] == "note"  # bad input changes nothing
    status, data = await api.action(rid, "mark-messages-read")
    assert status == 200 and not data["needs_attention"] and data["unread_messages"] == 0
    assert all(m["read_at"] is not None for m in data["general_messages"])
    assert data["history"][-1]["event"] == "mark_messages_read" and data["history"][-1]["actor"] == "staff:ann"
    listed = (await api.get(BR))[1]["items"]
    assert [(i["id"], i["unread_messages"], i["needs_attention"]) for i in listed] == [(rid, 0, False)]
    status, again = await api.action(rid, "mark-messages-read")
    assert status == 409 and error_code(again) == "illegal_transition"


async def test_marking_messages_read_leaves_other_reasons_for_attention(api):
    request = await api.create(partners=[P1])
    rid = request["id"]
    await api.confirmed(rid)
    await api.supplier(request, Status.WillSupply, reason=ReasonForMessage.RequestResponse,
                       costs=Decimal("12.50"))  # conditions: staff must answer them
    await api.supplier(request, Status.WillSupply, reason=ReasonForMessage.Notification,
                       note="Please confirm the fee", seconds=1)
    data = await api.request(rid)
    assert data["attention"] == ["conditions_offered", "message_unread"]
    status, data = await api.action(rid, "mark-messages-read")
    assert status == 200 and data["attention"] == ["conditions_offered"] and data["needs_attention"]


async def test_a_borrowers_general_message_is_unread_on_the_lending_side(api):
    lid = await incoming(api, "REQ-UNREAD")
    status, data = await api.get(f"{LR}/{lid}")
    assert status == 200 and data["unread_messages"] == 0 and not data["needs_attention"]
    await requester_message(api, "REQ-UNREAD", Action.Notification, note="Is it on the shelf?")
    status, data = await api.get(f"{LR}/{lid}")
    assert data["needs_attention"] and data["attention"] == ["message_unread"] and data["unread_messages"] == 1
    assert data["general_messages"][-1]["read_at"] is None
    assert "mark-messages-read" in action_names(data)
    status, listed = await api.get(f"{LR}?needs_attention=true")
    assert [(i["id"], i["unread_messages"]) for i in listed["items"]] == [(lid, 1)]
    status, data = await api.post(f"{LR}/{lid}/actions/mark-messages-read")
    assert status == 200 and not data["needs_attention"] and data["unread_messages"] == 0
    assert data["general_messages"][-1]["read_at"] is not None
    status, data = await api.post(f"{LR}/{lid}/actions/mark-messages-read")
    assert status == 409
