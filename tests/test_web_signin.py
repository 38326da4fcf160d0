"""Signing in and out of the staff pages, in Chromium: the sign-in page's words, a wrong password,
the lock after repeated failures, a page asked for before signing in, sign-out, CSRF, headers,
and an axe scan of the sign-in page."""

from __future__ import annotations

import aiohttp
import pytest
from sqlalchemy import select

from gateway.store.models import history_t
from support.browser import PASSWORD, assert_accessible, chromium, close_context, desk, goto, sign_in, signed_in

pytestmark = pytest.mark.timeout(120)


async def test_sign_in_lands_on_the_list_and_sign_out_ends_the_session():
    async with desk() as d, chromium() as browser:
        context = await browser.new_context()
        page = await context.new_page()
        response = await goto(page, f"{d.borrower_url}/")
        assert page.url == f"{d.borrower_url}/login"
        assert response is not None
        await assert_accessible(page)
        await sign_in(page, d.borrower_url)
        assert await page.get_by_role("heading", level=1).inner_text() == "Resource Sharing Borrowing Requests"
        assert "Lena Librarian" in await page.locator("header").inner_text()
        cookies = await context.cookies()
        session = next(c for c in cookies if c["name"] == "gateway_session")
        assert session["httpOnly"] and session["sameSite"] == "Lax"
        await page.get_by_role("button", name="Sign out").click()
        await page.wait_for_url(f"{d.borrower_url}/login")
        assert "You have signed out." in await page.content()
        await goto(page, f"{d.borrower_url}/borrowing")
        assert page.url.startswith(f"{d.borrower_url}/login?next=")
        await close_context(context)


async def test_a_page_asked_for_before_signing_in_is_shown_after_it():
    async with desk() as d, chromium() as browser:
        page = await (await browser.new_context()).new_page()
        await goto(page, f"{d.borrower_url}/borrowing?sort=title")
        assert "/login?next=" in page.url
        await page.get_by_label("Username").fill("librarian")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(f"{d.borrower_url}/borrowing?sort=title")


async def test_wrong_passwords_are_refused_then_locked_and_recorded():
    async with desk(accounts={"max_failures": 3, "failure_delay_seconds": 0.0}) as d, chromium() as browser:
        page = await (await browser.new_context()).new_page()
        for _ in range(3):
            await goto(page, f"{d.borrower_url}/login")
            await page.get_by_label("Username").fill("librarian")
            await page.get_by_label("Password").fill("not the password")
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_load_state()
        assert "Too many failed sign-ins" in await page.get_by_role("alert").inner_text()
        # Now even the right password is refused until the lock ends.
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_load_state()
        assert "Too many failed sign-ins" in await page.get_by_role("alert").inner_text()
        assert "/login" in page.url
        async with d.borrower.engine.connect() as conn:
            events = [r.event for r in await conn.execute(select(history_t.c.event).where(
                history_t.c.actor == "staff:librarian"))]
        assert events.count("sign_in_failed") == 4 and "sign_in_locked" in events


async def test_an_open_redirect_is_not_followed():
    async with desk() as d, chromium() as browser:
        page = await (await browser.new_context()).new_page()
        for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
            await goto(page, f"{d.borrower_url}/login?next={target}")
            await page.get_by_label("Username").fill("librarian")
            await page.get_by_label("Password").fill(PASSWORD)
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_url(f"{d.borrower_url}/borrowing")
            await page.get_by_role("button", name="Sign out").click()
            await page.wait_for_url(f"{d.borrower_url}/login")


async def test_a_post_without_the_csrf_token_is_refused_and_pages_carry_security_headers():
    async with desk() as d:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{d.borrower_url}/login") as r:
                assert r.status == 200
                policy = r.headers["Content-Security-Policy"]
                assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
                assert "unsafe-inline" not in policy
                assert r.headers["Referrer-Policy"] == "same-origin"
                assert r.headers["X-Content-Type-Options"] == "nosniff"
                assert r.headers["Cache-Control"] == "no-store"
            async with http.post(f"{d.borrower_url}/login", data={"username": "librarian", "password": PASSWORD},
                                 allow_redirects=False) as r:
                assert r.status == 403
            async with http.get(f"{d.borrower_url}/borrowing", allow_redirects=False) as r:
                assert r.status == 303 and r.headers["Location"].startswith("/login")


async def test_a_disabled_account_is_signed_out_at_its_next_page():
    async with desk() as d, chromium() as browser:
        async with signed_in(browser, d.borrower_url) as page:
            assert d.borrower.accounts is not None
            await d.borrower.accounts.disable("librarian")
            await goto(page, f"{d.borrower_url}/borrowing")
            assert "/login" in page.url
