"""The borrowing requests list (`/borrowing`): facets with counts, search, sort, paging, the
marks of requests that need staff, and each staff member's kept choice and saved views.

Everything the list shows is chosen in its query string (list_query.py), so a GET form and plain
links drive it without JavaScript. The last query string a person used is kept (without the
page) and restored when they open `/borrowing` with none; "Clear filters" (`?q=`) resets it."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..api import queries as q
from ..service.views import ViewError
from .list_query import BOOL_FILTERS, ORDERS, PAGE_SIZES, SORTS, BadQuery, ListQuery, stored
from .live import list_cursor
from .marks import attention_words, due_soon
from .outcomes import page_id
from .render import flash, gw, render, see_other
from .signin import staff_of, staff_page

# Facet groups in the order the page shows them: (name, heading).
FACET_GROUPS = (
    ("status", "Status"), ("active_partner", "Active partner"), ("format", "Format"),
    ("requested_media", "Requested media"), ("pickup_location", "Pickup location"),
    ("level_of_service", "Level of service"), ("needs_attention", "Needs attention"),
    ("unread_messages", "Unread partner messages"), ("has_costs", "Costs"), ("has_notes", "Internal notes"),
)
# Where the item is with us or the patron: a due date then matters ("Due soon").
HOLDING = frozenset({"SHIPPED_PHYSICALLY", "RECEIVED_PHYSICALLY", "LOANED_TO_PATRON", "RETURNED_BY_PATRON",
                     "RENEW_REQUESTED", "RENEWED_BY_PARTNER", "RENEW_NOT_ACCEPTED", "OVERDUE", "RECALLED"})


@staff_page
async def list_page(request: web.Request) -> web.StreamResponse:
    views = gw(request).views
    username = staff_of(request).username
    kept = await views.list_query(username)  # type: ignore[union-attr]
    if not request.query_string:
        restored = stored(kept)
        if restored is not None:
            raise see_other(restored.url())
    try:
        chosen = ListQuery.parse(request.query)
    except BadQuery as exc:
        return await show(request, ListQuery(), problem=exc, status=400)
    if chosen.query_string(with_page=False) != (kept or ""):
        await views.remember_list_query(username, chosen.query_string(with_page=False))  # type: ignore[union-attr]
    return await show(request, chosen)


@staff_page
async def save_view(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    name = str(form.get("name", ""))
    chosen = stored(str(form.get("query", ""))) or ListQuery()
    try:
        created = await gw(request).views.save_view(  # type: ignore[union-attr]
            staff_of(request).username, name, chosen.query_string(with_page=False))
    except ViewError as exc:
        return await show(request, chosen, view_error=exc.args[0], view_name=name, status=422)
    await flash(request, f"View “{' '.join(name.split())}” {'saved' if created else 'replaced'}.", "success")
    raise see_other(chosen.url())


@staff_page
async def delete_view(request: web.Request) -> web.StreamResponse:
    await request.post()
    if await gw(request).views.delete_view(staff_of(request).username, page_id(request)):  # type: ignore[union-attr]
        await flash(request, "View deleted.", "success")
    raise see_other("/borrowing")


async def show(request: web.Request, chosen: ListQuery, *, problem: BadQuery | None = None, status: int = 200,
               view_error: str | None = None, view_name: str = "") -> web.Response:
    g = gw(request)
    async with g.engine.connect() as conn:
        data = await conn.run_sync(q.list_requests, chosen.filters(), chosen.page_of())
    names = {agency: p.name for agency, p in g.config.partners.items()}
    today, days = g.clock().date(), g.config.web.due_soon_days
    rows = [row_view(item, names, today, days) for item in data["items"]]
    total, first = data["total"], data["offset"] + 1
    views = await g.views.views(staff_of(request).username)  # type: ignore[union-attr]
    saved = [(view, stored(view.query)) for view in views]
    return await render(request, "borrowing/list.html", {
        "chosen": chosen, "rows": rows, "total": total, "first": first, "last": data["offset"] + len(rows),
        "previous_url": chosen.url(page=chosen.page - 1) if chosen.page > 1 else None,
        "next_url": chosen.url(page=chosen.page + 1) if data["offset"] + len(rows) < total else None,
        "facets": facet_views(data["facets"], chosen, names), "sorts": SORTS, "orders": ORDERS,
        "live_since": await list_cursor(request, "borrowing"),
        "page_sizes": PAGE_SIZES, "problem": problem, "saved_views": saved,
        "view_error": view_error, "view_name": view_name, "current_query": chosen.query_string(with_page=False),
    }, status=status)


def row_view(item: dict[str, Any], names: dict[str, str], today: Any, days: int) -> dict[str, Any]:
    partner = item["active_partner"]
    return {
        **item,
        "partner_name": names.get(partner, partner) if partner else "",
        "attention": attention_words(item["attention_reason"]) if item["needs_attention"] else None,
        "due_soon": item["status"] in HOLDING and due_soon(item["due_date"], today, days),
    }


def facet_views(facets: dict[str, list[dict[str, Any]]], chosen: ListQuery,
                names: dict[str, str]) -> list[dict[str, Any]]:
    """Each facet group with its entries: label, count, whether chosen, and the link that adds
    or removes it (None for "not set", which no filter selects)."""
    groups = []
    for name, heading in FACET_GROUPS:
        entries = []
        for entry in facets.get(name, []):
            value = entry["value"]
            entries.append({"label": _facet_label(name, value, entry, names), "count": entry["count"],
                            "chosen": value is not None and chosen.chosen(name, value),
                            "url": None if value is None else chosen.toggle_url(name, value)})
        if name in BOOL_FILTERS:  # Yes before No
            entries.sort(key=lambda e: e["label"] != "Yes")
        if entries:
            groups.append({"name": name, "heading": heading, "entries": entries})
    return groups


def _facet_label(name: str, value: Any, entry: dict[str, Any], names: dict[str, str]) -> str:
    if name in BOOL_FILTERS:
        return "Yes" if value else "No"
    if value is None:
        return "None" if name == "active_partner" else "Not set"
    if name == "status":
        return entry.get("label") or value
    if name == "active_partner":
        return names.get(value, value)
    return str(value)


ROUTES = [
    ("GET", "/borrowing", list_page),
    ("POST", "/borrowing/views", save_view),
    ("POST", r"/borrowing/views/{id:\d+}/delete", delete_view),
]
