"""Live updates (web/live.py): the server-sent event streams that make an open page reload when
its request, or any request of its list, changed. Read with an aiohttp client line by line, and
once in Chromium on the borrowing list."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from gateway.api import queries as q
from gateway.core import AddNote, RequestDetails, SendMessage
from gateway.demo import borrowing_row, lending_row, wait_for, wait_status
from gateway.web.live import STREAMS
from support.browser import DESK, LENDER, MOCK_A, chromium, desk, signed_in
from support.staff_pages import next_event, staff_client

pytestmark = pytest.mark.timeout(120)

FAST = {"web": {"live_poll_seconds": 0.1}}
SSE = {"Accept": "text/event-stream"}


def details(title: str, note: str | None = None) -> RequestDetails:
    return RequestDetails(requester="patron-7", requester_name="Pat Reader", pickup_location="Main Library",
                          title=title, request_note=note)


async def create(gateway, title: str, partners: tuple[str, ...], note: str | None = None) -> int:
    return (await gateway.borrowing.create(details(title, note), partners, actor="staff:librarian")).request_id


async def version_of(gateway, request_id: int) -> int:
    return (await borrowing_row(gateway, request_id))["version"]


async def test_a_partners_message_wakes_the_request_stream_and_marks_it_for_attention():
    async with desk(**FAST) as d, staff_client(d.borrower_url) as client:
        rid = await create(d.borrower, "Live message", (LENDER,))
        external = (await borrowing_row(d.borrower, rid))["external_id"]
        row = await wait_for(lambda: lending_row(d.lender, DESK, external), "the lender has the request")
        await wait_status(d.borrower, rid, "REQUEST_SENT")
        shown = await version_of(d.borrower, rid)
        async with client.get(f"{d.borrower_url}/live/borrowing/{rid}?since={shown}", headers=SSE) as stream:
            assert stream.status == 200 and stream.headers["Content-Type"] == "text/event-stream"
            assert await next_event(stream, 0.6) is None  # nothing changed yet
            await d.lender.lending.apply(row["id"], SendMessage(at=d.lender.clock(), by="staff:lender",
                                                                note="Is a later edition fine?"))
            event = await next_event(stream, 5.0)
            assert event is not None and event["event"] == "change"
            data = json.loads(event["data"])
            assert data["id"] == rid and data["version"] > shown and event["id"] == str(data["version"])
        async with d.borrower.engine.connect() as conn:
            found = await conn.run_sync(q.list_requests, q.Filters(needs_attention=True), q.Page())
        item = next(i for i in found["items"] if i["id"] == rid)
        assert "message_unread" in item["attention_reason"] and item["unread_messages"] == 1


async def test_only_the_changed_requests_stream_is_woken():
    async with desk(**FAST) as d, staff_client(d.borrower_url) as client:
        first = await create(d.borrower, "First", (MOCK_A,), "MOCK:SILENT")
        second = await create(d.borrower, "Second", (MOCK_A,), "MOCK:SILENT")
        await wait_status(d.borrower, first, "REQUEST_SENT")
        await wait_status(d.borrower, second, "REQUEST_SENT")
        url = f"{d.borrower_url}/live/borrowing"
        async with client.get(f"{url}/{first}", headers=SSE) as one, client.get(f"{url}/{second}", headers=SSE) as two:
            await d.borrower.borrowing.apply(second, AddNote(at=d.borrower.clock(), by="staff:librarian", text="hi"))
            event = await next_event(two, 5.0)
            assert event is not None and json.loads(event["data"])["id"] == second
            assert await next_event(one, 1.0) is None


async def test_since_catches_a_change_made_before_connecting_and_the_list_stream_fires():
    async with desk(**FAST) as d, staff_client(d.borrower_url) as client:
        rid = await create(d.borrower, "Before", (MOCK_A,), "MOCK:SILENT")
        await wait_status(d.borrower, rid, "REQUEST_SENT")
        old = await version_of(d.borrower, rid)
        await d.borrower.borrowing.apply(rid, AddNote(at=d.borrower.clock(), by="staff:librarian", text="meanwhile"))
        async with client.get(f"{d.borrower_url}/live/borrowing/{rid}?since={old}", headers=SSE) as stream:
            event = await next_event(stream, 2.0)
            assert event is not None and event["event"] == "change"
        async with client.get(f"{d.borrower_url}/live/borrowing", headers=SSE) as listing:
            assert await next_event(listing, 0.5) is None
            await create(d.borrower, "New one", (MOCK_A,), "MOCK:SILENT")
            event = await next_event(listing, 5.0)
            assert event is not None and event["event"] == "change" and int(event["id"]) > 0
        # The lending list of the lender fires when a partner's request arrives.
        async with staff_client(d.lender_url) as lender_client:
            async with lender_client.get(f"{d.lender_url}/live/lending", headers=SSE) as lending:
                await create(d.borrower, "To the lender", (LENDER,))
                event = await next_event(lending, 8.0)
                assert event is not None and event["event"] == "change"


async def test_streams_need_a_session_are_capped_and_end_cleanly():
    async with desk(web={"live_poll_seconds": 0.1, "live_max_streams": 1}) as d:
        app_state = _app_of(d)
        async with aiohttp.ClientSession() as anonymous:
            async with anonymous.get(f"{d.borrower_url}/live/borrowing", allow_redirects=False) as answer:
                assert answer.status == 303 and answer.headers["Location"].startswith("/login")
        async with staff_client(d.borrower_url) as client:
            async with client.get(f"{d.borrower_url}/live/borrowing/999999", headers=SSE) as missing:
                assert missing.status == 404
            async with client.get(f"{d.borrower_url}/live/borrowing", headers=SSE) as first:
                assert first.status == 200
                await wait_for(lambda: _is(app_state[STREAMS].open == 1), "the stream is counted")
                async with client.get(f"{d.borrower_url}/live/lending", headers=SSE) as second:
                    assert second.status == 503
            # The client went away: the server notices at its next poll and lets go of the stream.
            await wait_for(lambda: _is(app_state[STREAMS].open == 0), "the stream ended", 5.0)
            # A stream still open when the gateway stops ends at once (no task left behind).
            stream = await client.get(f"{d.borrower_url}/live/borrowing", headers=SSE)
            await wait_for(lambda: _is(app_state[STREAMS].open == 1), "the stream is counted")
            await d.net.nodes.pop("desk").close()
            assert await asyncio.wait_for(stream.content.read(), 5.0) is not None
            assert app_state[STREAMS].open == 0
            stream.release()


async def _is(value: bool) -> bool:
    return value


def _app_of(d):
    return d.net.nodes["desk"].runner.app


async def test_the_borrowing_list_reloads_when_a_request_changes():
    async with desk(**FAST) as d, chromium() as browser, signed_in(browser, d.borrower_url) as page:
        assert (await page.locator("[data-live]").get_attribute("data-live")).startswith("/live/borrowing?since=")
        await page.evaluate("window.__before_change = 1")
        await page.wait_for_timeout(300)  # the EventSource is connected
        async with page.expect_navigation(timeout=8000):
            await create(d.borrower, "Reload me", (MOCK_A,), "MOCK:SILENT")
        assert await page.evaluate("window.__before_change") is None  # a new page
        assert page.url == f"{d.borrower_url}/borrowing"
