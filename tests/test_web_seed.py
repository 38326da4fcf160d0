"""The seed document ("Borrowing an ILL Item in Alma"), walked in Chromium as a librarian would,
on the staff pages only: sign in, open the list, add a manual request through the form (Save and
Edit), watch it reach the mock partner and come back shipped, receive, loan, return; on a second
request reorder the rota, add and remove partners, cancel the active partner, locate and resend;
send a general message, add a note, upload and download an attachment; cancel a third request
through the workform. Lending: answer an incoming request through the lender's pages. Every
page on the way is scanned with axe-core. And hostile text arriving through the patron form is
shown literally."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from gateway.api import queries as q
from gateway.demo import wait_for
from support.browser import (DESK, LENDER, MOCK_A, MOCK_B, PICKUP, assert_accessible, chromium, desk, evaluate, goto,
                             screenshot, signed_in)

pytestmark = pytest.mark.timeout(300)
HOSTILE = '<script>window.__xss=1</script><img src=x onerror="window.__xss=1">'


async def request_of(d: Any, request_id: int) -> dict[str, Any]:
    names = {agency: p.name for agency, p in d.borrower.config.partners.items()}
    async with d.borrower.engine.connect() as conn:
        return await conn.run_sync(q.request_json, request_id, names)


async def reaches(d: Any, request_id: int, *statuses: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        r = await request_of(d, request_id)
        return r if r["status"] in statuses else None
    return await wait_for(check, f"request {request_id} to reach {statuses}", timeout=30)


async def flashes(page: Any) -> str:
    return await page.locator(".flashes").inner_text()


async def new_request(page: Any, d: Any, title: str, note: str, partners: list[str], *, save: str) -> int:
    """Fill the request form from the list's Add menu; the new request's id."""
    await goto(page, f"{d.borrower_url}/borrowing")
    await page.get_by_text("Add", exact=True).click()
    await page.get_by_role("link", name="Manual request", exact=True).click()
    await page.wait_for_url(f"{d.borrower_url}/borrowing/new")
    await page.get_by_label("Title", exact=True).fill(title)
    await page.get_by_label("Requester (required)").fill("patron-0042")
    await page.get_by_label("Requester name").fill("Pat Reader")
    await page.get_by_label("Requested pickup location (required)").select_option(PICKUP[1])
    await page.get_by_label("Request note").fill(note)
    for n, name in enumerate(partners, start=1):
        await page.get_by_label(f"Partner {n}", exact=True).select_option(label=name)
    await page.get_by_role("button", name=save, exact=True).click()
    await page.wait_for_load_state()
    async with d.borrower.engine.connect() as conn:
        from sqlalchemy import select

        from gateway.store.models import borrowing_requests_t as t
        return (await conn.execute(select(t.c.id).where(t.c.title == title))).scalar_one()


async def test_the_seed_walked_in_the_browser():
    async with desk() as d, chromium() as browser:
        async with signed_in(browser, d.borrower_url) as page:
            page.on("dialog", lambda dialog: dialog.accept())
            # I.2-3: the Borrowing Requests page, with facets.
            await goto(page, f"{d.borrower_url}/borrowing")
            assert await page.get_by_role("heading", name="Resource Sharing Borrowing Requests").count() == 1
            await assert_accessible(page)

            # I.6: a manual request, Save and Edit: the rota applies and the first partner gets it.
            rid = await new_request(page, d, "The Name of the Rose", "MOCK:WILLSUPPLY_LOANED", ["Mock library A"],
                                    save="Save and Edit")
            assert page.url == f"{d.borrower_url}/borrowing/{rid}"
            await assert_accessible(page)
            r = await reaches(d, rid, "SHIPPED_PHYSICALLY")
            assert r["active_partner"] == MOCK_A
            await page.reload()
            head = await page.locator(".request-head").inner_text()
            assert "The Name of the Rose" in head and r["status_label"] in head and "Mock library A" in head

            # II: the tabs — History shows each ISO message.
            await page.get_by_role("navigation", name="Request tabs").get_by_role(
                "link", name=f"History ({len(r['history'])})").click()
            await page.wait_for_url(f"{d.borrower_url}/borrowing/{rid}/history")
            assert "Loaned" in await page.locator("main").inner_text() or "SHIPPED" in await page.content()
            await assert_accessible(page)

            # II.5-8: a general message, a note, an attachment.
            await goto(page, f"{d.borrower_url}/borrowing/{rid}/messages")
            await page.get_by_role("textbox", name="Message").fill("Please send it by courier.")
            await page.get_by_role("button", name="Send", exact=True).click()
            await page.wait_for_load_state()
            await wait_for(lambda: _mock_got(d, "Please send it by courier."), "the partner to get the message")
            await goto(page, f"{d.borrower_url}/borrowing/{rid}/notes")
            await page.get_by_role("textbox", name="Note").fill("Patron asked twice.")
            await page.get_by_role("button", name="Add note", exact=True).click()
            await page.wait_for_load_state()
            assert "Patron asked twice." in await page.locator("main").inner_text()
            await goto(page, f"{d.borrower_url}/borrowing/{rid}/attachments")
            await page.get_by_label("File").set_input_files(
                files=[{"name": "invoice.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4 seed"}])
            await page.get_by_role("button", name="Upload", exact=True).click()
            await page.wait_for_load_state()
            async with page.expect_download() as info:
                await page.get_by_role("link", name="invoice.pdf", exact=True).click()
            download = await info.value
            assert download.suggested_filename == "invoice.pdf"
            assert open(await download.path(), "rb").read() == b"%PDF-1.4 seed"

            # Received items: receive, loan to the patron, return, return to the partner.
            await goto(page, f"{d.borrower_url}/borrowing/{rid}")
            await page.get_by_role("link", name="Receive", exact=True).click()
            await page.get_by_label("Item barcodes").fill("39001-0001")
            await page.get_by_role("button", name="Receive", exact=True).click()
            await page.wait_for_url(f"{d.borrower_url}/borrowing/{rid}")
            await page.get_by_role("button", name="Loan to patron", exact=True).click()
            await page.wait_for_load_state()
            await page.get_by_role("button", name="Return by patron", exact=True).click()
            await page.wait_for_load_state()
            await page.get_by_role("link", name="Return to partner", exact=True).click()
            await page.get_by_role("button", name="Return to partner", exact=True).click()
            await page.wait_for_load_state()
            r = await request_of(d, rid)
            assert r["status"] in ("RETURNED_TO_PARTNER", "COMPLETED")  # the mock checks it in at once
            assert [i["barcode"] for i in r["received_items"]] == ["39001-0001"]
            assert {h["actor"] for h in r["history"] if h["event"] in ("receive", "loan_to_patron")} == {
                "staff:librarian"}

            # II.3: a second request: the rota rearranged, partners added and removed.
            rid2 = await new_request(page, d, "Il pendolo di Foucault", "MOCK:SILENT",
                                     ["Mock library A", "Mock library B"], save="Save and Edit")
            await reaches(d, rid2, "REQUEST_SENT")
            await goto(page, f"{d.borrower_url}/borrowing/{rid2}/rota")
            await page.get_by_label("Lending library").check()
            await page.get_by_role("button", name="Add partners", exact=True).click()
            await page.wait_for_load_state()
            assert _order(await request_of(d, rid2)) == [MOCK_A, MOCK_B, LENDER]
            await page.get_by_role("button", name="Move up Lending library", exact=True).click()
            await page.wait_for_load_state()
            assert _order(await request_of(d, rid2)) == [MOCK_A, LENDER, MOCK_B]
            await page.get_by_label("Select Mock library B").check()
            await page.get_by_label("Position").fill("2")
            await page.get_by_role("button", name="Move selected", exact=True).click()
            await page.wait_for_load_state()
            assert _order(await request_of(d, rid2)) == [MOCK_A, MOCK_B, LENDER]
            await screenshot(page, "seed-rota")
            await assert_accessible(page)
            row = page.get_by_role("row").filter(has_text="Lending library")
            await row.get_by_text("Actions for Lending library").click()
            await row.get_by_role("button", name="Remove", exact=True).click()
            await page.wait_for_load_state()
            assert _order(await request_of(d, rid2)) == [MOCK_A, MOCK_B]
            # The active partner: Cancel partner, then (the seed's note) a manual locate and resend.
            row = page.get_by_role("row").filter(has_text="Mock library A")
            await row.get_by_text("Actions for Mock library A").click()
            await row.get_by_role("button", name="Cancel partner", exact=True).click()
            await page.wait_for_load_state()
            r2 = await reaches(d, rid2, "REQUEST_SENT")
            assert r2["active_partner"] == MOCK_B

            # III: cancel a third request through the workform.
            rid3 = await new_request(page, d, "Baudolino", "MOCK:SILENT", ["Mock library B"], save="Save")
            assert page.url.startswith(f"{d.borrower_url}/borrowing")
            await reaches(d, rid3, "REQUEST_SENT")
            await goto(page, f"{d.borrower_url}/borrowing/{rid3}")
            await page.get_by_role("link", name="Cancel request", exact=True).click()
            await page.get_by_label("Reason").select_option(index=1)
            await page.get_by_label("Note", exact=True).fill("Found in our own stacks")
            await page.get_by_label("Notify user").check()
            await assert_accessible(page)
            await page.get_by_role("button", name="Confirm", exact=True).click()
            await page.wait_for_url(f"{d.borrower_url}/borrowing/{rid3}")
            r3 = await request_of(d, rid3)
            assert r3["cancel"]["note"] == "Found in our own stacks" and r3["cancel"]["notify_patron"] is True

        # Lending: a request from the desk answered on the lender's pages.
        rid4 = await _desk_asks_lender(d)
        async with signed_in(browser, d.lender_url) as lender:
            await goto(lender, f"{d.lender_url}/lending")
            await lender.get_by_role("link", name="Il nome della rosa", exact=True).click()
            await assert_accessible(lender)
            await lender.get_by_role("button", name="Will supply", exact=True).click()
            await lender.wait_for_load_state()
        await reaches(d, rid4, "WILL_SUPPLY")


async def test_hostile_text_from_the_patron_form_is_shown_literally():
    async with desk() as d, chromium() as browser:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{d.borrower_url}/openurl") as form:
                assert form.status == 200
        # The patron's workform (/openurl) stores what the patron typed; staff see it as text.
        async with aiohttp.ClientSession() as http:
            page_html = await (await http.get(f"{d.borrower_url}/openurl?title=x")).text()
            token = _hidden(page_html, "token")
            data = {"title": f"Patron {HOSTILE}", "patron_id": "patron-7", "patron_name": f"Eve {HOSTILE}",
                    "pickup_location": PICKUP[0], "note": HOSTILE}
            if token:
                data["token"] = token
            async with http.post(f"{d.borrower_url}/openurl/submit", data=data) as answer:
                assert answer.status in (200, 201, 303), await answer.text()
        async with signed_in(browser, d.borrower_url) as page:
            await goto(page, f"{d.borrower_url}/borrowing?q=Patron")
            link = page.get_by_role("link", name=f"Patron {HOSTILE}", exact=True)
            assert await link.count() == 1
            await link.click()
            await page.wait_for_load_state()
            text = await page.locator("main").inner_text()
            assert f"Eve {HOSTILE}" in text and HOSTILE in text
            assert await evaluate(page, "window.__xss") is None


def _hidden(html: str, name: str) -> str | None:
    import re

    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    return found.group(1) if found else None


def _order(r: dict[str, Any]) -> list[str]:
    return [e["agency"] for e in sorted(r["rota"], key=lambda e: e["position"])]


async def _mock_got(d: Any, text: str) -> bool:
    return text in str(d.mock.partner.snapshot())


async def _desk_asks_lender(d: Any) -> int:
    from gateway.core import RequestDetails

    details = RequestDetails(requester="patron-9", pickup_location=PICKUP[0], title="Il nome della rosa")
    result = await d.borrower.borrowing.create(details, (LENDER,), actor="staff:librarian")
    await reaches(d, result.request_id, "REQUEST_SENT")

    async def arrived() -> bool:
        async with d.lender.engine.connect() as conn:
            from sqlalchemy import func, select

            from gateway.store.models import lending_requests_t as t
            return bool((await conn.execute(select(func.count()).select_from(t))).scalar_one())
    await wait_for(arrived, "the lender to get the request")
    return result.request_id


assert DESK and MOCK_B  # the desk's agencies, named in the docstring's walk
