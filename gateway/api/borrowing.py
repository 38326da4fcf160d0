"""Handlers of `/api/v1/borrowing-requests`: the staff operations on borrowing
requests over JSON.

Every write goes through `BorrowingService` (create / apply / add_attachment / set_parameters)
with the key's actor (`staff:<name>`), so it is one atomic step with its history entry. Writes
that change the request answer with the whole request (all tabs, as `GET {id}`); writes that add
to a tab (a message, a note, an attachment) answer 201 with what they added.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any
from urllib.parse import quote

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from ..core import (
    AcceptConditions, Acknowledge, AddNote, AddPartner, BorrowingStatus, CancelPartner, CancelRequest, Close, Edit,
    InvalidInput,
    LoanToPatron, Locate, MarkMessagesRead, MoveDown, MoveSelected, MoveUp, Receive, RejectConditions, RemovePartner, Renew,
    RequestDetails, ResumeRequest, RetryRequest, ReturnByPatron, ReturnToPartner, SendMessage, SendStatusRequest,
    SkipPartner, TreatAsCancelled,
)
from ..core import Attention
from . import queries as q
from ._web import (
    MAX_OFFSET, actions_by_api_name, bool_param, gw, int_param, json_body, named_action, ok, one, path_id,
    query_params, read, reject_unknown, text_body,
)
from .auth import principal_of
from .errors import ApiError, not_found
from .fields import (
    FIELDS, REQUIRED, TEXT_LIMIT, check_agency, check_bool, check_text, parse_date, parse_field, parse_fields,
    parse_instant,
)

_MEDIA_TYPE = re.compile(r"^[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*$")
LIST_PARAMS = frozenset({
    "status", "partner", "active_partner", "requester", "format", "needs_attention", "q",
    "requested_media", "pickup_location", "level_of_service", "unread_messages", "has_costs", "has_notes",
    "created_from", "created_to", "updated_from", "updated_to", "needed_by_from", "needed_by_to",
    "limit", "offset", "sort", "facets", "facet_limit",
})
MAX_LIMIT = 200
STATUS_CODES = frozenset(s.value for s in BorrowingStatus)


def partner_names(request: web.Request) -> dict[str, str]:
    return {agency: p.name for agency, p in gw(request).config.partners.items()}


async def respond_request(request: web.Request, request_id: int, status: int = 200,
                          headers: dict[str, str] | None = None) -> web.Response:
    data = await read(request, q.request_json, request_id, partner_names(request))
    if data is None:
        raise not_found(f"no borrowing request {request_id}")
    return ok(data, status, headers)


# --- list -------------------------------------------------------------------------------------


def parse_filters(params: dict[str, list[str]]) -> q.Filters:
    f = q.Filters()
    for name in ("status", "partner", "active_partner", "requester", "format", "requested_media", "pickup_location",
                 "level_of_service"):
        values = [v.strip() for raw in params.get(name, []) for v in raw.split(",")]
        if len(values) > 50:
            raise ApiError(422, "invalid_field", "at most 50 values", name)
        for v in values:
            if not v or len(v) > 200:
                raise ApiError(422, "invalid_field", "a value is empty or too long", name)
        if name == "status":
            unknown = [v for v in values if v not in STATUS_CODES]
            if unknown:
                raise ApiError(422, "invalid_field", f"unknown status {unknown[0]!r}", name)
        if name == "format":
            values = [parse_field("format", v, name) for v in values]
        setattr(f, name, values)
    for name in ("needs_attention", "unread_messages", "has_costs", "has_notes"):
        setattr(f, name, bool_param(params, name))
    for name in ("created", "updated"):
        low, high = one(params, f"{name}_from"), one(params, f"{name}_to")
        if low:
            setattr(f, f"{name}_from", parse_instant(low, f"{name}_from"))
        if high:
            setattr(f, f"{name}_to", parse_instant(high, f"{name}_to", end=True))
    f.needed_by_from = parse_date(one(params, "needed_by_from"), "needed_by_from")
    f.needed_by_to = parse_date(one(params, "needed_by_to"), "needed_by_to")
    text = one(params, "q")
    if text:
        if len(text) > 200:
            raise ApiError(422, "invalid_field", "is longer than 200 characters", "q")
        f.q = text.split()[:10]
    return f


async def list_requests(request: web.Request) -> web.Response:
    params = query_params(request, LIST_PARAMS)
    filters = parse_filters(params)
    sort = one(params, "sort") or "-created_at"
    if sort.lstrip("-") not in q.SORTS or sort.count("-") > 1:
        raise ApiError(422, "invalid_field", f"must be one of {', '.join(q.SORTS)} (prefix - for descending)", "sort")
    facets = bool_param(params, "facets")
    page = q.Page(
        limit=int_param(params, "limit", 25, 1, MAX_LIMIT),
        offset=int_param(params, "offset", 0, 0, MAX_OFFSET),
        sort=sort,
        facets=True if facets is None else facets,
        facet_limit=int_param(params, "facet_limit", 10, 1, 100),
    )
    return ok(await read(request, q.list_requests, filters, page))


# --- create, read, edit -----------------------------------------------------------------------


def _partners(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > 50:
        raise ApiError(422, "invalid_field", "must be a list of agency ids (at most 50)", "partners")
    agencies = tuple(check_agency(v, f"partners[{i}]") for i, v in enumerate(value))
    if len(set(agencies)) != len(agencies):
        raise ApiError(422, "invalid_field", "a partner is listed twice", "partners")
    return agencies


def details_from(body: dict[str, Any]) -> RequestDetails:
    for name in REQUIRED:
        if body.get(name) is None:
            raise ApiError(422, "invalid_field", "is required", name)
    return RequestDetails(**parse_fields(body))


async def create(request: web.Request) -> web.Response:
    body = await json_body(request)
    partners = _partners(body.pop("partners", None))
    details = details_from(body)
    try:
        result = await gw(request).borrowing.create(details, partners, actor=principal_of(request).actor)
    except InvalidInput as exc:
        raise ApiError(422, "invalid_field", exc.message, "partners" if exc.field == "partner" else exc.field) from None
    location = f"/api/v1/borrowing-requests/{result.request_id}"
    return await respond_request(request, result.request_id, 201, {"Location": location})


async def get_request(request: web.Request) -> web.Response:
    return await respond_request(request, path_id(request))


async def edit(request: web.Request) -> web.Response:
    request_id = path_id(request)
    body = await json_body(request)
    if not body:
        raise ApiError(422, "invalid_field", "nothing to change: send the fields to edit")
    changes = parse_fields(body)
    await _apply(request, request_id, Edit, changes=changes)
    return await respond_request(request, request_id)


async def _apply(request: web.Request, request_id: int, event_type: type, **kw: Any) -> Any:
    g = gw(request)
    event = event_type(at=g.clock(), by=principal_of(request).actor, **kw)
    return await g.borrowing.apply(request_id, event)


# --- tabs -------------------------------------------------------------------------------------


async def _tab(request: web.Request, name: str) -> Any:
    request_id = path_id(request)
    data = await read(request, q.tab, request_id, name)
    if data is None:
        raise not_found(f"no borrowing request {request_id}")
    return data


async def get_history(request: web.Request) -> web.Response:
    return ok({"history": await _tab(request, "history")})


async def get_received_items(request: web.Request) -> web.Response:
    return ok({"received_items": await _tab(request, "received_items")})


async def get_messages(request: web.Request) -> web.Response:
    return ok({"messages": await _tab(request, "messages")})


async def get_notes(request: web.Request) -> web.Response:
    return ok({"notes": await _tab(request, "notes")})


async def get_attachments(request: web.Request) -> web.Response:
    return ok({"attachments": await _tab(request, "attachments")})


async def get_parameters(request: web.Request) -> web.Response:
    return ok({"parameters": await _tab(request, "parameters")})


async def _post_text(request: web.Request, event_type: type, field: str, tab: str) -> web.Response:
    """Apply a staff event that carries the body's text; answer with the tab entry it added."""
    request_id = path_id(request)
    await _apply(request, request_id, event_type, **{field: await text_body(request)})
    return ok((await read(request, q.tab, request_id, tab))[-1], 201)


async def post_message(request: web.Request) -> web.Response:
    return await _post_text(request, SendMessage, "note", "messages")


async def post_note(request: web.Request) -> web.Response:
    return await _post_text(request, AddNote, "text", "notes")


def _parameters(value: Any, *, allow_null: bool) -> dict[str, str | None]:
    if not isinstance(value, dict):
        raise ApiError(422, "invalid_field", "must be an object of key -> string", "parameters")
    if len(value) > 100:
        raise ApiError(422, "invalid_field", "at most 100 parameters", "parameters")
    out: dict[str, str | None] = {}
    for key, v in value.items():
        field = f"parameters.{key}"
        name = check_text(key, field, max_length=200, required=True, allow_newlines=False)
        if name != key:
            raise ApiError(422, "invalid_field", "a key may not start or end with spaces", field)
        if v is None and allow_null:
            out[key] = None
            continue
        if not isinstance(v, str):
            raise ApiError(422, "invalid_field", "must be a string" + (" or null" if allow_null else ""), field)
        out[key] = check_text(v, field, max_length=TEXT_LIMIT) or ""
    return out


async def put_parameters(request: web.Request) -> web.Response:
    """Replace all parameters (keys left out are removed)."""
    return await _set_parameters(request, replace=True)


async def patch_parameters(request: web.Request) -> web.Response:
    """Merge: set the given keys; a null value removes its key."""
    return await _set_parameters(request, replace=False)


async def _set_parameters(request: web.Request, *, replace: bool) -> web.Response:
    request_id = path_id(request)
    body = await json_body(request)
    reject_unknown(body, {"parameters"})
    if "parameters" not in body:
        raise ApiError(422, "invalid_field", "is required", "parameters")
    values = _parameters(body["parameters"], allow_null=not replace)
    current = await _tab(request, "parameters")
    if replace:
        changes: dict[str, str | None] = {k: None for k in current if k not in values}
        changes.update({k: v for k, v in values.items() if k not in current or current[k] != v})
    else:
        changes = {k: v for k, v in values.items()
                   if (k in current and current[k] != v) or (k not in current and v is not None)}
    if changes:
        g = gw(request)
        params = await g.borrowing.set_parameters(request_id, changes, actor=principal_of(request).actor)
    else:
        params = current
    return ok({"parameters": dict(sorted(params.items()))})


# --- rota -------------------------------------------------------------------------------------

ROTA_OPS = ("move-up", "move-down", "move-selected", "add", "remove", "cancel-partner")


async def get_rota(request: web.Request) -> web.Response:
    request_id = path_id(request)

    def rota(conn: Any) -> Any:
        row = q.load_request_row(conn, request_id)
        if row is None:
            return None
        from sqlalchemy import select

        from ..store.models import rota_entries_t
        rows = [dict(r._mapping) for r in conn.execute(
            select(rota_entries_t).where(rota_entries_t.c.request_id == request_id))]
        return q.rota_json(row, rows, partner_names(request))

    data = await read(request, rota)
    if data is None:
        raise not_found(f"no borrowing request {request_id}")
    return ok({"rota": data})


def _position(value: Any, required: bool) -> int | None:
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
        raise ApiError(422, "invalid_field", "must be a position from 1 (first)", "position")
    return value - 1


async def post_rota(request: web.Request) -> web.Response:
    """One rota operation: {"op": ..., "agency" | "agencies", "position" (1-based), "note"}."""
    request_id = path_id(request)
    body = await json_body(request)
    op = body.get("op")
    if op not in ROTA_OPS:
        raise ApiError(422, "invalid_field", f"must be one of {', '.join(ROTA_OPS)}", "op")
    allowed = {
        "move-up": {"op", "agency"}, "move-down": {"op", "agency"}, "remove": {"op", "agency"},
        "move-selected": {"op", "agencies", "position"}, "add": {"op", "agency", "position"},
        "cancel-partner": {"op", "note"},
    }[op]
    reject_unknown(body, allowed)
    kw: dict[str, Any]
    if op == "cancel-partner":
        event_type, kw = CancelPartner, {"note": check_text(body.get("note"), "note")}
    elif op == "move-selected":
        agencies = body.get("agencies")
        if not isinstance(agencies, list) or not agencies or len(agencies) > 50:
            raise ApiError(422, "invalid_field", "must be a non-empty list of agency ids", "agencies")
        kw = {"partners": tuple(check_agency(a, f"agencies[{i}]") for i, a in enumerate(agencies)),
              "position": _position(body.get("position"), True)}
        event_type = MoveSelected
    else:
        if body.get("agency") is None:
            raise ApiError(422, "invalid_field", "is required", "agency")
        kw = {"partner": check_agency(body.get("agency"), "agency")}
        event_type = {"move-up": MoveUp, "move-down": MoveDown, "remove": RemovePartner, "add": AddPartner}[op]
        if op == "add":
            kw["position"] = _position(body.get("position"), False)
    try:
        await _apply(request, request_id, event_type, **kw)
    except InvalidInput as exc:
        field = {"partner": "agencies" if op == "move-selected" else "agency"}.get(exc.field, exc.field)
        message = "is outside the rota" if exc.field == "position" else exc.message
        raise ApiError(422, "invalid_field", message, field) from None
    return await respond_request(request, request_id)


# --- actions ----------------------------------------------------------------------------------


def _note(body: dict[str, Any]) -> str | None:
    return check_text(body.get("note"), "note")


def _receive(body: dict[str, Any]) -> dict[str, Any]:
    items = body.get("items") or []
    if not isinstance(items, list) or len(items) > 50:
        raise ApiError(422, "invalid_field", "must be a list of barcodes (at most 50)", "items")
    barcodes = tuple(check_text(v, f"items[{i}]", max_length=200, required=True, allow_newlines=False)
                     for i, v in enumerate(items))
    return {"note": _note(body), "items": barcodes}


def _cancel(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "reason": check_text(body.get("reason"), "reason", max_length=200, allow_newlines=False),
        "note": _note(body),
        "notify_patron": check_bool(body.get("notify_patron", False), "notify_patron"),
        "by_patron": check_bool(body.get("by_patron", False), "by_patron"),
    }


def _retry(body: dict[str, Any]) -> dict[str, Any]:
    changes = body.get("changes") or {}
    if not isinstance(changes, dict):
        raise ApiError(422, "invalid_field", "must be an object of form fields", "changes")
    return {"changes": parse_fields(changes, prefix="changes."), "note": _note(body)}


def _acknowledge(body: dict[str, Any]) -> dict[str, Any]:
    flag = body.get("flag")
    plain = ("send_failed", "cancel_refused")
    if flag not in plain:
        raise ApiError(422, "invalid_field", f"must be one of {', '.join(plain)}", "flag")
    return {"flag": Attention(flag)}


def _nothing(body: dict[str, Any]) -> dict[str, Any]:
    return {}


def _note_only(body: dict[str, Any]) -> dict[str, Any]:
    return {"note": _note(body)}


# each event under its API name: (event, body fields, parser)
ACTIONS = actions_by_api_name(
    (Receive, {"note", "items"}, _receive),
    (LoanToPatron, set(), _nothing),
    (ReturnByPatron, set(), _nothing),
    (ReturnToPartner, {"note"}, _note_only),
    (Renew, {"note"}, _note_only),
    (CancelRequest, {"reason", "note", "notify_patron", "by_patron"}, _cancel),
    (AcceptConditions, {"note"}, _note_only),
    (RejectConditions, {"note"}, _note_only),
    (RetryRequest, {"changes", "note"}, _retry),
    (SkipPartner, {"note"}, _note_only),
    (SendStatusRequest, set(), _nothing),
    (Locate, set(), _nothing),
    (Close, {"note"}, _note_only),
    (Acknowledge, {"flag"}, _acknowledge),
    (CancelPartner, {"note"}, _note_only),
    (MarkMessagesRead, set(), _nothing),
    (TreatAsCancelled, {"note"}, _note_only),
    (ResumeRequest, {"note"}, _note_only),
)


async def action(request: web.Request) -> web.Response:
    request_id = path_id(request)
    event_type, fields = await named_action(request, ACTIONS)
    try:
        await _apply(request, request_id, event_type, **fields)
    except InvalidInput as exc:  # a retry's changes broke a form rule: name it as the body does
        prefix = "changes." if event_type is RetryRequest else ""
        raise ApiError(422, "invalid_field", exc.message, prefix + exc.field) from None
    return await respond_request(request, request_id)


# --- attachments ------------------------------------------------------------------------------


def _attachment_limit(request: web.Request) -> int:
    return gw(request).config.api.attachment_limit


def clean_filename(name: str | None) -> str:
    if not name:
        raise ApiError(422, "invalid_field", "a file name is required (multipart filename, ?filename= "
                       "or Content-Disposition)", "filename")
    name = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip().strip(".")
    if not name:
        raise ApiError(422, "invalid_field", "is not a usable file name", "filename")
    return name[:255]


def clean_media_type(value: str | None) -> str:
    value = (value or "").split(";", 1)[0].strip().lower()
    return value if value and len(value) <= 200 and _MEDIA_TYPE.fullmatch(value) else "application/octet-stream"


async def _read_limited(stream: Any, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        chunk = await stream.read_chunk(65536) if isinstance(stream, BodyPartReader) else await stream.read(65536)
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "payload_too_large", f"attachments are limited to {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def upload_attachment(request: web.Request) -> web.Response:
    """multipart/form-data (a part named `file`) or the raw body with ?filename= (or a
    Content-Disposition filename) and its Content-Type."""
    request_id = path_id(request)
    limit = _attachment_limit(request)
    if request.content_length is not None and request.content_length > limit + 64 * 1024:
        raise ApiError(413, "payload_too_large", f"attachments are limited to {limit} bytes")
    params = query_params(request, {"filename"})
    if request.content_type.startswith("multipart/"):
        try:
            reader = await request.multipart()
            part = await reader.next()
            while part is not None and (not isinstance(part, BodyPartReader) or part.name != "file"):
                part = await reader.next()
            if part is None:
                raise ApiError(422, "invalid_field", "a multipart part named 'file' is required", "file")
            filename = clean_filename(part.filename or one(params, "filename"))
            media_type = clean_media_type(part.headers.get("Content-Type"))
            content = await _read_limited(part, limit)
        except (ValueError, AssertionError, RuntimeError, HttpProcessingError) as exc:
            raise ApiError(400, "bad_multipart", f"unreadable multipart body: {exc}") from None
    else:
        disposition = request.headers.get("Content-Disposition")
        name = one(params, "filename")
        if name is None and disposition:
            from aiohttp.multipart import content_disposition_filename, parse_content_disposition
            name = content_disposition_filename(parse_content_disposition(disposition)[1])
        filename = clean_filename(name)
        media_type = clean_media_type(request.headers.get("Content-Type"))
        content = await _read_limited(request.content, limit)
    g = gw(request)
    attachment_id = await g.borrowing.add_attachment(request_id, filename, media_type, content,
                                                     actor=principal_of(request).actor)
    items = await read(request, q.tab, request_id, "attachments")
    meta = next(a for a in items if a["id"] == attachment_id)
    return ok(meta, 201, {"Location": f"/api/v1/borrowing-requests/{request_id}/attachments/{attachment_id}"})


async def download_attachment(request: web.Request) -> web.StreamResponse:
    request_id, attachment_id = path_id(request), path_id(request, "aid")
    row = await read(request, q.attachment, request_id, attachment_id)
    if row is None:
        raise not_found(f"no attachment {attachment_id} on borrowing request {request_id}")
    content: bytes = row["content"] or b""
    ascii_name = row["filename"].encode("ascii", "replace").decode().replace('"', "'").replace("?", "_")
    response = web.StreamResponse(headers={
        "Content-Type": clean_media_type(row["media_type"]),
        "Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(row['filename'])}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
    })
    response.content_length = len(content)
    await response.prepare(request)
    if request.method == "HEAD":
        await response.write_eof()
        return response
    for start in range(0, len(content), 65536):
        await response.write(content[start:start + 65536])
    await response.write_eof()
    return response


__all__ = ["ACTIONS", "FIELDS", "ROTA_OPS"]
