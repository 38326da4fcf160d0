"""The General messages and Notes tabs of a borrowing request: reading them, the "General message"
workform (sends a Notification to the active partner), "Mark as read", and "Add note"."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..core import AddNote, MarkMessagesRead, SendMessage
from .borrowing_tabs import checked, form_error, load, render_tab
from .outcomes import change, form_version, page_id
from .render import flash, gw, see_other
from .signin import staff_of, staff_page


@staff_page
async def messages_tab(request: web.Request) -> web.StreamResponse:
    r = await load(request, page_id(request))
    return await render_tab(request, r, "messages")


@staff_page
async def notes_tab(request: web.Request) -> web.StreamResponse:
    r = await load(request, page_id(request))
    return await render_tab(request, r, "notes")


async def _apply(request: web.Request, request_id: int, form: Any, event_type: type, back: str,
                 done: str, **kw: Any) -> web.StreamResponse:
    g = gw(request)
    event = event_type(at=g.clock(), by=staff_of(request).actor, **kw)
    await change(request, g.borrowing.apply(request_id, event, expected_version=form_version(form)), back)
    await flash(request, done, "success")
    raise see_other(back)


@staff_page(write=True)
async def send_message(request: web.Request) -> web.StreamResponse:
    request_id = page_id(request)
    form = await request.post()
    text, error = checked(form, "message", "message")
    if error:
        return await form_error(request, request_id, "messages", "message", error, {"message": text})
    return await _apply(request, request_id, form, SendMessage, f"/borrowing/{request_id}/messages",
                        "Message sent to the partner.", note=text)


@staff_page(write=True)
async def mark_read(request: web.Request) -> web.StreamResponse:
    request_id = page_id(request)
    form = await request.post()
    return await _apply(request, request_id, form, MarkMessagesRead, f"/borrowing/{request_id}/messages",
                        "Messages marked as read.")


@staff_page(write=True)
async def add_note(request: web.Request) -> web.StreamResponse:
    request_id = page_id(request)
    form = await request.post()
    text, error = checked(form, "note", "note")
    if error:
        return await form_error(request, request_id, "notes", "note", error, {"note": text})
    return await _apply(request, request_id, form, AddNote, f"/borrowing/{request_id}/notes", "Note added.",
                        text=text)


ROUTES = [
    ("GET", r"/borrowing/{id:\d+}/messages", messages_tab),
    ("POST", r"/borrowing/{id:\d+}/messages", send_message),
    ("POST", r"/borrowing/{id:\d+}/messages/read", mark_read),
    ("GET", r"/borrowing/{id:\d+}/notes", notes_tab),
    ("POST", r"/borrowing/{id:\d+}/notes", add_note),
]
