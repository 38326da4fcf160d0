"""`GET /api/v1/borrowing-requests`: filters, facets under the same filters, paging, sort
(on a real gateway, SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from support.api_helpers import BR, P1, P2, P3, Clock, error_code, start_api

START = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
async def data(db_url, aiohttp_client):
    """Seven requests, one a day from 2026-03-01, with varied fields and statuses."""
    clock = Clock(START)
    api = await start_api(aiohttp_client, db_url, clock=clock)
    specs = [
        dict(requester="alice", partners=[P1, P2], title="River of Time", isbn="1112223334"),
        dict(requester="bob", partners=[P2], title="Garden Stories", format="Digital", needed_by="2027-01-10"),
        dict(requester="alice", partners=[P3, P1], title="Night Light", author="Smith, Anna", needed_by="2027-02-01"),
        dict(requester="carol", partners=[], title="The river DELTA"),
        dict(requester="alice", partners=[P1], title=None, author="Nobody, N.", issn="0000-0019"),
        dict(requester="bob", partners=[P2, P3], title="War_and%Peace", needed_by="2027-01-20"),
        dict(requester="dave", partners=[P3], title="WarXandYPeace", oclc_number="987654"),
    ]
    made = []
    for spec in specs:
        made.append(await api.create(**{"author": None, "isbn": None, **spec}))
        clock.advance(days=1)
    await api.confirmed(made[4]["id"], P1)  # -> REQUEST_SENT, updated on 2026-03-08
    return api, [m["id"] for m in made], made


async def listing(api, query: str = "", role: str = "staff"):
    status, body = await api.get(f"{BR}?{query}", role)
    assert status == 200, body
    return body


def ids(body) -> list[int]:
    return [item["id"] for item in body["items"]]


def facet(body, name) -> dict:
    return {entry["value"]: entry["count"] for entry in body["facets"][name]}


async def test_default_listing_newest_first_with_facets(data):
    api, rid, made = data
    body = await listing(api, role="read-only")
    assert body["total"] == 7 and body["limit"] == 25 and body["offset"] == 0 and body["sort"] == "-created_at"
    assert ids(body) == rid[::-1]
    item = body["items"][-1]
    assert item["status"] == "CREATED" and item["status_label"] == "Created borrowing request"
    assert item["title"] == "River of Time" and item["requester"] == "alice" and item["active_partner"] == P1
    assert facet(body, "status") == {"CREATED": 5, "LOCATE_FAILED": 1, "REQUEST_SENT": 1}
    labels = {e["value"]: e["label"] for e in body["facets"]["status"]}
    assert labels["LOCATE_FAILED"] == "Locate failed"
    assert facet(body, "active_partner") == {P1: 2, P2: 2, P3: 2, None: 1}
    assert facet(body, "needs_attention") == {False: 6, True: 1}
    assert facet(body, "format") == {"Physical": 6, "Digital": 1}
    assert body["facets"]["requester"][0] == {"value": "alice", "count": 3}
    assert facet(body, "requester") == {"alice": 3, "bob": 2, "carol": 1, "dave": 1}


async def test_status_filters_repeat_or_comma(data):
    api, rid, _ = data
    assert ids(await listing(api, "status=LOCATE_FAILED")) == [rid[3]]
    both = await listing(api, "status=LOCATE_FAILED&status=REQUEST_SENT")
    assert sorted(ids(both)) == sorted([rid[3], rid[4]]) and both["total"] == 2
    assert ids(await listing(api, "status=LOCATE_FAILED,REQUEST_SENT")) == ids(both)
    assert (await listing(api, "status=COMPLETED"))["total"] == 0


async def test_partner_anywhere_versus_active_partner(data):
    api, rid, _ = data
    anywhere = await listing(api, f"partner={P1}")
    assert sorted(ids(anywhere)) == sorted([rid[0], rid[2], rid[4]])
    assert facet(anywhere, "active_partner") == {P1: 2, P3: 1}
    active = await listing(api, f"active_partner={P1}")
    assert sorted(ids(active)) == sorted([rid[0], rid[4]])
    assert sorted(ids(await listing(api, f"partner={P1}&partner={P3}"))) == sorted(
        [rid[0], rid[2], rid[4], rid[5], rid[6]])


async def test_requester_and_needs_attention_and_format(data):
    api, rid, _ = data
    alice = await listing(api, "requester=alice")
    assert sorted(ids(alice)) == sorted([rid[0], rid[2], rid[4]])
    assert facet(alice, "requester") == {"alice": 3}
    assert facet(alice, "status") == {"CREATED": 2, "REQUEST_SENT": 1}  # facets under the same filters
    assert sum(facet(alice, "status").values()) == alice["total"] == 3
    assert ids(await listing(api, "needs_attention=true")) == [rid[3]]
    assert (await listing(api, "needs_attention=false"))["total"] == 6
    assert ids(await listing(api, "format=Digital")) == [rid[1]]


async def test_free_text_on_title_author_and_identifiers(data):
    api, rid, made = data
    river = await listing(api, "q=RIVER")
    assert sorted(ids(river)) == sorted([rid[0], rid[3]])  # case-insensitive
    assert ids(await listing(api, "q=smith")) == [rid[2]]  # author
    assert ids(await listing(api, "q=2223")) == [rid[0]]  # isbn
    assert ids(await listing(api, "q=987654")) == [rid[6]]  # oclc number
    assert ids(await listing(api, f"q={made[4]['external_id']}")) == [rid[4]]  # our request id
    assert ids(await listing(api, "q=river+time")) == [rid[0]]  # every word must match
    assert ids(await listing(api, "q=light+smith")) == [rid[2]]  # in different fields
    assert (await listing(api, "q=LightSmith"))["total"] == 0  # a word matches within one field
    assert ids(await listing(api, "q=nobody")) == [rid[4]]  # no title
    assert ids(await listing(api, "q=war_and")) == [rid[5]]  # _ and % are literal
    assert ids(await listing(api, "q=%25Peace")) == [rid[5]]
    assert (await listing(api, "q=zzzz"))["total"] == 0
    combined = await listing(api, "q=river&needs_attention=true")
    assert ids(combined) == [rid[3]] and facet(combined, "needs_attention") == {True: 1}


async def test_date_ranges(data):
    api, rid, _ = data
    assert ids(await listing(api, "created_from=2026-03-03&sort=created_at")) == rid[2:]
    assert ids(await listing(api, "created_to=2026-03-02&sort=created_at")) == rid[:2]  # a date: the whole day
    assert ids(await listing(api, "created_from=2026-03-02T09:00:00Z&created_to=2026-03-03T08:59:59Z")) == [rid[1]]
    assert ids(await listing(api, "created_from=2026-03-02T10:00:00%2B01:00&created_to=2026-03-02")) == [rid[1]]
    assert ids(await listing(api, "updated_from=2026-03-08")) == [rid[4]]  # confirmed later
    assert sorted(ids(await listing(api, "needed_by_from=2027-01-15&needed_by_to=2027-02-01"))) == sorted(
        [rid[2], rid[5]])
    assert ids(await listing(api, "needed_by_to=2027-01-10")) == [rid[1]]


async def test_paging_and_sort(data):
    api, rid, _ = data
    page = await listing(api, "limit=2&offset=2&sort=created_at")
    assert ids(page) == rid[2:4] and page["total"] == 7 and page["limit"] == 2 and page["offset"] == 2
    assert ids(await listing(api, "limit=2&offset=6&sort=created_at")) == [rid[6]]
    assert ids(await listing(api, "offset=50")) == [] and (await listing(api, "offset=50"))["total"] == 7
    titles = [i["title"] for i in (await listing(api, "sort=title"))["items"]]
    assert titles[:4] == ["Garden Stories", "Night Light", "River of Time", "The river DELTA"]
    assert set(titles[4:6]) == {"War_and%Peace", "WarXandYPeace"} and titles[6] is None  # NULLs last
    assert [i["title"] for i in (await listing(api, "sort=-title"))["items"]][-1] is None
    needed = [i["needed_by"] for i in (await listing(api, "sort=needed_by"))["items"]]
    assert needed[:3] == ["2027-01-10", "2027-01-20", "2027-02-01"] and needed[3:] == [None] * 4
    assert ids(await listing(api, "sort=-updated_at"))[0] == rid[4]
    statuses = [i["status"] for i in (await listing(api, "sort=status"))["items"]]
    assert statuses == sorted(statuses)
    no_facets = await listing(api, "facets=false&requester=bob")
    assert "facets" not in no_facets and no_facets["total"] == 2
    assert "facets" not in await listing(api, "facets=false")
    top = await listing(api, "facet_limit=1")
    assert top["facets"]["requester"] == [{"value": "alice", "count": 3}]
    top = await listing(api, "facet_limit=1&q=a")
    assert len(top["facets"]["requester"]) == 1


@pytest.mark.parametrize("query, field, code", [
    ("limit=0", "limit", "invalid_field"),
    ("limit=201", "limit", "invalid_field"),
    ("limit=ten", "limit", "invalid_field"),
    ("offset=-1", "offset", "invalid_field"),
    ("offset=99999999999999999999999", "offset", "invalid_field"),
    ("sort=colour", "sort", "invalid_field"),
    ("sort=--title", "sort", "invalid_field"),
    ("needs_attention=maybe", "needs_attention", "invalid_field"),
    ("created_from=yesterday", "created_from", "invalid_field"),
    ("created_to=2026-13-01", "created_to", "invalid_field"),
    ("needed_by_from=2026-03", "needed_by_from", "invalid_field"),
    ("limit=1&limit=2", "limit", "invalid_field"),
    ("colour=red", "colour", "unknown_parameter"),
    ("q=" + "x" * 201, "q", "invalid_field"),
])
async def test_bad_query_parameters_are_422(data, query, field, code):
    api, _, _ = data
    status, body = await api.get(f"{BR}?{query}")
    assert status == 422, body
    assert error_code(body) == code and body["error"]["field"] == field
