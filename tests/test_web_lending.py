"""The lending side's pages, in Chromium: a request arrives from the desk (a borrowing request on
the borrowing gateway with the lender as its partner) and the librarian answers it on the
lender's pages: will supply then ship; conditional with a condition and costs; unfilled with a
reason (without JavaScript); general messages both ways and notes; a stale page and an action
the requesting library made impossible meanwhile; hostile text escaped; axe on every page."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from gateway.core import CancelRequest, Receive, Renew, RequestDetails, SendMessage
from gateway.core.lending import MessageUndelivered, Ship, WillSupply
from gateway.demo import borrowing_row, lending_row, wait_for
from gateway.store.models import general_messages_t, rota_entries_t
from gateway.web import lending_pages
from support.browser import (DESK, LENDER, MOCK_A, PICKUP, assert_accessible, chromium, close_context, desk, evaluate,
                             goto, no_live_updates, screenshot, sign_in, signed_in)

pytestmark = pytest.mark.timeout(180)

HOSTILE = '<script>window.__xss=1</script><img src=x onerror="window.__xss=1">'


async def arrive(d: Any, title: str, partners: tuple[str, ...] = (LENDER,), **kw: Any) -> tuple[int, int]:
    """A borrowing request sent from the desk to the lender: (borrowing id, lending id)."""
    details = RequestDetails(requester="patron-0042", requester_name="Ada Reader", pickup_location=PICKUP[0],
                             title=title, author=kw.pop("author", "Eco, Umberto"), **kw)
    result = await d.borrower.borrowing.create(details, partners, actor="staff:desk")
    external = (await borrowing_row(d.borrower, result.request_id))["external_id"]
    row = await wait_for(lambda: lending_row(d.lender, DESK, external), "the request reaches the lender")
    return result.request_id, row["id"]


async def borrower_status(d: Any, request_id: int, *statuses: str) -> str:
    async def check() -> str | None:
        status = (await borrowing_row(d.borrower, request_id))["status"]
        return status if status in statuses else None
    return await wait_for(check, f"the borrowing request becomes one of {statuses}")


async def lender_row(d: Any, lending_id: int) -> dict[str, Any]:
    from gateway.store.models import lending_requests_t as lr
    async with d.lender.engine.connect() as conn:
        return dict((await conn.execute(select(lr).where(lr.c.id == lending_id))).one()._mapping)


async def flash_text(page: Any) -> str:
    return await page.locator(".flashes").inner_text()


async def test_list_will_supply_then_ship_history_and_its_iso_message(monkeypatch):
    monkeypatch.setattr(lending_pages, "PAGE_SIZE", 2)  # three requests: two pages
    async with desk() as d, chromium() as browser:
        borrowing_id, lending_id = await arrive(d, "The name of the rose", needed_by=date(2031, 5, 17))
        await arrive(d, "Foucault's pendulum")
        await arrive(d, "Baudolino", author="Eco, U.")
        async with signed_in(browser, d.lender_url) as page:
            await goto(page, f"{d.lender_url}/lending")
            assert await page.get_by_role("heading", level=1).inner_text() == "Resource Sharing Lending Requests"
            assert await page.locator("[data-live^='/live/lending?since=']").count() == 1
            assert "Showing 1–2 of 3" in await page.locator("#list-count").inner_text()
            filters = page.get_by_role("complementary", name="Filters")
            assert "Desk library" in await filters.inner_text()
            assert "New request (request received)\n3" in await filters.inner_text()
            first_row = page.locator("tbody tr").first
            assert "Desk library" in await first_row.inner_text()
            await assert_accessible(page)
            await goto(page, f"{d.lender_url}/lending?status=BOGUS")  # a hand-edited URL: said, not a crash
            assert await page.get_by_role("alert").inner_text() == "status: unknown status"
            assert "Showing 1–2 of 3" in await page.locator("#list-count").inner_text()
            await goto(page, f"{d.lender_url}/lending")
            await page.get_by_role("link", name="Next page").click()
            assert "Showing 3–3 of 3" in await page.locator("#list-count").inner_text()
            await page.get_by_label("Sort by").select_option("title")
            await page.get_by_role("button", name="Search").click()
            assert (await page.locator("tbody tr").first.inner_text()).startswith("Baudolino")
            await page.get_by_label("Search title, author or their request ID").fill("rose")
            await page.get_by_role("button", name="Search").click()
            assert "Showing 1–1 of 1" in await page.locator("#list-count").inner_text()
            assert "2031-05-17" in await page.locator("tbody").inner_text()
            await page.get_by_role("link", name="The name of the rose").click()
            await page.wait_for_url(f"{d.lender_url}/lending/{lending_id}")

            # The request page: header, the actions allowed now, the tabs.
            assert await page.get_by_role("heading", level=1).inner_text() == "The name of the rose"
            assert "Needed by\n2031-05-17" in await page.locator(".tab-panel").inner_text()
            assert await page.locator(f"[data-live^='/live/lending/{lending_id}?since=']").count() == 1
            header = await page.locator(".request-head").inner_text()
            assert "Desk library" in header and "New request (request received)" in header
            assert await page.get_by_role("link", name="Pull slip").get_attribute("href") == \
                f"/lending/{lending_id}/pull-slip"
            await assert_accessible(page)
            await page.get_by_role("button", name="Will supply").click()
            await page.wait_for_url(f"{d.lender_url}/lending/{lending_id}")
            assert "Will supply: sent to the requesting library." in await flash_text(page)
            assert await page.locator("#request-status").inner_text() == "Will supply"
            await borrower_status(d, borrowing_id, "WILL_SUPPLY")

            # Ship: the workform keeps what was typed and says what is missing, next to the field.
            await page.get_by_role("link", name="Ship…").click()
            await page.wait_for_url(f"{d.lender_url}/lending/{lending_id}/actions/ship")
            await assert_accessible(page)
            await page.get_by_label("Item ID (barcode)").fill("3900012345")
            await page.get_by_role("button", name="Ship", exact=True).click()
            due = page.get_by_label("Due date (required)")
            assert await due.get_attribute("aria-invalid") == "true"
            error_id = (await due.get_attribute("aria-describedby")).split()[0]
            assert await page.locator(f"#{error_id}").inner_text() == "Due date is required"
            assert await page.get_by_label("Item ID (barcode)").input_value() == "3900012345"
            await assert_accessible(page)
            due_date = (d.lender.clock() + timedelta(days=28)).date().isoformat()
            await due.fill(due_date)
            await page.get_by_role("button", name="Ship", exact=True).click()
            await page.wait_for_url(f"{d.lender_url}/lending/{lending_id}")
            assert await page.locator("#request-status").inner_text() == "Loaned (shipped physically)"
            assert due_date in await page.locator(".request-head").inner_text()
            await borrower_status(d, borrowing_id, "SHIPPED_PHYSICALLY")
            assert (await lender_row(d, lending_id))["status"] == "LOANED"
            await screenshot(page, "lending-request")

            # History: each entry, and the ISO message behind one, indented and escaped.
            history = page.get_by_role("link", name="History")
            assert "has-content" in (await history.get_attribute("class") or "")
            await history.click()
            await page.wait_for_url(f"{d.lender_url}/lending/{lending_id}/history")
            rows = await page.locator("tbody").inner_text()
            assert "librarian (staff)" in rows and "Will supply" in rows
            await assert_accessible(page)
            await page.get_by_role("link", name="View message").first.click()
            await page.wait_for_url(f"{d.lender_url}/lending/{lending_id}/history/*/message")
            xml = await page.locator("pre.xml").first.inner_text()
            assert "ISO18626Message" in xml and "\n  <ill:request>" in xml and "The name of the rose" in xml
            await assert_accessible(page)


async def test_conditional_with_a_condition_and_costs_reaches_the_borrower():
    async with desk() as d, chromium() as browser:
        borrowing_id, lending_id = await arrive(d, "Rare atlas")
        _, copy_id = await arrive(d, "An article", format="Digital", agree_to_copyright_terms=True)
        async with signed_in(browser, d.lender_url) as page:
            # Every workform open to a new request has its labels and passes axe.
            for name, title in (("will-supply", "Will supply"), ("expect-to-supply", "Expect to supply"),
                                ("retry-possible", "Retry possible"), ("unfilled", "Unfilled")):
                await goto(page, f"{d.lender_url}/lending/{lending_id}/actions/{name}")
                assert await page.get_by_role("heading", level=2).inner_text() == title
                await assert_accessible(page)
            await goto(page, f"{d.lender_url}/lending/{copy_id}/actions/copy-completed")  # a copy was asked for
            assert await page.get_by_role("heading", level=2).inner_text() == "Copy completed"
            await page.get_by_label("Link to the copy").fill("https://example.org/copy.pdf")
            await assert_accessible(page)
            await goto(page, f"{d.lender_url}/lending/{lending_id}/actions/check-in")  # not open to a new request
            await page.wait_for_url(f"{d.lender_url}/lending/{lending_id}")
            assert "“Check in” is no longer possible" in await flash_text(page)
            await page.get_by_role("link", name="Conditional…").click()
            await page.wait_for_url(f"{d.lender_url}/lending/{lending_id}/actions/conditional")
            await assert_accessible(page)
            await page.get_by_label("Loan condition").select_option("LibraryUseOnly")
            await page.get_by_label("Amount").fill("12.50")
            await page.get_by_label("Tell the borrower (required)").select_option("WillSupply")
            await page.get_by_label("Note to the requesting library").fill("Reading room only, please.")
            await page.get_by_role("button", name="Conditional").click()
            currency = page.get_by_label("Currency")
            assert await currency.get_attribute("aria-invalid") == "true"
            assert "3-letter currency" in await page.locator("#f-cost-currency-error").inner_text()
            assert await page.get_by_label("Amount").input_value() == "12.50"
            assert await page.get_by_label("Loan condition").input_value() == "LibraryUseOnly"
            await assert_accessible(page)
            await currency.fill("eur")
            await page.get_by_role("button", name="Conditional").click()
            await page.wait_for_url(f"{d.lender_url}/lending/{lending_id}")
            assert (await page.locator("#request-status").inner_text()).startswith("Conditional")
            general = await page.locator(".tab-panel").inner_text()
            assert "LibraryUseOnly" in general and "12.50 EUR" in general
            await borrower_status(d, borrowing_id, "CONDITIONAL")
            row = await lender_row(d, lending_id)
            assert row["extra"]["state"]["loan_conditions"] == ["LibraryUseOnly"]


async def test_renewal_recall_and_check_in():
    async with desk() as d, chromium() as browser:
        borrowing_id, lending_id = await arrive(d, "Long loan")
        now = d.lender.clock()
        await d.lender.lending.apply(lending_id, WillSupply(at=now, by="staff:lender"))
        await d.lender.lending.apply(lending_id, Ship(at=now, by="staff:lender", due_date=now + timedelta(days=2)))
        await borrower_status(d, borrowing_id, "SHIPPED_PHYSICALLY")
        await d.borrower.borrowing.apply(borrowing_id, Receive(at=d.borrower.clock(), by="staff:desk"))
        await d.borrower.borrowing.apply(borrowing_id, Renew(at=d.borrower.clock(), by="staff:desk"))

        async def renew_pending() -> bool:
            return (await lender_row(d, lending_id))["extra"]["state"]["pending"] == "renew"
        await wait_for(renew_pending, "the renewal reaches the lender")
        async with signed_in(browser, d.lender_url) as page:
            page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
            await goto(page, f"{d.lender_url}/lending/{lending_id}")
            header = await page.locator(".request-head").inner_text()
            assert "asks to renew" in header and "Due soon" in header
            await page.get_by_role("link", name="Answer renewal…").click()
            await page.get_by_label("Answer (required)").select_option("Y")
            await page.get_by_role("button", name="Answer renewal").click()
            new_due = page.get_by_label("New due date")
            assert await new_due.get_attribute("aria-invalid") == "true"
            assert "required to grant a renewal" in await page.locator("#f-due-date-error").inner_text()
            await assert_accessible(page)
            later = (now + timedelta(days=30)).date().isoformat()
            await new_due.fill(later)
            await page.get_by_role("button", name="Answer renewal").click()
            await page.wait_for_url(f"{d.lender_url}/lending/{lending_id}")
            assert later in await page.locator(".request-head").inner_text()
            await borrower_status(d, borrowing_id, "RENEWED_BY_PARTNER")

            for name, title in (("recall", "Recall"), ("mark-overdue", "Mark overdue"),
                                ("complete-without-return", "Complete without return"), ("check-in", "Check in")):
                await goto(page, f"{d.lender_url}/lending/{lending_id}/actions/{name}")
                assert await page.get_by_role("heading", level=2).inner_text() == title
                await assert_accessible(page)

            # A message of ours was not delivered: staff deal with it and say so.
            await d.lender.lending.apply(lending_id, MessageUndelivered(partner=DESK, at=d.lender.clock()))
            await goto(page, f"{d.lender_url}/lending/{lending_id}/actions/acknowledge")
            assert await page.get_by_role("heading", level=2).inner_text() == "Acknowledge"
            assert "could not be delivered" in await page.locator(".request-head").inner_text()
            await assert_accessible(page)
            await page.get_by_role("link", name="Back to the request").click()
            await page.get_by_role("button", name="Dealt with: send failed").click()
            await page.wait_for_url(f"{d.lender_url}/lending/{lending_id}")
            assert "Needs attention" not in await page.locator(".request-head").inner_text()
            await page.get_by_role("button", name="Check in").click()
            await page.wait_for_url(f"{d.lender_url}/lending/{lending_id}")
            assert await page.locator("#request-status").inner_text() == "Loan completed (checked in)"


async def test_unfilled_with_a_reason_without_javascript_moves_the_borrower_on():
    async with desk() as d, chromium() as browser:
        borrowing_id, lending_id = await arrive(d, "Unobtainable pamphlet", partners=(LENDER, MOCK_A))
        context = await browser.new_context(java_script_enabled=False)
        page = await context.new_page()
        await sign_in(page, d.lender_url)
        await goto(page, f"{d.lender_url}/lending/{lending_id}/actions/unfilled")
        await page.get_by_label("Reason (required)").select_option("NotOnShelf")
        await page.get_by_role("button", name="Unfilled").click()
        await page.wait_for_url(f"{d.lender_url}/lending/{lending_id}")
        assert await page.locator("#request-status").inner_text() == "Unfilled"
        assert "Unfilled: sent to the requesting library." in await flash_text(page)
        assert (await lender_row(d, lending_id))["extra"]["state"]["reason"] == "NotOnShelf"

        async def moved_on() -> bool:
            async with d.borrower.engine.connect() as conn:
                rota = {r.agency: r.state for r in await conn.execute(select(rota_entries_t).where(
                    rota_entries_t.c.request_id == borrowing_id))}
            # MOCK_A got the request (whatever the mock then answers)
            return rota.get(LENDER) == "rejected" and rota.get(MOCK_A) not in (None, "pending")
        await wait_for(moved_on, "the borrower moves on to its next partner")
        await close_context(context)


async def test_general_messages_both_ways_notes_and_hostile_text_escaped():
    async with desk() as d, chromium() as browser:
        borrowing_id, lending_id = await arrive(d, f"Atlas {HOSTILE}")
        await d.borrower.borrowing.apply(borrowing_id, SendMessage(at=d.borrower.clock(), by="staff:desk",
                                                                   note=f"Any news? {HOSTILE}"))
        await wait_for(lambda: _unread(d, lending_id), "the message reaches the lender")
        async with signed_in(browser, d.lender_url) as page:
            await goto(page, f"{d.lender_url}/lending")
            assert HOSTILE in await page.locator("tbody").inner_text()
            assert "unread message" in await page.locator("tbody").inner_text()
            await page.get_by_role("link", name=f"Atlas {HOSTILE}").click()
            assert await page.get_by_role("heading", level=1).inner_text() == f"Atlas {HOSTILE}"
            tab = page.get_by_role("link", name="General messages")
            assert "has-content" in (await tab.get_attribute("class") or "")
            assert "has-content" not in (await page.get_by_role("link", name="Notes").get_attribute("class") or "")
            await tab.click()
            await page.wait_for_url(f"{d.lender_url}/lending/{lending_id}/messages")
            table = await page.locator("tbody").inner_text()
            assert f"Any news? {HOSTILE}" in table and "Unread" in table
            await assert_accessible(page)
            await page.get_by_role("button", name="Mark as read").click()
            await page.wait_for_url(f"{d.lender_url}/lending/{lending_id}/messages")
            assert "Unread" not in await page.locator("tbody").inner_text()

            # An empty message is refused next to its field; then one is sent to the desk.
            await page.get_by_role("button", name="Send", exact=True).click()
            field = page.get_by_label("Message to Desk library")
            assert await field.get_attribute("aria-invalid") == "true"
            assert await page.locator("#f-text-error").inner_text() == "Message is required"
            await assert_accessible(page)
            await field.fill("It is on the shelf; shipping tomorrow.")
            await page.get_by_role("button", name="Send", exact=True).click()
            await page.wait_for_url(f"{d.lender_url}/lending/{lending_id}/messages")
            assert "Message sent." in await flash_text(page)

            async def arrived() -> bool:
                async with d.borrower.engine.connect() as conn:
                    texts = [r.text for r in await conn.execute(select(general_messages_t.c.text).where(
                        general_messages_t.c.request_id == borrowing_id, general_messages_t.c.direction == "in"))]
                return "It is on the shelf; shipping tomorrow." in texts
            await wait_for(arrived, "the lender's message reaches the desk")

            await page.get_by_role("link", name="Notes").click()
            await page.wait_for_url(f"{d.lender_url}/lending/{lending_id}/notes")
            await assert_accessible(page)
            await page.get_by_label("Note (seen by our staff only)").fill(f"Fragile {HOSTILE}")
            await page.get_by_role("button", name="Add note").click()
            await page.wait_for_url(f"{d.lender_url}/lending/{lending_id}/notes")
            assert f"Fragile {HOSTILE}" in await page.locator("ul.notes").inner_text()
            assert "has-content" in (await page.get_by_role("link", name="Notes").get_attribute("class") or "")
            await page.get_by_role("link", name="General information").click()
            await assert_accessible(page)
            assert await evaluate(page, "window.__xss") is None


async def _unread(d: Any, lending_id: int) -> bool:
    row = await lender_row(d, lending_id)
    return "message_unread" in row["extra"]["state"]["flags"]


async def test_a_stale_page_and_an_action_the_borrower_made_impossible_change_nothing():
    async with desk() as d, chromium() as browser:
        borrowing_id, lending_id = await arrive(d, "Contested item")
        async with signed_in(browser, d.lender_url) as page:
            page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
            await no_live_updates(page)
            await goto(page, f"{d.lender_url}/lending/{lending_id}")
            # Meanwhile a message from the desk changes the request: the page's version is old.
            await d.borrower.borrowing.apply(borrowing_id, SendMessage(at=d.borrower.clock(), by="staff:desk",
                                                                       note="Hello"))
            await wait_for(lambda: _unread(d, lending_id), "the message reaches the lender")
            await page.get_by_role("button", name="Will supply").click()
            await page.wait_for_url(f"{d.lender_url}/lending/{lending_id}")
            assert "changed since you opened it" in await flash_text(page)
            assert (await lender_row(d, lending_id))["status"] == "NEW"

            # Now the desk cancels: the page still offers "Expect to supply", which is refused.
            await d.borrower.borrowing.apply(borrowing_id, CancelRequest(at=d.borrower.clock(), by="staff:desk",
                                                                         reason="Patron no longer needs it"))

            async def cancel_pending() -> bool:
                return (await lender_row(d, lending_id))["extra"]["state"]["pending"] == "cancel"
            await wait_for(cancel_pending, "the cancel reaches the lender")
            async with signed_in(browser, d.lender_url, "viewer") as viewer:  # may look, not act
                await goto(viewer, f"{d.lender_url}/lending/{lending_id}/actions/answer-cancel")
                assert await viewer.get_by_role("heading", level=2).inner_text() == "Answer cancel"
                await assert_accessible(viewer)
                await viewer.get_by_label("Answer (required)").select_option("N")
                await viewer.get_by_role("button", name="Answer cancel").click()
                assert "Your role (viewer) may look but not change anything." in await viewer.content()
                await goto(viewer, f"{d.lender_url}/lending/{lending_id}/messages")
                assert await viewer.get_by_role("button").all_inner_texts() == ["Sign out"]
            await page.get_by_role("button", name="Expect to supply").click()
            await page.wait_for_url(f"{d.lender_url}/lending/{lending_id}")
            assert ("“Expect to supply” is no longer possible: the requesting library asks to cancel it"
                    in await flash_text(page))
            assert (await lender_row(d, lending_id))["status"] == "NEW"
            assert "asks to cancel" in await page.locator(".request-head").inner_text()
            await assert_accessible(page)
            await page.get_by_role("button", name="Accept cancel").click()
            await page.wait_for_url(f"{d.lender_url}/lending/{lending_id}")
            assert await page.locator("#request-status").inner_text() == "Cancelled"
            await borrower_status(d, borrowing_id, "CANCELED_BY_STAFF")
