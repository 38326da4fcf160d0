"""`GET /api/v1/borrowing-requests`: the filters and facets the staff list page added (requested
media, pickup location, level of service, unread partner messages, costs, internal notes) and the
due date sort, on SQLite and PostgreSQL; the facets are counted under the same filters."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from gateway.messages.codes import ReasonForMessage, Status
from support.api_helpers import BR, P1, P2, Clock, error_code, start_api

START = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
async def data(db_url, aiohttp_client):
    """Four requests: a message from the partner on the first (unread), a note on the second,
    a maximum fee on the third; media, pickup and level of service varied."""
    clock = Clock(START)
    api = await start_api(aiohttp_client, db_url, clock=clock)
    specs = [
        dict(partners=[P1], pickup_location="Main desk", requested_media="Book", level_of_service="Normal"),
        dict(partners=[P2], pickup_location="Main desk", requested_media="Book", needed_by="2027-02-01"),
        dict(partners=[P1], pickup_location="Law library", level_of_service="Rush", maximum_fee="12.50",
             willing_to_pay=True, currency="EUR"),
        dict(partners=[P2], pickup_location="Law library", format="Digital", needed_by="2027-01-10"),
    ]
    made = []
    for spec in specs:
        made.append(await api.create(**spec))
        clock.advance(days=1)
    rid = [m["id"] for m in made]
    await api.confirmed(rid[0], P1)
    await api.supplier(made[0], Status.ExpectToSupply, reason=ReasonForMessage.Notification, note="On its way")
    status, _ = await api.post(f"{BR}/{rid[1]}/notes", {"text": "Patron phoned"})
    assert status == 201
    return api, rid


async def listing(api, query: str = ""):
    status, body = await api.get(f"{BR}?{query}")
    assert status == 200, body
    return body


def facet(body, name) -> dict:
    return {entry["value"]: entry["count"] for entry in body["facets"][name]}


async def test_new_facets_count_without_filters(data):
    api, rid = data
    body = await listing(api)
    assert body["total"] == 4
    assert facet(body, "requested_media") == {"Book": 2, None: 2}
    assert facet(body, "pickup_location") == {"Main desk": 2, "Law library": 2}
    assert facet(body, "level_of_service") == {None: 2, "Normal": 1, "Rush": 1}
    assert facet(body, "unread_messages") == {True: 1, False: 3}
    assert facet(body, "has_notes") == {True: 1, False: 3}
    assert facet(body, "has_costs") == {True: 1, False: 3}


async def test_new_filters_and_facets_under_them(data):
    api, rid = data

    async def found(query: str) -> list[int]:
        return sorted(item["id"] for item in (await listing(api, query))["items"])

    assert await found("unread_messages=true") == [rid[0]]
    assert await found("unread_messages=false") == rid[1:]
    assert await found("has_notes=true") == [rid[1]]
    assert await found("has_notes=false") == [rid[0], rid[2], rid[3]]
    assert await found("has_costs=true") == [rid[2]]
    assert await found("has_costs=false") == [rid[0], rid[1], rid[3]]
    assert await found("requested_media=Book") == rid[:2]
    assert await found("pickup_location=Law%20library") == rid[2:]
    assert await found("level_of_service=Rush,Normal") == [rid[0], rid[2]]
    body = await listing(api, "pickup_location=Main%20desk")
    assert body["total"] == 2
    assert facet(body, "unread_messages") == {True: 1, False: 1}
    assert facet(body, "has_notes") == {True: 1, False: 1}
    assert facet(body, "has_costs") == {False: 2}
    assert sum(facet(body, "status").values()) == 2
    body = await listing(api, "unread_messages=true&has_notes=true")
    assert body["total"] == 0 and facet(body, "unread_messages") == {}


async def test_the_unread_facet_follows_marking_read(data):
    api, rid = data
    status, _ = await api.action(rid[0], "mark-messages-read")
    assert status == 200
    assert facet(await listing(api), "unread_messages") == {False: 4}
    assert (await listing(api, "unread_messages=true"))["total"] == 0


async def test_sort_by_due_date_and_bad_values(data):
    api, rid = data
    body = await listing(api, "sort=-due_date")
    assert body["total"] == 4 and body["sort"] == "-due_date"
    for query, field in (("has_costs=maybe", "has_costs"), ("unread_messages=2", "unread_messages"),
                         ("pickup_location=", "pickup_location")):
        status, body = await api.get(f"{BR}?{query}")
        assert status == 422 and error_code(body) == "invalid_field" and body["error"]["field"] == field


@pytest.mark.parametrize("sort", ["needed_by", "-needed_by", "due_date", "-due_date"])
async def test_date_sorts_page_the_same_with_and_without_filters(data, sort):
    """Without filters a date sort reads the dated rows from the date's index, then the rest by
    id; with filters it sorts the matches (NULLs last): page by page, the same order."""
    api, rid = data
    for limit in (1, 2, 3):
        for offset in range(5):
            plain = await listing(api, f"sort={sort}&limit={limit}&offset={offset}")
            filtered = await listing(api, f"sort={sort}&limit={limit}&offset={offset}&created_from=2000-01-01")
            assert [i["id"] for i in plain["items"]] == [i["id"] for i in filtered["items"]], (limit, offset)
    every = [i["id"] for i in (await listing(api, f"sort={sort}"))["items"]]
    if sort == "needed_by":
        assert every == [rid[3], rid[1], rid[0], rid[2]]  # dated first, then the rest by id
    if sort == "-needed_by":
        assert every == [rid[1], rid[3], rid[2], rid[0]]
