"""What every page answer carries (security headers), and the CSRF token of every form.

The policy allows no inline script: the pages' only script is /static/app.js. No referrer leaves
the site (request ids and patron names are in our URLs; `same-origin` still lets the browser
name our own origin on a form post), no page may be framed, and HTML is never
cached (it shows patron data).
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

PAGE_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
               "frame-ancestors 'none'")
CSRF_FIELD = "csrf_token"


async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: the headers of every answer that does not set its own."""
    if request.path.startswith(("/api/", "/iso18626")):
        return
    headers = response.headers
    headers.setdefault("Content-Security-Policy", PAGE_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("X-Frame-Options", "DENY")
    if response.content_type == "text/html":
        headers.setdefault("Cache-Control", "no-store")


def csrf_token(session: Any) -> str:
    """The session's CSRF token, made when first needed."""
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def csrf_matches(session: Any, sent: str | None) -> bool:
    expected = session.get("csrf")
    return bool(expected and sent) and hmac.compare_digest(str(expected), str(sent))


def same_origin(request: web.Request) -> bool:
    """A browser names the page a form was posted from; it must be one of ours."""
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":  # not said (or hidden by a privacy setting): the token decides
        return True
    # The host only: behind a proxy that ends TLS the scheme seen here may differ.
    return urlsplit(origin).netloc == request.host
