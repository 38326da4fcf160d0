"""Patron intake: an OpenURL citation becomes a pre-filled workform; the patron completes it.

    GET  /openurl?<OpenURL 1.0 KEV or 0.1>   the workform (HTML), citation pre-filled and escaped
    POST /openurl/submit                     form-encoded -> a borrowing request, confirmation page
    POST /api/v1/patron-requests             the same submission as JSON (API key, staff role)

Either way the request is created by `BorrowingService.create` exactly as staff create one,
with the actor `patron:<patron id>`; the default rota template applies.

OpenURL 1.0 (Z39.88-2004 KEV): rft.title / btitle / atitle / jtitle, rft.au / aulast / aufirst /
auinit / aucorp, rft.isbn, rft.issn / eissn, rft.volume, rft.issue, rft.spage / epage / pages,
rft.date, rft.pub, rft.edition, rft.genre, rft_id=info:oclcnum/… (and info:doi/…, info:pmid/…,
urn:ISBN:…). OpenURL 0.1: title, atitle, aulast, aufirst, auinit, isbn, issn, volume, issue,
spage, epage, pages, date, genre, id=oclcnum:… (and doi:…, pmid:…). A part (article, chapter:
genre article / bookitem / chapter / proceeding / preprint, or an atitle beside a container
title) is requested as a copy: the container goes to `title`, the part to `title_of_component`,
its author to `author_of_component`.

Config (optional): `[intake] pickup_locations = ["Main desk", ...]` turns the pickup field into
a list (the borrowing service refuses other values, from patrons and staff alike);
`enabled = false` switches the HTML workform off (404).
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from ..core import InvalidInput, RequestDetails
from ._web import gw, json_body
from .borrowing import respond_request
from .errors import ApiError
from .fields import _BAD_CHARS, FIELDS, check_text, parse_date, parse_field

BIB_FIELDS = ("title", "author", "title_of_component", "author_of_component", "isbn", "issn", "oclc_number",
              "publisher", "publication_date", "edition", "volume", "issue", "pages")
PART_GENRES = frozenset({"article", "bookitem", "chapter", "proceeding", "preprint", "contribution"})
PATRON_ID_LIMIT = 190  # "patron:" + id must fit the history's actor column (200)
PATRON_FIELDS = ("patron_id", "patron_name", "pickup_location", "needed_by", "note")
SUBMISSION_FIELDS = frozenset({*BIB_FIELDS, "other_identifiers", "format", *PATRON_FIELDS})
FORM_NAMES = {"requester": "patron_id", "requester_name": "patron_name", "request_note": "note"}
LABELS = {
    "title": "Title", "author": "Author", "title_of_component": "Article / chapter title",
    "author_of_component": "Article / chapter author", "isbn": "ISBN", "issn": "ISSN",
    "oclc_number": "OCLC number", "publisher": "Publisher", "publication_date": "Date", "edition": "Edition",
    "volume": "Volume", "issue": "Issue", "pages": "Pages",
}


# --- OpenURL -> citation ----------------------------------------------------------------------


def _clean(value: str | None, name: str) -> str | None:
    """A citation value fit for its field: control characters dropped, cut to the column size."""
    if value is None:
        return None
    value = _BAD_CHARS.sub("", value).strip()
    if not value:
        return None
    limit = FIELDS[name].max_length if name in FIELDS else 200
    return value[: limit or 4000]


def is_kev_1_0(query: Mapping[str, str]) -> bool:
    return query.get("url_ver") == "Z39.88-2004" or any(k.startswith(("rft.", "rft_")) for k in query)


def parse_openurl(query: MultiDictProxy[str] | Mapping[str, Any]) -> dict[str, Any]:
    """The citation of an OpenURL (1.0 KEV or 0.1) as RequestDetails fields, plus `genre` and
    `openurl_version`. Unknown keys are ignored; nothing here raises."""
    getall = query.getall if hasattr(query, "getall") else (lambda k, d=(): [query[k]] if k in query else list(d))
    first: dict[str, str] = {}
    for key in query:
        if key not in first:
            values = getall(key, [])
            first[key] = values[0] if values else ""
    v10 = is_kev_1_0(first)
    p = "rft." if v10 else ""

    def get(*names: str) -> str | None:
        for name in names:
            value = first.get(p + name)
            if value and value.strip():
                return value.strip()
        return None

    genre = (get("genre") or "").lower() or None
    ids = getall("rft_id", []) if v10 else getall("id", [])
    oclc = None
    others: list[tuple[str, str]] = []
    isbn, issn = get("isbn"), get("issn", "eissn")
    for raw in ids:
        raw = raw.strip()
        low = raw.lower()
        for prefix, kind in (("info:oclcnum/", "OCLC"), ("oclcnum:", "OCLC"), ("info:doi/", "DOI"),
                             ("doi:", "DOI"), ("info:pmid/", "PMID"), ("pmid:", "PMID"),
                             ("urn:isbn:", "ISBN"), ("urn:issn:", "ISSN")):
            if low.startswith(prefix):
                value = raw[len(prefix):].strip()
                if not value:
                    break
                if kind == "OCLC":
                    oclc = oclc or value
                elif kind == "ISBN":
                    isbn = isbn or value
                elif kind == "ISSN":
                    issn = issn or value
                elif len(others) < 10:
                    others.append((kind, _clean(value, "oclc_number") or value[:200]))
                break
    author = get("au")
    if author is None:
        last = get("aulast")
        given = get("aufirst", "auinit")
        author = f"{last}, {given}" if last and given else last or get("aucorp")
    pages = get("pages")
    if pages is None:
        start, end = get("spage"), get("epage")
        pages = f"{start}-{end}" if start and end else start
    if v10:
        container = get("jtitle", "btitle", "title")
    else:
        container = get("title")
    part_title = get("atitle")
    is_part = genre in PART_GENRES or (part_title is not None and container is not None)
    if is_part:
        title, component, author_main, author_part = container, part_title, None, author
    else:
        title, component, author_main, author_part = container or part_title or get("stitle"), None, author, None
    citation: dict[str, Any] = {
        "title": title, "author": author_main, "title_of_component": component,
        "author_of_component": author_part, "isbn": isbn, "issn": issn, "oclc_number": oclc,
        "publisher": get("pub", "publisher"), "publication_date": get("date"), "edition": get("edition"),
        "volume": get("volume"), "issue": get("issue"), "pages": pages,
    }
    citation = {k: _clean(v, k) for k, v in citation.items()}
    citation["other_identifiers"] = [{"type": t, "value": v} for t, v in others]
    citation["format"] = "Digital" if is_part else "Physical"
    citation["genre"] = genre
    citation["openurl_version"] = "1.0" if v10 else "0.1"
    return citation


# --- a submission -> RequestDetails -----------------------------------------------------------


def _pickup_locations(request: web.Request) -> list[str]:
    return list(gw(request).borrowing.ctx.form_rules.pickup_locations)


def submission_details(request: web.Request, body: dict[str, Any]) -> tuple[str, RequestDetails]:
    """(patron id, details) from a submission (JSON, or the form turned into the same shape)."""
    for key in body:
        if key not in SUBMISSION_FIELDS:
            raise ApiError(422, "invalid_field", "is not a field of a patron request", key)
    patron_id = check_text(body.get("patron_id"), "patron_id", max_length=PATRON_ID_LIMIT, required=True,
                           allow_newlines=False)
    pickup = check_text(body.get("pickup_location"), "pickup_location", max_length=200, required=True,
                        allow_newlines=False)
    values: dict[str, Any] = {name: parse_field(name, body[name]) for name in BIB_FIELDS if name in body}
    if "other_identifiers" in body:
        values["other_identifiers"] = parse_field("other_identifiers", body["other_identifiers"])
    if body.get("format") is not None:
        values["format"] = parse_field("format", body["format"])
    values["requester_name"] = parse_field("requester_name", body.get("patron_name"), "patron_name")
    values["needed_by"] = parse_date(body.get("needed_by"), "needed_by")
    values["request_note"] = check_text(body.get("note"), "note")
    try:
        return patron_id, RequestDetails(requester=patron_id, pickup_location=pickup, **values)  # type: ignore[arg-type]
    except InvalidInput as exc:
        raise _patron_error(exc) from None


def _patron_error(exc: InvalidInput) -> ApiError:
    """A form rule's error, naming the field as the patron form calls it."""
    return ApiError(422, "invalid_field", exc.message, FORM_NAMES.get(exc.field, exc.field))


async def _create(request: web.Request, body: dict[str, Any]) -> Any:
    """The borrowing service checks the form rules, the same as for staff (core.form_rules)."""
    patron_id, details = submission_details(request, body)
    try:
        return await gw(request).borrowing.create(details, None, actor=f"patron:{patron_id}")
    except InvalidInput as exc:
        raise _patron_error(exc) from None


async def api_patron_request(request: web.Request) -> web.Response:
    body = await json_body(request)
    result = await _create(request, body)
    return await respond_request(request, result.request_id, 201,
                                 {"Location": f"/api/v1/borrowing-requests/{result.request_id}"})


# --- HTML -------------------------------------------------------------------------------------

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem} fieldset{border:1px solid #ccc;border-radius:6px;margin:1rem 0;padding:.5rem 1rem}
label{display:block;margin:.5rem 0 .1rem;font-weight:600} input,select,textarea{width:100%;padding:.35rem;
box-sizing:border-box} .error{background:#fde8e8;border:1px solid #e0a0a0;padding:.6rem;border-radius:6px}
.ok{background:#e8f6e8;border:1px solid #9c9;padding:.6rem;border-radius:6px} button{margin-top:1rem;padding:.5rem 1.2rem}
.req::after{content:" *";color:#b00}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _page(title: str, body: str, status: int = 200) -> web.Response:
    text = (f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>{body}</body></html>")
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8", headers={
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
        "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Cache-Control": "no-store",
    })


def _input(name: str, label: str, value: Any, *, required: bool = False, kind: str = "text") -> str:
    req = " required" if required else ""
    cls = ' class="req"' if required else ""
    return (f'<label for="{name}"{cls}>{_e(label)}</label>'
            f'<input id="{name}" name="{name}" type="{kind}" value="{_e(value)}"{req}>')


def workform(values: dict[str, Any], pickups: list[str], error: str | None = None) -> str:
    parts = ["<h1>Interlibrary loan request</h1>"]
    if error:
        parts.append(f'<p class="error" role="alert">{_e(error)}</p>')
    parts.append('<form method="post" action="/openurl/submit">')
    parts.append("<fieldset><legend>What you need</legend>")
    for name in BIB_FIELDS:
        parts.append(_input(name, LABELS[name], values.get(name)))
    fmt = values.get("format") or "Physical"
    options = "".join(f'<option value="{f}"{" selected" if f == fmt else ""}>'
                      f'{"A copy (digital)" if f == "Digital" else "The item (physical loan)"}</option>'
                      for f in ("Physical", "Digital"))
    parts.append(f'<label for="format">Format</label><select id="format" name="format">{options}</select>')
    for ident in values.get("other_identifiers") or []:
        parts.append(f'<input type="hidden" name="other_id" value="{_e(ident["type"])}:{_e(ident["value"])}">')
    parts.append("</fieldset><fieldset><legend>About you</legend>")
    parts.append(_input("patron_id", "Patron id (library card)", values.get("patron_id"), required=True))
    parts.append(_input("patron_name", "Name", values.get("patron_name")))
    if pickups:
        chosen = values.get("pickup_location")
        opts = "".join(f'<option value="{_e(p)}"{" selected" if p == chosen else ""}>{_e(p)}</option>' for p in pickups)
        parts.append(f'<label for="pickup_location" class="req">Pickup location</label>'
                     f'<select id="pickup_location" name="pickup_location" required>{opts}</select>')
    else:
        parts.append(_input("pickup_location", "Pickup location", values.get("pickup_location"), required=True))
    parts.append(_input("needed_by", "Needed by", values.get("needed_by"), kind="date"))
    parts.append(f'<label for="note">Note</label><textarea id="note" name="note" rows="3">{_e(values.get("note"))}'
                 "</textarea>")
    parts.append('</fieldset><button type="submit">Submit request</button></form>')
    return "".join(parts)


def _enabled(request: web.Request) -> None:
    if not gw(request).config.intake.enabled:
        raise web.HTTPNotFound()


async def openurl_form(request: web.Request) -> web.Response:
    _enabled(request)
    citation = parse_openurl(request.query)
    return _page("Interlibrary loan request", workform(citation, _pickup_locations(request)))


def _form_to_body(form: MultiDictProxy[Any]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for name in (*BIB_FIELDS, "format", *PATRON_FIELDS):
        value = form.get(name)
        if isinstance(value, str) and value.strip():
            body[name] = value
    ids = []
    for raw in form.getall("other_id", [])[:20]:
        if isinstance(raw, str) and ":" in raw:
            kind, _, value = raw.partition(":")
            ids.append({"type": kind, "value": value})
    if ids:
        body["other_identifiers"] = ids
    return body


async def openurl_submit(request: web.Request) -> web.Response:
    _enabled(request)
    if request.content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return _page("Unsupported", "<p class=\"error\">Submit the form.</p>", 415)
    form = await request.post()
    body = _form_to_body(form)
    try:
        result = await _create(request, body)
    except ApiError as exc:
        label = {"patron_id": "Patron id", "pickup_location": "Pickup location", "needed_by": "Needed by",
                 "patron_name": "Name", "note": "Note"}.get(exc.field or "", LABELS.get(exc.field or "", exc.field))
        message = f"{label}: {exc.message}" if label else exc.message
        shown = {**body, "other_identifiers": body.get("other_identifiers", [])}
        return _page("Please check your request", workform(shown, _pickup_locations(request), message), 422)
    state = result.state
    external = await _external_id(request, result.request_id)
    title = state.details.title_of_component or state.details.title or ""
    body_html = (
        '<h1>Request received</h1><p class="ok">Thank you. Your request has been placed.</p>'
        f"<dl><dt>Request id</dt><dd id=\"request-id\">{_e(result.request_id)}</dd>"
        f"<dt>Reference</dt><dd id=\"external-id\">{_e(external)}</dd>"
        f"<dt>Title</dt><dd>{_e(title)}</dd>"
        f"<dt>Status</dt><dd>{_e(state.status.label)}</dd>"
        f"<dt>Pickup location</dt><dd>{_e(state.details.pickup_location)}</dd></dl>"
    )
    return _page("Request received", body_html)


async def _external_id(request: web.Request, request_id: int) -> str | None:
    from sqlalchemy import select

    from ..store.models import borrowing_requests_t as br

    async with gw(request).engine.connect() as conn:
        return (await conn.execute(select(br.c.external_id).where(br.c.id == request_id))).scalar_one_or_none()
