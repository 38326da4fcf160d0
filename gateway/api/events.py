"""`GET /api/v1/events`: every history row (borrowing, lending, audit) in id order, with a cursor.

    GET /api/v1/events?since=0&limit=100  ->  {"events": [...], "next": 1234}

Poll again with `since=<next>`; `next` stays put when nothing is new. With
`Accept: text/event-stream` the same rows come as Server-Sent Events (`id:` is the history id,
so a reconnecting EventSource resumes from `Last-Event-ID`); the server looks for new rows every
`poll` seconds (default 1) and sends a comment line as a heartbeat every 15 s.
"""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web

from . import queries as q
from ._web import MAX_ID, gw, int_param, int_value, ok, query_params, read

PARAMS = frozenset({"since", "limit", "poll"})
HEARTBEAT = 15.0


async def events(request: web.Request) -> web.StreamResponse:
    params = query_params(request, PARAMS)
    since = int_param(params, "since", 0, 0, MAX_ID)
    limit = int_param(params, "limit", 100, 1, 1000)
    poll = int_param(params, "poll", 1, 1, 60)  # checked for a JSON page too: bad input is refused alike
    if "text/event-stream" in request.headers.get("Accept", ""):
        last = request.headers.get("Last-Event-ID", "").strip()
        if last:
            since = int_value(last, "Last-Event-ID", 0, MAX_ID)
        return await _stream(request, since, limit, float(poll))
    rows = await read(request, q.events, since, limit)
    return ok({"events": rows, "next": rows[-1]["id"] if rows else since})


async def _stream(request: web.Request, since: int, limit: int, poll: float) -> web.StreamResponse:
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no",
    })
    await response.prepare(request)
    await response.write(b": events since " + str(since).encode() + b"\n\n")
    cursor, quiet_since = since, time.monotonic()
    engine = gw(request).engine
    try:
        # A client that went away ends the stream at once, not at the next failed write.
        while request.transport is not None and not request.transport.is_closing():
            async with engine.connect() as conn:
                rows = await conn.run_sync(q.events, cursor, limit)
            for row in rows:
                data = json.dumps(row, separators=(",", ":"))
                await response.write(f"id: {row['id']}\nevent: history\ndata: {data}\n\n".encode())
                cursor = row["id"]
            if rows:
                quiet_since = time.monotonic()
                if len(rows) == limit:
                    continue
            elif time.monotonic() - quiet_since >= HEARTBEAT:
                await response.write(b": keep-alive\n\n")
                quiet_since = time.monotonic()
            await asyncio.sleep(poll)
    except ConnectionResetError:  # the client went away
        pass
    return response
