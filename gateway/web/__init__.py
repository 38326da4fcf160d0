"""The staff pages: the resource-sharing desk in a browser, served by the gateway itself.

Server-rendered HTML (Jinja2 through aiohttp-jinja2); every action is a form that posts and is
answered with a redirect to a page (POST, redirect, GET), so everything works without
JavaScript. Handlers call the same services as the staff API (gateway.service through the
running gateway), never the JSON API over HTTP. `add_routes(app)` is called once by
gateway.app.build_app; routes.py is the page table.
"""

from .routes import add_routes

__all__ = ["add_routes"]
