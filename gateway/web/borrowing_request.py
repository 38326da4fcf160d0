"""A borrowing request's page (/borrowing/{id}) and its read-only tabs: general information,
history (with each stored ISO message shown as formatted XML) and received items. The tabs that
take input live in borrowing_rota.py, borrowing_messages.py, borrowing_parameters.py and
borrowing_attachments.py; borrowing_tabs.py holds what they share."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select

from ..store.models import history_t, raw_messages_t
from .borrowing_tabs import load, render_tab
from .outcomes import page_id
from .render import gw, when
from .signin import staff_page
from .xml_view import formatted

GENERAL = (
    ("Bibliographic information", (
        ("title", "Title"), ("author", "Author"), ("title_of_component", "Article/chapter title"),
        ("author_of_component", "Article/chapter author"), ("isbn", "ISBN"), ("issn", "ISSN"),
        ("oclc_number", "OCLC number"), ("other_identifiers", "Other identifiers"), ("publisher", "Publisher"),
        ("publication_date", "Publication date"), ("edition", "Edition"), ("volume", "Volume"),
        ("issue", "Issue"), ("pages", "Pages"))),
    ("Requester", (
        ("requester", "Requester"), ("requester_name", "Requester name"), ("owner", "Owner"),
        ("pickup_location", "Pickup location"), ("delivery_location", "Delivery location"))),
    ("Request details", (
        ("format", "Format"), ("requested_media", "Requested media"), ("allow_other_format", "Allow other format"),
        ("preferred_send_method", "Preferred send method"), ("language", "Language"), ("needed_by", "Needed by"),
        ("reading_room_only", "Reading room only"), ("level_of_service", "Level of service"),
        ("request_note", "Request note"))),
    ("Fees", (
        ("willing_to_pay", "Willing to pay"), ("maximum_fee", "Maximum fee"), ("currency", "Currency"),
        ("needs_patron_information", "Needs patron information"),
        ("agree_to_copyright_terms", "Agree to copyright terms"))),
    ("Dates", (
        ("created_at", "Created"), ("updated_at", "Last updated"), ("due_date", "Due date"))),
)


def shown(name: str, value: Any) -> str:
    """A field's value as staff read it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if name == "other_identifiers":
        return ", ".join(f"{i['type']}: {i['value']}" for i in value)
    if name in ("created_at", "updated_at"):
        return when(value)
    return str(value)


def general_groups(r: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"title": title, "rows": [(label, shown(name, r.get(name))) for name, label in rows]}
            for title, rows in GENERAL]


@staff_page
async def general(request: web.Request) -> web.StreamResponse:
    r = await load(request, page_id(request))
    return await render_tab(request, r, "general", {"groups": general_groups(r)})


@staff_page
async def history(request: web.Request) -> web.StreamResponse:
    r = await load(request, page_id(request))
    return await render_tab(request, r, "history")


@staff_page
async def received_items(request: web.Request) -> web.StreamResponse:
    r = await load(request, page_id(request))
    return await render_tab(request, r, "received")


# --- a stored ISO message, formatted ------------------------------------------------------------

def _stored_message(conn: Any, request_id: int, history_id: int) -> dict[str, Any] | None:
    """The raw message a history entry of this request links to."""
    row = conn.execute(
        select(raw_messages_t.c.id, raw_messages_t.c.direction, raw_messages_t.c.kind, raw_messages_t.c.partner_agency,
               raw_messages_t.c.body,
               history_t.c.at, history_t.c.event)
        .join(history_t, history_t.c.raw_message_id == raw_messages_t.c.id)
        .where(history_t.c.id == history_id, history_t.c.request_id == request_id)).first()
    return None if row is None else dict(row._mapping)


@staff_page
async def history_message(request: web.Request) -> web.StreamResponse:
    request_id, history_id = page_id(request), page_id(request, "hid")
    async with gw(request).engine.connect() as conn:
        message = await conn.run_sync(_stored_message, request_id, history_id)
    if message is None:
        raise web.HTTPNotFound(text="no stored message for this history entry")
    text, pretty = formatted(bytes(message["body"] or b""))
    r = await load(request, request_id)
    return await render_tab(request, r, "history", {"message": message, "xml": text, "pretty": pretty},
                            template="borrowing/history_message.html")


ROUTES = [
    ("GET", r"/borrowing/{id:\d+}", general),
    ("GET", r"/borrowing/{id:\d+}/history", history),
    ("GET", r"/borrowing/{id:\d+}/history/{hid:\d+}/message", history_message),
    ("GET", r"/borrowing/{id:\d+}/received-items", received_items),
]
