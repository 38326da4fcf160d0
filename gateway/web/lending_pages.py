"""The lending side: the requests other libraries sent us (`/lending`), with facets and counts,
search, sort and paging. The request page, its tabs and the lender's workforms live in
lending_request.py and lending_actions.py; this module gathers their routes (fixed paths first)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from sqlalchemy import Connection, select

from ..api.errors import ApiError
from ..api.lending import list_lending
from ..core.lending import LendingState, LendingStatus
from ..service.snapshot import from_json
from ..store.models import lending_requests_t as lr
from . import lending_actions, lending_request
from .lending_words import attention_text, day, library_name
from .live import list_cursor
from .marks import due_soon
from .render import gw, render
from .signin import staff_page

PAGE_SIZE = 25
FILTERS = ("status", "partner", "needs_attention", "q", "sort")
SORT_CHOICES = (
    ("-created_at", "Received (newest first)"),
    ("created_at", "Received (oldest first)"),
    ("-updated_at", "Last updated"),
    ("title", "Title"),
    ("status", "Status"),
    ("due_date", "Due date"),
)
FACET_TITLES = (("status", "Status"), ("partner", "Requesting library"), ("needs_attention", "Needs attention"))


def _query(request: web.Request) -> dict[str, str]:
    """The list's filters as the page's URL gives them (one value each)."""
    return {k: request.query[k] for k in FILTERS if request.query.get(k, "").strip()}


def _href(current: dict[str, str], **changes: str | None) -> str:
    query = {**current, **changes}
    return "/lending" + ("?" + urlencode({k: v for k, v in query.items() if v}) if any(query.values()) else "")


def _load(conn: Connection, params: dict[str, list[str]], offset: int, sort: str) -> dict[str, Any]:
    page = list_lending(conn, params, PAGE_SIZE, offset, sort, True)
    ids = [item["id"] for item in page["items"]]
    # The list query's rows lack the state's details (needed by) and flags: read them for this page only.
    states = {row.id: from_json(LendingState, row.extra["state"]) for row in conn.execute(
        select(lr.c.id, lr.c.extra).where(lr.c.id.in_(ids)))} if ids else {}
    page["states"] = states
    return page


def _facets(request: web.Request, current: dict[str, str], facets: dict[str, list[dict[str, Any]]]) -> list[Any]:
    partners = gw(request).config.partners
    out = []
    for name, title in FACET_TITLES:
        entries = []
        for entry in facets.get(name, []):
            value = entry["value"]
            if name == "needs_attention":
                value = "true" if value else "false"
                label = "Needs attention" if entry["value"] else "No attention needed"
            elif name == "partner":
                label = library_name(partners, value)
            else:
                label = entry.get("label") or value
            chosen = current.get(name) == value
            entries.append({"label": label, "count": entry["count"], "current": chosen,
                            "href": _href(current, **{name: None if chosen else value, "page": None})})
        out.append({"name": name, "title": title, "entries": entries})
    return out


@staff_page
async def list_page(request: web.Request) -> web.StreamResponse:
    current = _query(request)
    sort = current.get("sort", "-created_at")
    page_text = request.query.get("page", "1")
    number = int(page_text) if page_text.isascii() and page_text.isdigit() and 0 < len(page_text) < 7 else 1
    number = max(number, 1)
    params = {k: [v] for k, v in current.items() if k != "sort"}
    error = None
    try:
        async with gw(request).engine.connect() as conn:
            page = await conn.run_sync(_load, params, (number - 1) * PAGE_SIZE,
                                       sort if sort in dict(SORT_CHOICES) else "-created_at")
    except ApiError as exc:  # a hand-edited URL: say what is wrong and show the unfiltered list
        error = f"{(exc.field or 'filter').replace('_', ' ')}: {exc.message}"
        current = {}
        async with gw(request).engine.connect() as conn:
            page = await conn.run_sync(_load, {}, 0, "-created_at")
        number = 1
    config = gw(request).config
    today = gw(request).clock().date()
    rows = []
    for item in page["items"]:
        state: LendingState | None = page["states"].get(item["id"])
        rows.append({
            **item,
            "library": library_name(config.partners, item["requesting_agency"],
                                    state.details.requesting_agency_name if state else None),
            "need_before": day(state.details.need_before) if state else "",
            "attention": attention_text(sorted(f.value for f in state.flags)) if state and state.flags else None,
            "due_soon": bool(state and state.status in (LendingStatus.LOANED, LendingStatus.RECALLED,
                                                        LendingStatus.OVERDUE)
                             and due_soon(item["due_date"], today, config.web.due_soon_days)),
        })
    total = page["total"]
    first = (number - 1) * PAGE_SIZE
    return await render(request, "lending/list.html", {
        "rows": rows, "total": total, "first": first + 1 if rows else 0, "last": first + len(rows),
        "facets": _facets(request, current, page.get("facets", {})), "current": current, "error": error,
        "sort": sort, "sort_choices": SORT_CHOICES, "live_since": await list_cursor(request, "lending"),
        "previous": _href(current, page=str(number - 1)) if number > 1 else None,
        "next": _href(current, page=str(number + 1)) if first + len(rows) < total else None,
        "clear": _href({}) if current.keys() - {"sort"} else None,
    })


ROUTES: list[tuple[str, str, object]] = [
    ("GET", "/lending", list_page),
    *lending_request.ROUTES,
    *lending_actions.ROUTES,
]
