"""The borrowing requests list page in Chromium: rows and their marks, facets with counts that
match the data, filtering by a facet, search, sort, paging, the choice kept across visits, saved
views, a hostile title shown as text, working without JavaScript, and axe scans."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest

from gateway.api import queries as q
from gateway.core import AddNote, RequestDetails
from gateway.demo import wait_for
from support.browser import (MOCK_A, assert_accessible, chromium, close_context, desk, evaluate, goto, screenshot,
                             sign_in, signed_in)

pytestmark = pytest.mark.timeout(180)

HOSTILE = '<script>window.__xss=1</script><img src=x onerror="window.__xss=1">'
ACTOR = "staff:librarian"


def details(title: str, note: str | None = None, **kw: Any) -> RequestDetails:
    return RequestDetails(requester=kw.pop("requester", "patron-0042"), requester_name="Ada Reader",
                          pickup_location=kw.pop("pickup_location", "Main Library"), title=title,
                          author=kw.pop("author", "Eco, Umberto"), request_note=note, **kw)


async def status_of(gateway, rid: int) -> str:
    async with gateway.engine.connect() as conn:
        return (await conn.run_sync(q.load_request_row, rid))["status"]


async def make(gateway, detail: RequestDetails, partners: tuple[str, ...] | None, *, until: set[str]) -> int:
    rid = (await gateway.borrowing.create(detail, partners, actor=ACTOR)).request_id

    async def reached() -> bool:
        return await status_of(gateway, rid) in until

    await wait_for(reached, f"request {rid} to reach {until}", timeout=20)
    return rid


async def six_requests(gateway) -> dict[str, int]:
    """Six requests in different states (the screenshot's data)."""
    made = {
        "River of Time": await make(gateway, details("River of Time", "MOCK:LOANED", requested_media="Book"), (MOCK_A,),
                                    until={"SHIPPED_PHYSICALLY"}),
        "Garden Stories": await make(gateway, details("Garden Stories", author="Jensen, K."), (),
                                     until={"LOCATE_FAILED"}),
        "Conditional loan": await make(gateway, details("Conditional loan", "MOCK:CONDITIONAL",
                                                        pickup_location="Science Library",
                                                        maximum_fee=Decimal("10.00"), currency="EUR",
                                                        willing_to_pay=True),
                                       (MOCK_A,), until={"CONDITIONAL"}),
        HOSTILE: await make(gateway, details(HOSTILE, author=HOSTILE, format="Digital"), (), until={"LOCATE_FAILED"}),
        "Night Light": await make(gateway, details("Night Light", "MOCK:WILLSUPPLY", requester="patron-0007"),
                                  (MOCK_A,), until={"WILL_SUPPLY"}),
        "Ocean Data": await make(gateway, details("Ocean Data", level_of_service="Rush",
                                                  pickup_location="Science Library"), (), until={"LOCATE_FAILED"}),
    }
    await gateway.borrowing.apply(made["Ocean Data"], AddNote(at=gateway.clock(), by=ACTOR, text="Patron phoned"))
    return made


async def words(locator) -> str:
    """The element's text with its white space (line breaks of flex items) as single spaces."""
    return " ".join((await locator.inner_text()).split())


def facet_label(entry: dict[str, Any]) -> str:
    value = entry["value"]
    if isinstance(value, bool):
        return "Yes" if value else "No"
    return entry.get("label") or ("Not set" if value is None else value)


async def rows(page) -> list[str]:
    """The titles listed, in order."""
    return await page.locator("table.list tbody tr td:first-child").all_inner_texts()


def row(page, title: str):
    return page.locator("table.list tbody tr", has=page.get_by_role("link", name=title, exact=True))


def facet_link(page, label: str):
    return page.locator("aside.facets").get_by_role("link", name=re.compile(rf"^{re.escape(label)}\b"))


async def test_rows_marks_facets_filter_search_and_sort():
    async with desk(web={"due_soon_days": 20}) as d, chromium() as browser:
        made = await six_requests(d.borrower)
        async with signed_in(browser, d.borrower_url) as page:
            assert page.url == f"{d.borrower_url}/borrowing"
            assert await page.locator(".pager-summary").inner_text() == "1–6 of 6"
            assert len(await rows(page)) == 6
            assert (await page.locator("[data-live]").get_attribute("data-live")).startswith("/live/borrowing?since=")
            # Hostile text from the request is shown as text and never runs.
            assert await evaluate(page, "window.__xss") is None
            assert await page.get_by_role("link", name=HOSTILE, exact=True).count() == 1
            await assert_accessible(page)
            await screenshot(page, "list")
            await page.get_by_text("Add", exact=True).click()  # the Add menu opens
            assert await page.get_by_role("link", name="Manual request").get_attribute("href") == "/borrowing/new"

            # The marks, and the columns of one row.
            assert "Needs attention: no partner found" in await row(page, "Garden Stories").inner_text()
            assert "Needs attention: the partner offers conditions" in await row(page, "Conditional loan").inner_text()
            river = await row(page, "River of Time").inner_text()
            assert "Due soon" in river and "Shipped physically" in river and "Mock library A" in river
            assert "Needs attention" not in river and "Due soon" not in await row(page, "Night Light").inner_text()
            link = page.get_by_role("link", name="River of Time", exact=True)
            assert await link.get_attribute("href") == f"/borrowing/{made['River of Time']}"

            # Every facet count on the page is the data's count.
            async with d.borrower.engine.connect() as conn:
                data = await conn.run_sync(q.list_requests, q.Filters(), q.Page())
            for name in ("status", "pickup_location", "needs_attention", "has_notes", "has_costs", "format",
                         "requested_media", "level_of_service", "unread_messages"):
                shown = await page.locator(f"aside.facets ul[aria-labelledby=facet-{name}] li").all_inner_texts()
                expected = {f"{facet_label(e)} {e['count']}" for e in data["facets"][name]}
                assert {" ".join(t.split()) for t in shown} == expected, name
            assert await words(facet_link(page, "Main Library")) == "Main Library 4"
            assert await words(facet_link(page, "Science Library")) == "Science Library 2"
            assert await words(facet_link(page, "Locate failed")) == "Locate failed 3"
            assert await words(facet_link(page, "Rush")) == "Rush 1"

            # A facet filters; chosen, it is marked and a second click takes it away.
            await facet_link(page, "Science Library").click()
            await page.wait_for_url("**/borrowing?pickup_location=Science+Library")
            assert sorted(await rows(page)) == ["Conditional loan", "Ocean Data"]
            assert await facet_link(page, "Science Library").get_attribute("aria-current") == "true"
            notes = page.locator("aside.facets ul[aria-labelledby=facet-has_notes]")
            assert [" ".join(t.split()) for t in await notes.get_by_role("link").all_inner_texts()] == ["Yes 1", "No 1"]
            await facet_link(page, "Science Library").click()
            await page.wait_for_url(f"{d.borrower_url}/borrowing?q=")
            assert len(await rows(page)) == 6

            # Search, then sort by title, descending.
            await page.get_by_label("Search").fill("river")
            await page.get_by_role("button", name="Search").click()
            await page.wait_for_url("**/borrowing?q=river&*")
            assert await rows(page) == ["River of Time"]
            await page.get_by_label("Search").fill("")
            await page.get_by_label("Sort by").select_option(label="Title")
            await page.get_by_label("Order").select_option(label="Ascending")
            await page.get_by_role("button", name="Search").click()
            await page.wait_for_url("**/borrowing?q=&sort=title&order=asc&*")
            titles = await rows(page)
            assert titles == sorted(titles) and titles[-1] == "River of Time"


async def test_paging_the_kept_choice_and_saved_views():
    async with desk() as d, chromium() as browser:
        for i in range(27):
            await d.borrower.borrowing.create(details(f"Book {i:02d}", format="Digital" if i < 2 else "Physical"),
                                              (), actor=ACTOR)
        async with signed_in(browser, d.borrower_url) as page:
            assert await page.locator(".pager-summary").inner_text() == "1–25 of 27"
            assert len(await rows(page)) == 25 and (await rows(page))[0] == "Book 26"
            await page.get_by_role("link", name="Next").click()
            await page.wait_for_url("**/borrowing?page=2")
            assert await page.locator(".pager-summary").inner_text() == "26–27 of 27"
            assert await rows(page) == ["Book 01", "Book 00"]
            assert await page.get_by_role("link", name="Next").count() == 0
            await page.get_by_role("link", name="Previous").click()
            await page.wait_for_url(f"{d.borrower_url}/borrowing?q=")

            # The choice is kept: /borrowing with no query shows it again, in a new session too.
            await facet_link(page, "Digital").click()
            await page.wait_for_url("**/borrowing?format=Digital")
            await goto(page, f"{d.borrower_url}/borrowing")
            assert page.url == f"{d.borrower_url}/borrowing?format=Digital"
            assert sorted(await rows(page)) == ["Book 00", "Book 01"]
        async with signed_in(browser, d.borrower_url) as page:
            assert page.url == f"{d.borrower_url}/borrowing?format=Digital"

            # Save it as a named view; the name is required (the error stays by the field).
            await page.get_by_role("button", name="Save view").click()
            name = page.get_by_label("View name")
            assert await name.get_attribute("aria-invalid") == "true"
            error = page.locator("#" + await name.get_attribute("aria-describedby"))
            assert "a view name is 1-100 characters" in await error.inner_text()
            await assert_accessible(page)
            await name.fill("Digital only")
            await page.get_by_role("button", name="Save view").click()
            await page.wait_for_url("**/borrowing?format=Digital")
            assert "View “Digital only” saved." in await page.locator(".flashes").inner_text()

            # Clear the filters, then open the view.
            await page.get_by_role("link", name="Clear filters").click()
            await page.wait_for_url(f"{d.borrower_url}/borrowing?q=")
            assert await page.locator(".pager-summary").inner_text() == "1–25 of 27"
            await goto(page, f"{d.borrower_url}/borrowing")
            assert page.url == f"{d.borrower_url}/borrowing"  # cleared stays cleared
            await page.get_by_role("link", name="Digital only").click()
            await page.wait_for_url("**/borrowing?format=Digital")
            assert len(await rows(page)) == 2

            # Delete it (the page asks first).
            page.once("dialog", lambda dialog: dialog.accept())
            await page.get_by_role("button", name="Delete view Digital only").click()
            await page.wait_for_url("**/borrowing?format=Digital")  # back to the kept choice
            assert await page.get_by_role("link", name="Digital only").count() == 0
            assert await d.borrower.views.views("librarian") == []

            # A query the list can't use says so and shows everything.
            response = await goto(page, f"{d.borrower_url}/borrowing?status=NOT_A_STATUS")
            assert response is not None and response.status == 400
            assert "could not use “status”" in await page.get_by_role("alert").inner_text()
            assert await page.locator(".pager-summary").inner_text() == "1–25 of 27"


async def test_the_list_works_without_javascript():
    async with desk() as d, chromium() as browser:
        await make(d.borrower, details("Garden Stories"), (), until={"LOCATE_FAILED"})
        await make(d.borrower, details("River of Time", pickup_location="Science Library"), (),
                   until={"LOCATE_FAILED"})
        context = await browser.new_context(java_script_enabled=False)
        page = await context.new_page()
        try:
            await sign_in(page, d.borrower_url)
            await page.get_by_label("Search").fill("garden")
            await page.get_by_role("button", name="Search").click()
            await page.wait_for_url("**/borrowing?q=garden&*")
            assert await rows(page) == ["Garden Stories"]
            await page.get_by_label("View name").fill("Gardens")
            await page.get_by_role("button", name="Save view").click()
            await page.wait_for_url("**/borrowing?q=garden")
            assert "View “Gardens” saved." in await page.locator(".flashes").inner_text()
            await page.get_by_role("link", name="Clear filters").click()
            await page.wait_for_url(f"{d.borrower_url}/borrowing?q=")
            await facet_link(page, "Science Library").click()
            await page.wait_for_url("**/borrowing?pickup_location=Science+Library")
            assert await rows(page) == ["River of Time"]
            await page.get_by_role("button", name="Delete view Gardens").click()  # no confirm without JS
            await page.wait_for_url("**/borrowing?pickup_location=Science+Library")
            assert await d.borrower.views.views("librarian") == []
        finally:
            await close_context(context)
