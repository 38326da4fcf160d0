"""The borrowing requests list (`/borrowing`): facets with counts, search, sort, paging."""

from __future__ import annotations

from aiohttp import web

from .render import render
from .signin import staff_page


@staff_page
async def list_page(request: web.Request) -> web.StreamResponse:
    return await render(request, "borrowing/list.html", {})


ROUTES = [("GET", "/borrowing", list_page)]
