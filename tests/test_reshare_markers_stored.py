"""ReShare note markers (docs/partners.md) are understood on input and kept as structured data:
`note_markers` / `ReShareNote.as_json` (pure), the `markers` column of every inbound general
message on both sides, the staff API showing it (checked against the OpenAPI document), the
history entries of a status message whose note carries markers (`detail.markers`), and a
ReShare requester's agree / reject markers answering our loan conditions.

The integration tests run a real gateway on loopback (SQLite, and PostgreSQL when reachable)
and post ISO 18626 messages to its endpoint, as a ReShare partner (profile `reshare`) would."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from sqlalchemy import select

from gateway.api.openapi import document
from gateway.core.lending import conditions_answer
from gateway.messages import Version, decode, encode, model
from gateway.messages import peers
from gateway.messages.codes import Action, ReasonForMessage, ServiceType, Status
from gateway.messages.peers import ReShareNote, condition_answer, note_markers, parse_reshare_markers
from gateway.store.models import general_messages_t, outbox_t

from support.api_helpers import BR, OURS, P1, XML, start_api

LR = "/api/v1/lending-requests"
RESHARE = "ISIL:US-RESHARE"
PARTNERS = [
    {"agency": RESHARE, "name": "ReShare library", "url": "http://127.0.0.1:9/iso18626", "profile": "reshare"},
    {"agency": P1, "name": "Partner 1", "url": "http://127.0.0.1:9/iso18626"},
]


# --- pure: note_markers and as_json -----------------------------------------------------------------


def test_as_json_is_json_safe_with_sorted_flags():
    parsed = parse_reshare_markers(
        "#ReShareSupplierAwaitingConditionConfirmation# Library use only #ReShareAddLoanCondition#"
        "#ReShareUpdatedField-PickupLocation:Main Library, desk 2##seq:12##lastSeq:11# transferToCluster:c-9")
    data = parsed.as_json()
    assert data == {
        "seq": 12, "last_seq": 11,
        "flags": ["ReShareAddLoanCondition", "ReShareSupplierAwaitingConditionConfirmation"],
        "updated_fields": {"PickupLocation": "Main Library, desk 2"},
        "cluster_id": "c-9", "text": "Library use only",
    }
    assert json.loads(json.dumps(data)) == data  # plain JSON types only
    data["updated_fields"]["PickupLocation"] = "changed"  # a copy: the parsed note is not touched
    assert parsed.updated_fields == {"PickupLocation": "Main Library, desk 2"}


def test_as_json_of_a_note_without_markers():
    assert ReShareNote(text="hello").as_json() == {
        "seq": None, "last_seq": None, "flags": [], "updated_fields": {}, "cluster_id": None, "text": "hello"}


@pytest.mark.parametrize("note, expected", [
    ("Please collect at the desk #seq:3#", {"seq": 3, "last_seq": None, "flags": [], "updated_fields": {},
                                            "cluster_id": None, "text": "Please collect at the desk"}),
    ("#ReShareLoanConditionAgreeResponse##seq:0#", {
        "seq": 0, "last_seq": None, "flags": ["ReShareLoanConditionAgreeResponse"], "updated_fields": {},
        "cluster_id": None, "text": ""}),
    ("moved transferToCluster:abc-1", {"seq": None, "last_seq": None, "flags": [], "updated_fields": {},
                                       "cluster_id": "abc-1", "text": "moved"}),
    ("#lastSeq:-1#", {"seq": None, "last_seq": -1, "flags": [], "updated_fields": {}, "cluster_id": None,
                      "text": ""}),
])
def test_note_markers_of_marked_notes(note, expected):
    assert note_markers(note) == expected


@pytest.mark.parametrize("note", [None, "", "Thanks, see you", "just words, #hashtag# and seq:3", "#", "##"])
def test_note_markers_of_notes_without_markers_is_none(note):
    assert note_markers(note) is None


def test_note_markers_skips_the_parser_without_hash_or_cluster(monkeypatch):
    calls: list[str | None] = []

    def counting(note: str | None) -> ReShareNote:
        calls.append(note)
        return parse_reshare_markers(note)

    monkeypatch.setattr(peers, "parse_reshare_markers", counting)
    assert note_markers("A long note without any marker at all. " * 50) is None
    assert note_markers(None) is None and calls == []
    assert note_markers("#seq:5#")["seq"] == 5 and calls == ["#seq:5#"]
    assert note_markers("transferToCluster:x")["cluster_id"] == "x" and len(calls) == 2


# --- pure: answers to loan conditions, marker first -------------------------------------------------


@pytest.mark.parametrize("note, answer", [
    ("#ReShareLoanConditionAgreeResponse#", "ACCEPT"),
    ("#ReShareLoanConditionRejectResponse##seq:4#", "REJECT"),
    # the marker decides, whatever words are around it
    ("#ReShareLoanConditionRejectResponse# We cannot accept library use only", "REJECT"),
    ("We reject nothing, all fine #ReShareLoanConditionAgreeResponse#", "ACCEPT"),
    # both markers: a person has to read it, the text does not break the tie
    ("accept #ReShareLoanConditionAgreeResponse##ReShareLoanConditionRejectResponse#", None),
    # no answer marker: Alma's free text, outside the markers
    ("ACCEPT #seq:2#", "ACCEPT"),
    ("Rejected. #seq:2#", "REJECT"),
    ("#ReShareUpdatedField-Note:please accept#", None),
    ("#ReShareSupplierConditionsAssumedAgreed#", None),
    ("accept or reject? #seq:1#", None),
])
def test_condition_answer_markers_first_then_free_text(note, answer):
    assert condition_answer(note) == answer
    assert conditions_answer(note) == answer  # the lending core's rule is the same one


# --- integration: helpers -------------------------------------------------------------------------


def _validator() -> Draft202012Validator:
    doc = document()
    return Draft202012Validator({"$ref": "#/components/schemas/GeneralMessage", "components": doc["components"]})


def assert_documented(messages: list[dict[str, Any]]) -> None:
    validator = _validator()
    for message in messages:
        errors = [e.message for e in validator.iter_errors(message)]
        assert errors == [], (message, errors)


def _now(seconds: int = 0) -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=seconds)


def reshare_header_order(body: bytes) -> bytes:
    """ReShare's habit (accepted by the `reshare` profile): requestingAgencyId before supplyingAgencyId."""
    start, mid = body.index(b"<ill:supplyingAgencyId>"), body.index(b"<ill:requestingAgencyId>")
    end = body.index(b"</ill:requestingAgencyId>") + len(b"</ill:requestingAgencyId>")
    return body[:start] + body[mid:end] + body[start:mid] + body[end:]


def supplying_message(ref: str, note: str | None, *, seconds: int = 0,
                      reason: ReasonForMessage = ReasonForMessage.Notification,
                      status: Status = Status.ExpectToSupply) -> bytes:
    when = _now(seconds)
    return encode(model.SupplyingAgencyMessage(
        header=model.SupplyingAgencyMessageHeader(
            supplying_agency_id=model.AgencyId.parse(RESHARE), requesting_agency_id=model.AgencyId.parse(OURS),
            timestamp=when, requesting_agency_request_id=ref, supplying_agency_request_id="RS-77"),
        message_info=model.MessageInfo(reason_for_message=reason, note=note),
        status_info=model.StatusInfo(status=status, last_change=when)), Version.V2017)


async def post_ok(api, body: bytes) -> None:
    response = await api.client.post("/iso18626", data=body, headers=XML)
    data = await response.read()
    reply = decode(data).message
    assert response.status == 200 and reply.confirmation_header.message_status.value == "OK", data


@pytest.fixture
async def api(db_url, aiohttp_client):
    return await start_api(aiohttp_client, db_url, partners=PARTNERS,
                           rota_templates=[{"name": "default", "partners": [RESHARE, P1]}])


# --- integration: borrowing side ------------------------------------------------------------------


async def sent_to_reshare(api) -> tuple[int, str]:
    """A borrowing request whose `request` ReShare has confirmed: (id, external id)."""
    rid = (await api.create())["id"]
    await api.confirmed(rid, RESHARE)
    return rid, (await api.request(rid))["external_id"]


async def test_borrowing_keeps_markers_of_a_reshare_notification(api):
    rid, ref = await sent_to_reshare(api)
    note = ("Pickup location changed #ReShareUpdatedField-PickupLocation:Main Library, desk 2#"
            "#ReShareSupplierAwaitingConditionConfirmation##seq:4#")
    await post_ok(api, reshare_header_order(supplying_message(ref, note)))  # as ReShare sends it
    status, sent = await api.post(f"{BR}/{rid}/messages", {"text": "Thanks #seq:99#"})
    assert status == 201 and sent["direction"] == "out" and sent["markers"] is None  # ours: never parsed

    data = await api.request(rid)
    assert data["status"] == "REQUEST_SENT"  # a Notification changes no status
    inbound = [m for m in data["general_messages"] if m["direction"] == "in"]
    assert len(inbound) == 1
    message = inbound[0]
    assert message["partner"] == RESHARE and message["text"] == note  # the note itself is kept as sent
    assert message["markers"] == {
        "seq": 4, "last_seq": None, "flags": ["ReShareSupplierAwaitingConditionConfirmation"],
        "updated_fields": {"PickupLocation": "Main Library, desk 2"}, "cluster_id": None,
        "text": "Pickup location changed",
    }
    assert message["raw_message_id"] is not None
    status, tab = await api.get(f"{BR}/{rid}/messages")
    assert status == 200 and tab["messages"] == data["general_messages"]
    assert_documented(data["general_messages"])
    # and in the database, as JSON (JSONB on PostgreSQL)
    async with api.gateway.engine.connect() as conn:
        stored = dict((await conn.execute(
            select(general_messages_t.c.direction, general_messages_t.c.markers)
            .where(general_messages_t.c.request_id == rid))).all())
    assert stored["in"]["seq"] == 4 and stored["out"] is None


async def test_borrowing_group_of_messages_mixes_marked_and_plain_notes(api):
    rid, ref = await sent_to_reshare(api)
    notes = [f"Update {i} #seq:{i}#" if i % 2 else f"Plain update {i}" for i in range(1, 7)]
    # at once, so that the writer may apply them as one group (one executemany for their rows)
    await asyncio.gather(*(post_ok(api, supplying_message(ref, n, seconds=i)) for i, n in enumerate(notes)))
    data = await api.request(rid)
    by_text = {m["text"]: m["markers"] for m in data["general_messages"]}
    assert set(by_text) == set(notes)
    for i, text in enumerate(notes, start=1):
        if i % 2:
            assert by_text[text] == {"seq": i, "last_seq": None, "flags": [], "updated_fields": {},
                                     "cluster_id": None, "text": f"Update {i}"}
        else:
            assert by_text[text] is None
    assert_documented(data["general_messages"])


async def test_borrowing_condition_notification_with_every_kind_of_marker(api):
    rid, ref = await sent_to_reshare(api)
    note = ("#ReShareAddLoanCondition# LibraryUseOnly #ReShareSupplierAwaitingConditionConfirmation#"
            "#seq:2##lastSeq:1# transferToCluster:cl-7")
    await post_ok(api, supplying_message(ref, note))
    data = await api.request(rid)
    [message] = [m for m in data["general_messages"] if m["direction"] == "in"]
    assert message["markers"] == {
        "seq": 2, "last_seq": 1,
        "flags": ["ReShareAddLoanCondition", "ReShareSupplierAwaitingConditionConfirmation"],
        "updated_fields": {}, "cluster_id": "cl-7", "text": "LibraryUseOnly",
    }
    assert_documented(data["general_messages"])


async def test_borrowing_conditions_assumed_agreed_needs_no_answer(api):
    """ReShare's supplier sends its conditions, then (not holding the request for an answer)
    #ReShareSupplierConditionsAssumedAgreed#: the offer is a WillSupply, and no ACCEPT goes out."""
    rid, ref = await sent_to_reshare(api)
    await post_ok(api, supplying_message(ref, "#ReShareAddLoanCondition# LibraryUseOnly #seq:1#",
                                         reason=ReasonForMessage.RequestResponse, status=Status.WillSupply))
    assert (await api.request(rid))["status"] == "CONDITIONAL"
    await post_ok(api, supplying_message(ref, "#ReShareSupplierConditionsAssumedAgreed##seq:2#", seconds=1))
    data = await api.request(rid)
    assert data["status"] == "WILL_SUPPLY", data["history"]
    assert data["history"][-1]["event"] == "ConditionsAssumedAgreed"
    [message] = [m for m in data["general_messages"] if m["direction"] == "in"]
    assert message["markers"]["flags"] == ["ReShareSupplierConditionsAssumedAgreed"] and message["markers"]["seq"] == 2
    async with api.gateway.engine.connect() as conn:
        answers = (await conn.execute(select(outbox_t.c.kind).where(
            outbox_t.c.request_id == rid, outbox_t.c.kind == "requestingAgencyMessage"))).all()
    assert answers == []  # staff did not have to accept, and nothing was sent on their behalf


# --- integration: lending side --------------------------------------------------------------------


async def incoming_from_reshare(api, ref: str) -> int:
    message = model.Request(
        header=model.RequestHeader(supplying_agency_id=model.AgencyId.parse(OURS),
                                   requesting_agency_id=model.AgencyId.parse(RESHARE), timestamp=_now(),
                                   requesting_agency_request_id=ref),
        bibliographic_info=model.BibliographicInfo(title="The Name of the Rose", author="Eco, Umberto"),
        service_info=model.ServiceInfo(service_type=ServiceType.Loan),
    )
    await post_ok(api, encode(message, Version.V2017))
    status, body = await api.get(f"{LR}?q={ref}")
    assert status == 200 and body["total"] == 1, body
    return body["items"][0]["id"]


async def requester_action(api, ref: str, action: Action, note: str | None, seconds: int = 1) -> None:
    message = model.RequestingAgencyMessage(
        header=model.RequestingAgencyMessageHeader(
            supplying_agency_id=model.AgencyId.parse(OURS), requesting_agency_id=model.AgencyId.parse(RESHARE),
            timestamp=_now(seconds), requesting_agency_request_id=ref),
        action=action, note=note)
    await post_ok(api, encode(message, Version.V2017))


async def requester_notification(api, ref: str, note: str, seconds: int = 1) -> None:
    await requester_action(api, ref, Action.Notification, note, seconds)


async def test_lending_keeps_markers_of_a_requester_note(api):
    lid = await incoming_from_reshare(api, "hrid-1001~1")
    note = "Patron asks for the second volume too #ReShareUpdatedField-Note:vol. 2##seq:2#"
    await requester_notification(api, "hrid-1001~1", note)
    await requester_notification(api, "hrid-1001~1", "Any news?", seconds=2)
    status, data = await api.get(f"{LR}/{lid}")
    assert status == 200 and data["status"] == "NEW"
    marked, plain = data["general_messages"]
    assert marked["direction"] == "in" and marked["partner"] == RESHARE and marked["text"] == note
    assert marked["markers"] == {"seq": 2, "last_seq": None, "flags": [], "updated_fields": {"Note": "vol. 2"},
                                 "cluster_id": None, "text": "Patron asks for the second volume too"}
    assert plain["text"] == "Any news?" and plain["markers"] is None
    status, tab = await api.get(f"{LR}/{lid}/messages")
    assert status == 200 and tab["messages"] == data["general_messages"]
    assert_documented(data["general_messages"])


async def offer_conditions(api, ref: str) -> int:
    lid = await incoming_from_reshare(api, ref)
    status, data = await api.post(f"{LR}/{lid}/actions/conditional", {"loan_conditions": ["LibraryUseOnly"]})
    assert status == 200 and data["status"] == "CONDITIONAL", data
    return lid


async def test_lending_reshare_agree_marker_accepts_the_conditions(api):
    lid = await offer_conditions(api, "hrid-2001~1")
    await requester_notification(api, "hrid-2001~1", "#ReShareLoanConditionAgreeResponse##seq:3#")
    status, data = await api.get(f"{LR}/{lid}")
    assert data["status"] == "WILL_SUPPLY", data["history"]
    [answer] = [m for m in data["general_messages"] if m["direction"] == "in"]
    assert answer["markers"]["flags"] == ["ReShareLoanConditionAgreeResponse"] and answer["markers"]["seq"] == 3
    assert answer["markers"]["text"] == ""
    assert "accepted the conditions" in data["history"][-1]["detail"]["text"]
    assert_documented(data["general_messages"])


async def test_lending_reshare_reject_marker_wins_over_the_words_around_it(api):
    lid = await offer_conditions(api, "hrid-3001~1")
    note = "#ReShareLoanConditionRejectResponse# We cannot accept library use only #seq:5#"
    await requester_notification(api, "hrid-3001~1", note)
    status, data = await api.get(f"{LR}/{lid}")
    assert data["status"] == "UNFILLED", data["history"]  # before: "accept" + reject marker = nobody knew
    [answer] = [m for m in data["general_messages"] if m["direction"] == "in"]
    assert answer["markers"] == {"seq": 5, "last_seq": None, "flags": ["ReShareLoanConditionRejectResponse"],
                                 "updated_fields": {}, "cluster_id": None,
                                 "text": "We cannot accept library use only"}
    assert_documented(data["general_messages"])


async def test_lending_alma_free_text_still_answers_conditions(api):
    lid = await offer_conditions(api, "hrid-4001~1")
    await requester_notification(api, "hrid-4001~1", "REJECT - too strict")
    status, data = await api.get(f"{LR}/{lid}")
    assert data["status"] == "UNFILLED"
    [answer] = [m for m in data["general_messages"] if m["direction"] == "in"]
    assert answer["markers"] is None


# --- status messages: their notes are history, and the markers are kept there ------------------------


def assert_history_documented(history: list[dict[str, Any]]) -> None:
    doc = document()
    validator = Draft202012Validator({"$ref": "#/components/schemas/HistoryEntry", "components": doc["components"]})
    for entry in history:
        errors = [e.message for e in validator.iter_errors(entry)]
        assert errors == [], (entry, errors)


def of_message(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [h for h in history if h["raw_message_id"] is not None]


async def test_borrowing_keeps_markers_of_a_status_message_note_in_its_history(api):
    rid, ref = await sent_to_reshare(api)
    note = "Shelved for you #seq:2##ReShareUpdatedField-DueDate:2027-01-31#"
    await post_ok(api, supplying_message(ref, note, reason=ReasonForMessage.RequestResponse, status=Status.WillSupply))
    await post_ok(api, supplying_message(ref, "In transit", seconds=1, reason=ReasonForMessage.StatusChange,
                                         status=Status.Loaned))
    data = await api.request(rid)
    assert data["status"] == "SHIPPED_PHYSICALLY"
    assert [m for m in data["general_messages"] if m["direction"] == "in"] == []  # status messages: no tab entry
    marked, plain = of_message(data["history"])
    assert "WillSupply" in marked["detail"]["text"] and note in marked["detail"]["text"]
    assert marked["detail"]["markers"] == {
        "seq": 2, "last_seq": None, "flags": [], "updated_fields": {"DueDate": "2027-01-31"},
        "cluster_id": None, "text": "Shelved for you"}
    assert "Loaned" in plain["detail"]["text"] and "markers" not in plain["detail"]
    assert_history_documented(data["history"])


async def test_borrowing_marks_every_history_row_of_a_refused_marked_message(api):
    rid, ref = await sent_to_reshare(api)
    # Recalled before anything was shipped: refused, recorded with its markers
    body = supplying_message(ref, "recalled #seq:9#", reason=ReasonForMessage.StatusChange, status=Status.Recalled)
    response = await api.client.post("/iso18626", data=body, headers=XML)
    assert decode(await response.read()).message.confirmation_header.message_status.value == "ERROR"
    data = await api.request(rid)
    assert data["status"] == "REQUEST_SENT"
    [refused] = of_message(data["history"])
    assert refused["event"] == "message_refused" and refused["detail"]["markers"]["seq"] == 9


async def test_lending_keeps_markers_of_a_cancel_note_in_its_history(api):
    lid = await incoming_from_reshare(api, "hrid-5001~1")
    await requester_action(api, "hrid-5001~1", Action.Cancel, "Patron no longer needs it #seq:6##lastSeq:5#")
    status, data = await api.get(f"{LR}/{lid}")
    assert status == 200
    assert [m for m in data["general_messages"] if m["direction"] == "in"] == []  # a Cancel: history only
    [request_row, cancel_row] = of_message(data["history"])[:2]
    assert "markers" not in (request_row["detail"] or {})
    assert cancel_row["detail"]["markers"] == {
        "seq": 6, "last_seq": 5, "flags": [], "updated_fields": {}, "cluster_id": None,
        "text": "Patron no longer needs it"}
    assert_history_documented(data["history"])
