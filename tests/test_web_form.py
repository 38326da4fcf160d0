"""The request form in Chromium: a manual request (/borrowing/new) with every field of the seed,
Save / Save and Edit / Cancel, errors next to their fields with what was typed kept, partners
chosen in order, the form without JavaScript, and editing General information
(/borrowing/{id}/edit) with its version check."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from gateway.api import queries as q
from gateway.core import Edit, RequestDetails
from gateway.demo import wait_for
from gateway.store.models import borrowing_requests_t
from gateway.web.request_form import form_field, parse_values
from support.browser import (MOCK_A, MOCK_B, assert_accessible, chromium, close_context, desk, evaluate, goto,
                             screenshot, sign_in, signed_in)

pytestmark = pytest.mark.timeout(120)

HOSTILE = '<script>window.__xss=1</script><img src=x onerror="window.__xss=1">'


async def stored(d, request_id: int) -> dict:
    async with d.borrower.engine.connect() as conn:
        return await conn.run_sync(q.request_json, request_id, {})


async def count_requests(d) -> int:
    async with d.borrower.engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(borrowing_requests_t))).scalar_one()


async def submit(page, button: str) -> int:
    """Click a form button; the HTTP status of the page the browser lands on (after redirects)."""
    async with page.expect_navigation() as nav:
        await page.get_by_role("button", name=button, exact=True).click()
    return (await nav.value).status


def test_form_values_are_parsed_by_the_api_rules_and_errors_name_the_form_field():
    parsed, errors = parse_values({"other_identifiers": "DOI: 10.1/x\n\nLCCN:  2001-1 ", "currency": " usd",
                                   "maximum_fee": "3.5", "needed_by": ""},
                                  ["other_identifiers", "currency", "maximum_fee", "needed_by"])
    assert parsed == {"other_identifiers": (("DOI", "10.1/x"), ("LCCN", "2001-1")), "currency": "USD",
                      "maximum_fee": Decimal("3.50"), "needed_by": None} and errors == {}
    parsed, errors = parse_values({"other_identifiers": "no colon here", "maximum_fee": "1.234",
                                   "needed_by": "31/12/2030", "requester": "  "},
                                  ["other_identifiers", "maximum_fee", "needed_by", "requester"])
    assert set(errors) == {"other_identifiers", "maximum_fee", "needed_by", "requester"} and parsed == {}
    assert errors["maximum_fee"] == "has more than 2 decimal places"
    assert [form_field(f) for f in ("partner", "partners[1]", "other_identifiers[0].type", "title")] == [
        "partners", "partners", "other_identifiers", "title"]


def today() -> date:
    return datetime.now(timezone.utc).date()


async def test_every_field_is_saved_by_save_and_edit_with_the_partners_in_order():
    needed = today() + timedelta(days=30)
    async with desk() as d, chromium() as browser, signed_in(browser, d.borrower_url) as page:
        await goto(page, f"{d.borrower_url}/borrowing/new")
        await assert_accessible(page)
        assert await page.get_by_label("Request status").input_value() == "Created borrowing request"
        assert await page.get_by_label("Request format").input_value() == "Physical"
        assert await page.get_by_label("Delivery location").input_value() == "library"
        texts = {
            "Title": "Middlemarch", "Author": "Eliot, George", "Article / chapter title": "Prelude",
            "Article / chapter author": "Ashton, Rosemary", "ISBN": "9780141439549", "ISSN": "0028-0836",
            "OCLC number": "12345678", "Other identifiers": "DOI: 10.1000/182", "Publisher": "Penguin",
            "Publication date": "2003", "Edition": "Revised", "Volume": "2", "Issue": "7", "Pages": "1-20",
            "Requester (required)": "P-1001", "Requester name": "Ada Patron", "Owner": "Main desk",
            "Language": "fre", "Delivery location": "Interlibrary loan office", "Maximum fee": "25.50",
            "Currency": "eur", "Request note": "Please send the hardback.",
        }
        for label, value in texts.items():
            await page.get_by_label(label, exact=True).fill(value)
        await page.get_by_label("Date needed by").fill(needed.isoformat())
        await page.get_by_label("Request format").select_option("Digital")
        await page.get_by_label("Requested media").select_option("DVD")
        await page.get_by_label("Preferred send method").select_option("Mail")
        await page.get_by_label("Level of service").select_option("Rush")
        await page.get_by_label("Requested pickup location (required)").select_option("Science Library")
        for box in ("Allow other format", "For reading room use only", "Willing to pay",
                    "Needs patron information", "Agree to copyright terms"):
            await page.get_by_label(box).check()
        await page.get_by_label("Partner 1", exact=True).select_option(label="Mock library B")
        await page.get_by_label("Partner 2", exact=True).select_option(label="Mock library A")
        await page.evaluate("window.scrollTo(0, 0)")
        await screenshot(page, "form")
        await submit(page, "Save and Edit")
        assert re.fullmatch(rf"{re.escape(d.borrower_url)}/borrowing/\d+", page.url)
        request_id = int(page.url.rsplit("/", 1)[1])
        data = await stored(d, request_id)
    expected = {
        "title": "Middlemarch", "author": "Eliot, George", "title_of_component": "Prelude",
        "author_of_component": "Ashton, Rosemary", "isbn": "9780141439549", "issn": "0028-0836",
        "oclc_number": "12345678", "other_identifiers": [{"type": "DOI", "value": "10.1000/182"}],
        "publisher": "Penguin", "publication_date": "2003", "edition": "Revised", "volume": "2", "issue": "7",
        "pages": "1-20", "requester": "P-1001", "requester_name": "Ada Patron", "owner": "Main desk",
        "format": "Digital", "requested_media": "DVD", "allow_other_format": True, "preferred_send_method": "Mail",
        "language": "fre", "needed_by": needed.isoformat(), "delivery_location": "Interlibrary loan office",
        "pickup_location": "Science Library", "reading_room_only": True, "willing_to_pay": True,
        "needs_patron_information": True, "agree_to_copyright_terms": True, "maximum_fee": "25.50",
        "currency": "EUR", "level_of_service": "Rush", "request_note": "Please send the hardback.",
    }
    assert {name: data[name] for name in expected} == expected
    assert [entry["agency"] for entry in data["rota"]] == [MOCK_B, MOCK_A]
    assert data["rota"][0]["sent_at"] is not None  # the service sent it to the first partner chosen
    assert data["history"][0]["event"] == "create" and data["history"][0]["actor"] == "staff:librarian"


async def test_save_returns_to_the_list_cancel_saves_nothing_and_viewers_get_no_form():
    async with desk() as d, chromium() as browser:
        async with signed_in(browser, d.borrower_url) as page:
            await goto(page, f"{d.borrower_url}/borrowing/new")
            await page.get_by_label("Title", exact=True).fill("Silas Marner")
            await page.get_by_label("Requester (required)").fill("P-2")
            await page.get_by_label("Requested pickup location (required)").select_option("Main Library")
            assert await submit(page, "Save") == 200
            assert page.url == f"{d.borrower_url}/borrowing"
            assert "Request created: Silas Marner" in await page.get_by_role("status").inner_text()
            assert await count_requests(d) == 1
            await goto(page, f"{d.borrower_url}/borrowing/new")
            await page.get_by_label("Title", exact=True).fill("Romola")
            await page.get_by_label("Requester (required)").fill("P-3")
            await page.get_by_label("Requested pickup location (required)").select_option("Main Library")
            await submit(page, "Cancel")
            assert page.url == f"{d.borrower_url}/borrowing"
            assert "Nothing was saved." in await page.get_by_role("status").inner_text()
            assert await count_requests(d) == 1
        async with signed_in(browser, d.borrower_url, "viewer") as page:
            response = await goto(page, f"{d.borrower_url}/borrowing/new")
            assert response.status == 403
            assert await page.get_by_role("button", name="Save").count() == 0


async def test_errors_are_shown_next_to_their_fields_with_what_was_typed_kept():
    async with desk() as d, chromium() as browser, signed_in(browser, d.borrower_url) as page:
        await goto(page, f"{d.borrower_url}/borrowing/new")
        await page.get_by_label("Title", exact=True).fill(HOSTILE)
        await page.get_by_label("Requester name").fill("Ada Patron")
        assert await submit(page, "Save") == 422
        assert await evaluate(page, "window.__xss") is None
        assert await page.get_by_label("Title", exact=True).input_value() == HOSTILE
        assert await page.get_by_label("Requester name").input_value() == "Ada Patron"
        for label, field in (("Requester (required)", "requester"),
                             ("Requested pickup location (required)", "pickup_location")):
            box = page.get_by_label(label)
            assert await box.get_attribute("aria-invalid") == "true"
            assert f"{field}-error" in (await box.get_attribute("aria-describedby")).split()
            assert await page.locator(f"#{field}-error").inner_text() == "is required"
            assert await page.get_by_role("alert").locator(f'a[href="#{field}"]').count() == 1
        await assert_accessible(page)

        await page.get_by_label("Requester (required)").fill("P-1")
        await page.get_by_label("Requested pickup location (required)").select_option("Main Library")
        past = (today() - timedelta(days=3)).isoformat()
        await page.get_by_label("Date needed by").fill(past)
        assert await submit(page, "Save") == 422
        assert await page.locator("#needed_by-error").inner_text() == "is in the past"
        assert await page.get_by_label("Date needed by").get_attribute("aria-invalid") == "true"
        assert await page.get_by_label("Date needed by").input_value() == past
        assert await page.get_by_label("Requested pickup location (required)").input_value() == "Main Library"

        await page.get_by_label("Date needed by").fill("")
        await page.get_by_label("Maximum fee").fill("10")
        await page.get_by_label("Willing to pay").check()
        assert await submit(page, "Save") == 422
        assert "is required with a maximum fee" in await page.locator("#currency-error").inner_text()
        assert await page.get_by_label("Currency").get_attribute("aria-invalid") == "true"
        assert await page.get_by_label("Maximum fee").input_value() == "10"
        assert await page.get_by_label("Willing to pay").is_checked()
        assert await count_requests(d) == 0

        await page.get_by_label("Currency").fill("USD")
        assert await submit(page, "Save") == 200
        assert HOSTILE in await page.get_by_role("status").inner_text()  # the flash, as text
        assert await evaluate(page, "window.__xss") is None
        assert await count_requests(d) == 1


async def test_the_form_works_without_javascript_and_no_partner_means_the_default_rota():
    async with desk() as d, chromium() as browser:
        context = await browser.new_context(java_script_enabled=False)
        page = await context.new_page()
        await sign_in(page, d.borrower_url)
        await goto(page, f"{d.borrower_url}/borrowing/new")
        await page.get_by_label("Title", exact=True).fill("Adam Bede")
        await page.get_by_label("Requester (required)").fill("P-9")
        await page.get_by_label("Requested pickup location (required)").select_option("Main Library")
        await page.get_by_label("Partner 1", exact=True).select_option(label="Mock library B")
        await page.get_by_label("Partner 2", exact=True).select_option(label="Mock library B")
        assert await submit(page, "Save and Edit") == 422  # the same partner twice
        assert await page.locator("#partners-error").inner_text() == "a partner is chosen twice"
        await page.get_by_label("Partner 1", exact=True).select_option("")
        await page.get_by_label("Partner 2", exact=True).select_option("")
        await submit(page, "Save and Edit")
        request_id = int(page.url.rsplit("/", 1)[1])
        data = await stored(d, request_id)
        assert data["title"] == "Adam Bede"
        assert [entry["agency"] for entry in data["rota"]] == [MOCK_A, MOCK_B]
        await close_context(context)


async def test_editing_saves_a_local_field_refuses_a_sent_one_and_a_stale_version():
    async with desk() as d, chromium() as browser, signed_in(browser, d.borrower_url) as page:
        # Sent fields of every kind, so the form must give them back unchanged for a local edit to pass.
        result = await d.borrower.borrowing.create(RequestDetails(
            title=HOSTILE, requester="P-5", pickup_location="Main Library", request_note="MOCK:SILENT",
            other_identifiers=(("DOI", "10.1000/182"),), needed_by=today() + timedelta(days=9),
            maximum_fee=Decimal("2.50"), currency="USD", willing_to_pay=True, requested_media="Odd media"),
            actor="staff:admin")
        request_id = result.request_id

        async def sent() -> bool:
            return (await stored(d, request_id))["status"] == "REQUEST_SENT"

        await wait_for(sent, "the request sent to the partner")
        edit_url = f"{d.borrower_url}/borrowing/{request_id}/edit"
        await goto(page, edit_url)
        await assert_accessible(page)
        assert await evaluate(page, "window.__xss") is None
        assert await page.get_by_label("Title", exact=True).input_value() == HOSTILE
        assert await page.get_by_label("Request status").input_value() == "Request sent to partner"
        assert await page.get_by_label("Requested media").input_value() == "Odd media"  # kept though not listed

        # A local field: saved, by the staff member signed in.
        await page.get_by_label("Requested pickup location (required)").select_option("Science Library")
        await submit(page, "Save")
        assert page.url == f"{d.borrower_url}/borrowing/{request_id}"
        data = await stored(d, request_id)
        assert data["pickup_location"] == "Science Library"
        assert data["history"][-1]["event"] == "edit" and data["history"][-1]["actor"] == "staff:librarian"

        # A field the partner already has: refused with the reason, what was typed kept.
        await goto(page, edit_url)
        await page.get_by_label("Title", exact=True).fill("Felix Holt")
        assert await submit(page, "Save") == 409
        assert "would not reach" in await page.get_by_role("alert").inner_text()
        assert await page.get_by_label("Title", exact=True).input_value() == "Felix Holt"
        assert (await stored(d, request_id))["title"] == HOSTILE

        # A colleague changed the request after the page was opened: nothing is overwritten.
        await goto(page, edit_url)
        await d.borrower.borrowing.apply(request_id, Edit(at=d.borrower.clock(), by="staff:admin",
                                                          changes={"language": "ger"}))
        await page.get_by_label("Language").fill("eng")
        await submit(page, "Save")
        assert page.url == edit_url
        assert "changed since you opened it" in await page.get_by_role("status").inner_text()
        assert await page.get_by_label("Language").input_value() == "ger"
        assert (await stored(d, request_id))["language"] == "ger"
