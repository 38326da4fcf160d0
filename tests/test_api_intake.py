"""Patron intake: OpenURL 1.0 (KEV) and 0.1 citations pre-fill an escaped HTML workform; the
patron's submission (form or JSON) creates a borrowing request as staff would, actor patron:<id>."""

from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest
from multidict import MultiDict

from gateway.api.intake import parse_openurl

from support.api_helpers import BR, P1, P2, error_code, start_api

KEV_ARTICLE = [
    ("url_ver", "Z39.88-2004"), ("rft_val_fmt", "info:ofi/fmt:kev:mtx:journal"), ("rft.genre", "article"),
    ("rft.atitle", "Semiotics of <script>alert(1)</script> & \"quotes\""), ("rft.jtitle", "Journal of Signs"),
    ("rft.aulast", "Eco"), ("rft.aufirst", "Umberto"), ("rft.issn", "1234-5678"), ("rft.volume", "12"),
    ("rft.issue", "3"), ("rft.spage", "101"), ("rft.epage", "120"), ("rft.date", "1984"),
    ("rft_id", "info:doi/10.1000/xyz"), ("rft_id", "info:oclcnum/424242"), ("rfr_id", "info:sid/primo"),
]
KEV_BOOK = [
    ("url_ver", "Z39.88-2004"), ("rft.genre", "book"), ("rft.btitle", "The Name of the Rose"),
    ("rft.au", "Eco, Umberto"), ("rft.au", "Weaver, William"), ("rft.isbn", "9780151446476"),
    ("rft.pub", "Harcourt"), ("rft.date", "1983"), ("rft.edition", "1st"), ("rft.pages", "512"),
]
V01_ARTICLE = [
    ("sid", "EBSCO:aph"), ("genre", "article"), ("title", "Nature"), ("atitle", "A letter"),
    ("aulast", "Watson"), ("aufirst", "J."), ("issn", "0028-0836"), ("volume", "171"), ("issue", "4356"),
    ("spage", "737"), ("epage", "738"), ("date", "1953"), ("id", "oclcnum:1586310"), ("id", "pmid:13054692"),
]


def test_openurl_1_0_article():
    c = parse_openurl(MultiDict(KEV_ARTICLE))
    assert c["openurl_version"] == "1.0" and c["genre"] == "article" and c["format"] == "Digital"
    assert c["title"] == "Journal of Signs"
    assert c["title_of_component"] == 'Semiotics of <script>alert(1)</script> & "quotes"'
    assert c["author_of_component"] == "Eco, Umberto" and c["author"] is None
    assert (c["issn"], c["volume"], c["issue"], c["pages"], c["publication_date"]) == (
        "1234-5678", "12", "3", "101-120", "1984")
    assert c["oclc_number"] == "424242" and c["other_identifiers"] == [{"type": "DOI", "value": "10.1000/xyz"}]


def test_openurl_1_0_book():
    c = parse_openurl(MultiDict(KEV_BOOK))
    assert c["format"] == "Physical" and c["title"] == "The Name of the Rose" and c["title_of_component"] is None
    assert c["author"] == "Eco, Umberto"  # the first rft.au
    assert (c["isbn"], c["publisher"], c["publication_date"], c["edition"], c["pages"]) == (
        "9780151446476", "Harcourt", "1983", "1st", "512")


def test_openurl_0_1_article():
    c = parse_openurl(MultiDict(V01_ARTICLE))
    assert c["openurl_version"] == "0.1" and c["format"] == "Digital"
    assert c["title"] == "Nature" and c["title_of_component"] == "A letter"
    assert c["author_of_component"] == "Watson, J." and c["pages"] == "737-738"
    assert c["oclc_number"] == "1586310" and c["other_identifiers"] == [{"type": "PMID", "value": "13054692"}]


def test_openurl_odd_input_never_raises():
    for query in ([], [("rft.title", "")], [("title", "x" * 10000)], [("rft_id", "info:oclcnum/")],
                  [("rft.spage", "5")], [("title", "a\x00b\x07c")], [("id", "urn:isbn:123")],
                  [("rft.aucorp", "UNESCO")], [("rft.title", "Only a title"), ("rft.atitle", "Part")]):
        c = parse_openurl(MultiDict(query))
        assert isinstance(c, dict)
    assert parse_openurl(MultiDict([("title", "x" * 10000)]))["title"] == "x" * 4000
    assert parse_openurl(MultiDict([("title", "a\x00b\x07c")]))["title"] == "abc"
    assert parse_openurl(MultiDict([("rft.spage", "5")]))["pages"] == "5"
    assert parse_openurl(MultiDict([("rft.aucorp", "UNESCO")]))["author"] == "UNESCO"
    assert parse_openurl(MultiDict([("id", "urn:isbn:123")]))["isbn"] == "123"


@pytest.fixture
async def api(db_url, aiohttp_client):
    return await start_api(aiohttp_client, db_url)


def field_value(page: str, name: str) -> str:
    match = re.search(rf'<input id="{name}" name="{name}" type="\w+" value="([^"]*)"', page)
    assert match, name
    return match.group(1)


async def test_workform_is_prefilled_and_escaped(api):
    response = await api.client.get("/openurl?" + urlencode(KEV_ARTICLE))
    assert response.status == 200 and response.content_type == "text/html"
    page = await response.text()
    assert "<script>alert(1)</script>" not in page
    assert field_value(page, "title_of_component") == (
        "Semiotics of &lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot;")
    assert field_value(page, "title") == "Journal of Signs" and field_value(page, "oclc_number") == "424242"
    assert field_value(page, "pages") == "101-120"
    assert '<option value="Digital" selected>' in page
    assert 'name="other_id" value="DOI:10.1000/xyz"' in page
    assert field_value(page, "patron_id") == "" and "Content-Security-Policy" in response.headers
    response = await api.client.get("/openurl?" + urlencode(V01_ARTICLE))
    page = await response.text()
    assert field_value(page, "title") == "Nature" and field_value(page, "title_of_component") == "A letter"
    response = await api.client.get("/openurl")  # no citation: an empty form
    assert response.status == 200


async def test_form_submission_creates_a_request_as_the_patron(api):
    form = {name: value for name, value in parse_openurl(MultiDict(KEV_BOOK)).items()
            if isinstance(value, str) and name not in ("genre", "openurl_version")}
    form.update(patron_id="P-1001", patron_name="Ann Reader", pickup_location="Main desk",
                needed_by="2099-01-31", note="for my thesis")
    response = await api.client.post("/openurl/submit", data=form)
    page = await response.text()
    assert response.status == 200, page
    rid = int(re.search(r'<dd id="request-id">(\d+)</dd>', page).group(1))
    external = re.search(r'<dd id="external-id">([^<]+)</dd>', page).group(1)
    data = await api.request(rid)
    assert data["external_id"] == external and data["status"] == "CREATED"
    assert (data["title"], data["author"], data["isbn"], data["requester"], data["requester_name"]) == (
        "The Name of the Rose", "Eco, Umberto", "9780151446476", "P-1001", "Ann Reader")
    assert data["pickup_location"] == "Main desk" and data["needed_by"] == "2099-01-31"
    assert data["request_note"] == "for my thesis" and data["format"] == "Physical"
    assert data["history"][0]["actor"] == "patron:P-1001"
    assert [e["agency"] for e in data["rota"]] == [P1, P2]  # the default rota, as for staff


async def test_form_submission_errors_rerender_the_form(api):
    response = await api.client.post("/openurl/submit", data={"title": "X <b>", "pickup_location": "Main"})
    page = await response.text()
    assert response.status == 422 and "Patron id: is required" in page
    assert field_value(page, "title") == "X &lt;b&gt;"
    response = await api.client.post("/openurl/submit", data={"title": "X", "patron_id": "p", "pickup_location": "M",
                                                               "needed_by": "2000-01-01"})
    assert response.status == 422 and "Needed by: is in the past" in await response.text()
    response = await api.client.post("/openurl/submit", data={"patron_id": "p", "pickup_location": "M"})
    assert response.status == 422 and "a title is required" in await response.text()
    status, data = await api.get(BR)
    assert data["total"] == 0


async def test_article_submission_with_identifiers(api):
    form = [("title", "Nature"), ("title_of_component", "A letter"), ("format", "Digital"),
            ("other_id", "PMID:13054692"), ("patron_id", "P-7"), ("pickup_location", "Science library")]
    response = await api.client.post("/openurl/submit", data=form)
    page = await response.text()
    assert response.status == 200, page
    rid = int(re.search(r'<dd id="request-id">(\d+)</dd>', page).group(1))
    data = await api.request(rid)
    assert data["service_type"] == "Copy" and data["title_of_component"] == "A letter"
    assert data["other_identifiers"] == [{"type": "PMID", "value": "13054692"}]


async def test_api_patron_request_json(api):
    status, data = await api.post("/api/v1/patron-requests", {
        "patron_id": "P-2002", "patron_name": "Bo", "pickup_location": "Main desk", "title": "Foucault's Pendulum",
        "author": "Eco, Umberto", "isbn": "9780151327652", "needed_by": None, "note": "asap"})
    assert status == 201, data
    assert data["requester"] == "P-2002" and data["history"][0]["actor"] == "patron:P-2002"
    assert data["request_note"] == "asap" and data["status"] == "CREATED"
    for body, field in (({"pickup_location": "M", "title": "T"}, "patron_id"),
                        ({"patron_id": "p", "title": "T"}, "pickup_location"),
                        ({"patron_id": "p", "pickup_location": "M"}, "title"),
                        ({"patron_id": "p", "pickup_location": "M", "title": "T", "requester": "x"}, "requester"),
                        ({"patron_id": "p" * 191, "pickup_location": "M", "title": "T"}, "patron_id")):
        status, data = await api.post("/api/v1/patron-requests", body)
        assert status == 422 and error_code(data) == "invalid_field" and data["error"]["field"] == field, body


async def test_configured_pickup_locations_and_disabled_intake(db_url, aiohttp_client):
    api = await start_api(aiohttp_client, db_url, intake={"pickup_locations": ["Main desk", "Law <library>"]})
    page = await (await api.client.get("/openurl?title=T")).text()
    assert '<select id="pickup_location" name="pickup_location" required>' in page
    assert "Law &lt;library&gt;" in page
    status, data = await api.post("/api/v1/patron-requests", {"patron_id": "p", "pickup_location": "Elsewhere",
                                                              "title": "T"})
    assert status == 422 and data["error"]["field"] == "pickup_location"
    closed = await start_api(aiohttp_client, db_url, intake={"enabled": False})
    assert (await closed.client.get("/openurl?title=T")).status == 404
    assert (await closed.client.post("/openurl/submit", data={"title": "T"})).status == 404
