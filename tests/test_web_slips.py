"""Printable slips (web/slips.py) in Chromium: the pull slip of a lending request and the book
strap of a received borrowing item (their fields, a barcode that reads back, a hostile title shown
as text, print media without navigation), and batch printing of a filtered list (refused without a
filter, capped, "Mark as printed" recorded, without JavaScript)."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from gateway.core import Receive, RequestDetails
from gateway.demo import borrowing_row, lending_row, wait_for, wait_status
from gateway.store.models import borrowing_requests_t, history_t
from support.browser import (DESK, LENDER, MOCK_A, assert_accessible, chromium, close_context, desk, evaluate, goto,
                             screenshot, sign_in, signed_in)
from support.staff_pages import decode_code128, svg_bars

pytestmark = pytest.mark.timeout(180)

HOSTILE = '<script>window.__xss=1</script><img src=x onerror="window.__xss=1">'


def details(title: str, requester: str = "patron-7", **kw) -> RequestDetails:
    return RequestDetails(requester=requester, requester_name="Pat Reader", pickup_location="Science Library",
                          title=title, author="Eco, Umberto", **kw)


async def received(d, title: str, requester: str = "patron-7") -> int:
    """A borrowing request loaned by the mock partner and received (one item)."""
    rid = (await d.borrower.borrowing.create(details(title, requester, request_note="MOCK:LOANED"), (MOCK_A,),
                                             actor="staff:librarian")).request_id
    await wait_status(d.borrower, rid, "SHIPPED_PHYSICALLY")
    await d.borrower.borrowing.apply(rid, Receive(at=d.borrower.clock(), by="staff:librarian", items=(f"3900{rid}",)))
    return rid


async def fields(page) -> dict[str, str]:
    names = await page.locator(".slip-fields dt").all_inner_texts()
    values = await page.locator(".slip-fields dd").all_inner_texts()
    return dict(zip(names, values))


async def test_pull_slip_and_book_strap_show_their_fields_and_a_barcode_that_reads_back():
    async with desk() as d, chromium() as browser:
        rid = (await d.borrower.borrowing.create(
            details(HOSTILE, needed_by=date(2031, 5, 17), level_of_service="Rush"), (LENDER,),
            actor="staff:librarian")).request_id
        external = (await borrowing_row(d.borrower, rid))["external_id"]
        lending = await wait_for(lambda: lending_row(d.lender, DESK, external), "the lender has the request")
        async with signed_in(browser, d.lender_url) as page:
            await goto(page, f"{d.lender_url}/lending/{lending['id']}/pull-slip")
            assert await page.get_by_role("heading", level=1).inner_text() == "Pull slip"
            shown = await fields(page)
            assert shown["Title"] == HOSTILE and await evaluate(page, "window.__xss") is None
            assert shown["Requested by"] == f"Desk library ({DESK})"
            assert shown["Their request ID"] == external
            assert shown["Needed by"].startswith("2031-05-17")
            assert shown["Call number"] == "not known"
            bars, module = await svg_bars(page)
            assert decode_code128(bars, module) == f"LR-{lending['id']}"
            assert await page.get_by_role("img", name=f"Barcode LR-{lending['id']}").is_visible()
            assert await page.get_by_role("button", name="Print", exact=True).is_visible()  # shown by app.js
            await assert_accessible(page)
            await screenshot(page, "pull-slip")
            await page.emulate_media(media="print")
            assert not await page.locator("header.top").is_visible()
            assert not await page.get_by_role("button", name="Print", exact=True).is_visible()
            assert await page.locator(".slip").is_visible()
            await page.emulate_media(media="screen")
            # The lending list's batch: refused without a filter; with one, marked as printed.
            answer = await goto(page, f"{d.lender_url}/lending/slips")
            assert answer.status == 400 and "needs at least one filter" in await page.get_by_role("alert").inner_text()
            await goto(page, f"{d.lender_url}/lending/slips?status=NEW")
            assert await page.get_by_role("heading", level=1).inner_text() == "Pull slips (1 request)"
            await assert_accessible(page)
            await page.get_by_role("button", name="Mark as printed").click()
            await page.wait_for_load_state()
            assert "Marked the pull slips of 1 request as printed." in await page.locator(".flashes").inner_text()
            async with d.lender.engine.connect() as conn:
                entry = (await conn.execute(select(history_t.c.actor, history_t.c.detail).where(
                    history_t.c.lending_id == lending["id"], history_t.c.event == "slip_printed"))).one()
            assert entry.actor == "staff:librarian" and entry.detail["text"] == "pull slip printed"

        strap_rid = await received(d, "Il nome della rosa")
        strap_external = (await borrowing_row(d.borrower, strap_rid))["external_id"]
        waiting = (await d.borrower.borrowing.create(details("Not here yet", request_note="MOCK:SILENT"), (MOCK_A,),
                                                     actor="staff:librarian")).request_id
        async with signed_in(browser, d.borrower_url) as page:
            await goto(page, f"{d.borrower_url}/borrowing/{strap_rid}/strap")
            shown = await fields(page)
            assert shown["Title"] == "Il nome della rosa"
            assert shown["Patron"] == "Pat Reader (patron-7)"
            assert shown["Pickup location"] == "Science Library"
            assert shown["Due date"][:4].isdigit()  # the partner's due date (the mock lends for 14 days)
            assert shown["Item"] == f"3900{strap_rid}"
            bars, module = await svg_bars(page)
            assert decode_code128(bars, module) == strap_external
            await assert_accessible(page)
            await screenshot(page, "book-strap")
            answer = await goto(page, f"{d.borrower_url}/borrowing/{waiting}/strap")
            assert answer.status == 409 and "No item has been received" in await page.get_by_role("alert").inner_text()
            await assert_accessible(page)


async def test_batch_printing_needs_a_filter_is_capped_and_records_mark_as_printed_without_javascript():
    async with desk(web={"slip_batch_limit": 2}) as d, chromium() as browser:
        batch = [await received(d, f"Batch {n}", requester="patron-batch") for n in range(3)]
        await received(d, "Someone else's", requester="patron-other")
        async with signed_in(browser, d.borrower_url) as page:
            answer = await goto(page, f"{d.borrower_url}/borrowing/slips")
            assert answer.status == 400
            assert "needs at least one filter" in await page.get_by_role("alert").inner_text()
            await assert_accessible(page)
            answer = await goto(page, f"{d.borrower_url}/borrowing/slips?status=NOT_A_STATUS")
            assert answer.status == 400 and "not valid" in await page.get_by_role("alert").inner_text()
            await goto(page, f"{d.borrower_url}/borrowing/slips?requester=patron-batch&sort=title")
            assert await page.get_by_role("heading", level=1).inner_text() == "Book straps (2 requests)"
            assert "1 left out" in await page.locator(".slips-cap").inner_text()
            assert await page.locator("article.slip").count() == 2
            assert await page.get_by_role("button", name="Print", exact=True).is_visible()
            await assert_accessible(page)
            await screenshot(page, "book-straps-batch")

        # Without JavaScript: no Print button (the browser's own Print remains); the form still works.
        context = await browser.new_context(java_script_enabled=False)
        page = await context.new_page()
        await sign_in(page, d.borrower_url)
        await goto(page, f"{d.borrower_url}/borrowing/slips?requester=patron-batch")
        assert not await page.get_by_role("button", name="Print", exact=True).is_visible()
        await page.get_by_role("button", name="Mark as printed").click()
        await page.wait_for_load_state()
        assert "Marked the book straps of 2 requests as printed." in await page.locator(".flashes").inner_text()
        assert await page.locator(".slip-printed").count() == 2
        async with d.borrower.engine.connect() as conn:
            printed = {r.id for r in await conn.execute(select(borrowing_requests_t.c.id).where(
                borrowing_requests_t.c.slip_printed_at.is_not(None)))}
            entries = (await conn.execute(select(history_t.c.request_id, history_t.c.actor, history_t.c.detail)
                                          .where(history_t.c.event == "slip_printed"))).all()
        newest_two = set(sorted(batch)[-2:])  # the list's default order: newest first
        assert printed == newest_two
        assert {e.request_id for e in entries} == newest_two
        assert all(e.actor == "staff:librarian" and e.detail["text"] == "book strap printed" for e in entries)
        await close_context(context)


def test_the_call_number_comes_from_the_requests_supplier_info():
    from gateway.web.slips import call_number

    body = (b'<ISO18626Message xmlns="http://illtransactions.org/2013/iso18626"><request><supplierInfo>'
            b'<callNumber> QA76.9 .E25 </callNumber></supplierInfo></request></ISO18626Message>')
    assert call_number(body) == "QA76.9 .E25"
    assert call_number(body.replace(b"callNumber", b"summaryHoldings")) is None
    assert call_number(b"<not xml") is None and call_number(None) is None
