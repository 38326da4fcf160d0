"""The Attachments tab of a borrowing request: the list, the upload form (multipart; its CSRF
token rides in the action URL so the file is streamed, never buffered whole) and the download,
always as an attachment with the stored type, `nosniff` and a cleaned file name."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from ..api import queries as q
from ..api.borrowing import _read_limited, clean_filename, clean_media_type
from ..api.errors import ApiError
from .borrowing_tabs import form_error, load, render_tab, size_words
from .outcomes import page_id
from .render import flash, gw, see_other
from .signin import staff_of, staff_page

DRAIN_LIMIT = 64 * 1024 * 1024  # an over-size upload is read (and dropped) up to this, so the browser sees the page


@staff_page
async def attachments_tab(request: web.Request) -> web.StreamResponse:
    r = await load(request, page_id(request))
    return await render_tab(request, r, "attachments")


async def _drain(part: BodyPartReader) -> None:
    seen = 0
    while seen < DRAIN_LIMIT:
        chunk = await part.read_chunk(65536)
        if not chunk:
            return
        seen += len(chunk)


@staff_page(write=True)
async def upload(request: web.Request) -> web.StreamResponse:
    request_id = page_id(request)
    limit = gw(request).config.api.attachment_limit
    too_big = f"The file is too large: attachments are limited to {size_words(limit)}. Nothing was stored."
    if not request.content_type.startswith("multipart/"):
        raise web.HTTPBadRequest(text="upload the file with the form (multipart/form-data)")
    part = None
    try:
        reader = await request.multipart()
        part = await reader.next()
        while part is not None and (not isinstance(part, BodyPartReader) or part.name != "file"):
            part = await reader.next()
        if part is None or not part.filename:
            return await form_error(request, request_id, "attachments", "file", "Choose a file to upload.", {})
        filename = clean_filename(part.filename)
        media_type = clean_media_type(part.headers.get("Content-Type"))
        content = await _read_limited(part, limit)
    except ApiError as exc:
        if exc.status == 413:
            if isinstance(part, BodyPartReader):
                await _drain(part)
            return await form_error(request, request_id, "attachments", "file", too_big, {})
        return await form_error(request, request_id, "attachments", "file", f"The file name {exc.message}.", {})
    except (ValueError, AssertionError, RuntimeError, HttpProcessingError):
        return await form_error(request, request_id, "attachments", "file",
                                "The upload could not be read; try again.", {})
    if not content:
        return await form_error(request, request_id, "attachments", "file", "The file is empty.", {})
    await gw(request).borrowing.add_attachment(request_id, filename, media_type, content,
                                               actor=staff_of(request).actor)
    await flash(request, f"Attached {filename}.", "success")
    raise see_other(f"/borrowing/{request_id}/attachments")


@staff_page
async def download(request: web.Request) -> web.StreamResponse:
    request_id, attachment_id = page_id(request), page_id(request, "aid")
    async with gw(request).engine.connect() as conn:
        row = await conn.run_sync(q.attachment, request_id, attachment_id)
    if row is None:
        raise web.HTTPNotFound(text="no such attachment")
    content: bytes = bytes(row["content"] or b"")
    name = clean_filename(row["filename"]) if row["filename"] else f"attachment-{attachment_id}"
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "'").replace("?", "_")
    return web.Response(body=content, headers={
        "Content-Type": clean_media_type(row["media_type"]),
        "Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
    })


ROUTES = [
    ("GET", r"/borrowing/{id:\d+}/attachments", attachments_tab),
    ("POST", r"/borrowing/{id:\d+}/attachments", upload),
    ("GET", r"/borrowing/{id:\d+}/attachments/{aid:\d+}", download),
]
