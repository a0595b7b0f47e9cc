"""Browsers on other origins: CORS for the API, and the Origin rule of the live socket.

Communities embed react-ui in their own site, so the browser calls Dovecote from another
origin. `DOVECOTE_CORS_ORIGINS` lists the origins allowed to; none by default. Tokens travel in
the Authorization header, never in cookies, so no credentials mode is needed (and none is
allowed). WebSockets are not covered by CORS: `socket_origin_allowed` applies the same list
(plus the server's own origin) to the `/ws/notify` handshake.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from dovecote.core.settings import Settings
from dovecote.core.web_client import CONNECTION_HEADER, SEND_RESPONSE_HEADER

ALLOWED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# What SelfCommunity's clients and Dovecote's page send beyond the CORS-safelisted headers
# (Accept, Accept-Language, Content-Language, Content-Type are always allowed by Starlette).
ALLOWED_HEADERS = (
    "Authorization",
    "Content-Type",
    "Content-Range",  # react-ui's chunked uploader
    "Idempotency-Key",
    "X-Requested-With",
    CONNECTION_HEADER,
    SEND_RESPONSE_HEADER,
)
EXPOSED_HEADERS = ("Retry-After", "Content-Range", "Content-Disposition", "WWW-Authenticate")
PREFLIGHT_MAX_AGE = 600


def install(app: FastAPI, settings: Settings) -> None:
    """Answer CORS for the configured origins. Add it last: the outermost middleware, so error
    answers of the inner ones (413, 503) carry the headers too and the page can read them."""
    origins = settings.cors_origin_list
    if not origins:
        return  # no origin allowed: preflights stay unanswered (405), browsers refuse
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_methods=ALLOWED_METHODS,
        allow_headers=ALLOWED_HEADERS,
        expose_headers=EXPOSED_HEADERS,
        allow_credentials=False,
        max_age=PREFLIGHT_MAX_AGE,
    )


def socket_origin_allowed(settings: Settings, origin: str | None, host: str | None) -> bool:
    """Whether a WebSocket handshake's Origin may open a live socket.

    No Origin header: not a browser (curl, apps, servers) — allowed, the token decides. A
    browser's Origin must be one of `DOVECOTE_CORS_ORIGINS`, the origin of
    `DOVECOTE_PUBLIC_URL`, or name the host the request was sent to (the page Dovecote serves
    itself, directly or behind a proxy that keeps the Host header)."""
    if origin is None:
        return True
    origin = origin.strip().lower().rstrip("/")
    if origin in settings.cors_origin_list:
        return True
    if settings.public_url and origin == _origin_of(settings.public_url):
        return True
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.hostname or not host:
        return False
    return _netloc(parts.scheme, parts.netloc) == _netloc(parts.scheme, host.strip().lower())


def _origin_of(url: str) -> str:
    parts = urlsplit(url.lower())
    return f"{parts.scheme}://{parts.netloc}"


def _netloc(scheme: str, netloc: str) -> str:
    """host:port with the scheme's default port made explicit."""
    default = ":443" if scheme == "https" else ":80"
    if netloc.startswith("["):  # IPv6 literal: [::1] or [::1]:8000
        return netloc if "]:" in netloc else netloc + default
    return netloc if ":" in netloc else netloc + default
