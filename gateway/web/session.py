"""Staff sessions: an encrypted, signed cookie (aiohttp-session's EncryptedCookieStorage, Fernet)
that holds who signed in, when, when they were last seen, and the CSRF token.

The secret comes from `[web] session_secret`, or from `[web] session_secret_file`, created with a
random secret the first time (the embedded default keeps it under ./var). Every process behind one
address must share it. The storage is made on the first request that needs a session, so a gateway
that serves no page never reads or creates the file.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path
from typing import Any

import aiohttp_session
from aiohttp import web
from aiohttp_session.cookie_storage import EncryptedCookieStorage

from ..config import Config, WebSettings

COOKIE_NAME = "gateway_session"
_MIDDLEWARE = web.AppKey("web_session_middleware", list)
SESSION_PATH_PREFIXES = ("/api/", "/iso18626", "/healthz", "/readyz", "/static/")


def session_key(settings: WebSettings) -> bytes:
    """The 32-byte key of the cookie's encryption, from the configured secret or its file."""
    secret = settings.session_secret
    if secret is None:
        secret = _secret_from_file(Path(settings.session_secret_file))
    return hashlib.sha256(secret.encode("utf-8")).digest()


def _secret_from_file(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = secrets.token_urlsafe(48)
        # Written whole to a file of our own, then linked into place: of several processes starting
        # at once one links and all read the same secret; none can read a file still being written.
        draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text + "\n")
            os.link(draft, path)
        except FileExistsError:
            return _secret_from_file(path)
        finally:
            draft.unlink(missing_ok=True)
    if len(text) < 32:
        raise ValueError(f"{path}: the session secret must be at least 32 characters")
    return text


def storage_for(config: Config) -> EncryptedCookieStorage:
    return EncryptedCookieStorage(
        session_key(config.web), cookie_name=COOKIE_NAME, httponly=True, samesite="Lax",
        secure=config.public_url.startswith("https:"), max_age=None,  # a browser-session cookie;
        # the idle and absolute expiry are checked against the times kept inside (signin.py)
    )


def install(app: web.Application, config: Config) -> None:
    """Add the session middleware; its storage is made when a page first needs it."""
    holder: list[Any] = []
    app[_MIDDLEWARE] = holder

    @web.middleware
    async def sessions(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith(SESSION_PATH_PREFIXES):
            return await handler(request)
        if not holder:
            holder.append(aiohttp_session.session_middleware(storage_for(config)))
        return await holder[0](request, handler)

    app.middlewares.append(sessions)
