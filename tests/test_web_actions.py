"""The borrowing actions on the staff pages (gateway/web/borrowing_actions.py) and barcode
scanning (gateway/web/scan.py), in Chromium against a running desk (the borrowing gateway, the
mock partner, a lending gateway) and with a plain HTTP client for what a browser would not send.

The request page itself (/borrowing/{id}) belongs to another module; while it is missing, a
stand-in shows the header's action buttons (borrowing/_actions.html) and the flashed messages,
which is all these tests look at on it.
"""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import aiohttp_jinja2
import pytest
from aiohttp import web
from sqlalchemy import func, select

from gateway.api.borrowing import ACTIONS as API_ACTIONS
from gateway.core import RequestDetails
from gateway.demo import borrowing_row, wait_for
from gateway.store.models import history_t, lending_requests_t, received_items_t
from gateway.web import borrowing_actions, borrowing_request
from gateway.web.outcomes import page_id
from gateway.web.render import _page_context
from gateway.web.signin import staff_page
from support.browser import (LENDER, MOCK_A, PASSWORD, assert_accessible, chromium, close_context, desk, evaluate, goto,
                             no_live_updates, screenshot, sign_in, signed_in)

pytestmark = pytest.mark.timeout(180)

XSS = '<script>window.__xss=1</script><img src=x onerror="window.__xss=1">'

STAND_IN = """{% extends "base.html" %}{% block title %}Request{% endblock %}{% block content %}
<h1>{{ r.title }}</h1><p>{{ r.status_label }}</p>{% include "borrowing/_actions.html" %}{% endblock %}"""


@staff_page
async def stand_in_request_page(request: web.Request) -> web.StreamResponse:
    r = await borrowing_actions.load(request, page_id(request))
    html = aiohttp_jinja2.get_env(request.app).from_string(STAND_IN).render(**await _page_context(request), r=r)
    return web.Response(text=html, content_type="text/html")


@pytest.fixture(autouse=True)
def request_page(monkeypatch: pytest.MonkeyPatch) -> None:
    if not any(path == r"/borrowing/{id:\d+}" for _, path, _ in borrowing_request.ROUTES):
        monkeypatch.setattr(borrowing_request, "ROUTES", [("GET", r"/borrowing/{id:\d+}", stand_in_request_page)])


async def create(d: Any, title: str, note: str | None = None, partners: tuple[str, ...] = (MOCK_A,)) -> int:
    details = RequestDetails(requester="patron-0042", requester_name="Ada Reader", pickup_location="Main Library",
                             title=title, author="Eco, Umberto", request_note=note)
    return (await d.borrower.borrowing.create(details, partners, actor="staff:test")).request_id


async def status_of(gateway: Any, request_id: int) -> str:
    return (await borrowing_row(gateway, request_id))["status"]


async def wait_status(gateway: Any, request_id: int, *statuses: str) -> str:
    async def check() -> str | None:
        status = await status_of(gateway, request_id)
        return status if status in statuses else None
    return await wait_for(check, f"request {request_id} in {statuses}")


async def history(gateway: Any, request_id: int) -> list[tuple[str, str]]:
    async with gateway.engine.connect() as conn:
        rows = await conn.execute(select(history_t.c.event, history_t.c.actor)
                                  .where(history_t.c.request_id == request_id).order_by(history_t.c.id))
        return [(r.event, r.actor) for r in rows]


async def flash_text(page: Any) -> str:
    return await page.locator(".flashes").inner_text()


# --- the table (no server) ----------------------------------------------------------------------


def test_every_api_action_has_a_label_and_the_rota_operations_are_left_out():
    assert set(borrowing_actions.BY_NAME) == set(API_ACTIONS)
    r = {"id": 7, "allowed_actions": [{"name": n} for n in (
        "edit", "add-note", "move-partner", "add-partner", "remove-partner", "cancel", "loan-to-patron")]}
    buttons = borrowing_actions.action_buttons(r)
    assert [(b["label"], b["href"], b["post"]) for b in buttons] == [
        ("Loan to patron", "/borrowing/7/actions/loan-to-patron", True),
        ("Cancel request", "/borrowing/7/actions/cancel", False),
    ]


def test_workform_values_are_parsed_by_the_api_parsers():
    reasons = ("Duplicate request", "Other")
    form = {"reason": "Other", "note": " why ", "notify_patron": "yes"}
    assert borrowing_actions.event_fields(form, "cancel", reasons) == {
        "reason": "Other", "note": "why", "notify_patron": True, "by_patron": False}
    assert borrowing_actions.event_fields({"items": "A-1\r\n\r\n  B-2 \n"}, "receive", reasons)["items"] == ("A-1", "B-2")
    for form, name, field in (({"reason": "Made up"}, "cancel", "reason"), ({"flag": "no_partners"}, "acknowledge", "flag"),
                              ({"items": "x" * 201}, "receive", "items[0]")):
        with pytest.raises(Exception) as caught:
            borrowing_actions.event_fields(form, name, reasons)
        assert caught.value.field == field  # type: ignore[attr-defined]


def test_every_workform_renders_with_its_fields_labelled():
    """Each action's page (workform, or the confirmation of a button alone) renders, escapes what a
    partner or patron wrote, and labels every field it shows."""
    import jinja2
    from markupsafe import Markup

    from gateway.web.render import TEMPLATES, when

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["when"] = when
    env.globals["action_buttons"] = borrowing_actions.action_buttons
    rota = [{"agency": MOCK_A, "name": "Mock library A", "reason": "CostExceedsMaxCost", "retry_after": None,
             "retry_before": None, "loan_conditions": [XSS], "offered_costs": [
        {"amount": "12.50", "currency": "EUR"}]}]
    r = {"id": 3, "title": XSS, "requester": "p-1", "requester_name": None, "external_id": "BR-1",
         "status_label": "Conditional", "active_partner": MOCK_A, "version": 4, "rota": rota,
         "currency": "EUR", "maximum_fee": None,
         "attention": ["send_failed"], "allowed_actions": [{"name": a.name} for a in borrowing_actions.TABLE]}
    for action in borrowing_actions.TABLE:
        html = env.get_template(action.workform or "borrowing/action_confirm.html").render(
            staff=None, csrf_token="t", csrf_field=Markup('<input type="hidden" name="csrf_token" value="t">'),
            flashes=[], path="/", r=r, action=action, post_url=borrowing_actions.href(3, action.name), typed={},
            errors={}, reasons=("Other",), partner="Mock library A", flags=[("send_failed", "sending failed")],
            conditions=rota[0] if action.name in ("accept-condition", "reject-condition", "retry") else None)
        assert XSS not in html and "&lt;script&gt;" in html, action.name
        assert f'action="/borrowing/3/actions/{action.name}"' in html and 'name="version" value="4"' in html
        assert f">{action.label}</button>" in html or ">Confirm</button>" in html, action.name
        for field in re.findall(r'<(?:input|select|textarea) id="([^"]+)"', html):
            assert f'<label for="{field}">' in html, (action.name, field)


# --- in the browser -----------------------------------------------------------------------------


async def test_cancel_through_the_workform_reaches_the_partner_and_names_the_staff_member():
    async with desk() as d, chromium() as browser:
        request_id = await create(d, f"Cancel me {XSS}", "MOCK:WILLSUPPLY")
        await wait_status(d.borrower, request_id, "WILL_SUPPLY")
        async with signed_in(browser, d.borrower_url) as page:
            await goto(page, f"{d.borrower_url}/borrowing/{request_id}")
            await page.get_by_role("link", name="Cancel request").click()
            await page.wait_for_url(f"{d.borrower_url}/borrowing/{request_id}/actions/cancel")
            details = await page.locator("dl.details").inner_text()
            assert XSS in details and "Mock library A (ISIL:XX-MOCKA)" in details  # shown literally
            assert await evaluate(page, "window.__xss") is None
            await assert_accessible(page)
            await page.get_by_label("Reason").select_option("Duplicate request")
            await page.get_by_label("Note").fill("Found a copy on the shelf")
            await page.get_by_label("Notify user").check()
            await screenshot(page, "cancel-workform")
            await page.get_by_role("button", name="Confirm").click()
            await page.wait_for_url(f"{d.borrower_url}/borrowing/{request_id}")
            assert "Request cancelled" in await flash_text(page)
        await wait_status(d.borrower, request_id, "CANCELED_BY_STAFF")
        assert ("cancel", "staff:librarian") in await history(d.borrower, request_id)
        row = await borrowing_row(d.borrower, request_id)
        cancel = row["extra"]["state"]["cancel"]
        assert (cancel["reason"], cancel["note"], cancel["notify_patron"]) == (
            "Duplicate request", "Found a copy on the shelf", True)
        seen = d.mock.partner.snapshot(request_id=row["external_id"])["requests"][0]["messages"]
        assert any(m.get("action") == "Cancel" for m in seen)


async def test_the_cancel_workform_works_without_javascript():
    async with desk() as d, chromium() as browser:
        request_id = await create(d, "No script", "MOCK:WILLSUPPLY")
        await wait_status(d.borrower, request_id, "WILL_SUPPLY")
        context = await browser.new_context(java_script_enabled=False)
        page = await context.new_page()
        await sign_in(page, d.borrower_url)
        await goto(page, f"{d.borrower_url}/borrowing/{request_id}/actions/cancel")
        await page.get_by_label("Reason").select_option("Requested by mistake")
        await page.get_by_role("button", name="Confirm").click()
        await page.wait_for_url(f"{d.borrower_url}/borrowing/{request_id}")
        assert "Request cancelled" in await flash_text(page)
        await close_context(context)
        await wait_status(d.borrower, request_id, "WAITING_FOR_CANCEL_RESPONSE", "CANCELED_BY_STAFF")


async def test_receive_two_items_loan_return_and_return_to_partner():
    async with desk() as d, chromium() as browser:
        request_id = await create(d, "A loaned book", "MOCK:LOANED")
        await wait_status(d.borrower, request_id, "SHIPPED_PHYSICALLY")
        async with signed_in(browser, d.borrower_url) as page:
            await goto(page, f"{d.borrower_url}/borrowing/{request_id}")
            await page.get_by_role("link", name="Receive", exact=True).click()
            await assert_accessible(page)
            await page.get_by_label("Item barcodes").fill("39001-0001\n39001-0002")
            await page.get_by_label("Note").fill("Two volumes")
            await page.get_by_role("button", name="Receive", exact=True).click()
            await page.wait_for_url(f"{d.borrower_url}/borrowing/{request_id}")
            assert "Items received" in await flash_text(page)
            async with d.borrower.engine.connect() as conn:
                barcodes = list((await conn.execute(select(received_items_t.c.barcode).where(
                    received_items_t.c.request_id == request_id).order_by(received_items_t.c.id))).scalars())
            assert barcodes == ["39001-0001", "39001-0002"]
            assert await status_of(d.borrower, request_id) == "RECEIVED_PHYSICALLY"

            # A button alone, asked for by its address: a page that confirms it.
            await goto(page, f"{d.borrower_url}/borrowing/{request_id}/actions/loan-to-patron")
            await assert_accessible(page)
            assert await status_of(d.borrower, request_id) == "RECEIVED_PHYSICALLY"
            await page.get_by_role("button", name="Loan to patron").click()
            await page.wait_for_url(f"{d.borrower_url}/borrowing/{request_id}")
            assert "Loaned to the patron" in await flash_text(page)
            assert await status_of(d.borrower, request_id) == "LOANED_TO_PATRON"
            await page.get_by_role("button", name="Return by patron").click()
            await page.wait_for_load_state()
            assert await status_of(d.borrower, request_id) == "RETURNED_BY_PATRON"

            await page.get_by_role("link", name="Return to partner").click()
            await assert_accessible(page)
            await page.get_by_label("Note").fill("Sent back by courier")
            await page.get_by_role("button", name="Return to partner").click()
            await page.wait_for_url(f"{d.borrower_url}/borrowing/{request_id}")
            assert "Returned to the partner" in await flash_text(page)
        await wait_status(d.borrower, request_id, "RETURNED_TO_PARTNER", "COMPLETED")
        events = await history(d.borrower, request_id)
        for event in ("receive", "loan_to_patron", "return_by_patron", "return_to_partner"):
            assert (event, "staff:librarian") in events


async def test_accept_conditions_shows_the_offer():
    async with desk() as d, chromium() as browser:
        request_id = await create(d, "Conditional loan", "MOCK:CONDITIONAL")
        await wait_status(d.borrower, request_id, "CONDITIONAL")
        async with signed_in(browser, d.borrower_url) as page:
            await goto(page, f"{d.borrower_url}/borrowing/{request_id}")
            assert await page.get_by_role("link", name="Reject conditions").count() == 1
            await page.get_by_role("link", name="Accept conditions").click()
            offer = await page.get_by_role("region", name="What the partner offers").inner_text()
            assert "Mock library A" in offer and "Conditions" in offer
            await assert_accessible(page)
            await page.get_by_label("Note").fill("We agree")
            await page.get_by_role("button", name="Accept conditions").click()
            await page.wait_for_url(f"{d.borrower_url}/borrowing/{request_id}")
            assert "Conditions accepted" in await flash_text(page)
        assert ("accept_conditions", "staff:librarian") in await history(d.borrower, request_id)
        assert await status_of(d.borrower, request_id) != "CONDITIONAL"


async def test_retry_with_a_higher_maximum_fee():
    async with desk() as d, chromium() as browser:
        request_id = await create(d, "Costly", "MOCK:RETRY:COST")
        await wait_status(d.borrower, request_id, "RETRY_POSSIBLE")
        async with signed_in(browser, d.borrower_url) as page:
            await goto(page, f"{d.borrower_url}/borrowing/{request_id}")
            await page.get_by_role("link", name="Retry request").click()
            offer = await page.get_by_role("region", name="What the partner offers").inner_text()
            assert "CostExceedsMaxCost" in offer
            await page.get_by_label("Maximum fee").fill("lots")
            await page.get_by_role("button", name="Retry request").click()
            await page.wait_for_load_state()
            fee = page.get_by_label("Maximum fee")
            assert await fee.get_attribute("aria-invalid") == "true" and await fee.input_value() == "lots"
            await assert_accessible(page)
            assert await status_of(d.borrower, request_id) == "RETRY_POSSIBLE"
            assert await page.get_by_label("Currency").input_value() == "USD"  # the partner's
            await fee.fill("40.00")
            await page.get_by_label("Note").fill("Up to 40 is fine")
            await page.get_by_role("button", name="Retry request").click()
            await page.wait_for_url(f"{d.borrower_url}/borrowing/{request_id}")
            assert "Request sent again" in await flash_text(page)
        assert ("retry", "staff:librarian") in await history(d.borrower, request_id)
        row = await borrowing_row(d.borrower, request_id)
        assert (str(row["maximum_fee"]), row["currency"]) == ("40.00", "USD")


async def test_an_action_done_in_another_tab_is_refused_with_nothing_changed():
    async with desk() as d, chromium() as browser:
        request_id = await create(d, "Two tabs", "MOCK:WILLSUPPLY")
        await wait_status(d.borrower, request_id, "WILL_SUPPLY")
        async with signed_in(browser, d.borrower_url) as first:
            second = await first.context.new_page()
            await no_live_updates(second)
            for page, reason in ((first, "Other"), (second, "Too expensive")):
                await goto(page, f"{d.borrower_url}/borrowing/{request_id}/actions/cancel")
                await page.get_by_label("Reason").select_option(reason)
            await first.get_by_role("button", name="Confirm").click()
            await first.wait_for_url(f"{d.borrower_url}/borrowing/{request_id}")
            await second.get_by_role("button", name="Confirm").click()
            await second.wait_for_url(f"{d.borrower_url}/borrowing/{request_id}")
            assert "nothing was changed" in (await flash_text(second)).lower()
            # The workform asked for again, now that cancelling is no longer possible: the reason.
            await wait_status(d.borrower, request_id, "CANCELED_BY_STAFF")
            after_cancel = await borrowing_row(d.borrower, request_id)
            await goto(second, f"{d.borrower_url}/borrowing/{request_id}/actions/cancel")
            assert second.url == f"{d.borrower_url}/borrowing/{request_id}"
            message = await flash_text(second)
            assert "“Cancel request” is not possible now" in message and "canceled by staff" in message
        # Only the first tab's cancel happened: one cancel, with the first tab's reason.
        assert [e for e in await history(d.borrower, request_id) if e[0] == "cancel"] == [("cancel", "staff:librarian")]
        assert after_cancel["extra"]["state"]["cancel"]["reason"] == "Other"


async def test_scan_receives_by_barcode_only_on_confirm_and_names_unknown_barcodes():
    async with desk() as d, chromium() as browser:
        request_id = await create(d, f"Scanned {XSS}", "MOCK:LOANED")
        await wait_status(d.borrower, request_id, "SHIPPED_PHYSICALLY")
        external_id = (await borrowing_row(d.borrower, request_id))["external_id"]
        async with signed_in(browser, d.borrower_url) as page:
            await page.get_by_role("link", name="Scan", exact=True).click()
            await page.wait_for_url(f"{d.borrower_url}/scan")
            await assert_accessible(page)
            await page.get_by_label("Barcode", exact=True).fill("NO-SUCH-CODE")
            await page.get_by_label("Barcode", exact=True).press("Enter")
            await page.wait_for_load_state()
            assert "No borrowing request has the barcode “NO-SUCH-CODE”" in await page.get_by_role("alert").inner_text()
            assert await page.get_by_label("Barcode", exact=True).get_attribute("aria-invalid") == "true"
            await assert_accessible(page)

            await page.get_by_label("Barcode", exact=True).fill(external_id)
            await page.get_by_label("Receive", exact=True).check()
            await page.get_by_label("Barcode", exact=True).press("Enter")
            await page.wait_for_load_state()
            assert XSS in await page.locator("dl.details").inner_text()
            assert await evaluate(page, "window.__xss") is None
            assert "Ada Reader (patron-0042)" in await page.locator("dl.details").inner_text()
            await assert_accessible(page)
            await screenshot(page, "scan-confirm")
            assert await status_of(d.borrower, request_id) == "SHIPPED_PHYSICALLY"  # nothing yet
            await page.get_by_label("Item barcode").fill("39001-0077")
            await page.get_by_role("button", name="Confirm receive").click()
            await page.wait_for_url(f"{d.borrower_url}/scan?action=receive")
            assert f"Received: {external_id}." in await flash_text(page)
            assert await page.get_by_label("Barcode", exact=True).evaluate("e => e === document.activeElement")
        assert await status_of(d.borrower, request_id) == "RECEIVED_PHYSICALLY"
        assert ("receive", "staff:librarian") in await history(d.borrower, request_id)
        async with d.borrower.engine.connect() as conn:
            assert (await conn.execute(select(received_items_t.c.barcode).where(
                received_items_t.c.request_id == request_id))).scalar_one() == "39001-0077"


async def test_scan_through_a_whole_loan_on_both_sides():
    """Lender: Ship by the borrower's request id; borrower: Receive, Return by patron (by the
    received item's barcode), Return to partner; lender: Check in."""
    async with desk() as d, chromium() as browser:
        request_id = await create(d, "Both sides", partners=(LENDER,))
        external_id = (await borrowing_row(d.borrower, request_id))["external_id"]

        async def lending_status() -> str | None:
            async with d.lender.engine.connect() as conn:
                return (await conn.execute(select(lending_requests_t.c.status).where(
                    lending_requests_t.c.requesting_agency_request_id == external_id))).scalar()

        await wait_for(lending_status, "the lending request")
        lending_id = await _lending_id(d, external_id)
        from gateway.core.lending import WillSupply
        await d.lender.lending.apply(lending_id, WillSupply(at=d.lender.clock(), by="staff:test"))
        await wait_status(d.borrower, request_id, "WILL_SUPPLY")

        async def scan(page: Any, root: str, code: str, choice: str, button: str) -> None:
            await goto(page, f"{root}/scan")
            await page.get_by_label("Barcode", exact=True).fill(code)
            await page.get_by_label(choice, exact=True).check()
            await page.get_by_label("Barcode", exact=True).press("Enter")
            await page.wait_for_load_state()
            if choice == "Ship":  # the one confirmation with a value to check
                await assert_accessible(page)
                assert await page.get_by_label("Due date").input_value()
            await page.get_by_role("button", name=button).click()
            await page.wait_for_url(f"{root}/scan?action=*")
            assert "Nothing was changed" not in await flash_text(page), await flash_text(page)

        async with signed_in(browser, d.lender_url) as lender, signed_in(browser, d.borrower_url) as desk_page:
            await scan(lender, d.lender_url, external_id, "Ship", "Confirm ship")
            await wait_status(d.borrower, request_id, "SHIPPED_PHYSICALLY")
            await scan(desk_page, d.borrower_url, external_id, "Receive", "Confirm receive")
            await goto(desk_page, f"{d.borrower_url}/borrowing/{request_id}")
            await desk_page.get_by_role("button", name="Loan to patron").click()
            await desk_page.wait_for_load_state()
            await scan(desk_page, d.borrower_url, external_id, "Return by patron", "Confirm return by patron")
            await scan(desk_page, d.borrower_url, external_id, "Return to partner", "Confirm return to partner")
            await wait_for(lambda: _lending_is(d, lending_id, "RETURN_SHIPPED"), "the return on the lending side")
            await scan(lender, d.lender_url, f"LR-{lending_id}", "Check in", "Confirm check in")
        await wait_status(d.borrower, request_id, "COMPLETED")


async def _lending_id(d: Any, external_id: str) -> int:
    async with d.lender.engine.connect() as conn:
        return (await conn.execute(select(lending_requests_t.c.id).where(
            lending_requests_t.c.requesting_agency_request_id == external_id))).scalar_one()


async def _lending_is(d: Any, lending_id: int, status: str) -> bool:
    async with d.lender.engine.connect() as conn:
        return (await conn.execute(select(lending_requests_t.c.status).where(
            lending_requests_t.c.id == lending_id))).scalar_one() == status


# --- with a plain HTTP client -------------------------------------------------------------------

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


async def client_signed_in(root: str, username: str) -> aiohttp.ClientSession:
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with session.get(f"{root}/login") as response:
        token = TOKEN.search(await response.text()).group(1)  # type: ignore[union-attr]
    async with session.post(f"{root}/login", data={"csrf_token": token, "username": username,
                                                   "password": PASSWORD, "next": "/borrowing"},
                            allow_redirects=False) as response:
        assert response.status == 303
    return session


async def form_of(session: aiohttp.ClientSession, url: str) -> dict[str, str]:
    async with session.get(url, allow_redirects=False) as response:
        assert response.status == 200, await response.text()
        html = await response.text()
    return {"csrf_token": TOKEN.search(html).group(1),  # type: ignore[union-attr]
            "version": re.search(r'name="version" value="(\d+)"', html).group(1)}  # type: ignore[union-attr]


async def test_viewers_may_look_but_not_post_and_wrong_values_come_back_with_the_form():
    async with desk() as d:
        request_id = await create(d, "Guarded", "MOCK:WILLSUPPLY")
        await wait_status(d.borrower, request_id, "WILL_SUPPLY")
        url = f"{d.borrower_url}/borrowing/{request_id}/actions/cancel"
        events = await history(d.borrower, request_id)
        async with await client_signed_in(d.borrower_url, "viewer") as viewer:
            fields = await form_of(viewer, url)  # a viewer may read the workform
            async with viewer.post(url, data={**fields, "reason": "Other"}, allow_redirects=False) as response:
                assert response.status == 403
                assert "viewer" in await response.text()
        async with await client_signed_in(d.borrower_url, "librarian") as staff:
            fields = await form_of(staff, url)
            typed = {**fields, "reason": "Not on the list", "note": "kept <as> typed"}
            async with staff.post(url, data=typed, allow_redirects=False) as response:
                assert response.status == 422
                html = await response.text()
            assert 'aria-invalid="true" aria-describedby="reason-error"' in html
            assert "choose a reason from the list" in html and "kept &lt;as&gt; typed</textarea>" in html
            async with staff.post(url, data={"version": fields["version"], "reason": "Other"},
                                  allow_redirects=False) as response:
                assert response.status == 403  # no CSRF token
            async with staff.get(f"{d.borrower_url}/borrowing/{request_id}/actions/no-such",
                                 allow_redirects=False) as response:
                assert response.status == 404
            async with staff.get(f"{d.borrower_url}/borrowing/{request_id}/actions/loan-to-patron",
                                 allow_redirects=False) as response:
                assert response.status == 303 and response.headers["Location"] == f"/borrowing/{request_id}"
            async with staff.get(f"{d.borrower_url}/scan", params={"barcode": "", "action": "ship"}) as response:
                assert response.status == 422 and "Scan or type a barcode." in await response.text()
        assert await history(d.borrower, request_id) == events
        async with d.borrower.engine.connect() as conn:
            assert (await conn.execute(select(func.count()).select_from(received_items_t))).scalar_one() == 0
