"""Browser tests: headless Chromium from Debian's `chromium` package, driven by Playwright for
Python (launched with that executable: no browser is ever downloaded), and axe-core as shipped by
the axe-playwright-python package, injected into the page by the test.

`desk()` starts a borrowing gateway with its staff pages, a lending gateway and the mock partner on
loopback, each gateway with staff accounts; `chromium()` a browser; `signed_in(...)` a page signed
in to a gateway's pages. Without /usr/bin/chromium the tests skip and say why.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.demo import Loopback
from gateway.runtime import Gateway

CHROMIUM = os.environ.get("GATEWAY_TEST_CHROMIUM", "/usr/bin/chromium")
# Headless on a closed network: no background fetches, no sandbox (CI runs as root).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

DESK = "ISIL:XX-DESK"
LENDER = "ISIL:XX-LENDER"
MOCK_A = "ISIL:XX-MOCKA"
MOCK_B = "ISIL:XX-MOCKB"
PASSWORD = "correct horse battery"  # every test account's password
PICKUP = ["Main Library", "Science Library"]
# Playwright bounds its page actions (30 s) but not starting, closing or evaluate(): these get a
# bound of their own, so a stuck browser fails the test with where it stuck, not a timeout later.
BROWSER_CALL_SECONDS = 45
NAVIGATION_SECONDS = 10  # a loopback page loads in well under a second; see goto()


def require_chromium() -> None:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's package `chromium` "
                    "(.ci/run does: apt-get install -y chromium)")


@asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    require_chromium()
    from playwright.async_api import async_playwright

    async with bounded("starting Playwright's driver"):
        pw = await async_playwright().start()
    try:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            async with bounded("closing Chromium"):
                await browser.close()
    finally:
        async with bounded("stopping Playwright's driver"):
            await pw.stop()


@asynccontextmanager
async def bounded(what: str, seconds: float = BROWSER_CALL_SECONDS) -> AsyncIterator[None]:
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        raise AssertionError(f"{what} took more than {seconds} s") from None


@dataclass
class Desk:
    """The running gateways: `borrower` (agency DESK) and `lender` (agency LENDER), with the mock
    partner playing MOCK_A and MOCK_B for the borrower."""

    net: Loopback
    borrower: Gateway
    lender: Gateway
    borrower_url: str  # the borrower's site root, e.g. http://127.0.0.1:port
    lender_url: str
    mock: Any


async def add_accounts(gateway: Gateway) -> None:
    assert gateway.accounts is not None
    await gateway.accounts.add("librarian", PASSWORD, "staff", "Lena Librarian")
    await gateway.accounts.add("viewer", PASSWORD, "viewer", "Vic Viewer")
    await gateway.accounts.add("admin", PASSWORD, "admin", "Ada Admin")


@asynccontextmanager
async def desk(**sections: dict[str, Any]) -> AsyncIterator[Desk]:
    """Start the desk; `sections` are extra config sections for the borrowing gateway."""
    with tempfile.TemporaryDirectory(prefix="gwdesk-") as folder:
        net = Loopback(Path(folder))
        try:
            borrower_iso, lender_iso, mock_url = net.reserve("desk"), net.reserve("lender"), net.reserve("mock")
            mock = await net.start_mock("mock", [MOCK_A, MOCK_B], {DESK: borrower_iso}, delay=0.05)
            lender = (await net.start_gateway("lender", LENDER, [
                {"agency": DESK, "name": "Desk library", "url": borrower_iso, "version": "2017"},
            ], sections={"intake": {"pickup_locations": PICKUP}})).gateway
            borrower = (await net.start_gateway("desk", DESK, [
                {"agency": MOCK_A, "name": "Mock library A", "url": mock_url, "version": "2017"},
                {"agency": MOCK_B, "name": "Mock library B", "url": mock_url, "version": "2017"},
                {"agency": LENDER, "name": "Lending library", "url": lender_iso, "version": "2017"},
            ], rota=[MOCK_A, MOCK_B], sections={"intake": {"pickup_locations": PICKUP}, **sections})).gateway
            assert borrower is not None and lender is not None
            await add_accounts(borrower)
            await add_accounts(lender)
            yield Desk(net, borrower, lender, _root(borrower_iso), _root(lender_iso), mock.mock)
        finally:
            await net.close()


def _root(iso_url: str) -> str:
    return iso_url.rsplit("/iso18626", 1)[0] if iso_url.endswith("/iso18626") else iso_url.rstrip("/")


async def goto(page: Any, url: str, **options: Any) -> Any:
    """page.goto for a page that may reload itself (a live page reloads when its request changes).
    Its live updates are stopped first, as a reader's own navigation stops them (app.js listens
    for beforeunload). A reload already under way can still meet the navigation: Chromium then
    either reports it interrupted, or (seen about once in twenty runs) never starts it, so that
    the server gets no request at all; either way the navigation is made again."""
    from playwright.async_api import Error

    for attempt in range(3):
        try:
            await page.evaluate("window.dispatchEvent(new Event('beforeunload'))")
        except Error:
            pass  # scripts off, or the page is between two documents: nothing to stop
        try:
            return await page.goto(url, **{"timeout": NAVIGATION_SECONDS * 1000, **options})
        except Error as exc:  # playwright's TimeoutError is an Error too
            if attempt == 2:
                raise
            if "interrupted by another navigation" in str(exc) or "context was destroyed" in str(exc):
                await page.wait_for_load_state()
    raise AssertionError("unreachable")


async def on_reloaded_page(page: Any, action: Any, attempts: int = 3) -> Any:
    """`await action()`, done again on the page a reload brings when the page reloaded itself
    meanwhile (a live page whose request changed destroys the document the action ran in)."""
    from playwright.async_api import Error

    for attempt in range(attempts):
        try:
            return await action()
        except Error as exc:
            if "context was destroyed" not in str(exc) or attempt == attempts - 1:
                raise
            await page.wait_for_load_state()
    raise AssertionError("unreachable")


async def evaluate(page: Any, expression: str) -> Any:
    """page.evaluate on a page that may be reloading itself."""
    return await on_reloaded_page(page, lambda: page.evaluate(expression))


async def sign_in(page: Any, root: str, username: str = "librarian", password: str = PASSWORD) -> None:
    await goto(page, f"{root}/login")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{root}/borrowing*")


@asynccontextmanager
async def signed_in(browser: Any, root: str, username: str = "librarian") -> AsyncIterator[Any]:
    """A new browser context (its own cookies) with a page signed in as `username`."""
    async with bounded("opening a browser context"):
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        async with bounded("opening a page"):
            page = await context.new_page()
        await sign_in(page, root, username)
        yield page
    finally:
        await close_context(context)


async def close_context(context: Any) -> None:
    """Close a browser context. Chromium has been seen not to answer this (about once in fifty
    runs, after a live page reloaded itself): after a while the context is left to
    `chromium()`'s browser.close(), which ends it with the browser."""
    try:
        async with asyncio.timeout(15):
            await context.close()
    except TimeoutError:
        warnings.warn("a browser context did not close within 15 s; the browser's close ends it", stacklevel=2)


def _axe_source() -> str:
    import axe_playwright_python

    return (Path(axe_playwright_python.__file__).parent / "axe.min.js").read_text(encoding="utf-8")


async def axe_violations(page: Any, impacts: tuple[str, ...] = ("serious", "critical")) -> list[dict[str, Any]]:
    """axe-core's violations of the page as it is now, of the given impacts. The script is run
    through the DevTools protocol (page.evaluate), which the page's CSP does not govern. A live
    page may reload itself (a partner answered) while the scan runs: the reloaded page is scanned."""

    async def scan() -> list[dict[str, Any]]:
        async with bounded("the axe scan"):
            if not await page.evaluate("typeof window.axe !== 'undefined'"):
                await page.evaluate(_axe_source())
            return (await page.evaluate("axe.run(document, {resultTypes: ['violations']})"))["violations"]

    return [v for v in await on_reloaded_page(page, scan, attempts=5) if v.get("impact") in impacts]


async def assert_accessible(page: Any) -> None:
    violations = await axe_violations(page)
    assert not violations, f"axe on {page.url}: " + json.dumps(
        [{"id": v["id"], "impact": v["impact"], "help": v["help"],
          "nodes": [n["target"] for n in v["nodes"]][:5]} for v in violations], indent=1)


async def screenshot(page: Any, name: str) -> Path:
    """Write docs/screenshots/<name>.png (the README shows some of them)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=False)
    return path


async def no_live_updates(page: Any) -> None:
    """Keep this page as it was rendered (its live stream refused): what a page left open while
    the request changes looks like when it cannot update itself — e.g. the stream cap was reached."""
    await page.route("**/live/**", lambda route: route.abort())
