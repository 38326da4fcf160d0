"""API errors: one JSON shape, one stable code per fault (docs/architecture.md, contracts).

    {"error": {"code": "invalid_field", "message": "must be a date YYYY-MM-DD", "field": "needed_by"}}

Handlers raise `ApiError`; the middleware also turns the core's and the service's exceptions
(and aiohttp's own 404/405/413) into that shape for every path under `/api/`. Nothing under
`/api/` answers with an HTML or text error page, and an unexpected exception is a logged 500
`internal_error` that tells the client nothing about the inside.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from ..core import IllegalTransition, InvalidInput
from ..service.borrowing import NotFound
from ..service.writer import Conflict

log = logging.getLogger(__name__)

API_PREFIX = "/api/"

# code -> (HTTP status, when); the README's table and the OpenAPI description come from here.
CODES: dict[str, tuple[int, str]] = {
    "bad_json": (400, "the body is not a JSON object"),
    "bad_multipart": (400, "a multipart body that can't be read"),
    "unauthorized": (401, "no API key, or an unknown one (send `Authorization: Bearer <key>`)"),
    "forbidden": (403, "the key's role may not do this (read-only keys may only GET)"),
    "not_found": (404, "no such request, attachment, route or action"),
    "method_not_allowed": (405, "the path exists but not with this method"),
    "illegal_transition": (409, "the action is not allowed in the request's status (see `allowed_actions`)"),
    "conflict": (409, "the request kept changing under us; try again"),
    "payload_too_large": (413, "the body is over the size limit"),
    "unsupported_media_type": (415, "the body's Content-Type is not one this endpoint takes"),
    "invalid_field": (422, "a field or query parameter has a bad value; `field` names it"),
    "unknown_parameter": (422, "a query parameter this endpoint does not know; `field` names it"),
    "internal_error": (500, "a bug: reported in the server log"),
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None, extra: dict[str, Any] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.headers = headers or {}
        self.extra = extra or {}

    def response(self) -> web.Response:
        error: dict[str, Any] = {"code": self.code, "message": self.message, "field": self.field}
        error.update(self.extra)
        return web.json_response({"error": error}, status=self.status, headers=self.headers)


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", what)


def from_exception(exc: BaseException, *, lending: bool = False) -> ApiError | None:
    """The ApiError for an exception of the core, the service or aiohttp; None if unknown.
    A refused action is told in the API's action names (of the lending side with `lending`)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, NotFound):
        return ApiError(404, "not_found", str(exc))
    if isinstance(exc, IllegalTransition):
        from .operations import api_name, api_names, refusal_message
        return ApiError(409, "illegal_transition", refusal_message(exc, lending=lending), None,
                        extra={"event": api_name(exc.event, lending=lending), "status": exc.status,
                               "allowed": api_names(exc.allowed, lending=lending)})
    if isinstance(exc, InvalidInput):
        return ApiError(422, "invalid_field", exc.message, exc.field)
    if isinstance(exc, Conflict):
        return ApiError(409, "conflict", "the request changed while we worked on it; try again")
    if isinstance(exc, web.HTTPException):
        status = exc.status
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large",
                415: "unsupported_media_type"}.get(status)
        if code is None:
            return None
        message = {404: "no such resource", 405: "method not allowed here",
                   413: "the body is too large", 415: "unsupported Content-Type"}[status]
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else {}
        return ApiError(status, code, message, headers=headers)
    return None


@web.middleware
async def error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    if not request.path.startswith(API_PREFIX):
        return await handler(request)
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        error = from_exception(exc)
        if error is None:
            error = ApiError(exc.status, "http_error", exc.reason)
        return error.response()
    except Exception as exc:  # noqa: BLE001 - every error under /api/ is JSON
        error = from_exception(exc, lending="/lending-requests/" in request.path)
        if error is None:
            log.exception("unexpected error on %s %s", request.method, request.path)
            error = ApiError(500, "internal_error", "internal error; see the server log")
        return error.response()
