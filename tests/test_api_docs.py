"""/docs is served from the package: it works offline and under its Content-Security-Policy."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from dovecote.core.api_docs import ASSETS


async def test_docs_reference_only_files_the_server_serves(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")

    assert page.status_code == 200
    referenced = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sorted(referenced) == [
        "/docs/docs.js",
        "/docs/favicon-32x32.png",
        "/docs/swagger-ui-bundle.js",
        "/docs/swagger-ui.css",
    ]
    assert "http" not in page.text.lower()  # no URL of another host, no CDN
    for path in referenced:
        asset = await client.get(path)
        assert asset.status_code == 200
        assert asset.content == (ASSETS / Path(path).name).read_bytes()
    starter = (await client.get("/docs/docs.js")).text
    assert 'url: "/openapi.json"' in starter
    assert (await client.get("/openapi.json")).status_code == 200


async def test_docs_allow_no_inline_script_and_nothing_from_elsewhere(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/docs")

    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self';" in policy
    assert "<script>" not in page.text  # every script is a file the policy allows
    bundle = await client.get("/docs/swagger-ui-bundle.js")
    assert bundle.headers["content-type"].startswith("text/javascript")
    assert "SwaggerUIBundle" in bundle.text


async def test_redoc_is_not_served(client: httpx.AsyncClient) -> None:
    assert (await client.get("/redoc")).status_code == 404  # it would load from a CDN
