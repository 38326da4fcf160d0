"""The lender's actions on a request: `GET /lending/{id}/actions/{name}` shows the action's
workform, `POST` to the same address applies it (the request page's quick buttons post there
too, with nothing filled in). The action goes through the lending service with the version
the page showed; a refusal (the requesting library acted meanwhile) or a stale version comes
back to the request page with the reason, a wrong value to the workform next to its field."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..core import InvalidInput
from .lending_request import load, request_context
from .lending_workforms import WORKFORMS, Workform
from .outcomes import change, form_version, page_id
from .render import flash, gw, render, see_other
from .signin import staff_of, staff_page


def not_possible(workform: Workform, r: dict[str, Any]) -> str:
    """Why an action the page offered cannot be done now (the requesting library acted meanwhile)."""
    if r["pending"] == "cancel":
        now = "the requesting library asks to cancel it: answer that first"
    elif r["pending"] == "renew":
        now = "the requesting library asks to renew it: answer that first"
    else:
        now = f"its status is now “{r['status_label']}”"
    return f"“{workform.title}” is no longer possible: {now}. Nothing was changed."


def _workform(request: web.Request) -> Workform:
    workform = WORKFORMS.get(request.match_info["name"])
    if workform is None:
        raise web.HTTPNotFound(text="no such action")
    return workform


async def _show(request: web.Request, workform: Workform, values: dict[str, str], errors: dict[str, str],
                version: int | None = None, status: int = 200) -> web.StreamResponse:
    r = await load(request, page_id(request))
    return await render(request, "lending/workform.html", {
        **request_context(request, r, "general"), "form": workform, "values": values, "errors": errors,
        "version": version if version is not None else r["version"],
    }, status=status)


@staff_page
async def workform_page(request: web.Request) -> web.StreamResponse:
    workform = _workform(request)
    lending_id = page_id(request)
    r = await load(request, lending_id)
    if workform.name not in {a["name"] for a in r["allowed_actions"]}:
        await flash(request, not_possible(workform, r), "error")
        raise see_other(f"/lending/{lending_id}")
    values = {f.name: "" for f in workform.fields}
    values.update({k: v for k, v in request.query.items() if k in values})  # e.g. ?answer=Y from a button
    return await _show(request, workform, values, {})


@staff_page(write=True)
async def apply_action(request: web.Request) -> web.StreamResponse:
    workform = _workform(request)
    lending_id = page_id(request)
    back = f"/lending/{lending_id}"
    form = await request.post()
    values = {f.name: str(form.get(f.name, "")) for f in workform.fields}
    version = form_version(form)
    # Checked before the version: "the requesting library cancelled" says more than "it changed".
    current = await load(request, lending_id)
    if workform.name not in {a["name"] for a in current["allowed_actions"]}:
        await flash(request, not_possible(workform, current), "error")
        raise see_other(back)
    errors, fields = workform.parse(values)
    event: Any = None
    if not errors:
        g = gw(request)
        try:
            event = workform.event_type(at=g.clock(), by=staff_of(request).actor, **fields)
        except InvalidInput as exc:
            errors = {workform.field_of(exc.field) or "": exc.message}
    if errors:
        return await _show(request, workform, values, errors, version, status=422)
    result = await change(request, gw(request).lending.apply(lending_id, event, expected_version=version), back)
    sent = bool(result.decision.outgoing)
    await flash(request, f"{workform.title}: {'sent to the requesting library' if sent else 'saved'}.", "success")
    raise see_other(back)


ROUTES: list[tuple[str, str, object]] = [
    ("GET", r"/lending/{id:\d+}/actions/{name:[a-z-]+}", workform_page),
    ("POST", r"/lending/{id:\d+}/actions/{name:[a-z-]+}", apply_action),
]
