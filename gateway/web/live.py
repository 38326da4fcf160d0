"""Live updates: server-sent events that tell an open page its request or list changed.

    GET /live/borrowing/{id}?since=<version>    GET /live/lending/{id}?since=<version>
    GET /live/borrowing?since=<event id>        GET /live/lending?since=<event id>

Each answer is a `text/event-stream` that sends `event: change` when the request (or, for a list,
any request of that side) changed after the page was rendered. The change is read from the
database every `[web] live_poll_seconds`, so a change made by another gateway process sharing
the database is seen too: a request's marker is its `version` and the id of its newest history
row (adding an attachment writes history without a new version); a list's marker is the id of
the side's newest history row. `since` is what the page showed (the request's version, or the
list's newest event id); without it the stream starts from what the database holds when it
connects. Each `change` carries an `id:` that EventSource sends back as Last-Event-ID when it
reconnects, so nothing between two connections is missed either.

A comment line goes out every 15 s so proxies keep the connection open. A stream ends when the
client goes away or the gateway stops (on_shutdown wakes every stream). At most
`[web] live_max_streams` streams are open per process; beyond that the answer is 503 and the
page simply does not update by itself (a reload still shows the truth).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from sqlalchemy import Connection, func, select

from ..store.models import borrowing_requests_t, history_t, lending_requests_t
from ..strict_numbers import NumberError, parse_int
from .outcomes import page_id
from .render import gw
from .signin import staff_page

KEEP_ALIVE = 15.0  # seconds between comment lines on a quiet stream
RETRY_MS = 5000  # how long EventSource waits before reconnecting


class Streams:
    """This process's open streams: how many, and the signal that the gateway is stopping."""

    def __init__(self) -> None:
        self.open = 0
        self.stopping = asyncio.Event()


STREAMS = web.AppKey("web_live_streams", Streams)


def setup(app: web.Application) -> None:
    """Called once by routes.add_routes: the stream count, and stopping every stream at shutdown."""
    app[STREAMS] = Streams()

    async def stop_streams(app: web.Application) -> None:
        app[STREAMS].stopping.set()

    app.on_shutdown.append(stop_streams)


# --- markers: what a page would show, reduced to something that grows when it changes -------------


def request_marker(table: Any, owner: Any) -> Callable[[Connection, int], tuple[int, int] | None]:
    """(version, newest history id) of one request, or None when there is no such request."""

    def read(conn: Connection, request_id: int) -> tuple[int, int] | None:
        version = conn.execute(select(table.c.version).where(table.c.id == request_id)).scalar()
        if version is None:
            return None
        newest = conn.execute(select(func.max(history_t.c.id)).where(owner == request_id)).scalar()
        return int(version), int(newest or 0)

    return read


borrowing_marker = request_marker(borrowing_requests_t, history_t.c.request_id)
lending_marker = request_marker(lending_requests_t, history_t.c.lending_id)


def list_marker(owner: Any) -> Callable[[Connection, int], int]:
    """The id of the side's newest history row above `after` (or `after` when there is none):
    the primary key is walked down from its end, so only rows newer than `after` are read."""

    def read(conn: Connection, after: int) -> int:
        newest = conn.execute(select(history_t.c.id).where(owner.is_not(None), history_t.c.id > after)
                              .order_by(history_t.c.id.desc()).limit(1)).scalar()
        return int(newest) if newest is not None else after

    return read


borrowing_list_marker = list_marker(history_t.c.request_id)
lending_list_marker = list_marker(history_t.c.lending_id)


def _since(request: web.Request) -> int | None:
    """`?since=` (what the page showed), or the Last-Event-ID of a reconnecting EventSource."""
    text = request.headers.get("Last-Event-ID", "").strip() or request.query.get("since", "").strip()
    if not text:
        return None
    try:
        return parse_int(text, 0, 2**63 - 1)
    except NumberError:
        raise web.HTTPBadRequest(text="since must be a whole number") from None


# --- the stream ---------------------------------------------------------------------------------


async def _read(request: web.Request, fn: Callable[..., Any], *args: Any) -> Any:
    async with gw(request).engine.connect() as conn:
        return await conn.run_sync(fn, *args)


# What a stream watches: `first()` is the marker at connect, `changed(seen)` a newer one or None,
# `event(marker)` the change's id and data.


class RequestWatch:
    def __init__(self, request: web.Request, request_id: int, marker: Callable[..., Any], since: int | None):
        self.request, self.id, self.marker, self.since = request, request_id, marker, since

    async def first(self) -> Any:
        marker = await _read(self.request, self.marker, self.id)
        if marker is None:
            raise web.HTTPNotFound(text="no such request")
        return marker

    async def changed(self, seen: Any) -> Any:
        now = await _read(self.request, self.marker, self.id)
        return now if now is not None and now != seen else None

    def stale_at_connect(self, marker: tuple[int, int]) -> bool:
        return self.since is not None and marker[0] != self.since

    def event(self, marker: tuple[int, int]) -> tuple[int, dict[str, Any]]:
        return marker[0], {"id": self.id, "version": marker[0], "event": marker[1]}


class ListWatch:
    def __init__(self, request: web.Request, marker: Callable[..., Any], since: int | None):
        self.request, self.marker, self.since = request, marker, since

    async def first(self) -> Any:
        return await _read(self.request, self.marker, 0)

    async def changed(self, seen: Any) -> Any:
        now = await _read(self.request, self.marker, seen)
        return now if now != seen else None

    def stale_at_connect(self, marker: int) -> bool:
        return self.since is not None and marker > self.since

    def event(self, marker: int) -> tuple[int, dict[str, Any]]:
        return marker, {"event": marker}


async def stream(request: web.Request, watch: RequestWatch | ListWatch) -> web.StreamResponse:
    streams = request.app[STREAMS]
    settings = gw(request).config.web
    if streams.open >= settings.live_max_streams:
        raise web.HTTPServiceUnavailable(text="too many live pages open; reload the page to see changes",
                                         headers={"Retry-After": "30"})
    streams.open += 1
    try:
        seen = await watch.first()  # (a 404 before the stream starts)
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        await response.prepare(request)
        await response.write(f"retry: {RETRY_MS}\n\n".encode())
        if watch.stale_at_connect(seen):  # changed between the page's render and this connection
            await _send(response, watch, seen)
        quiet_since = time.monotonic()
        while _connected(request) and not streams.stopping.is_set():
            try:
                async with asyncio.timeout(settings.live_poll_seconds):
                    await streams.stopping.wait()
                break
            except TimeoutError:
                pass
            now = await watch.changed(seen)
            if now is not None:
                seen = now
                await _send(response, watch, now)
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= KEEP_ALIVE:
                await response.write(b": keep-alive\n\n")
                quiet_since = time.monotonic()
    except (ConnectionResetError, ConnectionError):  # the client went away mid-write
        pass
    finally:
        streams.open -= 1
    return response


def _connected(request: web.Request) -> bool:
    # A client that went away ends the stream at the next poll, not at the next failed write.
    return request.transport is not None and not request.transport.is_closing()


async def _send(response: web.StreamResponse, watch: RequestWatch | ListWatch, marker: Any) -> None:
    event_id, data = watch.event(marker)
    payload = json.dumps(data, separators=(",", ":"))
    await response.write(f"id: {event_id}\nevent: change\ndata: {payload}\n\n".encode())


# --- the four routes --------------------------------------------------------------------------------


@staff_page
async def borrowing_request(request: web.Request) -> web.StreamResponse:
    return await stream(request, RequestWatch(request, page_id(request), borrowing_marker, _since(request)))


@staff_page
async def lending_request(request: web.Request) -> web.StreamResponse:
    return await stream(request, RequestWatch(request, page_id(request), lending_marker, _since(request)))


@staff_page
async def borrowing_list(request: web.Request) -> web.StreamResponse:
    return await stream(request, ListWatch(request, borrowing_list_marker, _since(request)))


@staff_page
async def lending_list(request: web.Request) -> web.StreamResponse:
    return await stream(request, ListWatch(request, lending_list_marker, _since(request)))


ROUTES: list[tuple[str, str, object]] = [
    ("GET", "/live/borrowing", borrowing_list),
    ("GET", r"/live/borrowing/{id:\d+}", borrowing_request),
    ("GET", "/live/lending", lending_list),
    ("GET", r"/live/lending/{id:\d+}", lending_request),
]


async def list_cursor(request: web.Request, side: str) -> int:
    """The newest event id of a side ("borrowing" or "lending"): a list page passes it as
    `?since=` so that a change between rendering and connecting is not missed."""
    marker = borrowing_list_marker if side == "borrowing" else lending_list_marker
    return await _read(request, marker, 0)
