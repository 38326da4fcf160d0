"""The staff pages' route table, and `add_routes(app)` which installs the pages with their
sessions, security headers and static files. Each page module lists its own routes in a
`ROUTES` list of (method, path, handler); this module only gathers them."""

from __future__ import annotations

from pathlib import Path

import aiohttp_jinja2
from aiohttp import web

from ..runtime import gateway_of
from . import (borrowing_actions, borrowing_attachments, borrowing_form, borrowing_list, borrowing_messages,
               borrowing_parameters, borrowing_request, borrowing_rota, lending_pages, live, render, scan, security,
               session, signin, slips)

STATIC = Path(__file__).parent / "static"

ROUTES: list[tuple[str, str, object]] = [
    ("GET", "/", signin.home),
    ("GET", "/login", signin.login_form),
    ("POST", "/login", signin.login),
    ("POST", "/logout", signin.logout),
]
# Modules with their own ROUTES, in this order (a fixed path before a pattern that would match it).
PAGE_MODULES: list[object] = [borrowing_list, borrowing_form, slips, borrowing_actions, borrowing_request,
                              borrowing_rota, borrowing_messages, borrowing_parameters, borrowing_attachments,
                              lending_pages, live, scan]


def all_routes() -> list[tuple[str, str, object]]:
    routes = list(ROUTES)
    for module in PAGE_MODULES:
        routes.extend(module.ROUTES)  # type: ignore[attr-defined]
    return routes


def add_routes(app: web.Application) -> None:
    session.install(app, gateway_of(app).config)
    render.setup(app)
    env = aiohttp_jinja2.get_env(app)
    for module in PAGE_MODULES:  # functions a module's templates call (e.g. action_buttons(r))
        env.globals.update(getattr(module, "TEMPLATE_GLOBALS", {}))
    live.setup(app)
    app.on_response_prepare.append(security.add_headers)
    for method, path, handler in all_routes():
        if method == "GET":
            app.router.add_get(path, handler)  # type: ignore[arg-type]  (and HEAD)
        else:
            app.router.add_route(method, path, handler)  # type: ignore[arg-type]
    app.router.add_static("/static/", STATIC, append_version=False)
