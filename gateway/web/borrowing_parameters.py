"""The Parameters tab of a borrowing request: the key/value list, a form to set one parameter and
a "Remove" button per parameter (the service's set_parameters, as the API's PATCH)."""

from __future__ import annotations

from aiohttp import web

from .borrowing_tabs import checked, form_error, load, render_tab
from .outcomes import page_id
from .render import flash, gw, see_other
from .signin import staff_of, staff_page

KEY_LIMIT = 200  # as the API's parameters


@staff_page
async def parameters_tab(request: web.Request) -> web.StreamResponse:
    r = await load(request, page_id(request))
    return await render_tab(request, r, "parameters")


@staff_page(write=True)
async def set_parameter(request: web.Request) -> web.StreamResponse:
    request_id = page_id(request)
    form = await request.post()
    key, key_error = checked(form, "key", "key", max_length=KEY_LIMIT, one_line=True)
    value, value_error = checked(form, "value", "value", required=False)
    if key_error or value_error:
        field, error = ("key", key_error) if key_error else ("value", value_error)
        return await form_error(request, request_id, "parameters", field, error or "", {"key": key, "value": value})
    await gw(request).borrowing.set_parameters(request_id, {key: value}, actor=staff_of(request).actor)
    await flash(request, f"Parameter “{key}” set.", "success")
    raise see_other(f"/borrowing/{request_id}/parameters")


@staff_page(write=True)
async def remove_parameter(request: web.Request) -> web.StreamResponse:
    request_id = page_id(request)
    form = await request.post()
    key = form.get("key")
    r = await load(request, request_id)
    if not isinstance(key, str) or key not in r["parameters"]:
        await flash(request, "That parameter is no longer there; nothing was changed.", "error")
    else:
        await gw(request).borrowing.set_parameters(request_id, {key: None}, actor=staff_of(request).actor)
        await flash(request, f"Parameter “{key}” removed.", "success")
    raise see_other(f"/borrowing/{request_id}/parameters")


ROUTES = [
    ("GET", r"/borrowing/{id:\d+}/parameters", parameters_tab),
    ("POST", r"/borrowing/{id:\d+}/parameters", set_parameter),
    ("POST", r"/borrowing/{id:\d+}/parameters/remove", remove_parameter),
]
