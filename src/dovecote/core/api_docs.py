"""The interactive API documentation at /docs: Swagger UI served from the package, never from a
CDN, so that it works on an offline or locked-down host, under a Content-Security-Policy that
allows no inline script and nothing from elsewhere (core/swagger_ui/README.md says where the
files come from)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response

ASSETS = Path(__file__).resolve().parent / "swagger_ui"
MEDIA_TYPES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "docs.js": "text/javascript",
    "favicon-32x32.png": "image/png",
}
# Swagger UI sets style attributes and draws its icons as data: images.
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
<link rel="icon" type="image/png" href="/docs/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/docs.js"></script>
</body>
</html>
"""
HEADERS = {"Content-Security-Policy": POLICY, "X-Content-Type-Options": "nosniff"}


def install(app: FastAPI) -> None:
    """Serve /docs and its files (the app is made with `docs_url=None`)."""
    page = PAGE.format(title=app.title)

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(page, headers={**HEADERS, "Cache-Control": "no-cache"})

    for name, media_type in MEDIA_TYPES.items():
        _serve_file(app, name, media_type)


def _serve_file(app: FastAPI, name: str, media_type: str) -> None:
    body = (ASSETS / name).read_bytes()
    headers = {**HEADERS, "Cache-Control": "public, max-age=86400"}

    @app.get(f"/docs/{name}", include_in_schema=False)
    async def asset() -> Response:
        return Response(body, media_type=media_type, headers=headers)
