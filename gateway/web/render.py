"""Rendering pages: the Jinja2 environment (autoescaping everything), the context every page
gets (who is signed in, the CSRF token, the messages left by the last action), and the
POST-redirect-GET helpers."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web
from aiohttp_session import get_session
from markupsafe import Markup

from ..runtime import Gateway, gateway_of
from .security import CSRF_FIELD, csrf_token

TEMPLATES = Path(__file__).parent / "templates"
STAFF_KEY = "web_staff"  # request key: the signed-in Account (signin.py sets it)


def gw(request: web.Request) -> Gateway:
    return gateway_of(request.app)


def when(value: Any) -> str:
    """A moment as staff read it: 2026-12-03 20:15 UTC (a date alone as 2026-12-03)."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def setup(app: web.Application) -> None:
    env = aiohttp_jinja2.setup(
        app, loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True, default_helpers=False,
    )
    env.filters["when"] = when


async def _page_context(request: web.Request) -> dict[str, Any]:
    session = await get_session(request)
    flashes = session.pop("flash", [])
    staff = request.get(STAFF_KEY)
    token = csrf_token(session)
    return {
        "staff": staff,
        "csrf_token": token,
        "csrf_field": Markup(f'<input type="hidden" name="{CSRF_FIELD}" value="{token}">'),
        "flashes": flashes,
        "path": request.path,
    }


async def render(request: web.Request, template: str, context: dict[str, Any] | None = None,
                 status: int = 200) -> web.Response:
    return aiohttp_jinja2.render_template(template, request, {**await _page_context(request), **(context or {})},
                                          status=status)


async def flash(request: web.Request, text: str, kind: str = "info") -> None:
    """A message shown once, on the next page (kind: info, success, error)."""
    session = await get_session(request)
    session["flash"] = [*session.get("flash", []), {"kind": kind, "text": text}][-5:]


def see_other(location: str) -> web.HTTPSeeOther:
    """Raise this after a POST: the browser GETs `location`."""
    return web.HTTPSeeOther(location)
