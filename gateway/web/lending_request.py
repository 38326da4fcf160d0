"""A lending request's page and its tabs: General information, History (with each ISO message
viewable), General messages (send one, mark as read) and Notes (add one).

Every tab shows the same header (title, requesting library, their request id, status, marks and
the lender's actions allowed now); tabs with something in them carry the `has-content` marker."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import Connection, select

from ..api.errors import ApiError
from ..api.fields import check_text
from ..api.lending import lending_json
from ..core import AddNote, MarkMessagesRead, SendMessage
from ..store.models import history_t, raw_messages_t
from .lending_words import actor_words, attention_text, day, detail_words, event_words, library_name, status_label
from .lending_workforms import WORKFORMS
from .marks import due_soon
from .outcomes import change, form_version, page_id
from .render import flash, gw, render, see_other
from .signin import staff_of, staff_page
from .xml_view import formatted

TABS = (("general", "General information", ""), ("history", "History", "/history"),
        ("messages", "General messages", "/messages"), ("notes", "Notes", "/notes"))
ON_LOAN = ("LOANED", "OVERDUE", "RECALLED")


async def load(request: web.Request, lending_id: int) -> dict[str, Any]:
    """The request as the staff API shows it (404 when there is none)."""
    async with gw(request).engine.connect() as conn:
        r = await conn.run_sync(lending_json, lending_id)
    if r is None:
        raise web.HTTPNotFound(text="no such lending request")
    return r


def request_context(request: web.Request, r: dict[str, Any], tab: str) -> dict[str, Any]:
    """What every tab's header needs: names, marks, the actions allowed now, the tabs."""
    config = gw(request).config
    allowed = [a["name"] for a in r["allowed_actions"]]
    counts = {"general": None, "history": len(r["history"]), "messages": len(r["general_messages"]),
              "notes": len(r["notes"])}
    base = f"/lending/{r['id']}"
    if staff_of(request).role == "viewer":  # may look, not change: offer no action
        allowed = []
    return {
        "r": r, "tab": tab, "base": base, "can_change": staff_of(request).role != "viewer",
        "library": library_name(config.partners, r["requesting_agency"], r["details"].get("requesting_agency_name")),
        "attention": attention_text(r["attention"]) if r["needs_attention"] else None,
        "due_soon": r["status"] in ON_LOAN and due_soon(r["due_date"], gw(request).clock().date(),
                                                         config.web.due_soon_days),
        "quick": [WORKFORMS[n] for n in allowed if n in WORKFORMS and WORKFORMS[n].quick],
        "workforms": [WORKFORMS[n] for n in allowed if n in WORKFORMS and not WORKFORMS[n].quick
                      and n != "acknowledge"],
        "acknowledge": [f for f in r["attention"] if f in ("lost", "reminder", "send_failed")]
        if "acknowledge" in allowed else [],
        "tabs": [{"key": key, "title": title, "href": base + suffix, "count": counts[key],
                  "current": key == tab} for key, title, suffix in TABS],
        "status_label": status_label, "day": day,
        "who": lambda actor: actor_words(actor, config.partners),
        "live": f"/live/lending/{r['id']}?since={r['version']}",
    }


async def show(request: web.Request, tab: str, template: str, status: int = 200, **extra: Any) -> web.StreamResponse:
    r = await load(request, page_id(request))
    return await render(request, template, {**request_context(request, r, tab), **extra}, status=status)


@staff_page
async def general(request: web.Request) -> web.StreamResponse:
    return await show(request, "general", "lending/general.html")


@staff_page
async def history(request: web.Request) -> web.StreamResponse:
    return await show(request, "history", "lending/history.html", event_words=event_words, detail_words=detail_words)


def _message(conn: Connection, lending_id: int, history_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(history_t.c.raw_message_id, history_t.c.event, history_t.c.at)
                       .where(history_t.c.id == history_id, history_t.c.lending_id == lending_id)).first()
    if row is None or row.raw_message_id is None:
        return None
    raw = conn.execute(select(raw_messages_t).where(raw_messages_t.c.id == row.raw_message_id)).first()
    return None if raw is None else {"event": row.event, "at": row.at, **dict(raw._mapping)}


@staff_page
async def message(request: web.Request) -> web.StreamResponse:
    """One history entry's ISO message (and the confirmation that answered it), indented."""
    lending_id, history_id = page_id(request), page_id(request, "hid")
    async with gw(request).engine.connect() as conn:
        raw = await conn.run_sync(_message, lending_id, history_id)
    if raw is None:
        raise web.HTTPNotFound(text="no message for this history entry")
    text, parsed = formatted(raw["body"])
    confirmation, confirmation_parsed = formatted(raw["confirmation"])
    return await show(request, "history", "lending/message.html", raw=raw, text=text, parsed=parsed,
                      confirmation=confirmation, confirmation_parsed=confirmation_parsed,
                      event_words=event_words)


@staff_page
async def messages(request: web.Request) -> web.StreamResponse:
    return await show(request, "messages", "lending/messages.html", typed="", error=None)


@staff_page
async def notes(request: web.Request) -> web.StreamResponse:
    return await show(request, "notes", "lending/notes.html", typed="", error=None)


async def _post_text(request: web.Request, tab: str, template: str, event: Any) -> web.StreamResponse:
    """Send a general message or add a note: the text is checked like the API checks it; a wrong
    one is shown again next to its field."""
    lending_id = page_id(request)
    form = await request.post()
    typed = str(form.get("text", ""))
    try:
        text = check_text(typed, "text", required=True)
    except ApiError as exc:
        return await show(request, tab, template, status=422, typed=typed, error=exc.message)
    back = f"/lending/{lending_id}/{tab}"
    g = gw(request)
    # No version check: a message or a note says the same whatever changed since the page was shown.
    await change(request, g.lending.apply(lending_id, event(g.clock(), staff_of(request).actor, text)), back)
    await flash(request, "Message sent." if tab == "messages" else "Note added.", "success")
    raise see_other(back)


@staff_page(write=True)
async def send_message(request: web.Request) -> web.StreamResponse:
    return await _post_text(request, "messages", "lending/messages.html",
                            lambda at, by, text: SendMessage(at=at, by=by, note=text))


@staff_page(write=True)
async def add_note(request: web.Request) -> web.StreamResponse:
    return await _post_text(request, "notes", "lending/notes.html",
                            lambda at, by, text: AddNote(at=at, by=by, text=text))


@staff_page(write=True)
async def mark_read(request: web.Request) -> web.StreamResponse:
    lending_id = page_id(request)
    form = await request.post()
    back = f"/lending/{lending_id}/messages"
    g = gw(request)
    # The version check matters here: a message that arrived since the page was shown stays unread.
    await change(request, g.lending.apply(lending_id, MarkMessagesRead(at=g.clock(), by=staff_of(request).actor),
                                          expected_version=form_version(form)), back)
    await flash(request, "Messages marked as read.", "success")
    raise see_other(back)


ROUTES: list[tuple[str, str, object]] = [
    ("GET", r"/lending/{id:\d+}", general),
    ("GET", r"/lending/{id:\d+}/history", history),
    ("GET", r"/lending/{id:\d+}/history/{hid:\d+}/message", message),
    ("GET", r"/lending/{id:\d+}/messages", messages),
    ("POST", r"/lending/{id:\d+}/messages", send_message),
    ("POST", r"/lending/{id:\d+}/messages/read", mark_read),
    ("GET", r"/lending/{id:\d+}/notes", notes),
    ("POST", r"/lending/{id:\d+}/notes", add_note),
]
