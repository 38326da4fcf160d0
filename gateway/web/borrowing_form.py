"""The request form: a manual request (/borrowing/new) and editing General information
(/borrowing/{id}/edit).

Save creates the request and goes back to the list; Save and Edit creates it and opens it (the
seed: "Save and Edit leaves the request open for processing"); Cancel saves nothing. Either way
the service applies the rota (the partners chosen, else the default) and sends the request to the
first partner. A wrong value shows the form again (422) with each error next to its field and
everything typed kept. An edit carries the version the page showed, so a change made meanwhile
(a partner's message, a colleague) is never overwritten.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..core import BorrowingStatus, Edit, IllegalTransition, InvalidInput, RequestDetails
from ..api.queries import load_request_row
from ..service.borrowing import NotFound, StaleVersion
from ..service.borrowing_rows import state_of
from .outcomes import STALE, form_version, page_id, refusal_text
from .render import flash, gw, render, see_other
from .request_form import (PARTNER_SLOTS, blank_values, detail_inputs, form_field, parse_partners, parse_values,
                           sections, stored_values, typed_values)
from .signin import staff_of, staff_page

LIST = "/borrowing"
ERROR_TARGETS = {"partners": "partner_1"}  # where the error summary's link for a field points


def _pickup(request: web.Request) -> tuple[str, ...]:
    return gw(request).config.intake.pickup_locations


def _partner_options(request: web.Request) -> list[tuple[str, str]]:
    return [(agency, p.name) for agency, p in gw(request).config.partners.items()]


async def _show(request: web.Request, *, values: dict[str, Any], errors: dict[str, str] | None = None,
                problem: str | None = None, status: int = 200, edit: dict[str, Any] | None = None) -> web.Response:
    """The form; `errors` by field, `problem` a refusal that belongs to no one field."""
    errors = errors or {}
    shown = sections(_pickup(request), values)
    labels = {i.name: i.label for s in shown for i in s.inputs} | {"partners": "Partners"}
    return await render(request, "borrowing/form.html", {
        "sections": shown,
        "values": values,
        "errors": errors,
        "summary": [(ERROR_TARGETS.get(name, name), f"{labels.get(name, name.replace('_', ' ').capitalize())}: "
                     f"{message}") for name, message in errors.items()],
        "problem": problem,
        "partner_options": _partner_options(request) if edit is None else [],
        "partner_slots": PARTNER_SLOTS,
        "edit": edit,
        "status_label": edit["status_label"] if edit else BorrowingStatus.CREATED.label,
    }, status=status)


async def _viewer_refusal(request: web.Request) -> web.Response | None:
    """A viewer may not fill in a form they could not save."""
    if staff_of(request).role != "viewer":
        return None
    return await render(request, "error.html", {
        "title": "Not allowed", "message": "Your role (viewer) may look but not change anything."}, status=403)


def _name_of(details: RequestDetails, request_id: int) -> str:
    return details.title or details.title_of_component or details.isbn or details.issn or f"request {request_id}"


# --- a new request ----------------------------------------------------------------------------


@staff_page
async def new_form(request: web.Request) -> web.StreamResponse:
    if (refused := await _viewer_refusal(request)) is not None:
        return refused
    return await _show(request, values=blank_values())


@staff_page(write=True)
async def create(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    if form.get("op") == "cancel":
        await flash(request, "Nothing was saved.", "info")
        raise see_other(LIST)
    values = typed_values(form)
    details, errors = parse_values(values, [i.name for i in detail_inputs(_pickup(request), values)])
    partners, partner_error = parse_partners(values, gw(request).config.partners)
    if partner_error:
        errors["partners"] = partner_error
    if errors:
        return await _show(request, values=values, errors=errors, status=422)
    try:
        result = await gw(request).borrowing.create(RequestDetails(**details), partners, actor=staff_of(request).actor)
    except InvalidInput as exc:  # the form rules (title or identifier, pickup list, date, fee)
        return await _show(request, values=values, errors={_field(exc.field): exc.message}, status=422)
    await flash(request, f"Request created: {_name_of(result.state.details, result.request_id)}", "success")
    raise see_other(f"/borrowing/{result.request_id}" if form.get("op") == "save_and_edit" else LIST)


def _field(name: str | None) -> str:
    return form_field(name) or "title"


# --- editing General information --------------------------------------------------------------


async def _load(request: web.Request, request_id: int) -> tuple[RequestDetails, dict[str, Any]]:
    async with gw(request).engine.connect() as conn:
        row = await conn.run_sync(load_request_row, request_id)
    if row is None:
        raise web.HTTPNotFound(text="no such request")
    state = state_of(row)
    return state.details, {"id": request_id, "version": row["version"], "status_label": state.status.label,
                           "external_id": row["external_id"]}


@staff_page
async def edit_form(request: web.Request) -> web.StreamResponse:
    if (refused := await _viewer_refusal(request)) is not None:
        return refused
    details, edit = await _load(request, page_id(request))
    return await _show(request, values=stored_values(details), edit=edit)


@staff_page(write=True)
async def save_edit(request: web.Request) -> web.StreamResponse:
    request_id = page_id(request)
    back = f"/borrowing/{request_id}"
    form = await request.post()
    if form.get("op") == "cancel":
        raise see_other(back)
    current, edit = await _load(request, request_id)
    version = form_version(form)
    if version is None or version != edit["version"]:
        return await _stale(request, request_id)
    values = typed_values(form)
    edit = {**edit, "version": version}  # the form goes on carrying the version it was opened on
    parsed, errors = parse_values(values, [i.name for i in detail_inputs(_pickup(request), values)])
    if errors:
        return await _show(request, values=values, errors=errors, status=422, edit=edit)
    changes = {name: value for name, value in parsed.items() if value != getattr(current, name)}
    if not changes:
        await flash(request, "Nothing was changed.", "info")
        raise see_other(back)
    g = gw(request)
    try:
        await g.borrowing.apply(request_id, Edit(at=g.clock(), by=staff_of(request).actor, changes=changes),
                                expected_version=version)
    except StaleVersion:
        return await _stale(request, request_id)
    except NotFound:
        raise web.HTTPNotFound(text="no such request") from None
    except IllegalTransition as exc:  # e.g. a field the partner already has: nothing to amend it with
        return await _show(request, values=values, problem=refusal_text(exc), status=409, edit=edit)
    except InvalidInput as exc:
        return await _show(request, values=values, errors={_field(exc.field): exc.message}, status=422, edit=edit)
    await flash(request, "General information saved.", "success")
    raise see_other(back)


async def _stale(request: web.Request, request_id: int) -> web.StreamResponse:
    """The page showed an older version: nothing changed; open the form again on what is there now."""
    await flash(request, STALE, "error")
    raise see_other(f"/borrowing/{request_id}/edit")


ROUTES: list[tuple[str, str, object]] = [
    ("GET", "/borrowing/new", new_form),
    ("POST", "/borrowing/new", create),
    ("GET", r"/borrowing/{id:\d+}/edit", edit_form),
    ("POST", r"/borrowing/{id:\d+}/edit", save_edit),
]
