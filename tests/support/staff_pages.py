"""Helpers for staff-page tests without a browser: an aiohttp client signed in to a gateway's
pages, server-sent events read line by line, and a Code 128 reader for the slips' SVG barcodes."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from gateway.web.barcode import PATTERNS, START_B, STOP
from support.browser import PASSWORD

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@asynccontextmanager
async def staff_client(root: str, username: str = "librarian") -> AsyncIterator[aiohttp.ClientSession]:
    """A client session signed in as `username` (cookies kept for the loopback address)."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
        async with client.get(f"{root}/login") as page:
            token = _TOKEN.search(await page.text()).group(1)  # type: ignore[union-attr]
        async with client.post(f"{root}/login", data={"username": username, "password": PASSWORD,
                                                      "csrf_token": token, "next": "/borrowing"},
                               allow_redirects=False) as answer:
            assert answer.status == 303, await answer.text()
        yield client


async def next_event(response: aiohttp.ClientResponse, timeout: float) -> dict[str, str] | None:
    """The next event (its fields: event, id, data) of a text/event-stream, or None when none
    came within `timeout` seconds or the stream ended. Comment lines are skipped."""
    fields: dict[str, str] = {}
    try:
        async with asyncio.timeout(timeout):
            while True:
                line = await response.content.readline()
                if not line:
                    return None
                text = line.decode().rstrip("\n")
                if not text:
                    if "event" in fields or "data" in fields:
                        return fields
                    fields = {}
                    continue
                if text.startswith(":"):
                    continue
                name, _, value = text.partition(":")
                fields[name] = value.lstrip(" ")
    except TimeoutError:
        return None


def decode_code128(bars: list[tuple[float, float]], module: float) -> str:
    """The text of a Code 128 (set B) symbol from its bars as (x, width), checking the start
    code, the check symbol and the stop pattern."""
    bars = sorted(bars)
    runs: list[int] = []
    for index, (x, width) in enumerate(bars):
        if index:
            previous_x, previous_width = bars[index - 1]
            runs.append(round((x - previous_x - previous_width) / module))
        runs.append(round(width / module))
    by_pattern = {pattern: value for value, pattern in enumerate(PATTERNS)}
    values = [by_pattern["".join(map(str, runs[i:i + 6]))] for i in range(0, len(runs) - 7, 6)]
    assert "".join(map(str, runs[-7:])) == PATTERNS[STOP], "no stop pattern"
    assert values[0] == START_B, "not code set B"
    data, check = values[1:-1], values[-1]
    assert (START_B + sum(i * v for i, v in enumerate(data, start=1))) % 103 == check, "wrong check symbol"
    return "".join(chr(v + 32) for v in data)


async def svg_bars(page: Any, selector: str = "figure.barcode svg") -> tuple[list[tuple[float, float]], float]:
    """The bars of the first barcode on a Playwright page, and its module width."""
    svg = page.locator(selector).first
    module = float(await svg.get_attribute("data-module"))
    bars = await svg.locator("g rect").evaluate_all(
        "rects => rects.map(r => [parseFloat(r.getAttribute('x')), parseFloat(r.getAttribute('width'))])")
    return [(x, w) for x, w in bars], module
