"""The borrowing actions of a request: the buttons of the request page's header
(`action_buttons`), each action's workform (GET /borrowing/{id}/actions/{name}) and its POST,
which applies the event through the borrowing service as the signed-in staff member.

The forms are read with the staff API's own parsers (api/borrowing.py ACTIONS), so a page and
the API accept exactly the same values; only the labels and the form-to-body step live here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..api import queries as q
from ..api.borrowing import ACTIONS as API_ACTIONS
from ..api.errors import ApiError
from ..core import InvalidInput
from .marks import attention_words
from .outcomes import change, form_version, page_id
from .render import flash, gw, render, see_other
from .signin import staff_of, staff_page


@dataclass(frozen=True)
class Action:
    name: str  # the API's name (api/borrowing.py ACTIONS, `allowed_actions`)
    label: str  # the button, in staff words
    done: str  # the message after it worked
    workform: str | None = None  # its form's template; None: a button alone (takes no input)
    confirm: str | None = None  # asked before a button alone is sent (app.js, data-confirm)


# In the order the header shows them. Every entry of API_ACTIONS has one (a test says so); the
# rota operations (move/add/remove partner) are on the Rota tab, editing on General information.
TABLE: tuple[Action, ...] = (
    Action("receive", "Receive", "Items received", "borrowing/action_receive.html"),
    Action("loan-to-patron", "Loan to patron", "Loaned to the patron"),
    Action("return-by-patron", "Return by patron", "Returned by the patron"),
    Action("return", "Return to partner", "Returned to the partner", "borrowing/action_note.html"),
    Action("renew", "Renew", "Renewal requested from the partner", "borrowing/action_note.html"),
    Action("accept-condition", "Accept conditions", "Conditions accepted", "borrowing/action_conditions.html"),
    Action("reject-condition", "Reject conditions", "Conditions rejected", "borrowing/action_conditions.html"),
    Action("retry", "Retry request", "Request sent again", "borrowing/action_retry.html"),
    Action("skip", "Skip partner", "Partner skipped", "borrowing/action_note.html"),
    Action("status-request", "Send status request", "Status request sent"),
    Action("locate", "Locate and resend", "Locate started: the request goes to the rota's next partner"),
    Action("cancel-partner", "Cancel partner", "Cancel sent to the partner", "borrowing/action_note.html"),
    Action("cancel", "Cancel request", "Request cancelled", "borrowing/action_cancel.html"),
    Action("treat-as-cancelled", "Treat as cancelled", "Request treated as cancelled", "borrowing/action_note.html"),
    Action("resume-request", "Resume request", "Request resumed", "borrowing/action_note.html"),
    Action("acknowledge", "Acknowledge", "Acknowledged", "borrowing/action_acknowledge.html"),
    Action("mark-messages-read", "Mark messages read", "Messages marked read"),
    Action("close", "Close", "Request closed", "borrowing/action_note.html"),
)
BY_NAME: dict[str, Action] = {a.name: a for a in TABLE}
ACKNOWLEDGE_FLAGS = ("send_failed", "cancel_refused")  # the flags staff clear by hand


def href(request_id: int, name: str) -> str:
    return f"/borrowing/{request_id}/actions/{name}"


def action_buttons(r: dict[str, Any]) -> list[dict[str, Any]]:
    """The header's buttons of request `r` (request_json): each allowed action of this module,
    with its label, where it goes, and whether it is a form (`post`) or a link to a workform."""
    allowed = {a["name"] for a in r["allowed_actions"]}
    return [{"name": a.name, "label": a.label, "href": href(r["id"], a.name), "post": a.workform is None,
             "confirm": a.confirm} for a in TABLE if a.name in allowed]


def form_body(form: Any, name: str, reasons: tuple[str, ...]) -> dict[str, Any]:
    """A workform's fields as the API's JSON body of action `name` (only the fields it takes)."""
    takes = API_ACTIONS[name][1]
    body: dict[str, Any] = {}
    if "note" in takes:
        body["note"] = _text(form, "note")
    if "items" in takes:  # one barcode a line (a scanner ends each with Enter)
        body["items"] = [line.strip() for line in (_text(form, "items") or "").splitlines() if line.strip()]
    if "reason" in takes:
        reason = _text(form, "reason")
        if reason not in reasons:
            raise ApiError(422, "invalid_field", "choose a reason from the list", "reason")
        body["reason"] = reason
    if "notify_patron" in takes:
        body["notify_patron"] = form.get("notify_patron") == "yes"
    if "flag" in takes:
        body["flag"] = _text(form, "flag")
    if "changes" in takes:  # a retry may raise the fee we would pay (a fee means we are willing to pay)
        fee, currency = _text(form, "maximum_fee"), _text(form, "currency")
        body["changes"] = {"maximum_fee": fee.strip(), "currency": (currency or "").strip().upper() or None,
                           "willing_to_pay": True} if fee and fee.strip() else {}
    return body


def _text(form: Any, field: str) -> str | None:
    value = form.get(field)
    return value if isinstance(value, str) else None


def event_fields(form: Any, name: str, reasons: tuple[str, ...]) -> dict[str, Any]:
    """The event's fields from a posted workform: ApiError (with its field) when a value is wrong."""
    return API_ACTIONS[name][2](form_body(form, name, reasons))


async def load(request: web.Request, request_id: int) -> dict[str, Any]:
    names = {agency: p.name for agency, p in gw(request).config.partners.items()}
    async with gw(request).engine.connect() as conn:
        r = await conn.run_sync(q.request_json, request_id, names)
    if r is None:
        raise web.HTTPNotFound(text="no such request")
    return r


def not_possible(action: Action, r: dict[str, Any]) -> str:
    return (f"“{action.label}” is not possible now: the request is {r['status_label'].lower()}. "
            "Nothing was changed.")


def _action_of(request: web.Request) -> Action:
    action = BY_NAME.get(request.match_info["name"])
    if action is None:
        raise web.HTTPNotFound(text="no such action")
    return action


@staff_page
async def action_page(request: web.Request) -> web.StreamResponse:
    """The workform of an action (or, for a button alone, a page that asks to confirm it)."""
    request_id, action = page_id(request), _action_of(request)
    r = await load(request, request_id)
    if action.name not in {a["name"] for a in r["allowed_actions"]}:
        await flash(request, not_possible(action, r), "error")
        raise see_other(f"/borrowing/{request_id}")
    return await show_form(request, action, r, {}, {})


async def show_form(request: web.Request, action: Action, r: dict[str, Any], typed: dict[str, Any],
                    errors: dict[str, str], status: int = 200) -> web.Response:
    active = next((e for e in r["rota"] if e["agency"] == r["active_partner"]), None)
    conditions = active if action.workform in ("borrowing/action_conditions.html",
                                               "borrowing/action_retry.html") else None
    partner = f"{active['name']} ({active['agency']})" if active and active["name"] else r["active_partner"]
    flags = [(f, attention_words(f)) for f in ACKNOWLEDGE_FLAGS if f in r["attention"]] or \
        [(f, attention_words(f)) for f in ACKNOWLEDGE_FLAGS]
    return await render(request, action.workform or "borrowing/action_confirm.html", {
        "r": r, "action": action, "post_url": href(r["id"], action.name), "typed": typed, "errors": errors,
        "reasons": gw(request).config.web.cancel_reasons, "conditions": conditions, "flags": flags,
        "partner": partner,
    }, status=status)


@staff_page(write=True)
async def action_post(request: web.Request) -> web.StreamResponse:
    request_id, action = page_id(request), _action_of(request)
    form = await request.post()
    g = gw(request)
    back = f"/borrowing/{request_id}"
    event_type = API_ACTIONS[action.name][0]
    try:
        event = event_type(at=g.clock(), by=staff_of(request).actor,
                           **event_fields(form, action.name, g.config.web.cancel_reasons))
    except (ApiError, InvalidInput) as exc:
        r = await load(request, request_id)
        if action.workform is None:  # nothing was typed: say why on the request page
            await flash(request, f"{exc.message}. Nothing was changed.", "error")
            raise see_other(back) from None
        field = (getattr(exc, "field", None) or "note").removeprefix("changes.").split("[")[0]
        typed = {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
        return await show_form(request, action, r, typed, {field: exc.message}, status=422)
    await change(request, g.borrowing.apply(request_id, event, expected_version=form_version(form)), back)
    await flash(request, action.done, "success")
    raise see_other(back)


ROUTES: list[tuple[str, str, object]] = [
    ("GET", r"/borrowing/{id:\d+}/actions/{name}", action_page),
    ("POST", r"/borrowing/{id:\d+}/actions/{name}", action_post),
]
TEMPLATE_GLOBALS = {"action_buttons": action_buttons}
