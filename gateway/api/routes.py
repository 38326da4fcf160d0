"""The staff API's routes (`/api/v1/...`), the patron intake (`/openurl`), and their middlewares.

`add_routes(app)` is called once by `gateway.app.build_app`. The route table below is the one
place that says which handler serves which path; `openapi.py` documents the same table, and a
test checks that the two list the same operations.
"""

from __future__ import annotations

from aiohttp import web

from ..runtime import gateway_of
from . import borrowing as b
from . import events, intake, openapi, partners
from . import lending as lend
from ._web import ok, path_id, read
from .auth import KeyRing, auth_middleware, principal_of, require_admin
from .errors import error_middleware, not_found

V1 = "/api/v1"
BR = f"{V1}/borrowing-requests"
LR = f"{V1}/lending-requests"
ID = r"{id:\d+}"
KEYRING = web.AppKey("api_keyring", KeyRing)

# (method, path, handler); GET routes also answer HEAD.
ROUTES: list[tuple[str, str, object]] = [
    ("GET", f"{V1}/openapi.json", openapi.serve),
    ("GET", f"{V1}/whoami", None),  # filled below
    ("GET", f"{V1}/api-keys", None),
    ("GET", f"{V1}/events", events.events),
    ("GET", f"{V1}/raw-messages/{{rid:\\d+}}", None),
    ("GET", f"{V1}/partners", partners.list_partners),
    ("POST", f"{V1}/patron-requests", intake.api_patron_request),
    ("GET", BR, b.list_requests),
    ("POST", BR, b.create),
    ("GET", f"{BR}/{ID}", b.get_request),
    ("PATCH", f"{BR}/{ID}", b.edit),
    ("GET", f"{BR}/{ID}/history", b.get_history),
    ("GET", f"{BR}/{ID}/rota", b.get_rota),
    ("POST", f"{BR}/{ID}/rota", b.post_rota),
    ("POST", f"{BR}/{ID}/actions/{{name}}", b.action),
    ("GET", f"{BR}/{ID}/messages", b.get_messages),
    ("POST", f"{BR}/{ID}/messages", b.post_message),
    ("GET", f"{BR}/{ID}/notes", b.get_notes),
    ("POST", f"{BR}/{ID}/notes", b.post_note),
    ("GET", f"{BR}/{ID}/received-items", b.get_received_items),
    ("GET", f"{BR}/{ID}/parameters", b.get_parameters),
    ("PUT", f"{BR}/{ID}/parameters", b.put_parameters),
    ("PATCH", f"{BR}/{ID}/parameters", b.patch_parameters),
    ("GET", f"{BR}/{ID}/attachments", b.get_attachments),
    ("POST", f"{BR}/{ID}/attachments", b.upload_attachment),
    ("GET", f"{BR}/{ID}/attachments/{{aid:\\d+}}", b.download_attachment),
    ("GET", LR, lend.list_requests),
    ("GET", f"{LR}/{ID}", lend.get_request),
    ("GET", f"{LR}/{ID}/history", lend.get_history),
    ("POST", f"{LR}/{ID}/actions/{{name}}", lend.action),
    ("GET", f"{LR}/{ID}/messages", lend.get_messages),
    ("POST", f"{LR}/{ID}/messages", lend.post_message),
    ("GET", f"{LR}/{ID}/notes", lend.get_notes),
    ("POST", f"{LR}/{ID}/notes", lend.post_note),
]


async def whoami(request: web.Request) -> web.Response:
    p = principal_of(request)
    return ok({"name": p.name, "role": p.role, "actor": p.actor})


async def api_keys(request: web.Request) -> web.Response:
    """Admin: the configured keys' names and roles (never the keys)."""
    require_admin(request)
    ring = request.app[KEYRING]
    return ok({"api_keys": [{"name": p.name, "role": p.role} for p in ring.principals()]})


async def raw_message(request: web.Request) -> web.Response:
    """A stored ISO 18626 message, verbatim (history rows link to it by `raw_message_id`)."""
    from sqlalchemy import select

    from ..store.models import raw_messages_t as t

    rid = path_id(request, "rid")

    def load(conn):  # type: ignore[no-untyped-def]
        row = conn.execute(select(t.c.body).where(t.c.id == rid)).first()
        return None if row is None else row[0]

    body = await read(request, load)
    if body is None:
        raise not_found(f"no raw message {rid}")
    # The partner wrote every byte: as XML, a browser would run its <?xml-stylesheet?> in our
    # origin. Plain text under a policy that allows nothing is only ever shown (docs/raw-messages.md).
    return web.Response(body=body, headers={
        "Content-Type": "text/plain; charset=utf-8" if _is_utf8(body) else "text/plain",
        "Content-Disposition": f'inline; filename="raw-message-{rid}.xml"',
        "Content-Security-Policy": RAW_MESSAGE_POLICY,
        "X-Content-Type-Options": "nosniff",
    })


RAW_MESSAGE_POLICY = "default-src 'none'; sandbox; frame-ancestors 'none'"


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


_FILLED = {f"{V1}/whoami": whoami, f"{V1}/api-keys": api_keys, f"{V1}/raw-messages/{{rid:\\d+}}": raw_message}


def add_routes(app: web.Application) -> None:
    gateway = gateway_of(app)
    ring = KeyRing(list(gateway.config.api_keys))
    app[KEYRING] = ring
    app.middlewares.append(error_middleware)
    app.middlewares.append(auth_middleware(ring))
    for method, path, handler in ROUTES:
        handler = handler or _FILLED[path]
        if method == "GET":
            app.router.add_get(path, handler)  # type: ignore[arg-type]  (and HEAD)
        else:
            app.router.add_route(method, path, handler)  # type: ignore[arg-type]
    app.router.add_get("/openurl", intake.openurl_form)
    app.router.add_post("/openurl/submit", intake.openurl_submit)
