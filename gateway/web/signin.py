"""Signing in and out, and the guard every staff page goes through (`staff_page`).

A session holds the username, when they signed in and when a page was last seen; it ends after
`[web] session_idle_minutes` without a page or `session_max_hours` after signing in, and at once
when the account is disabled. Signing in starts a new session (a session id planted before
cannot be carried over). Failed sign-ins are slowed and then locked by the account service, which
records them; the page says only that the name or password is wrong, or that it is locked.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import web
from aiohttp_session import get_session, new_session

from ..service.accounts import Account, SignInRefused
from .render import STAFF_KEY, flash, gw, render, see_other
from .security import CSRF_FIELD, csrf_matches, same_origin

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
HOME = "/borrowing"
FIELD_LIMIT = 1000  # characters of a username or password that are looked at


def staff_of(request: web.Request) -> Account:
    return request[STAFF_KEY]


async def current_staff(request: web.Request) -> Account | None:
    """The signed-in account, or None (no session, expired, or the account disabled)."""
    session = await get_session(request)
    username = session.get("user")
    if not username:
        return None
    settings = gw(request).config.web
    now = time.time()
    if (now - session.get("seen", 0) > settings.session_idle_minutes * 60
            or now - session.get("signed_in", 0) > settings.session_max_hours * 3600):
        session.invalidate()
        return None
    account = await gw(request).accounts.find(username)  # type: ignore[union-attr]
    if account is None or account.disabled:
        session.invalidate()
        return None
    if now - session.get("seen", 0) > 30:  # no new cookie on every request of a busy page
        session["seen"] = int(now)
    return account


def staff_page(handler: Handler | None = None, *, write: bool = False) -> Any:
    """Wrap a page handler: signed in, or sent to the sign-in page (and back afterwards); a POST
    must carry the session's CSRF token from one of our pages; `write` pages refuse viewers."""
    if handler is None:
        return functools.partial(staff_page, write=write)

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        account = await current_staff(request)
        if account is None:
            if request.method in ("GET", "HEAD"):
                raise see_other(f"/login?next={quote(request.path_qs)}")
            await flash(request, "Your session has ended. Sign in again, then repeat what you did.", "error")
            raise see_other("/login")
        request[STAFF_KEY] = account
        if request.method not in ("GET", "HEAD"):
            await check_csrf(request)
            if write and account.role == "viewer":
                return await render(request, "error.html", {
                    "title": "Not allowed", "message": "Your role (viewer) may look but not change anything."},
                    status=403)
        return await handler(request)

    guarded.write = write  # type: ignore[attr-defined]
    return guarded


async def check_csrf(request: web.Request) -> None:
    """403 unless the form carries this session's token (multipart forms carry it in the URL,
    so the upload can be streamed without reading the form first)."""
    session = await get_session(request)
    if request.content_type.startswith("multipart/"):
        sent = request.query.get(CSRF_FIELD)
    else:
        sent = (await request.post()).get(CSRF_FIELD)
    if not same_origin(request) or not csrf_matches(session, sent if isinstance(sent, str) else None):
        raise web.HTTPForbidden(text="This form has expired or did not come from this site. "
                                     "Go back, reload the page and try again.")


def _safe_next(value: str | None) -> str:
    """Only a path of this site: never another site ('//host', 'https://...')."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return HOME
    parts = urlsplit(value)
    return HOME if parts.scheme or parts.netloc else value


async def home(request: web.Request) -> web.StreamResponse:
    raise see_other(HOME if await current_staff(request) else "/login")


async def login_form(request: web.Request) -> web.StreamResponse:
    if await current_staff(request) is not None:
        raise see_other(_safe_next(request.query.get("next")))
    return await render(request, "login.html", {"next": _safe_next(request.query.get("next")),
                                                "username": "", "error": None})


async def login(request: web.Request) -> web.StreamResponse:
    await check_csrf(request)
    form = await request.post()
    username = str(form.get("username", ""))[:FIELD_LIMIT]
    password = str(form.get("password", ""))[:FIELD_LIMIT]
    target = _safe_next(str(form.get("next", "")))
    if not username.strip() or not password:
        return await render(request, "login.html", {"next": target, "username": username,
                                                    "error": "Enter your username and password."}, status=400)
    result = await gw(request).accounts.authenticate(username, password, request.remote or "?")  # type: ignore[union-attr]
    if isinstance(result, SignInRefused):
        await asyncio.sleep(result.delay_seconds)
        if result.reason == "locked":
            until = result.locked_until.strftime("%H:%M UTC") if result.locked_until else "a while"
            error = f"Too many failed sign-ins for this username: try again after {until}."
        else:
            error = "The username or password is wrong."
        return await render(request, "login.html", {"next": target, "username": username, "error": error},
                            status=401)
    session = await new_session(request)  # a new session id: nothing from before is carried over
    now = int(time.time())
    session.update({"user": result.username, "signed_in": now, "seen": now})
    raise see_other(target)


async def logout(request: web.Request) -> web.StreamResponse:
    await check_csrf(request)
    session = await get_session(request)
    session.invalidate()
    session = await new_session(request)
    session["flash"] = [{"kind": "info", "text": "You have signed out."}]
    raise see_other("/login")
