"""Printable slips: pull slips (lending), book straps (received borrowing items), batches.

    GET  /lending/{id}/pull-slip         the pull slip of one lending request
    GET  /borrowing/{id}/strap           the book strap of each item received for a borrowing request
    GET  /borrowing/slips?<filters>      the straps of a filtered borrowing list (the list's filters)
    GET  /lending/slips?<filters>        the pull slips of a filtered lending list
    POST the same two batch URLs         "Mark as printed": slip_printed_at and a history entry on each

A batch needs at least one filter (a slip for every request ever made is never what was meant)
and prints at most `[web] slip_batch_limit` requests, saying how many were left out. Paper gets
one slip per page and no navigation (static/print.css); the Print button calls window.print()
through app.js, and without JavaScript the browser's own Print does the same.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import Connection, select

from ..api import borrowing as borrowing_api
from ..api import lending as lending_api
from ..api import queries as q
from ..api.errors import ApiError
from ..core.lending import LendingState
from ..messages.inbound import MessageError, parse_xml
from ..service.slips import mark_printed_step
from ..service.snapshot import from_json
from ..store.models import borrowing_requests_t as br
from ..store.models import lending_requests_t as lr
from ..store.models import raw_messages_t, received_items_t
from ..strict_numbers import NumberError, parse_int
from . import barcode
from .outcomes import page_id
from .render import flash, gw, render, see_other
from .signin import staff_of, staff_page

ISO_NS = "{http://illtransactions.org/2013/iso18626}"
# The list filters a batch understands (the lists' own query names); anything else is ignored.
BORROWING_FILTERS = ("status", "partner", "active_partner", "requester", "format", "needs_attention", "q",
                     "created_from", "created_to", "updated_from", "updated_to", "needed_by_from", "needed_by_to")
LENDING_FILTERS = ("status", "partner", "needs_attention", "q", "created_from", "created_to", "updated_from",
                   "updated_to")
MAX_IDS = 10_000  # ids one "Mark as printed" may carry (the batch limit is far lower in practice)


# --- reading what a slip shows ------------------------------------------------------------------


def call_number(body: bytes | None) -> str | None:
    """The call number the borrower sent in the request's supplierInfo (our shelf), if any."""
    if not body:
        return None
    try:
        root = parse_xml(body)
    except MessageError:
        return None
    for element in root.iter(f"{ISO_NS}callNumber"):
        if element.text and element.text.strip():
            return element.text.strip()
    return None


def pull_slips(conn: Connection, ids: list[int], partner_names: dict[str, str]) -> list[dict[str, Any]]:
    """The pull slip of each lending request of `ids` that exists, in the order of `ids`."""
    found = conn.execute(select(lr, raw_messages_t.c.body.label("raw_body"))
                         .outerjoin(raw_messages_t, raw_messages_t.c.id == lr.c.raw_request_id)
                         .where(lr.c.id.in_(ids))).all()
    by_id = {row.id: dict(row._mapping) for row in found}
    slips = []
    for lending_id in ids:
        row = by_id.get(lending_id)
        if row is None:
            continue
        details = from_json(LendingState, row["extra"]["state"]).details
        agency = row["requesting_agency"]
        slips.append({
            "id": row["id"], "code": f"LR-{row['id']}", "title": details.title, "author": details.author,
            "call_number": call_number(row["raw_body"]),
            "library": partner_names.get(agency) or details.requesting_agency_name or agency, "agency": agency,
            "their_id": row["requesting_agency_request_id"], "needed_by": details.need_before,
            "service_level": details.service_level, "service_type": row["service_type"],
            "printed_at": row["slip_printed_at"],
        })
    return slips


def straps(conn: Connection, ids: list[int]) -> list[dict[str, Any]]:
    """One book strap per received item of each borrowing request of `ids`, in the order of `ids`
    (a request with no received item has none)."""
    requests = {row.id: dict(row._mapping) for row in conn.execute(
        select(br.c.id, br.c.external_id, br.c.title, br.c.author, br.c.requester, br.c.requester_name,
               br.c.pickup_location, br.c.due_date, br.c.slip_printed_at).where(br.c.id.in_(ids)))}
    items: dict[int, list[dict[str, Any]]] = {}
    for item in conn.execute(select(received_items_t).where(received_items_t.c.request_id.in_(ids))
                             .order_by(received_items_t.c.id)):
        items.setdefault(item.request_id, []).append(dict(item._mapping))
    out = []
    for request_id in ids:
        row = requests.get(request_id)
        for number, item in enumerate(items.get(request_id, []), start=1):
            assert row is not None
            out.append({
                "id": row["id"], "code": row["external_id"] or f"BR-{row['id']}", "title": row["title"],
                "author": row["author"], "patron_name": row["requester_name"], "patron_id": row["requester"],
                "pickup_location": row["pickup_location"], "due_date": item["due_date"] or row["due_date"],
                "item_barcode": item["barcode"], "item_description": item["description"],
                "item_number": number, "item_count": len(items[request_id]), "printed_at": row["slip_printed_at"],
            })
    return out


def partner_names(request: web.Request) -> dict[str, str]:
    return {agency: p.name for agency, p in gw(request).config.partners.items()}


async def _read(request: web.Request, fn: Any, *args: Any) -> Any:
    async with gw(request).engine.connect() as conn:
        return await conn.run_sync(fn, *args)


def _context(slips: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**slip, "barcode": barcode.svg(slip["code"])} for slip in slips]


# --- one request ------------------------------------------------------------------------------------


@staff_page
async def pull_slip(request: web.Request) -> web.StreamResponse:
    lending_id = page_id(request)
    slips = await _read(request, pull_slips, [lending_id], partner_names(request))
    if not slips:
        raise web.HTTPNotFound(text="no such lending request")
    return await render(request, "slips/pull_slip.html", {
        "slips": _context(slips), "title": "Pull slip", "back": f"/lending/{lending_id}", "batch": None})


@staff_page
async def strap(request: web.Request) -> web.StreamResponse:
    request_id = page_id(request)
    found = await _read(request, lambda conn: q.exists_request(conn, request_id))
    if not found:
        raise web.HTTPNotFound(text="no such request")
    slips = await _read(request, straps, [request_id])
    if not slips:
        return await render(request, "error.html", {
            "title": "No book strap yet",
            "message": "No item has been received for this request: a book strap is printed for each "
                       "received item. Receive the item first.",
            "back": f"/borrowing/{request_id}"}, status=409)
    return await render(request, "slips/strap.html", {
        "slips": _context(slips), "title": "Book strap", "back": f"/borrowing/{request_id}", "batch": None})


# --- batches ----------------------------------------------------------------------------------------


def _filter_params(request: web.Request, names: tuple[str, ...]) -> dict[str, list[str]]:
    """The list filters of the query (empty values dropped, as an unfilled form field sends them)."""
    params: dict[str, list[str]] = {}
    for name in names:
        values = [v for v in request.query.getall(name, []) if v.strip() and "\x00" not in v]
        if values:
            params[name] = values
    return params


def _borrowing_ids(conn: Connection, params: dict[str, list[str]], limit: int) -> tuple[list[int], int]:
    listing = q.list_requests(conn, borrowing_api.parse_filters(params), q.Page(limit=limit, facets=False))
    return [item["id"] for item in listing["items"]], listing["total"]


def _lending_ids(conn: Connection, params: dict[str, list[str]], limit: int) -> tuple[list[int], int]:
    listing = lending_api.list_lending(conn, params, limit, 0, "-created_at", False)
    return [item["id"] for item in listing["items"]], listing["total"]


BATCHES = {
    "borrowing": {"filters": BORROWING_FILTERS, "ids": _borrowing_ids, "title": "Book straps",
                  "template": "slips/strap.html", "list": "/borrowing"},
    "lending": {"filters": LENDING_FILTERS, "ids": _lending_ids, "title": "Pull slips",
                "template": "slips/pull_slip.html", "list": "/lending"},
}


async def _refuse(request: web.Request, side: str, message: str) -> web.Response:
    return await render(request, "error.html", {
        "title": f"{BATCHES[side]['title']}: choose a filter", "message": message,
        "back": BATCHES[side]["list"]}, status=400)


async def batch(request: web.Request, side: str) -> web.StreamResponse:
    spec = BATCHES[side]
    params = _filter_params(request, spec["filters"])
    if not params:
        return await _refuse(request, side, "Printing needs at least one filter (for example a status): "
                                            "filter the list first, then print its slips.")
    limit = gw(request).config.web.slip_batch_limit
    try:
        ids, total = await _read(request, spec["ids"], params, limit)
    except ApiError as exc:
        field = f"{exc.field.replace('_', ' ')}: " if exc.field else ""
        return await _refuse(request, side, f"The filter is not valid ({field}{exc.message}).")
    if side == "borrowing":
        slips = await _read(request, straps, ids)
    else:
        slips = await _read(request, pull_slips, ids, partner_names(request))
    printed = sorted({slip["id"] for slip in slips})
    return await render(request, spec["template"], {
        "slips": _context(slips), "title": spec["title"], "back": f"{spec['list']}?{request.query_string}",
        "batch": {"total": total, "shown": len(ids), "left_out": max(total - len(ids), 0), "limit": limit,
                  "ids": printed, "without": len(ids) - len(printed), "action": request.path_qs}})


async def mark_printed(request: web.Request, side: str) -> web.StreamResponse:
    form = await request.post()
    ids = []
    for value in form.getall("id", [])[:MAX_IDS]:
        try:
            ids.append(parse_int(str(value), 1, 2**63 - 1))
        except NumberError:
            continue
    back = request.path_qs
    if not ids:
        await flash(request, "There were no slips to mark as printed.", "error")
        raise see_other(back)
    g = gw(request)
    marked = await g.writer.run(mark_printed_step(side, sorted(set(ids)), staff_of(request).actor, g.clock()))
    noun = "book straps" if side == "borrowing" else "pull slips"
    await flash(request, f"Marked the {noun} of {len(marked)} request{'s' if len(marked) != 1 else ''} "
                         "as printed.", "success")
    raise see_other(back)


@staff_page
async def borrowing_batch(request: web.Request) -> web.StreamResponse:
    return await batch(request, "borrowing")


@staff_page
async def lending_batch(request: web.Request) -> web.StreamResponse:
    return await batch(request, "lending")


@staff_page(write=True)
async def borrowing_mark_printed(request: web.Request) -> web.StreamResponse:
    return await mark_printed(request, "borrowing")


@staff_page(write=True)
async def lending_mark_printed(request: web.Request) -> web.StreamResponse:
    return await mark_printed(request, "lending")


ROUTES: list[tuple[str, str, object]] = [
    ("GET", "/borrowing/slips", borrowing_batch),
    ("POST", "/borrowing/slips", borrowing_mark_printed),
    ("GET", "/lending/slips", lending_batch),
    ("POST", "/lending/slips", lending_mark_printed),
    ("GET", r"/borrowing/{id:\d+}/strap", strap),
    ("GET", r"/lending/{id:\d+}/pull-slip", pull_slip),
]
