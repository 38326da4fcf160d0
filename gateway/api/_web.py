"""Small request/response helpers shared by the handlers."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from ..runtime import Gateway, gateway_of
from ..strict_numbers import NumberError, parse_int
from .errors import ApiError
from .fields import check_text

T = TypeVar("T")
MAX_ID = 2**63 - 1
MAX_OFFSET = 2**31 - 1


def gw(request: web.Request) -> Gateway:
    return gateway_of(request.app)


async def read(request: web.Request, fn: Callable[..., T], *args: Any) -> T:
    """Run a read function of a Connection on the gateway's engine (one hop)."""
    async with gw(request).engine.connect() as conn:
        return await conn.run_sync(fn, *args)


def path_id(request: web.Request, name: str = "id") -> int:
    try:  # the route's \d+ also takes other scripts' digits: those are no id of ours
        return parse_int(request.match_info[name], 1, MAX_ID)
    except NumberError:
        raise ApiError(404, "not_found", f"no such {name}") from None


async def json_body(request: web.Request, *, optional: bool = False) -> dict[str, Any]:
    """The body as a JSON object. `optional`: an empty body is {}."""
    data = await request.read()
    if not data.strip():
        if optional:
            return {}
        raise ApiError(400, "bad_json", "a JSON object body is required")
    ctype = request.content_type
    # No Content-Type at all reads as application/octet-stream in aiohttp: take it as JSON.
    if ctype not in ("application/json", "application/octet-stream", "") and not ctype.endswith("+json"):
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    try:
        body = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, "bad_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", "the body must be a JSON object")
    return body


def reject_unknown(body: dict[str, Any], allowed: set[str] | frozenset[str], prefix: str = "") -> None:
    for key in body:
        if key not in allowed:
            raise ApiError(422, "invalid_field", "is not a field here", prefix + key)


async def text_body(request: web.Request) -> str:
    """The required `text` of a body that takes nothing else (a general message, a note)."""
    body = await json_body(request)
    reject_unknown(body, {"text"})
    return check_text(body.get("text"), "text", required=True)


# An action endpoint's table: name -> (event type, allowed body fields, body -> event fields).
Parser = Callable[[dict[str, Any]], dict[str, Any]]
Actions = dict[str, tuple[type, frozenset[str], Parser]]


def actions_by_api_name(*entries: tuple[type, set[str], Parser]) -> Actions:
    """The `/actions/{name}` table: each event under its own API name (`Event.api`), so the route,
    `allowed_actions` and the 409s cannot spell an action differently."""
    actions: Actions = {}
    for event_type, fields, parse in entries:
        name = event_type.api  # type: ignore[attr-defined]
        if name in actions:
            raise ValueError(f"two events serve /actions/{name}")
        actions[name] = (event_type, frozenset(fields), parse)
    return actions


async def named_action(request: web.Request, actions: Actions) -> tuple[type, dict[str, Any]]:
    """The event type and fields of `POST .../actions/{name}`: 404 for an action not in
    `actions`, 422 for a body field the action does not take."""
    name = request.match_info["name"]
    if name not in actions:
        raise ApiError(404, "not_found", f"no action {name!r}; actions: {', '.join(actions)}")
    event_type, allowed, parse = actions[name]
    body = await json_body(request, optional=True)
    reject_unknown(body, allowed)
    return event_type, parse(body)


def query_params(request: web.Request, allowed: set[str] | frozenset[str]) -> dict[str, list[str]]:
    """The query as name -> values; an unknown name is a 422."""
    params: dict[str, list[str]] = {}
    for key, value in request.query.items():
        if key not in allowed:
            raise ApiError(422, "unknown_parameter", "is not a parameter of this endpoint", key)
        if "\x00" in value:
            raise ApiError(422, "invalid_field", "contains characters that are not allowed", key)
        params.setdefault(key, []).append(value)
    return params


def one(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise ApiError(422, "invalid_field", "may be given only once", name)
    return values[0]


def int_param(params: dict[str, list[str]], name: str, default: int, low: int, high: int) -> int:
    text = one(params, name)
    if text is None:
        return default
    return int_value(text.strip(), name, low, high)


def int_value(text: str, name: str, low: int, high: int) -> int:
    """An integer from a query parameter or header `name` (see gateway.strict_numbers); a 422
    naming it otherwise."""
    try:
        return parse_int(text, low, high)
    except NumberError as exc:
        raise ApiError(422, "invalid_field", str(exc), name) from None


def bool_param(params: dict[str, list[str]], name: str) -> bool | None:
    text = one(params, name)
    if text is None:
        return None
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ApiError(422, "invalid_field", "must be true or false", name)


def ok(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(data, status=status, headers=headers)
