"""What a page says when a change cannot be made: the partner answered meanwhile (the action is
no longer allowed), the page showed an older version of the request, or a value is wrong. In
each case nothing was changed; the person is sent back to the request with the reason."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

from aiohttp import web

from ..api.errors import ApiError
from ..api.operations import api_name
from ..core import IllegalTransition, InvalidInput
from ..service.borrowing import NotFound, StaleVersion
from ..strict_numbers import NumberError, parse_int
from .render import flash, see_other

T = TypeVar("T")

STALE = ("This request changed since you opened it (a partner's message or a colleague's action); "
         "nothing was changed. Check what it shows now and try again.")


def refusal_text(exc: IllegalTransition) -> str:
    why = f" ({exc.reason})" if exc.reason else ""
    return (f"“{api_name(exc.event).replace('-', ' ')}” is no longer possible: the request is now "
            f"{exc.status.replace('_', ' ').lower()}{why}. Nothing was changed.")


async def change(request: web.Request, work: Awaitable[T], back: str) -> T:
    """Await a service call; on a refusal, a stale version or a wrong value, flash why and
    redirect to `back` (raises the redirect)."""
    try:
        return await work
    except IllegalTransition as exc:
        await flash(request, refusal_text(exc), "error")
    except StaleVersion:
        await flash(request, STALE, "error")
    except InvalidInput as exc:
        await flash(request, f"{exc.field.replace('_', ' ')}: {exc.message}. Nothing was changed.", "error")
    except ApiError as exc:
        field = f"{exc.field.replace('_', ' ')}: " if exc.field else ""
        await flash(request, f"{field}{exc.message}. Nothing was changed.", "error")
    except NotFound:
        raise web.HTTPNotFound(text="no such request") from None
    raise see_other(back)


def form_version(form: Any) -> int | None:
    """The request version the page showed (hidden field `version`), or None when absent."""
    text = form.get("version")
    if not isinstance(text, str) or not text:
        return None
    try:
        return parse_int(text, 0, 2**63 - 1)
    except NumberError:
        return None


def page_id(request: web.Request, name: str = "id") -> int:
    try:
        return parse_int(request.match_info[name], 1, 2**63 - 1)
    except NumberError:
        raise web.HTTPNotFound(text="no such request") from None
