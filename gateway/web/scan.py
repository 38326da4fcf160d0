"""Barcode scanning (/scan): a scanner types a barcode and Enter; the page finds the request,
shows it with a "Confirm ..." button, and only that button's POST applies the action.

A borrowing request is found by our request id (its external_id, printed on the book strap), by
the barcode of an item it received, or by its number; a lending request by its number ("LR-7" or
"7") or the requesting library's request id. When a code matches several requests, the first
(in that order) on which the chosen action is allowed now is taken.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import Connection, select

from ..api import lending as lending_api
from ..api import queries as q
from ..api.borrowing import ACTIONS as BORROWING_ACTIONS
from ..api.errors import ApiError
from ..core import InvalidInput
from ..store.models import borrowing_requests_t as br, lending_requests_t as lr, received_items_t
from ..strict_numbers import NumberError, parse_int
from .outcomes import change, form_version
from .render import flash, gw, render, see_other
from .signin import staff_of, staff_page

LOAN_DAYS = 28  # the due date a Ship scan proposes (staff may change it before confirming)
CODE_LIMIT = 200


@dataclass(frozen=True)
class ScanAction:
    name: str  # the API's action name on its side
    label: str  # the choice and the button ("Confirm <label>")
    side: str  # "borrowing" or "lending"
    done: str  # the message after it worked


SCAN_ACTIONS: tuple[ScanAction, ...] = (
    ScanAction("receive", "Receive", "borrowing", "Received"),
    ScanAction("return-by-patron", "Return by patron", "borrowing", "Returned by the patron"),
    ScanAction("return", "Return to partner", "borrowing", "Returned to the partner"),
    ScanAction("ship", "Ship", "lending", "Shipped"),
    ScanAction("check-in", "Check in", "lending", "Checked in"),
)
BY_NAME = {a.name: a for a in SCAN_ACTIONS}


def _number(code: str) -> int | None:
    try:
        return parse_int(code, 1, 2**63 - 1)
    except NumberError:
        return None


def borrowing_ids(conn: Connection, code: str) -> list[int]:
    """Borrowing requests a code names: by request id, a received item's barcode (newest first), number."""
    found = list(conn.execute(select(br.c.id).where(br.c.external_id == code)).scalars())
    found += conn.execute(select(received_items_t.c.request_id).where(received_items_t.c.barcode == code)
                          .order_by(received_items_t.c.id.desc())).scalars()
    number = _number(code)
    if number is not None:
        found += conn.execute(select(br.c.id).where(br.c.id == number)).scalars()
    return list(dict.fromkeys(found))


def lending_ids(conn: Connection, code: str) -> list[int]:
    """Lending requests a code names: our number (LR-7 or 7), the requesting library's request id."""
    number = _number(code[3:] if code.upper().startswith("LR-") else code)
    found = [] if number is None else list(conn.execute(select(lr.c.id).where(lr.c.id == number)).scalars())
    found += conn.execute(select(lr.c.id).where(lr.c.requesting_agency_request_id == code)
                          .order_by(lr.c.id.desc())).scalars()
    return list(dict.fromkeys(found))


def find(conn: Connection, action: ScanAction, code: str, names: dict[str, str]) -> dict[str, Any] | None:
    """The request the code names for `action` (the first on which the action is allowed, else the
    first found), as its page's JSON with a `summary` for the confirmation; None when unknown."""
    if action.side == "borrowing":
        found = [q.request_json(conn, i, names) for i in borrowing_ids(conn, code)]
    else:
        found = [lending_api.lending_json(conn, i) for i in lending_ids(conn, code)]
    found = [r for r in found if r is not None]
    if not found:
        return None
    r = next((r for r in found if allowed(r, action)), found[0])
    return {**r, "summary": summary(r, action.side, names)}


def allowed(r: dict[str, Any], action: ScanAction) -> bool:
    return action.name in {a["name"] for a in r["allowed_actions"]}


def summary(r: dict[str, Any], side: str, names: dict[str, str]) -> dict[str, Any]:
    if side == "borrowing":
        who = r["requester_name"] or r["requester"]
        if r["requester_name"]:
            who = f"{r['requester_name']} ({r['requester']})"
        return {"title": r["title"], "requester": who, "request_id": r["external_id"] or str(r["id"]),
                "status": r["status_label"], "url": f"/borrowing/{r['id']}"}
    agency = r["requesting_agency"]
    who = f"{names[agency]} ({agency})" if agency in names else agency
    return {"title": r["details"].get("title"), "requester": who,
            "request_id": f"{r['our_request_id']} ({r['requesting_agency_request_id']})",
            "status": r["status_label"], "url": f"/lending/{r['id']}"}


def _names(request: web.Request) -> dict[str, str]:
    return {agency: p.name for agency, p in gw(request).config.partners.items()}


def _choice(value: str | None) -> ScanAction:
    return BY_NAME.get(value or "", SCAN_ACTIONS[0])


@staff_page
async def scan_page(request: web.Request) -> web.StreamResponse:
    """The scan form; with a barcode, the request it names and the button that confirms."""
    action = _choice(request.query.get("action"))
    code = (request.query.get("barcode") or "").strip()
    context: dict[str, Any] = {"actions": SCAN_ACTIONS, "action": action, "barcode": code, "error": None}
    if "barcode" not in request.query:
        return await render(request, "scan.html", context)
    if not code or len(code) > CODE_LIMIT or any(ch < " " for ch in code):
        return await render(request, "scan.html", {**context, "error": "Scan or type a barcode."}, status=422)
    names = _names(request)
    async with gw(request).engine.connect() as conn:
        r = await conn.run_sync(find, action, code, names)
    if r is None:
        error = f"No {action.side} request has the barcode “{code}”. Nothing was changed."
        return await render(request, "scan.html", {**context, "error": error}, status=404)
    if not allowed(r, action):
        error = (f"“{action.label}” is not possible for {r['summary']['request_id']}: the request is "
                 f"{r['summary']['status'].lower()}. Nothing was changed.")
        return await render(request, "scan.html", {**context, "error": error, "found": r["summary"]}, status=409)
    due = (gw(request).clock() + timedelta(days=LOAN_DAYS)).date().isoformat()
    return await render(request, "scan_confirm.html", {**context, "r": r, "s": r["summary"], "due_date": due})


@staff_page(write=True)
async def scan_post(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    action = _choice(form.get("action") if isinstance(form.get("action"), str) else None)  # type: ignore[arg-type]
    back = f"/scan?action={action.name}"
    g = gw(request)
    table = BORROWING_ACTIONS if action.side == "borrowing" else lending_api.ACTIONS
    try:
        request_id = parse_int(str(form.get("id", "")), 1, 2**63 - 1)
        event = table[action.name][0](at=g.clock(), by=staff_of(request).actor, **event_fields(action, form))
    except (NumberError, ApiError, InvalidInput) as exc:
        message = "no request was named" if isinstance(exc, NumberError) else exc.message
        field = getattr(exc, "field", None)
        where = f"{field.replace('_', ' ')}: " if field else ""
        await flash(request, f"{where}{message}. Nothing was changed.", "error")
        raise see_other(back) from None
    service = g.borrowing if action.side == "borrowing" else g.lending
    await change(request, service.apply(request_id, event, expected_version=form_version(form)), back)
    label = form.get("request_label")
    await flash(request, f"{action.done}: {label}." if isinstance(label, str) and label else f"{action.done}.",
                "success")
    raise see_other(back)


def event_fields(action: ScanAction, form: Any) -> dict[str, Any]:
    """The event's fields, parsed as the staff API parses them."""
    def text(name: str) -> str | None:
        value = form.get(name)
        return value if isinstance(value, str) and value.strip() else None

    if action.name == "receive":
        item = text("item_barcode")
        return BORROWING_ACTIONS["receive"][2]({"items": [item] if item else []})
    if action.name == "ship":
        return lending_api.ACTIONS["ship"][2]({"due_date": text("due_date")})
    table = BORROWING_ACTIONS if action.side == "borrowing" else lending_api.ACTIONS
    return table[action.name][2]({})


ROUTES: list[tuple[str, str, object]] = [
    ("GET", "/scan", scan_page),
    ("POST", "/scan", scan_post),
]
