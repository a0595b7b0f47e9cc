"""Serves the built web page: index.html for the page's routes, hashed files under /assets/.

The build is committed inside the package (static/), so `dovecote serve` needs no Node.js.
Assets have content-hashed names and are cached for a year as immutable; index.html is
`no-cache` so a new build is picked up at once. Compressed copies (.br, .gz) are made at build
time (web/scripts/compress.mjs) and chosen here by Accept-Encoding: no compression per request.
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from dovecote.core.handlers import error_body
from dovecote.core.settings import Settings

STATIC = Path(__file__).parent / "static"
IMMUTABLE = "public, max-age=31536000, immutable"
NO_CACHE = "no-cache"
# Best first: what the server sends when the browser accepts it.
ENCODINGS = (("br", ".br"), ("gzip", ".gz"))


@dataclass(frozen=True)
class StaticFile:
    media_type: str
    variants: dict[str, bytes]  # "identity", "br", "gzip" -> bytes

    def pick(self, accept_encoding: str) -> tuple[str, bytes]:
        accepted = {part.split(";")[0].strip().lower() for part in accept_encoding.split(",")}
        for encoding, _ in ENCODINGS:
            if encoding in accepted and encoding in self.variants:
                return encoding, self.variants[encoding]
        return "identity", self.variants["identity"]


@lru_cache(maxsize=512)
def _load(path: Path) -> StaticFile | None:
    """A file of the build and its precompressed copies, read once per process."""
    if not path.is_file():
        return None
    variants = {"identity": path.read_bytes()}
    for encoding, suffix in ENCODINGS:
        compressed = path.with_name(path.name + suffix)
        if compressed.is_file():
            variants[encoding] = compressed.read_bytes()
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if media_type.startswith("text/") or media_type in ("application/javascript", "image/svg+xml"):
        media_type += "; charset=utf-8"
    return StaticFile(media_type, variants)


def content_security_policy(settings: Settings) -> str:
    """What the bundle needs and no more: its own scripts (no inline script, no eval), inline
    styles (emotion/MUI insert <style> elements), images and media from the API and from
    data:/blob: URLs (react-ui's placeholders and upload previews), the pdf.js worker (a file
    of the build, run as a blob by pdf.js' fallback), and calls/sockets to the API's origin."""
    connect = ["'self'"]
    if settings.public_url:  # the public address behind a proxy, for browsers that do not let
        parts = urlsplit(settings.public_url)  # 'self' cover ws(s):// (it does in CSP 3)
        connect.append(f"{'wss' if parts.scheme == 'https' else 'ws'}://{parts.netloc}")
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data: blob:",
            "media-src 'self' data: blob:",
            "font-src 'self' data:",
            "connect-src " + " ".join(connect),
            "worker-src 'self' blob:",
            "manifest-src 'self'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
            "object-src 'none'",
        ]
    )


def _not_found() -> JSONResponse:
    return JSONResponse(error_body("Not found.", "not_found"), 404)


def _send(file: StaticFile, request: Request, headers: dict[str, str]) -> Response:
    """A static file in the encoding the client accepts best."""
    encoding, body = file.pick(request.headers.get("accept-encoding", ""))
    out = dict(headers, Vary="Accept-Encoding")
    if encoding != "identity":
        out["Content-Encoding"] = encoding
    return Response(body, media_type=file.media_type, headers=out)


def _page(request: Request, headers: dict[str, str]) -> Response:
    index = _load(STATIC / "index.html")
    if index is None:  # a checkout whose web/ was never built
        return JSONResponse(
            error_body(
                "The web page is not built (cd web && npm ci && npm run build).",
                "page_not_built",
            ),
            404,
        )
    return _send(index, request, headers)


def _page_headers(settings: Settings) -> dict[str, str]:
    return {
        "Cache-Control": NO_CACHE,
        "Content-Security-Policy": content_security_policy(settings),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
    }


def install(app: FastAPI, settings: Settings) -> None:
    """Mounts the page's routes; the API's routes are registered first and win."""
    router = APIRouter(include_in_schema=False)
    page_headers = _page_headers(settings)

    def page(request: Request) -> Response:
        return _page(request, page_headers)

    @router.api_route("/", methods=["GET", "HEAD"])
    async def root() -> RedirectResponse:
        return RedirectResponse("/messages/", status_code=307, headers={"Cache-Control": NO_CACHE})

    @router.api_route("/messages", methods=["GET", "HEAD"])
    async def messages_bare() -> RedirectResponse:
        return RedirectResponse("/messages/", status_code=307, headers={"Cache-Control": NO_CACHE})

    @router.api_route("/messages/", methods=["GET", "HEAD"])
    async def inbox(request: Request) -> Response:
        return page(request)

    @router.api_route("/messages/{rest:path}", methods=["GET", "HEAD"])
    async def thread(request: Request, rest: str) -> Response:
        return page(request)  # the page reads the route (/messages/<user_id>/) itself

    @router.api_route("/assets/{name}", methods=["GET", "HEAD"])
    async def asset(request: Request, name: str) -> Response:
        if "/" in name or name.startswith(".") or name.endswith((".br", ".gz")):
            return _not_found()
        file = _load(STATIC / "assets" / name)
        if file is None:
            return _not_found()
        return _send(
            file, request, {"Cache-Control": IMMUTABLE, "X-Content-Type-Options": "nosniff"}
        )

    app.include_router(router)
