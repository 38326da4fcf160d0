"""The staff API's borrowing requests on a real gateway (loopback, SQLite and PostgreSQL):
the create contract, all tabs, edit, rota, messages, notes, parameters, attachments, every
action (and 404 / 409 / 422 for each), and the actor of every write in the history."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from aiohttp import FormData

from gateway.messages.codes import ReasonForMessage, Status

from support.api_helpers import BR, P1, P2, P3, action_names, error_code, start_api


@pytest.fixture
async def api(db_url, aiohttp_client):
    return await start_api(aiohttp_client, db_url)


# --- the contract ------------------------------------------------------------------------------


async def test_create_contract_returns_201_with_the_request(api):
    status, data = await api.post(BR, {
        "title": "The Name of the Rose", "author": "Eco, Umberto", "isbn": "9780151446476",
        "requester": "patron-42", "requester_name": "Ann Reader", "pickup_location": "Main desk",
        "format": "Physical", "requested_media": "book", "allow_other_format": True,
        "preferred_send_method": "mail", "language": "eng", "needed_by": "2027-03-01",
        "delivery_location": "library", "reading_room_only": False, "willing_to_pay": True,
        "needs_patron_information": False, "agree_to_copyright_terms": False, "maximum_fee": 12.5,
        "currency": "USD", "level_of_service": "normal", "request_note": "for a seminar",
        "partners": [P2, P1],
    })
    assert status == 201, data
    assert isinstance(data["id"], int) and data["external_id"].startswith("BR-")
    assert data["status"] == "CREATED" and data["status_label"] == "Created borrowing request"
    for key, value in {"title": "The Name of the Rose", "requester": "patron-42", "pickup_location": "Main desk",
                       "needed_by": "2027-03-01", "maximum_fee": "12.50", "allow_other_format": True,
                       "willing_to_pay": True, "requested_media": "book", "request_note": "for a seminar",
                       "currency": "USD", "service_type": "Loan"}.items():
        assert data[key] == value, key
    assert [(e["agency"], e["state"]) for e in data["rota"]] == [(P2, "active"), (P1, "pending")]
    assert {"agency", "state", "last_status", "position", "name"} <= set(data["rota"][0])
    assert data["rota"][0]["name"] == "Partner 2"
    first = data["history"][0]
    assert {"at", "actor", "event", "from_status", "to_status"} <= set(first)
    assert first["event"] == "create" and first["actor"] == "staff:ann" and first["to_status"] == "CREATED"
    assert data["active_partner"] == P2
    for tab in ("parameters", "general_messages", "notes", "received_items", "attachments"):
        assert not data[tab]
    assert "cancel" in action_names(data) and "receive" not in action_names(data)


async def test_create_without_partners_uses_the_default_rota_and_location(api):
    data = await api.create()
    assert [e["agency"] for e in data["rota"]] == [P1, P2]
    status, located = await api.post(f"{BR}/{data['id']}/actions/locate")
    assert status == 409  # a request to the active partner is under way
    empty = await api.create(partners=[])
    assert empty["status"] == "LOCATE_FAILED" and empty["needs_attention"]
    assert action_names(empty)[:1] == ["add-note"] and "locate" in action_names(empty)


async def test_get_has_every_tab_and_a_location_header(api):
    status, data = await api.post(BR, {"title": "T", "requester": "p", "pickup_location": "M"})
    assert status == 201
    response = await api.client.get(f"{BR}/{data['id']}", headers={"Authorization": "Bearer staff-key-0001"})
    got = await response.json()
    for tab in ("history", "rota", "parameters", "general_messages", "notes", "received_items", "attachments",
                "allowed_actions"):
        assert tab in got
    assert got == data | {"updated_at": got["updated_at"], "version": got["version"]}


@pytest.mark.parametrize("body, field", [
    ({"title": "T", "pickup_location": "M"}, "requester"),
    ({"title": "T", "requester": "p"}, "pickup_location"),
    ({"title": "T", "requester": "  ", "pickup_location": "M"}, "requester"),
    ({"title": "T", "requester": "p", "pickup_location": "M", "needed_by": "tomorrow"}, "needed_by"),
    ({"title": "T", "requester": "p", "pickup_location": "M", "needed_by": "2027-02-30"}, "needed_by"),
    ({"title": "T", "requester": "p", "pickup_location": "M", "maximum_fee": "12.345"}, "maximum_fee"),
    ({"title": "T", "requester": "p", "pickup_location": "M", "maximum_fee": -1}, "maximum_fee"),
    ({"title": "T", "requester": "p", "pickup_location": "M", "maximum_fee": "NaN"}, "maximum_fee"),
    ({"title": "T", "requester": "p", "pickup_location": "M", "currency": "dollars"}, "currency"),
    ({"title": "T", "requester": "p", "pickup_location": "M", "format": "Parchment"}, "format"),
    ({"title": "T", "requester": "p", "pickup_location": "M", "willing_to_pay": "yes"}, "willing_to_pay"),
    ({"title": "T\x00", "requester": "p", "pickup_location": "M"}, "title"),
    ({"title": "T\x07", "requester": "p", "pickup_location": "M"}, "title"),
    ({"title": "T", "requester": "p" * 201, "pickup_location": "M"}, "requester"),
    ({"title": 5, "requester": "p", "pickup_location": "M"}, "title"),
    ({"title": "T", "requester": "p", "pickup_location": "M", "colour": "red"}, "colour"),
    ({"title": "T", "requester": "p", "pickup_location": "M", "partners": ["ISIL:NOPE"]}, "partners"),
    ({"title": "T", "requester": "p", "pickup_location": "M", "partners": ["no-colon"]}, "partners[0]"),
    ({"title": "T", "requester": "p", "pickup_location": "M", "partners": [P1, P1]}, "partners"),
    ({"title": "T", "requester": "p", "pickup_location": "M", "partners": P1}, "partners"),
    ({"title": "T", "requester": "p", "pickup_location": "M", "other_identifiers": [{"type": "DOI"}]},
     "other_identifiers[0]"),
])
async def test_create_refuses_a_bad_field_with_422_naming_it(api, body, field):
    status, data = await api.post(BR, body)
    assert status == 422, data
    assert error_code(data) == "invalid_field" and data["error"]["field"] == field
    assert set(data["error"]) >= {"code", "message", "field"}


async def test_bad_json_and_media_type(api):
    status, data = await api.call("POST", BR, data=b"{not json", headers={"Content-Type": "application/json"})
    assert status == 400 and error_code(data) == "bad_json"
    status, data = await api.call("POST", BR, data=b"[1, 2]", headers={"Content-Type": "application/json"})
    assert status == 400 and error_code(data) == "bad_json"
    status, data = await api.call("POST", BR, data=b"title=x", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 415 and error_code(data) == "unsupported_media_type"
    status, data = await api.call("DELETE", BR)
    assert status == 405 and error_code(data) == "method_not_allowed"


async def test_unknown_ids_and_routes_are_404(api):
    for path in (f"{BR}/999999", f"{BR}/999999/history", f"{BR}/999999/rota", f"{BR}/999999/notes",
                 f"{BR}/999999/messages", f"{BR}/999999/parameters", f"{BR}/999999/attachments",
                 f"{BR}/999999/attachments/1", f"{BR}/abc", f"{BR}/99999999999999999999999", "/api/v1/nothing"):
        status, data = await api.get(path)
        assert status == 404 and error_code(data) == "not_found", path
    for path, body in ((f"{BR}/999999/actions/receive", {}), (f"{BR}/999999/notes", {"text": "x"}),
                       (f"{BR}/999999/messages", {"text": "x"}), (f"{BR}/999999/rota", {"op": "move-up", "agency": P1})):
        status, data = await api.post(path, body)
        assert status == 404 and error_code(data) == "not_found", path
    status, data = await api.call("PATCH", f"{BR}/999999", json={"title": "x"})
    assert status == 404


# --- edit, notes, messages, parameters ----------------------------------------------------------


async def test_edit_changes_general_information_and_records_the_actor(api):
    # no partner has the request yet (a sent request's fields cannot change: test_edit_after_sending);
    # a maximum fee goes with its currency (test_form_rules)
    rid = (await api.create(partners=[]))["id"]
    status, data = await api.call("PATCH", f"{BR}/{rid}", json={"title": "Il nome della rosa", "needed_by": None,
                                                               "willing_to_pay": True, "maximum_fee": "20",
                                                               "currency": "EUR"})
    assert status == 200, data
    assert data["title"] == "Il nome della rosa" and data["willing_to_pay"] and data["maximum_fee"] == "20.00"
    assert data["history"][-1]["event"] == "edit" and data["history"][-1]["actor"] == "staff:ann"
    status, data = await api.call("PATCH", f"{BR}/{rid}", json={"requester": ""})
    assert status == 422 and data["error"]["field"] == "requester"
    status, data = await api.call("PATCH", f"{BR}/{rid}", json={})
    assert status == 422
    status, data = await api.call("PATCH", f"{BR}/{rid}", json={"status": "COMPLETED"})
    assert status == 422 and data["error"]["field"] == "status"


async def test_notes_and_general_messages(api):
    rid = (await api.create())["id"]
    status, note = await api.post(f"{BR}/{rid}/notes", {"text": "patron called"})
    assert status == 201 and note["text"] == "patron called" and note["actor"] == "staff:ann"
    status, message = await api.post(f"{BR}/{rid}/messages", {"text": "Any news?"})
    assert status == 201 and message["direction"] == "out" and message["partner"] == P1
    assert message["actor"] == "staff:ann"
    status, data = await api.get(f"{BR}/{rid}/notes")
    assert status == 200 and [n["text"] for n in data["notes"]] == ["patron called"]
    status, data = await api.get(f"{BR}/{rid}/messages")
    assert [m["text"] for m in data["messages"]] == ["Any news?"]
    request = await api.request(rid)
    await api.supplier(request, Status.RequestReceived, reason=ReasonForMessage.Notification, note="On the shelf")
    status, data = await api.get(f"{BR}/{rid}/messages")
    assert [(m["direction"], m["text"]) for m in data["messages"]] == [("out", "Any news?"), ("in", "On the shelf")]
    assert data["messages"][1]["raw_message_id"] is not None
    status, raw = await api.get(f"/api/v1/raw-messages/{data['messages'][1]['raw_message_id']}")
    assert status == 200 and b"On the shelf" in raw
    for path in ("notes", "messages"):
        status, data = await api.post(f"{BR}/{rid}/{path}", {"text": "   "})
        assert status == 422 and data["error"]["field"] == "text"
        status, data = await api.post(f"{BR}/{rid}/{path}", {"text": "x", "extra": 1})
        assert status == 422 and data["error"]["field"] == "extra"
    no_partner = (await api.create(partners=[]))["id"]
    status, data = await api.post(f"{BR}/{no_partner}/messages", {"text": "hello?"})
    assert status == 409 and error_code(data) == "illegal_transition"


async def test_parameters_put_replaces_and_patch_merges(api):
    rid = (await api.create())["id"]
    status, data = await api.call("PUT", f"{BR}/{rid}/parameters", json={"parameters": {"a": "1", "b": "2"}})
    assert status == 200 and data == {"parameters": {"a": "1", "b": "2"}}
    status, data = await api.call("PATCH", f"{BR}/{rid}/parameters", json={"parameters": {"b": None, "c": "3"}})
    assert data == {"parameters": {"a": "1", "c": "3"}}
    status, data = await api.call("PUT", f"{BR}/{rid}/parameters", json={"parameters": {"c": "4"}})
    assert data == {"parameters": {"c": "4"}}
    status, data = await api.get(f"{BR}/{rid}/parameters")
    assert data == {"parameters": {"c": "4"}}
    assert (await api.request(rid))["parameters"] == {"c": "4"}
    history = [h for h in (await api.request(rid))["history"] if h["event"] == "set_parameters"]
    assert len(history) == 3 and {h["actor"] for h in history} == {"staff:ann"}
    status, data = await api.call("PUT", f"{BR}/{rid}/parameters", json={"parameters": {"x": 5}})
    assert status == 422 and data["error"]["field"] == "parameters.x"
    status, data = await api.call("PUT", f"{BR}/{rid}/parameters", json={"parameters": {"x": None}})
    assert status == 422


# --- rota ---------------------------------------------------------------------------------------


async def test_rota_operations(api):
    rid = (await api.create(partners=[P1, P2]))["id"]
    status, data = await api.post(f"{BR}/{rid}/rota", {"op": "add", "agency": P3})
    assert status == 200 and [e["agency"] for e in data["rota"]] == [P1, P2, P3]
    status, data = await api.post(f"{BR}/{rid}/rota", {"op": "move-up", "agency": P3})
    assert [e["agency"] for e in data["rota"]] == [P1, P3, P2]
    status, data = await api.post(f"{BR}/{rid}/rota", {"op": "move-down", "agency": P1})
    assert [e["agency"] for e in data["rota"]] == [P3, P1, P2]
    status, data = await api.post(f"{BR}/{rid}/rota", {"op": "move-selected", "agencies": [P2], "position": 1})
    assert [e["agency"] for e in data["rota"]] == [P2, P3, P1]
    status, data = await api.post(f"{BR}/{rid}/rota", {"op": "remove", "agency": P3})
    assert [e["agency"] for e in data["rota"]] == [P2, P1]
    status, rota = await api.get(f"{BR}/{rid}/rota")
    assert [e["agency"] for e in rota["rota"]] == [P2, P1] and [e["position"] for e in rota["rota"]] == [1, 2]
    # the active partner can't be removed: cancel it instead
    status, data = await api.post(f"{BR}/{rid}/rota", {"op": "remove", "agency": P1})
    assert status == 409 and error_code(data) == "illegal_transition"
    status, data = await api.post(f"{BR}/{rid}/rota", {"op": "cancel-partner", "note": "too slow"})
    assert status == 200 and data["active_partner"] == P2
    assert [(e["agency"], e["state"]) for e in data["rota"]] == [(P2, "active"), (P1, "cancelled")]
    events = [h["event"] for h in data["history"]]
    assert events.count("add_partner") == 1 and events.count("move_partner") == 3
    assert all(h["actor"] == "staff:ann" for h in data["history"])


@pytest.mark.parametrize("body, field", [
    ({"op": "spin"}, "op"),
    ({"op": "add"}, "agency"),
    ({"op": "add", "agency": "ISIL:UNKNOWN"}, "agency"),
    ({"op": "add", "agency": P1}, "agency"),
    ({"op": "add", "agency": P3, "position": 99}, "position"),
    ({"op": "add", "agency": P3, "position": 0}, "position"),
    ({"op": "move-up", "agency": P3}, "agency"),
    ({"op": "move-selected", "agencies": [], "position": 1}, "agencies"),
    ({"op": "move-selected", "agencies": [P3], "position": 1}, "agencies"),
    ({"op": "move-up", "agency": P1, "note": "x"}, "note"),
])
async def test_rota_bad_input_is_422(api, body, field):
    rid = (await api.create(partners=[P1, P2]))["id"]
    status, data = await api.post(f"{BR}/{rid}/rota", body)
    assert status == 422, data
    assert data["error"]["field"] == field


# --- actions ------------------------------------------------------------------------------------


async def test_loan_lifecycle_through_every_item_action(api):
    request = await api.create(partners=[P1])
    rid = request["id"]
    await api.confirmed(rid)
    status, data = await api.action(rid, "status-request")
    assert status == 200 and data["status"] == "REQUEST_SENT"
    assert data["history"][-1]["event"] == "status_request"
    await api.supplier(request, Status.WillSupply, reason=ReasonForMessage.RequestResponse)
    due = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=28)
    await api.supplier(request, Status.Loaned, due=due, seconds=1)
    data = await api.request(rid)
    assert data["status"] == "SHIPPED_PHYSICALLY" and "receive" in action_names(data)
    status, data = await api.action(rid, "loan-to-patron")
    assert status == 409 and error_code(data) == "illegal_transition"
    assert "receive" in data["error"]["allowed"]
    status, data = await api.action(rid, "receive", {"items": ["39015012345678"], "note": "in good shape"})
    assert status == 200 and data["status"] == "RECEIVED_PHYSICALLY"
    assert [i["barcode"] for i in data["received_items"]] == ["39015012345678"]
    status, data = await api.action(rid, "loan-to-patron")
    assert status == 200 and data["status"] == "LOANED_TO_PATRON"
    status, data = await api.action(rid, "renew", {"note": "two more weeks please"})
    assert status == 200 and data["status"] == "RENEW_REQUESTED"
    await api.supplier(request, Status.Loaned, reason=ReasonForMessage.RenewResponse, due=due + timedelta(days=14),
                       seconds=2)
    status, data = await api.action(rid, "return-by-patron")
    assert status == 200 and data["status"] == "RETURNED_BY_PATRON"
    status, data = await api.action(rid, "return", {"note": "sent back by mail"})
    assert status == 200 and data["status"] == "RETURNED_TO_PARTNER"
    status, data = await api.action(rid, "cancel")
    assert status == 409
    data = await api.request(rid)
    staff_events = [h for h in data["history"] if h["actor"].startswith("staff:")]
    assert {h["event"] for h in staff_events} >= {"create", "status_request", "receive", "loan_to_patron", "renew",
                                                  "return_by_patron", "return_to_partner"}
    assert {h["actor"] for h in staff_events} == {"staff:ann"}


async def test_copy_is_closed(api):
    request = await api.create(partners=[P1], format="Digital")
    rid = request["id"]
    assert request["service_type"] == "Copy"
    await api.confirmed(rid)
    await api.supplier(request, Status.CopyCompleted)
    status, data = await api.action(rid, "renew")
    assert status == 409
    status, data = await api.action(rid, "close", {"note": "PDF delivered to patron"})
    assert status == 200 and data["status"] == "COMPLETED"


async def test_conditions_accept_and_reject(api):
    first = await api.create(partners=[P1, P2])
    await api.confirmed(first["id"])
    await api.supplier(first, Status.WillSupply, reason=ReasonForMessage.RequestResponse, costs=Decimal("12.50"))
    data = await api.request(first["id"])
    assert data["status"] == "CONDITIONAL" and data["needs_attention"]
    assert data["rota"][0]["offered_costs"] == [{"amount": "12.50", "currency": "USD"}]
    assert {"accept-condition", "reject-condition"} <= set(action_names(data))
    status, data = await api.action(first["id"], "accept-condition", {"note": "fine"})
    assert status == 200 and data["status"] == "WILL_SUPPLY"
    assert data["general_messages"][-1]["text"].startswith("ACCEPT")
    status, data = await api.action(first["id"], "accept-condition")
    assert status == 409

    second = await api.create(partners=[P1, P2])
    await api.confirmed(second["id"])
    await api.supplier(second, Status.WillSupply, reason=ReasonForMessage.RequestResponse, costs=Decimal("99"))
    status, data = await api.action(second["id"], "reject-condition", {"note": "too expensive"})
    assert status == 200 and data["active_partner"] == P2
    assert [(e["agency"], e["state"]) for e in data["rota"]] == [(P1, "rejected"), (P2, "active")]


async def test_retry_and_skip(api):
    first = await api.create(partners=[P1, P2])
    await api.confirmed(first["id"])
    await api.supplier(first, Status.RetryPossible, reason=ReasonForMessage.RequestResponse,
                       reason_retry="NotFoundAsCited")
    assert (await api.request(first["id"]))["status"] == "RETRY_POSSIBLE"
    status, data = await api.action(first["id"], "retry", {"changes": {"volume": "3"}, "note": "vol 3"})
    assert status == 200 and data["status"] == "READY_TO_SEND" and data["volume"] == "3"
    status, data = await api.action(first["id"], "retry", {"changes": {"nonsense": 1}})
    assert status == 422 and data["error"]["field"] == "changes.nonsense"

    second = await api.create(partners=[P1, P2])
    await api.confirmed(second["id"])
    await api.supplier(second, Status.RetryPossible, reason=ReasonForMessage.RequestResponse, reason_retry="OnLoan")
    status, data = await api.action(second["id"], "skip", {"note": "no time to wait"})
    assert status == 200 and data["active_partner"] == P2
    assert data["rota"][0]["state"] == "skipped"


async def test_cancel_with_reason_note_and_notify(api):
    request = await api.create(partners=[P1])
    await api.confirmed(request["id"])
    status, data = await api.action(request["id"], "cancel", {"reason": "patron no longer needs it",
                                                              "note": "called", "notify_patron": True})
    assert status == 200 and data["status"] == "WAITING_FOR_CANCEL_RESPONSE"
    assert data["cancel"] == {"by": "staff:ann", "by_patron": False, "reason": "patron no longer needs it",
                              "note": "called", "notify_patron": True}
    await api.supplier(request, Status.Cancelled, reason=ReasonForMessage.CancelResponse)
    assert (await api.request(request["id"]))["status"] == "CANCELED_BY_STAFF"

    # without an active partner the cancel is immediate
    located = await api.create(partners=[])
    status, data = await api.action(located["id"], "cancel", {"by_patron": True})
    assert status == 200 and data["status"] == "CANCELED_BY_PATRON"
    status, data = await api.action(located["id"], "cancel")
    assert status == 409
    status, data = await api.action(located["id"], "cancel", {"notify_patron": "yes"})
    assert status == 422 and data["error"]["field"] == "notify_patron"


async def test_locate_after_locate_failed(api):
    request = await api.create(partners=[])
    status, data = await api.action(request["id"], "locate")
    assert status == 200 and data["status"] == "READY_TO_SEND"
    assert [e["agency"] for e in data["rota"]] == [P1, P2] and data["active_partner"] == P1


async def test_acknowledge_and_unknown_actions(api):
    rid = (await api.create())["id"]
    status, data = await api.action(rid, "acknowledge", {"flag": "send_failed"})
    assert status == 409 and error_code(data) == "illegal_transition"
    status, data = await api.action(rid, "acknowledge", {"flag": "whatever"})
    assert status == 422 and data["error"]["field"] == "flag"
    status, data = await api.action(rid, "acknowledge")
    assert status == 422
    status, data = await api.action(rid, "teleport")
    assert status == 404 and error_code(data) == "not_found"
    status, data = await api.action(rid, "receive", {"items": "abc"})
    assert status == 422 and data["error"]["field"] == "items"
    status, data = await api.action(rid, "skip", {"bogus": True})
    assert status == 422 and data["error"]["field"] == "bogus"


@pytest.mark.parametrize("name", ["receive", "loan-to-patron", "return-by-patron", "return", "renew",
                                  "accept-condition", "reject-condition", "retry", "skip", "close"])
async def test_each_action_is_409_when_illegal_and_404_for_an_unknown_request(api, name):
    rid = (await api.create())["id"]
    status, data = await api.action(rid, name)
    assert status == 409 and error_code(data) == "illegal_transition" and data["error"]["status"] == "CREATED"
    assert "cancel-partner" in data["error"]["allowed"] and "cancel_partner" not in data["error"]["allowed"]
    status, data = await api.action(999999, name)
    assert status == 404


async def test_cancel_partner_as_an_action(api):
    rid = (await api.create(partners=[P1, P2]))["id"]
    status, data = await api.action(rid, "cancel-partner")
    assert status == 200 and data["active_partner"] == P2


# --- attachments --------------------------------------------------------------------------------


async def test_attachments_round_trip_multipart_and_raw(api):
    rid = (await api.create())["id"]
    content = bytes(range(256)) * 100
    form = FormData(quote_fields=False)  # as browsers send it: the UTF-8 file name as it is
    form.add_field("file", content, filename="scan ü.pdf", content_type="application/pdf")
    status, meta = await api.call("POST", f"{BR}/{rid}/attachments", data=form)
    assert status == 201, meta
    assert meta["filename"] == "scan ü.pdf" and meta["media_type"] == "application/pdf"
    assert meta["size"] == len(content) and meta["actor"] == "staff:ann"
    response = await api.client.get(f"{BR}/{rid}/attachments/{meta['id']}",
                                    headers={"Authorization": "Bearer reader-key-0001"})
    assert response.status == 200 and response.content_type == "application/pdf"
    assert await response.read() == content
    assert "attachment" in response.headers["Content-Disposition"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"

    status, meta2 = await api.call("POST", f"{BR}/{rid}/attachments?filename=../../etc/notes.txt",
                                   data=b"hello", headers={"Content-Type": "text/plain; charset=utf-8"})
    assert status == 201 and meta2["filename"] == "notes.txt" and meta2["media_type"] == "text/plain"
    status, listing = await api.get(f"{BR}/{rid}/attachments")
    assert [a["filename"] for a in listing["attachments"]] == ["scan ü.pdf", "notes.txt"]
    assert "content" not in listing["attachments"][0]
    data = await api.request(rid)
    assert len(data["attachments"]) == 2 and data["history"][-1]["event"] == "add_attachment"
    assert data["history"][-1]["actor"] == "staff:ann"

    status, data = await api.call("POST", f"{BR}/{rid}/attachments", data=b"x",
                                  headers={"Content-Type": "application/octet-stream"})
    assert status == 422 and data["error"]["field"] == "filename"
    status, data = await api.get(f"{BR}/{rid}/attachments/{meta['id'] + 100}")
    assert status == 404
    other = (await api.create())["id"]
    status, data = await api.get(f"{BR}/{other}/attachments/{meta['id']}")
    assert status == 404  # an attachment is reached only through its own request


async def test_attachment_size_limit(db_url, aiohttp_client):
    api = await start_api(aiohttp_client, db_url, api={"attachment_limit": 1000})
    rid = (await api.create())["id"]
    status, data = await api.call("POST", f"{BR}/{rid}/attachments?filename=big.bin", data=b"x" * 5000,
                                  headers={"Content-Type": "application/octet-stream"})
    assert status == 413 and error_code(data) == "payload_too_large"
    status, data = await api.call("POST", f"{BR}/{rid}/attachments?filename=ok.bin", data=b"x" * 1000,
                                  headers={"Content-Type": "application/octet-stream"})
    assert status == 201
