"""A borrowing request's page and its tabs, in Chromium: every tab visited with an axe scan, the
tab markers and counts, the history's stored message as formatted XML, the rota operations (with
JavaScript off), cancel partner, locate and resend, general messages, notes, parameters,
attachments, a stale page refused, and hostile text from a partner and in a note shown literally."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from gateway.core import AddNote, RequestDetails
from gateway.demo import wait_for
from gateway.messages import decode, encode, model
from gateway.messages.codes import ReasonForMessage, Status, Version
from gateway.store.models import attachments_t, notes_t
from gateway.web.xml_view import formatted as formatted_xml
from support.browser import (DESK, LENDER, MOCK_A, MOCK_B, assert_accessible, chromium, close_context, desk, evaluate,
                             goto, no_live_updates, screenshot, sign_in, signed_in)

pytestmark = pytest.mark.timeout(180)

HOSTILE = '<script>window.__xss=1</script><img src=x onerror="window.__xss=1">'
TAB_NAMES = ("General information", "History", "Rota", "Parameters", "General messages", "Notes",
             "Received items", "Attachments")


async def create(d: Any, note: str | None = None, partners: tuple[str, ...] | None = None,
                 title: str = "The name of the rose") -> int:
    details = RequestDetails(requester="P-0042", requester_name="Ada Reader", pickup_location="Main Library",
                             title=title, author="Eco, Umberto", isbn="9780151446476", request_note=note)
    result = await d.borrower.borrowing.create(details, partners, actor="staff:librarian")
    return result.request_id


async def request_of(d: Any, request_id: int) -> dict[str, Any]:
    from gateway.api import queries as q

    async with d.borrower.engine.connect() as conn:
        return await conn.run_sync(q.request_json, request_id, {})


async def reaches(d: Any, request_id: int, status: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        r = await request_of(d, request_id)
        return r if r["status"] == status else None
    return await wait_for(check, f"request {request_id} to be {status}")


def rota_order(r: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["agency"], e["state"]) for e in r["rota"]]


async def tab_link(page: Any, name: str) -> Any:
    return page.get_by_role("navigation", name="Request tabs").get_by_role("link", name=name)


async def partner_says(d: Any, r: dict[str, Any], note: str, partner: str = MOCK_A) -> None:
    """A general message (a Notification) from `partner`, posted to the borrower's ISO endpoint."""
    when = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=1)
    message = model.SupplyingAgencyMessage(
        header=model.SupplyingAgencyMessageHeader(
            supplying_agency_id=model.AgencyId.parse(partner), requesting_agency_id=model.AgencyId.parse(DESK),
            timestamp=when, requesting_agency_request_id=r["external_id"], supplying_agency_request_id="L-1"),
        message_info=model.MessageInfo(reason_for_message=ReasonForMessage.Notification, note=note),
        status_info=model.StatusInfo(status=Status.ExpectToSupply, last_change=when),
    )
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{d.borrower_url}/iso18626", data=encode(message, Version.V2017),
                             headers={"Content-Type": "application/xml"}) as response:
            body = await response.read()
    assert response.status == 200, body
    assert decode(body).message.confirmation_header.message_status.value == "OK", body


# --- unit: the stored message's formatting ----------------------------------------------------------


def test_a_stored_message_is_formatted_without_resolving_entities_or_shown_raw():
    text, pretty = formatted_xml(b'<a><b>x</b><c/></a>')
    assert pretty and text == "<a>\n  <b>x</b>\n  <c/>\n</a>\n"
    hostile = (b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/passwd">'
               b'<!ENTITY big "AAAAAAAA">]><a>&e;&big;</a>')
    text, pretty = formatted_xml(hostile)
    # A DOCTYPE is never parsed: the message is shown as received, nothing expanded.
    assert not pretty and "root:" not in text and "&e;" in text and "AAAAAAAA</a>" not in text
    text, pretty = formatted_xml(b"not <xml at all \xff")
    assert not pretty and text.startswith("not <xml at all")


# --- the page and its tabs ----------------------------------------------------------------------------


async def test_every_tab_is_shown_with_markers_counts_and_the_history_message_as_xml():
    async with desk() as d, chromium() as browser:
        rid = await create(d, note="MOCK:LOANED")
        await reaches(d, rid, "SHIPPED_PHYSICALLY")
        await d.borrower.borrowing.apply(rid, AddNote(at=datetime.now(timezone.utc), by="staff:librarian",
                                                      text="Patron phoned"))
        async with signed_in(browser, d.borrower_url) as page:
            await goto(page, f"{d.borrower_url}/borrowing/{rid}")
            assert await page.get_by_role("heading", level=1).inner_text() == "The name of the rose"
            head = await page.locator(".request-head").inner_text()
            assert "Ada Reader (P-0042)" in head and "Shipped physically" in head and "Mock library A" in head
            assert await page.locator(f'[data-live^="/live/borrowing/{rid}?since="]').count() == 1
            general = await tab_link(page, "General information")
            assert await general.get_attribute("aria-current") == "page"
            assert "has-content" not in (await general.get_attribute("class") or "")
            notes = await tab_link(page, "Notes (1)")
            assert "has-content" in (await notes.get_attribute("class") or "")
            assert await (await tab_link(page, "Rota (2)")).count() == 1
            assert "has-content" not in (await (await tab_link(page, "Attachments")).get_attribute("class") or "")
            body = await page.locator("section.tab-panel").inner_text()
            assert "9780151446476" in body and "Main Library" in body and "Eco, Umberto" in body
            await assert_accessible(page)
            for name in TAB_NAMES[1:]:
                await page.get_by_role("navigation", name="Request tabs").get_by_role(
                    "link", name=name).first.click()
                await page.wait_for_load_state()
                current = page.get_by_role("navigation", name="Request tabs").locator('[aria-current="page"]')
                assert (await current.inner_text()).startswith(name)
                assert await page.get_by_role("heading", level=2, name=name).count() == 1
                await assert_accessible(page)
            await page.get_by_role("link", name="History").first.click()
            history = await page.locator("section.tab-panel").inner_text()
            assert "Created borrowing request" in history and "staff:librarian" in history
            assert "Request sent to partner" in history and "Patron phoned" in history
            await page.get_by_role("link", name="View the message").first.click()
            assert "/history/" in page.url and page.url.endswith("/message")
            xml = await page.locator("pre.xml").inner_text()
            assert "ISO18626Message" in xml and "\n  <" in xml  # indented, one element a line
            await assert_accessible(page)
            response = await goto(page, f"{d.borrower_url}/borrowing/{rid}/history/999999/message")
            assert response is not None and response.status == 404


async def test_rota_reordered_added_and_removed_with_javascript_off():
    async with desk() as d, chromium() as browser:
        rid = await create(d, note="MOCK:SILENT")  # the mock never answers: MOCK_A stays active
        await reaches(d, rid, "REQUEST_SENT")
        context = await browser.new_context(java_script_enabled=False, viewport={"width": 1280, "height": 900})
        page = await context.new_page()
        await sign_in(page, d.borrower_url)
        await goto(page, f"{d.borrower_url}/borrowing/{rid}/rota")
        # Add partners: the configured partners not in the rota yet.
        add = page.get_by_role("group", name="Add partners")
        assert await add.get_by_label("Mock library A").count() == 0
        await add.get_by_label("Lending library").check()
        await add.get_by_role("button", name="Add partners").click()
        await page.wait_for_load_state()
        assert "Added to the rota: Lending library." in await page.locator(".flashes").inner_text()
        assert rota_order(await request_of(d, rid)) == [(MOCK_A, "active"), (MOCK_B, "pending"), (LENDER, "pending")]
        assert "Every configured partner is already in the rota." in await add.inner_text()
        # Move up / Move down on a row.
        lender_row = page.get_by_role("row").filter(has_text="Lending library")
        await lender_row.get_by_role("button", name="Move up").click()
        await page.wait_for_load_state()
        assert "Moved Lending library up." in await page.locator(".flashes").inner_text()
        assert [a for a, _ in rota_order(await request_of(d, rid))] == [MOCK_A, LENDER, MOCK_B]
        await page.get_by_role("row").filter(has_text="Lending library").get_by_role("button", name="Move down").click()
        await page.wait_for_load_state()
        assert [a for a, _ in rota_order(await request_of(d, rid))] == [MOCK_A, MOCK_B, LENDER]
        # Move selected without a selection: the error by the form, nothing moved.
        await page.get_by_label("Position", exact=True).fill("1")
        await page.get_by_role("button", name="Move selected").click()
        await page.wait_for_load_state()
        assert "Select the partner to move" in await page.locator("#agency-error").inner_text()
        assert await page.get_by_label("Position", exact=True).input_value() == "1"
        # A position outside the rota is refused next to the field, what was typed kept.
        await page.get_by_label("Select Lending library").check()
        await page.get_by_label("Position", exact=True).fill("9")
        await page.get_by_role("button", name="Move selected").click()
        await page.wait_for_load_state()
        position = page.get_by_label("Position", exact=True)
        assert await position.get_attribute("aria-invalid") == "true"
        assert await position.input_value() == "9"
        assert "from 1 (first) to 3 (last)" in await page.locator("#position-error").inner_text()
        assert await page.get_by_label("Select Lending library").is_checked()
        await position.fill("2")
        await page.get_by_role("button", name="Move selected").click()
        await page.wait_for_load_state()
        assert "Moved Lending library to position 2." in await page.locator(".flashes").inner_text()
        assert [a for a, _ in rota_order(await request_of(d, rid))] == [MOCK_A, LENDER, MOCK_B]
        # Remove a pending partner through its row menu; the active one offers only "Cancel partner".
        active_menu = page.get_by_role("row").filter(has_text="Mock library A")
        await active_menu.get_by_text("Actions for Mock library A").click()
        assert await active_menu.get_by_role("button", name="Remove").count() == 0
        assert await active_menu.get_by_role("button", name="Cancel partner").count() == 1
        row_b = page.get_by_role("row").filter(has_text="Mock library B")
        await row_b.get_by_text("Actions for Mock library B").click()
        assert await row_b.get_by_role("button", name="Cancel partner").count() == 0
        await row_b.get_by_role("button", name="Remove").click()
        await page.wait_for_load_state()
        assert "Removed Mock library B from the rota." in await page.locator(".flashes").inner_text()
        assert rota_order(await request_of(d, rid)) == [(MOCK_A, "active"), (LENDER, "pending")]
        assert await (await tab_link(page, "Rota (2)")).count() == 1
        await close_context(context)
        async with signed_in(browser, d.borrower_url) as page:  # axe needs JavaScript
            await goto(page, f"{d.borrower_url}/borrowing/{rid}/rota")
            await assert_accessible(page)
            await page.get_by_label("Position", exact=True).fill("2")
            await page.get_by_role("button", name="Move selected").click()  # nothing selected: the error page
            await page.wait_for_load_state()
            assert await page.locator("#agency-error").count() == 1
            await assert_accessible(page)
            await goto(page, f"{d.borrower_url}/borrowing/{rid}/rota")
            await screenshot(page, "request-rota")
            history = [h["event"] for h in (await request_of(d, rid))["history"] if h["actor"] == "staff:librarian"]
            assert history.count("move_partner") == 3 and "add_partner" in history and "remove_partner" in history


async def test_cancel_the_active_partner_then_locate_and_resend():
    async with desk() as d, chromium() as browser:
        rid = await create(d, note="MOCK:SILENT", partners=(MOCK_A,))
        await reaches(d, rid, "REQUEST_SENT")
        async with signed_in(browser, d.borrower_url) as page:
            page.on("dialog", lambda dialog: dialog.accept())  # app.js asks before "Cancel partner"
            await goto(page, f"{d.borrower_url}/borrowing/{rid}/rota")
            row = page.get_by_role("row").filter(has_text="Mock library A")
            await row.get_by_text("Actions for Mock library A").click()
            await row.get_by_role("button", name="Cancel partner").click()
            await page.wait_for_load_state()
            assert "Cancelled the active partner" in await page.locator(".flashes").inner_text()
            r = await request_of(d, rid)
            assert r["rota"][0]["state"] == "cancelled" and r["active_partner"] is None
            assert "locate" in [a["name"] for a in r["allowed_actions"]]
            await assert_accessible(page)
            # Offered twice: among the header's actions and under the rota table; the rota's is used.
            assert await page.get_by_role("button", name="Locate and resend").count() == 2
            await page.get_by_role("region").get_by_role("button", name="Locate and resend").click()
            await page.wait_for_load_state()
            assert "Located partners and resent the request." in await page.locator(".flashes").inner_text()
            r = await reaches(d, rid, "REQUEST_SENT")
            assert r["active_partner"] == MOCK_B and [e["agency"] for e in r["rota"]] == [MOCK_A, MOCK_B]
            await page.reload()
            assert "Mock library B" in await page.locator(".request-head").inner_text()


async def test_general_messages_notes_and_parameters_with_hostile_text_shown_literally():
    async with desk() as d, chromium() as browser:
        rid = await create(d, note="MOCK:SILENT")
        r = await reaches(d, rid, "REQUEST_SENT")
        await partner_says(d, r, f"Fee is 5 EUR {HOSTILE}")
        await wait_for(lambda: _unread(d, rid), "the partner's message")
        async with signed_in(browser, d.borrower_url) as page:
            await goto(page, f"{d.borrower_url}/borrowing/{rid}/messages")
            assert await (await tab_link(page, "General messages (1)")).count() == 1
            table = await page.locator("section.tab-panel table").inner_text()
            assert HOSTILE in table and "Unread" in table and "From Mock library A" in table
            assert await evaluate(page, "window.__xss") is None
            assert "1 unread message" in await page.locator(".request-head").inner_text()
            await page.get_by_role("button", name="Mark as read").click()
            await page.wait_for_load_state()
            assert "Messages marked as read." in await page.locator(".flashes").inner_text()
            assert "Unread" not in await page.locator("section.tab-panel table").inner_text()
            assert await page.get_by_role("button", name="Mark as read").count() == 0
            # An empty message is refused next to its field.
            await page.get_by_role("button", name="Send", exact=True).click()
            await page.wait_for_load_state()
            message = page.get_by_label("Message", exact=True)
            assert await message.get_attribute("aria-invalid") == "true"
            assert "Write the message." in await page.locator("#message-error").inner_text()
            await message.fill("Could you send it by courier?")
            await page.get_by_role("button", name="Send", exact=True).click()
            await page.wait_for_load_state()
            assert "Message sent to the partner." in await page.locator(".flashes").inner_text()
            assert "To Mock library A" in await page.locator("section.tab-panel table").inner_text()
            assert await (await tab_link(page, "General messages (2)")).count() == 1
            await assert_accessible(page)
            # Notes: a hostile note is shown as typed.
            await (await tab_link(page, "Notes")).click()
            await page.get_by_label("Note", exact=True).fill(HOSTILE)
            await page.get_by_role("button", name="Add note").click()
            await page.wait_for_load_state()
            assert "Note added." in await page.locator(".flashes").inner_text()
            assert HOSTILE in await page.locator("section.tab-panel table").inner_text()
            assert await evaluate(page, "window.__xss") is None
            assert await (await tab_link(page, "Notes (1)")).count() == 1
            await assert_accessible(page)
            # Parameters: set one, then remove it.
            await (await tab_link(page, "Parameters")).click()
            await page.get_by_label("Key").fill("shelf")
            await page.get_by_label("Value").fill(HOSTILE)
            await page.get_by_role("button", name="Set parameter").click()
            await page.wait_for_load_state()
            assert "Parameter “shelf” set." in await page.locator(".flashes").inner_text()
            assert HOSTILE in await page.locator("section.tab-panel table").inner_text()
            assert await (await tab_link(page, "Parameters (1)")).count() == 1
            assert (await request_of(d, rid))["parameters"] == {"shelf": HOSTILE}
            await page.get_by_role("button", name="Set parameter").click()  # no key: refused by the field
            await page.wait_for_load_state()
            assert await page.get_by_label("Key").get_attribute("aria-invalid") == "true"
            await assert_accessible(page)
            await page.get_by_role("button", name="Remove shelf").click()
            await page.wait_for_load_state()
            assert "Parameter “shelf” removed." in await page.locator(".flashes").inner_text()
            assert (await request_of(d, rid))["parameters"] == {}
            assert await evaluate(page, "window.__xss") is None


async def _unread(d: Any, rid: int) -> bool:
    return (await request_of(d, rid))["unread_messages"] == 1


async def test_a_page_showing_an_older_version_changes_nothing():
    async with desk() as d, chromium() as browser:
        rid = await create(d, note="MOCK:SILENT")
        await reaches(d, rid, "REQUEST_SENT")
        async with signed_in(browser, d.borrower_url) as page:
            await no_live_updates(page)
            await goto(page, f"{d.borrower_url}/borrowing/{rid}/notes")
            # A colleague adds a note meanwhile: the request's version moves on.
            await d.borrower.borrowing.apply(rid, AddNote(at=datetime.now(timezone.utc), by="staff:admin",
                                                          text="Colleague's note"))
            await page.get_by_label("Note", exact=True).fill("Mine")
            await page.get_by_role("button", name="Add note").click()
            await page.wait_for_load_state()
            assert "This request changed since you opened it" in await page.locator(".flashes").inner_text()
            async with d.borrower.engine.connect() as conn:
                texts = list((await conn.execute(select(notes_t.c.text).where(notes_t.c.request_id == rid))).scalars())
            assert texts == ["Colleague's note"]


async def test_attachments_upload_download_and_an_over_size_upload_refused():
    async with desk(api={"attachment_limit": 2000}) as d, chromium() as browser:
        rid = await create(d, note="MOCK:SILENT")
        async with signed_in(browser, d.borrower_url) as page:
            await goto(page, f"{d.borrower_url}/borrowing/{rid}/attachments")
            content = b"%PDF-1.4 fake\x00\x01 bytes"
            await page.get_by_label("File").set_input_files(
                {"name": "évil<b>.pdf", "mimeType": "application/pdf", "buffer": content})
            await page.get_by_role("button", name="Upload").click()
            await page.wait_for_load_state()
            assert "Attached évil<b>.pdf." in await page.locator(".flashes").inner_text()
            assert await (await tab_link(page, "Attachments (1)")).count() == 1
            link = page.get_by_role("link", name="évil<b>.pdf")
            href = await link.get_attribute("href")
            response = await page.context.request.get(f"{d.borrower_url}{href}")
            assert response.status == 200 and await response.body() == content
            headers = response.headers
            assert headers["content-type"] == "application/pdf"
            assert headers["x-content-type-options"] == "nosniff"
            assert headers["content-disposition"] == "attachment; filename=\"_vil<b>.pdf\"; filename*=UTF-8''%C3%A9vil%3Cb%3E.pdf"
            await assert_accessible(page)
            # Over the limit: refused next to the field, nothing stored.
            await page.get_by_label("File").set_input_files(
                {"name": "big.bin", "mimeType": "application/octet-stream", "buffer": b"x" * 3000})
            await page.get_by_role("button", name="Upload").click()
            await page.wait_for_load_state()
            assert "too large" in await page.locator("#file-error").inner_text()
            assert await page.get_by_label("File").get_attribute("aria-invalid") == "true"
            async with d.borrower.engine.connect() as conn:
                count = (await conn.execute(select(func.count()).select_from(attachments_t).where(
                    attachments_t.c.request_id == rid))).scalar_one()
            assert count == 1
            # A viewer may download but not upload.
        async with signed_in(browser, d.borrower_url, "viewer") as page:
            await goto(page, f"{d.borrower_url}/borrowing/{rid}/attachments")
            await page.get_by_label("File").set_input_files(
                {"name": "v.txt", "mimeType": "text/plain", "buffer": b"hello"})
            await page.get_by_role("button", name="Upload").click()
            await page.wait_for_load_state()
            assert "may look but not change" in await page.content()
