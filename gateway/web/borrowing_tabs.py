"""What every tab of a borrowing request's page shares: reading the request (all tabs in one
read, as the API's `request_json`), the tab bar with its markers and counts, the header's marks,
and rendering one tab."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..api import queries as q
from ..api.errors import ApiError
from ..api.fields import TEXT_LIMIT, check_text
from ..core import BorrowingStatus
from .marks import attention_words, due_soon
from .render import gw, render


@dataclass(frozen=True)
class Tab:
    name: str  # its template (borrowing/tab_<name>.html) and the key in the request JSON
    label: str  # the seed's words
    path: str  # after /borrowing/{id}
    content: str | None  # the request JSON's key that fills it (None: General information)


TABS = (
    Tab("general", "General information", "", None),
    Tab("history", "History", "/history", "history"),
    Tab("rota", "Rota", "/rota", "rota"),
    Tab("parameters", "Parameters", "/parameters", "parameters"),
    Tab("messages", "General messages", "/messages", "general_messages"),
    Tab("notes", "Notes", "/notes", "notes"),
    Tab("received", "Received items", "/received-items", "received_items"),
    Tab("attachments", "Attachments", "/attachments", "attachments"),
)
BY_NAME = {t.name: t for t in TABS}


def partner_names(request: web.Request) -> dict[str, str]:
    return {agency: p.name for agency, p in gw(request).config.partners.items()}


async def load(request: web.Request, request_id: int) -> dict[str, Any]:
    """The request with every tab, or 404."""
    names = partner_names(request)
    async with gw(request).engine.connect() as conn:
        data = await conn.run_sync(q.request_json, request_id, names)
    if data is None:
        raise web.HTTPNotFound(text=f"no borrowing request {request_id}")
    return data


def status_label(code: str | None) -> str:
    if not code:
        return ""
    try:
        return BorrowingStatus(code).label
    except ValueError:
        return code


def tab_links(r: dict[str, Any], current: str) -> list[dict[str, Any]]:
    """The tab bar: a tab with content shows a count and the folded corner (not General information)."""
    links = []
    for tab in TABS:
        count = len(r[tab.content]) if tab.content else 0
        links.append({
            "label": f"{tab.label} ({count})" if count else tab.label,
            "href": f"/borrowing/{r['id']}{tab.path}",
            "current": tab.name == current,
            "has_content": bool(count),
        })
    return links


def checked(form: Any, field: str, what: str, *, max_length: int = TEXT_LIMIT, one_line: bool = False,
            required: bool = True) -> tuple[str, str | None]:
    """(the form's text, stripped, as typed; the error to show next to the field, or None)."""
    typed = form.get(field)
    typed = typed if isinstance(typed, str) else ""
    try:
        check_text(typed, field, required=required, max_length=max_length, allow_newlines=not one_line)
    except ApiError as exc:
        return typed, f"Write the {what}." if exc.message == "is required" else f"The {what} {exc.message}."
    return typed.strip(), None


async def form_error(request: web.Request, request_id: int, tab: str, field: str, message: str,
                     typed: dict[str, Any]) -> web.Response:
    """The tab again, with `message` next to `field` and what was typed kept (nothing changed)."""
    r = await load(request, request_id)
    return await render_tab(request, r, tab, {"errors": {field: message}, "typed": typed}, status=422)


def size_words(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size / 1024 / 1024:.1f} MB"


def allowed(r: dict[str, Any]) -> set[str]:
    """The API names of the actions allowed now (edit, move-partner, locate, ...)."""
    return {a["name"] for a in r["allowed_actions"]}


async def render_tab(request: web.Request, r: dict[str, Any], tab: str, context: dict[str, Any] | None = None,
                     status: int = 200, template: str | None = None) -> web.Response:
    g = gw(request)
    names = partner_names(request)
    return await render(request, template or f"borrowing/tab_{tab}.html", {
        "r": r,
        "tab": BY_NAME[tab],
        "tabs": tab_links(r, tab),
        "allowed": allowed(r),
        "partner_name": lambda agency: names.get(agency, agency) if agency else "",
        "status_label": status_label,
        "attention": attention_words(",".join(r["attention"])) if r["needs_attention"] else None,
        "due_soon": due_soon(r["due_date"], g.clock().date(), g.config.web.due_soon_days),
        "errors": {},  # field -> message, shown next to the field
        "typed": {},
        "limit_words": size_words(g.config.api.attachment_limit),  # field -> what was typed, kept when a form comes back with an error
        **(context or {}),
    }, status=status)
