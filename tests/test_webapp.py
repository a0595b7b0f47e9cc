"""Serving the built page from the package (issue 11): routes, caching, compression, CSP."""

from __future__ import annotations

import gzip
import re

import httpx
import pytest

from dovecote.webapp.router import STATIC

pytestmark = pytest.mark.skipif(
    not (STATIC / "index.html").is_file(), reason="the page is not built (cd web && npm run build)"
)


def entry_script() -> str:
    html = (STATIC / "index.html").read_text()
    match = re.search(r'src="/assets/([^"]+\.js)"', html)
    assert match, html
    return match.group(1)


async def test_root_goes_to_the_inbox(client: httpx.AsyncClient) -> None:
    for path in ("/", "/messages"):
        response = await client.get(path)
        assert response.status_code == 307
        assert response.headers["location"] == "/messages/"


@pytest.mark.parametrize("path", ["/messages/", "/messages/42/", "/messages/new/"])
async def test_the_page_routes_answer_the_html_uncached_with_a_csp(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-cache"
    assert response.text == (STATIC / "index.html").read_text()
    csp = dict(
        part.strip().split(" ", 1)
        for part in response.headers["content-security-policy"].split(";")
    )
    assert csp["default-src"] == "'none'"
    assert csp["script-src"] == "'self'"  # no inline script, no eval
    assert csp["frame-ancestors"] == "'none'"
    assert csp["connect-src"].startswith("'self'")
    assert response.headers["x-content-type-options"] == "nosniff"
    head = await client.head(path)
    assert head.status_code == 200


async def test_assets_are_immutable_and_precompressed(client: httpx.AsyncClient) -> None:
    name = entry_script()
    raw = (STATIC / "assets" / name).read_bytes()
    plain = await client.get(f"/assets/{name}", headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200
    assert plain.content == raw
    assert plain.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert plain.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert "content-encoding" not in plain.headers
    assert plain.headers["vary"] == "Accept-Encoding"

    gz = await client.get(f"/assets/{name}", headers={"Accept-Encoding": "gzip"})
    assert gz.headers["content-encoding"] == "gzip"
    assert gz.content == raw  # httpx decodes gzip
    compressed = (STATIC / "assets" / f"{name}.gz").read_bytes()
    assert len(compressed) < len(raw)
    assert gzip.decompress(compressed) == raw

    br = await client.get(f"/assets/{name}", headers={"Accept-Encoding": "gzip, br"})
    assert br.headers["content-encoding"] == "br"
    assert int(br.headers["content-length"]) == (STATIC / "assets" / f"{name}.br").stat().st_size


@pytest.mark.parametrize(
    "path", ["/assets/nope-12345678.js", "/assets/..%2Findex.html", "/assets/.hidden"]
)
async def test_unknown_assets_are_404_in_the_error_shape(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "not_found"


async def test_the_compressed_copies_are_not_served_by_name(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/assets/{entry_script()}.gz")
    assert response.status_code == 404


async def test_the_api_is_not_shadowed(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v2/pm/")
    assert response.status_code == 401
    assert (await client.get("/healthz")).json() == {"status": "ok"}
