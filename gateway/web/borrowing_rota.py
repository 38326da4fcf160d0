"""The Rota tab of a borrowing request: the partners in order, and the seed's operations on them
(move up / down, move selected, add partners, remove a pending partner, cancel the active one,
locate and resend). Each is one POST to /borrowing/{id}/rota with `op`, applied as the API's
post_rota applies it (the same core events), with the version the page showed."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..api.errors import ApiError
from ..api.fields import check_agency, check_text
from ..core import AddPartner, CancelPartner, Locate, MoveDown, MoveSelected, MoveUp, RemovePartner
from ..strict_numbers import NumberError, parse_int
from .borrowing_tabs import load, partner_names, render_tab
from .outcomes import change, form_version, page_id
from .render import flash, gw, see_other
from .signin import staff_of, staff_page

OPS = ("move-up", "move-down", "move-selected", "add", "remove", "cancel-partner", "locate")


@staff_page
async def rota_tab(request: web.Request) -> web.StreamResponse:
    r = await load(request, page_id(request))
    return await render_tab(request, r, "rota", {"addable": addable(request, r)})


def addable(request: web.Request, r: dict[str, Any]) -> list[tuple[str, str]]:
    """(agency, name) of the configured partners not in the rota yet."""
    present = {e["agency"] for e in r["rota"]}
    return sorted(((a, n) for a, n in partner_names(request).items() if a not in present), key=lambda p: p[1])


class FieldError(Exception):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field, self.message = field, message


def _position(text: Any, field: str, last: int, required: bool) -> int | None:
    """A 1-based position as typed (1 to `last`) -> the core's 0-based index."""
    if not isinstance(text, str) or not text.strip():
        if required:
            raise FieldError(field, "Enter the position to move to (1 is first).")
        return None
    try:
        return parse_int(text.strip(), 1, last) - 1
    except NumberError:
        raise FieldError(field, f"Enter a whole number from 1 (first) to {last} (last).") from None


def _agency(value: Any, field: str, missing: str) -> str:
    if not isinstance(value, str) or not value:
        raise FieldError(field, missing)
    try:
        return check_agency(value, field)
    except ApiError:
        raise FieldError(field, "This is not a partner's agency id.") from None


def events(request: web.Request, op: str, form: Any, size: int) -> tuple[list[tuple[type, dict[str, Any]]], str]:
    """The core events a rota form asks for (`size`: partners in the rota now), and the success message."""
    names = partner_names(request)
    if op in ("move-up", "move-down", "remove"):
        agency = _agency(form.get("agency"), "agency", "Choose a partner.")
        event_type = {"move-up": MoveUp, "move-down": MoveDown, "remove": RemovePartner}[op]
        done = {"move-up": "Moved {} up.", "move-down": "Moved {} down.", "remove": "Removed {} from the rota."}[op]
        return [(event_type, {"partner": agency})], done.format(names.get(agency, agency))
    if op == "move-selected":
        agency = _agency(form.get("agency"), "agency", "Select the partner to move (the radio button on its row).")
        position = _position(form.get("position"), "position", max(size, 1), True)
        return ([(MoveSelected, {"partners": (agency,), "position": position})],
                f"Moved {names.get(agency, agency)} to position {position + 1}.")  # type: ignore[operator]
    if op == "add":
        agencies = [_agency(a, "agencies", "Choose the partners to add.") for a in form.getall("agencies", [])]
        if not agencies:
            raise FieldError("agencies", "Choose the partners to add.")
        position = _position(form.get("add_position"), "add_position", size + 1, False)
        out = [(AddPartner, {"partner": a, "position": None if position is None else position + i})
               for i, a in enumerate(agencies)]
        return out, "Added to the rota: " + ", ".join(names.get(a, a) for a in agencies) + "."
    if op == "cancel-partner":
        try:
            note = check_text(form.get("note") or None, "note")
        except ApiError as exc:
            raise FieldError("note", f"The note {exc.message}.") from None
        return [(CancelPartner, {"note": note})], "Cancelled the active partner; the request moves on down the rota."
    return [(Locate, {})], "Located partners and resent the request."


@staff_page(write=True)
async def rota_post(request: web.Request) -> web.StreamResponse:
    request_id = page_id(request)
    back = f"/borrowing/{request_id}/rota"
    form = await request.post()
    op = form.get("op")
    if op not in OPS:
        raise web.HTTPBadRequest(text=f"op must be one of {', '.join(OPS)}")
    typed = {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
    typed["agencies"] = form.getall("agencies", [])
    r = await load(request, request_id)
    try:
        todo, done = events(request, op, form, len(r["rota"]))
    except FieldError as exc:
        return await render_tab(request, r, "rota", {"addable": addable(request, r), "errors": {exc.field: exc.message},
                                                     "typed": typed}, status=422)
    g, actor = gw(request), staff_of(request).actor
    version = form_version(form)
    for i, (event_type, kw) in enumerate(todo):
        event = event_type(at=g.clock(), by=actor, **kw)
        # Several partners added at once are one staff action: the version is checked before the first.
        await change(request, g.borrowing.apply(request_id, event, expected_version=version if i == 0 else None), back)
    await flash(request, done, "success")
    raise see_other(back)


ROUTES = [
    ("GET", r"/borrowing/{id:\d+}/rota", rota_tab),
    ("POST", r"/borrowing/{id:\d+}/rota", rota_post),
]
